"""The BrainBERT transformer: spectrogram frames in, one hidden vector per frame out.

Architecture (Wang et al. 2023 and its code): Linear(n_freqs → d_model) + fixed sinusoidal positions + LayerNorm +
dropout, then a stack of post-LN transformer encoder layers (GELU, batch-first), and for pretraining a
reconstruction head Linear(d → d), GELU, LayerNorm, Linear(d → n_freqs). There is no CLS token: every frame
gets its own vector.

Shapes: the input is ``(batch, frames, n_freqs)`` — a z-scored spectrogram window with time on axis 1 and
frequency on axis 2 — and hidden states are ``(batch, frames, d_model)``.

Differences from the published code, all deliberate:

- LayerNorms start at weight 1, bias 0 (the original filled the *bias* with 1).
- Layers sit in a plain ``ModuleList`` so :meth:`BrainBertEncoder.forward` can hand back every layer's output.
- Positions are a non-persistent buffer: they are a pure function of ``d_model`` and are not saved.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import UsageError

ACTIVATIONS = ("gelu", "relu")
# Sizes are bounded before anything is allocated: a config comes from checkpoint files, which are hostile until
# proven otherwise. The published large model has 43 M parameters; these bounds leave an order of magnitude.
MAX_MODEL_ELEMENTS = 500_000_000      # parameters + positional table, float32: 2 GB
MAX_FRAMES = 100_000                  # positional table length (the published 5000 frames are two minutes)


@dataclass(frozen=True)
class ModelConfig:
    """Size of a BrainBERT model.

    ``n_freqs`` is the number of frequency bins per frame (input width); ``max_frames`` bounds the window length
    the positional table covers (5000 frames, as published: about two minutes at 40.96 frames/s).
    """

    n_freqs: int = 40
    d_model: int = 768
    n_layers: int = 6
    n_heads: int = 12
    d_ff: int = 3072
    dropout: float = 0.1
    max_frames: int = 5000
    activation: str = "gelu"
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("n_freqs", "d_model", "n_layers", "n_heads", "d_ff", "max_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"model config: {name} must be a positive integer, got {_short(value)}")
        for name in ("dropout", "layer_norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise UsageError(f"model config: {name} must be a finite number, got {_short(value)}")
        if self.max_frames > MAX_FRAMES:
            raise UsageError(f"model config: max_frames={self.max_frames} exceeds the bound of {MAX_FRAMES}")
        if self.n_elements() > MAX_MODEL_ELEMENTS:
            raise UsageError(f"model config: {self.n_elements():.3g} parameters and positions exceed the bound of "
                             f"{MAX_MODEL_ELEMENTS:.3g} (d_model={self.d_model}, d_ff={self.d_ff}, "
                             f"n_layers={self.n_layers}, n_freqs={self.n_freqs}, max_frames={self.max_frames})")
        if not self.layer_norm_eps > 0:
            raise UsageError(f"model config: layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if self.d_model % self.n_heads:
            raise UsageError(f"model config: d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.d_model % 2:
            raise UsageError(f"model config: d_model={self.d_model} must be even (sinusoidal positions)")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise UsageError(f"model config: dropout must lie in [0, 1), got {self.dropout!r}")
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise UsageError(f"model config: activation must be one of {ACTIVATIONS}, got {_short(self.activation)}")

    def n_elements(self) -> int:
        """Parameters of the pretraining model (encoder and head) plus the positional table: what building the
        model allocates, in float32 numbers (computed from the sizes alone, before anything is allocated)."""
        d, layers = self.d_model, self.n_layers
        per_layer = 4 * d * d + 4 * d + 2 * d * self.d_ff + self.d_ff + d + 4 * d
        input_and_head = (self.n_freqs * d + d) + 2 * d + (d * d + d) + 2 * d + (d * self.n_freqs + self.n_freqs)
        return layers * per_layer + input_and_head + self.max_frames * d

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        """One of :data:`PRESETS` ("small", "base", "large"), optionally with fields overridden."""
        try:
            base = PRESETS[name]
        except KeyError:
            raise UsageError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}") from None
        return replace(base, **overrides) if overrides else base

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        if not isinstance(data, Mapping):
            raise UsageError(f"model config: expected a mapping of fields, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"model config: unknown keys {unknown}")
        return cls(**dict(data))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


PRESETS: dict[str, ModelConfig] = {
    # Published sizes (Wang et al. 2023): small 4.7 M, base 21.9 M, large 43.2 M parameters with the head.
    "small": ModelConfig(d_model=384, n_layers=3, n_heads=12, d_ff=1200),
    "base": ModelConfig(d_model=768, n_layers=3, n_heads=12, d_ff=3072),
    "large": ModelConfig(d_model=768, n_layers=6, n_heads=12, d_ff=3072),
}


def resolve_model_config(model: str | ModelConfig | Mapping[str, Any]) -> ModelConfig:
    """A preset name, a mapping of fields or a ModelConfig → ModelConfig."""
    if isinstance(model, ModelConfig):
        return model
    if isinstance(model, str):
        return ModelConfig.preset(model)
    if isinstance(model, Mapping):
        return ModelConfig.from_dict(model)
    raise UsageError(f"model must be a preset name, a mapping or a ModelConfig, got {type(model).__name__}")


def sinusoidal_positions(n_positions: int, d_model: int) -> torch.Tensor:
    """(n_positions, d_model) float32 table: even columns sin(pos·ω_k), odd columns cos(pos·ω_k),
    ω_k = 10000^(-2k/d_model) — the Transformer table, interleaved as in the published checkpoint."""
    position = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    omega = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(n_positions, d_model, dtype=torch.float32)
    table[:, 0::2] = torch.sin(position * omega)
    table[:, 1::2] = torch.cos(position * omega)
    return table


def _init_weights(module: nn.Module) -> None:
    # Linear biases start at zero (as published); LayerNorm at the identity (the original's bias=1 was a bug).
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class BrainBertEncoder(nn.Module):
    """Spectrogram windows (B, T, n_freqs) → hidden states (B, T, d_model).

    Attention goes through ``nn.TransformerEncoderLayer`` (post-LN, batch-first), i.e. PyTorch's scaled-dot-product
    attention kernels in training and its fused encoder kernel in inference.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.input_proj = nn.Linear(config.n_freqs, config.d_model)
        self.register_buffer("positions", sinusoidal_positions(config.max_frames, config.d_model), persistent=False)
        self.input_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model=config.d_model, nhead=config.n_heads, dim_feedforward=config.d_ff, dropout=config.dropout,
                activation=config.activation, layer_norm_eps=config.layer_norm_eps, batch_first=True,
                norm_first=False,
            )
            for _ in range(config.n_layers)
        )
        self.apply(_init_weights)

    def embed_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input stage: projection + positions + LayerNorm + dropout, (B, T, F) → (B, T, d)."""
        if x.dim() != 3 or x.shape[-1] != self.config.n_freqs:
            raise UsageError(f"expected input of shape (batch, frames, {self.config.n_freqs}), "
                             f"got {tuple(x.shape)}")
        if x.shape[1] > self.config.max_frames:
            raise UsageError(f"window of {x.shape[1]} frames is longer than max_frames={self.config.max_frames}")
        h = self.input_proj(x) + self.positions[: x.shape[1]].to(dtype=x.dtype)
        return self.dropout(self.input_norm(h))

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                return_layers: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """Hidden states of the last layer, (B, T, d_model).

        ``key_padding_mask``: optional (B, T) bool, True at padded frames (ignored as attention keys).
        With ``return_layers=True`` returns a list of ``n_layers + 1`` tensors (B, T, d_model): index 0 is the
        input stage's output, index i the output of transformer layer i; the last entry is the usual output.
        """
        h = self.embed_input(x)
        outputs = [h] if return_layers else None
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=key_padding_mask)
            if outputs is not None:
                outputs.append(h)
        return outputs if outputs is not None else h


class ReconstructionHead(nn.Module):
    """Pretraining head: (B, T, d) → (B, T, n_freqs), Linear, GELU, LayerNorm, Linear."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.activation = nn.GELU() if config.activation == "gelu" else nn.ReLU()
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.out = nn.Linear(config.d_model, config.n_freqs)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.activation(self.dense(hidden))))


class BrainBertPretrainModel(nn.Module):
    """Encoder + reconstruction head; ``forward`` predicts the (unmasked) spectrogram, (B, T, n_freqs)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = BrainBertEncoder(config)
        self.head = ReconstructionHead(config)
        self.head.apply(_init_weights)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.encoder(x, key_padding_mask=key_padding_mask))

    def hidden_states(self, x: torch.Tensor, layer: int = -1,
                      key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, d_model) output of one layer: -1 (default) the last, 0 the input stage, i the i-th layer.

        Gradients follow the caller's mode: wrap in ``torch.inference_mode()`` and call ``model.eval()`` for
        embeddings.
        """
        n = self.config.n_layers
        if not -(n + 1) <= layer <= n:
            raise UsageError(f"layer {layer} out of range for a {n}-layer model (use -1, 0..{n})")
        if layer in (-1, n):
            return self.encoder(x, key_padding_mask=key_padding_mask)
        return self.encoder(x, key_padding_mask=key_padding_mask, return_layers=True)[layer]


def build_model(model: str | ModelConfig | Mapping[str, Any] = "small", seed: int | None = None
                ) -> BrainBertPretrainModel:
    """A freshly initialised pretraining model from a preset name, a ModelConfig or a mapping of its fields.

    With ``seed`` the initial weights are reproducible and the caller's global RNG is left untouched.
    """
    config = resolve_model_config(model)
    if seed is None:
        return BrainBertPretrainModel(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BrainBertPretrainModel(config)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
