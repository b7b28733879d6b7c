"""A population model over electrodes: frozen per-electrode embeddings read out together, placed by their
coordinates, pretrained without labels across subjects (in the spirit of PopT, Chau et al.).

Input of one window: the frozen embedding of every usable electrode of a subject (``n_electrodes x d_in``, any
number of electrodes) and each electrode's x, y, z in mm. Every electrode becomes a token::

    token_i = W_in z_i + W_pos fourier(x_i, y_i, z_i)       (or + u, a learned vector, when x_i is unknown)

where ``z_i`` is the embedding z-scored with its subject's statistics (per feature, over all windows and
electrodes; no label enters) and ``fourier`` maps each coordinate to sin/cos at wavelengths spaced geometrically
from ``max_wavelength_mm`` down to ``min_wavelength_mm`` (a continuous position code: electrodes 2 mm apart get
near-identical codes, whatever their names). A learned summary token is prepended and a transformer encoder
(pre-norm, no positional order between tokens: the set is unordered) mixes them; the summary token's output is
the window's population representation.

Self-supervised pretraining (labels never used), every step on a batch of windows of one subject:

* same-window discrimination: the electrodes are split at random into two halves; each half is encoded on its
  own and a head tells whether the two summaries come from the same window or from two different windows;
* replaced-electrode detection: a fraction of the electrodes of each half carry the embedding the same
  electrode had in another window; a per-token head finds them.

The readout (:func:`bids_brainbert.analyses.decoding.decode`) is the linear probe of the per-electrode analysis on
the summary token, with the same leakage-free folds and refitted permutation null.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, UsageError
from ..model.checkpoints import _atomic_write, _atomic_write_text, software_versions, weights_sha256
from ..params import default_of

LOGGER = logging.getLogger("bids_brainbert")

WEIGHTS_NAME = "population.safetensors"
CONFIG_NAME = "population.json"
FORMAT = "bids-brainbert-population"
FORMAT_VERSION = 1
MAX_WIDTH = 4096                    # bounds on a checkpoint's declared sizes, checked before allocating
MAX_LAYERS = 24


@dataclass(frozen=True)
class PopulationConfig:
    d_in: int                                  # per-electrode embedding width
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 128
    dropout: float = 0.1
    n_wavelengths: int = 8                     # Fourier features per axis: sin and cos at each wavelength
    min_wavelength_mm: float = 4.0
    max_wavelength_mm: float = 200.0

    def __post_init__(self):
        for name in ("d_in", "d_model", "d_ff", "n_heads", "n_wavelengths"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= MAX_WIDTH:
                raise ValueError(f"population model: {name} must be an integer in 1..{MAX_WIDTH}, got {value!r}")
        if not isinstance(self.n_layers, int) or not 1 <= self.n_layers <= MAX_LAYERS:
            raise ValueError(f"population model: n_layers must be an integer in 1..{MAX_LAYERS}")
        if self.d_model % self.n_heads:
            raise ValueError(f"population model: d_model ({self.d_model}) must be a multiple of n_heads "
                             f"({self.n_heads})")
        if not 0 < self.min_wavelength_mm <= self.max_wavelength_mm:
            raise ValueError("population model: need 0 < min_wavelength_mm <= max_wavelength_mm")
        if not 0 <= self.dropout < 1:
            raise ValueError("population model: dropout must be in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PopulationConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"population model: unknown config keys {sorted(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class PretrainParams:
    steps: int = default_of("population_steps")
    batch_windows: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    replace_fraction: float = 0.15             # electrodes of a half that get another window's embedding

    def __post_init__(self):
        if self.steps < 1 or self.batch_windows < 1 or self.lr <= 0 or not 0 < self.replace_fraction < 1:
            raise UsageError(f"population pretraining: steps and batch must be >= 1, lr > 0 and the replaced "
                             f"fraction in (0, 1), got {self.to_dict()}")

    def to_dict(self) -> dict:
        return asdict(self)


def fourier_features(coords_mm: torch.Tensor, config: PopulationConfig) -> torch.Tensor:
    """(..., 3) coordinates in mm -> (..., 6 * n_wavelengths) sin/cos features (NaN rows stay NaN)."""
    wavelengths = torch.logspace(math.log10(config.max_wavelength_mm), math.log10(config.min_wavelength_mm),
                                 config.n_wavelengths, dtype=coords_mm.dtype, device=coords_mm.device)
    phase = 2 * math.pi * coords_mm[..., :, None] / wavelengths               # (..., 3, n_wavelengths)
    return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1).flatten(-2)


class PopulationModel(nn.Module):
    def __init__(self, config: PopulationConfig):
        super().__init__()
        self.config = config
        d = config.d_model
        self.input = nn.Linear(config.d_in, d)
        self.position = nn.Linear(6 * config.n_wavelengths, d)
        self.unknown_position = nn.Parameter(torch.zeros(d))
        self.summary = nn.Parameter(torch.zeros(d))
        layer = nn.TransformerEncoderLayer(d, config.n_heads, config.d_ff, config.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.same_window_head = nn.Linear(4 * d, 1)
        self.replaced_head = nn.Linear(d, 1)
        nn.init.normal_(self.unknown_position, std=0.02)
        nn.init.normal_(self.summary, std=0.02)

    def forward(self, x: torch.Tensor, coords_mm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (batch, n_electrodes, d_in), ``coords_mm`` (n_electrodes, 3) or (batch, n_electrodes, 3), NaN =
        unknown. Returns the summary (batch, d_model) and the electrode tokens (batch, n_electrodes, d_model)."""
        known = torch.isfinite(coords_mm).all(dim=-1, keepdim=True)
        position = self.position(fourier_features(torch.nan_to_num(coords_mm), self.config))
        position = torch.where(known, position, self.unknown_position)
        tokens = self.input(x) + position
        summary = self.summary.expand(len(x), 1, -1)
        out = self.norm(self.encoder(torch.cat([summary, tokens], dim=1)))
        return out[:, 0], out[:, 1:]

    def same_window_logit(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.same_window_head(torch.cat([a, b, a * b, (a - b).abs()], dim=-1))[:, 0]


@dataclass
class SubjectWindows:
    """Label-free inputs of one subject: ``x`` (n_windows, n_electrodes, d_in) frozen embeddings, ``coords_mm``
    (n_electrodes, 3) with NaN rows for electrodes without coordinates."""

    subject: str
    x: np.ndarray
    coords_mm: np.ndarray
    electrodes: list[str]

    def standardized(self) -> np.ndarray:
        """Per-feature z-scores over all windows and electrodes of the subject (label-free)."""
        x = np.asarray(self.x, np.float64)
        mean = x.mean(axis=(0, 1))
        sd = x.std(axis=(0, 1))
        sd[sd == 0] = 1.0
        return ((x - mean) / sd).astype(np.float32)


def check_coordinates(subject: SubjectWindows) -> int:
    """Warn about electrodes without coordinates (they get the learned unknown-position vector); their count."""
    coords = np.asarray(subject.coords_mm, float)
    if coords.shape != (len(subject.electrodes), 3):
        raise ValueError(f"sub-{subject.subject}: coordinates must be (n_electrodes, 3), got {coords.shape}")
    missing = [name for name, row in zip(subject.electrodes, coords) if not np.all(np.isfinite(row))]
    if missing:
        LOGGER.warning("sub-%s: %d of %d electrodes have no coordinates (%s); the population model places them "
                       "at its learned 'unknown position'", subject.subject, len(missing), len(subject.electrodes),
                       ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else ""))
    return len(missing)


def _pretraining_batch(x: torch.Tensor, coords: torch.Tensor, params: PretrainParams, gen: torch.Generator):
    """Two halves of the electrode set for a batch of windows, with same/different-window and replaced labels."""
    n_windows, n_electrodes = x.shape[:2]
    batch = min(params.batch_windows, n_windows)
    windows = torch.randperm(n_windows, generator=gen)[:batch]
    order = torch.randperm(n_electrodes, generator=gen)
    half_a, half_b = order[: n_electrodes // 2], order[n_electrodes // 2:]
    same = torch.rand(batch, generator=gen) < 0.5
    shift = torch.randint(1, n_windows, (batch,), generator=gen)
    other = (windows + shift) % n_windows
    windows_b = torch.where(same, windows, other)
    halves = []
    for half, rows in ((half_a, windows), (half_b, windows_b)):
        tokens = x[rows][:, half].clone()
        replaced = torch.rand(tokens.shape[:2], generator=gen) < params.replace_fraction
        donors = (rows[:, None] + torch.randint(1, n_windows, tokens.shape[:2], generator=gen)) % n_windows
        swapped = x[donors, half[None, :].expand_as(donors)]
        tokens = torch.where(replaced[..., None], swapped, tokens)
        halves.append((tokens, coords[half], replaced))
    return halves, same


def pretrain_population(subjects: list[SubjectWindows], config: PopulationConfig, params: PretrainParams,
                        seed: int) -> tuple[PopulationModel, dict]:
    """Self-supervised pretraining across ``subjects`` (see the module notes). Returns the model (eval mode) and a
    JSON summary of the run (steps, losses, accuracies of the two pretext tasks at the end, windows, time)."""
    usable = [s for s in subjects if s.x.shape[1] >= 2 and s.x.shape[0] >= 2]
    if not usable:
        raise ValueError("population pretraining needs a subject with at least two electrodes and two windows")
    for s in usable:
        if s.x.shape[2] != config.d_in:
            raise ValueError(f"sub-{s.subject}: embeddings are {s.x.shape[2]} wide, the model expects "
                             f"{config.d_in}")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = PopulationModel(config)
        data = [(torch.from_numpy(s.standardized()), torch.as_tensor(np.asarray(s.coords_mm, np.float32)))
                for s in usable]
        weights = torch.tensor([float(s.x.shape[0]) for s in usable])
        optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
        bce = nn.BCEWithLogitsLoss()
        history, started = [], time.perf_counter()
        model.train()
        for step in range(params.steps):
            x, coords = data[int(torch.multinomial(weights, 1, generator=gen))]
            halves, same = _pretraining_batch(x, coords, params, gen)
            summaries, token_losses, token_hits = [], [], []
            for tokens, half_coords, replaced in halves:
                summary, out = model(tokens, half_coords)
                summaries.append(summary)
                logits = model.replaced_head(out)[..., 0]
                token_losses.append(bce(logits, replaced.float()))
                token_hits.append(((logits > 0) == replaced).float().mean())
            same_logit = model.same_window_logit(*summaries)
            loss_same = bce(same_logit, same.float())
            loss = loss_same + 0.5 * (token_losses[0] + token_losses[1])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append([float(loss_same.detach()), float((token_losses[0] + token_losses[1]).detach()) / 2,
                            float(((same_logit > 0) == same).float().mean()), float(sum(token_hits)) / 2])
        model.eval()
    tail = np.mean(history[-max(1, len(history) // 10):], axis=0)
    summary = {"Steps": params.steps, "Subjects": [s.subject for s in usable],
               "Windows": int(sum(s.x.shape[0] for s in usable)),
               "Electrodes": {s.subject: int(s.x.shape[1]) for s in usable},
               "FinalSameWindowLoss": round(float(tail[0]), 6), "FinalReplacedLoss": round(float(tail[1]), 6),
               "FinalSameWindowAccuracy": round(float(tail[2]), 4), "FinalReplacedAccuracy": round(float(tail[3]), 4),
               "Seconds": round(time.perf_counter() - started, 2), "Seed": int(seed)}
    return model, summary


@torch.no_grad()
def summary_tokens(model: PopulationModel, subject: SubjectWindows, batch: int = 256) -> np.ndarray:
    """(n_windows, d_model) summary-token outputs of the frozen model for every window of ``subject``."""
    model.eval()
    x = torch.from_numpy(subject.standardized())
    coords = torch.as_tensor(np.asarray(subject.coords_mm, np.float32))
    parts = [model(x[i:i + batch], coords)[0] for i in range(0, len(x), batch)]
    return torch.cat(parts).double().numpy() if parts else np.zeros((0, model.config.d_model))


# ------------------------------------------------------------------------------------------------ checkpoints

def save_population(directory: str | os.PathLike, model: PopulationModel, extra: dict) -> Path:
    """``directory``/population.safetensors (weights, no pickle) + population.json (config, training summary)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
              "config": json.dumps(model.config.to_dict(), sort_keys=True)}
    weights = directory / WEIGHTS_NAME
    _atomic_write(weights, lambda tmp: save_file(state, str(tmp), metadata=header))
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config.to_dict(),
            "weights_file": WEIGHTS_NAME, "weights_sha256": weights_sha256(weights), "training": extra,
            "software": software_versions()}
    _atomic_write_text(directory / CONFIG_NAME, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return directory


def load_population(directory: str | os.PathLike) -> PopulationModel:
    """Read a checkpoint written by :func:`save_population`; a malformed one raises CheckpointError naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    meta_path, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, not {FORMAT!r}")
        config = PopulationConfig.from_dict(meta["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{meta_path}: not a population-model config ({exc})") from None
    if weights_sha256(weights) != meta.get("weights_sha256"):
        raise CheckpointError(f"{weights}: checksum differs from {meta_path.name}")
    model = PopulationModel(config)                  # sizes bounded by PopulationConfig's checks
    try:
        state = load_file(str(weights))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"{weights}: weights do not fit the population model ({str(exc).splitlines()[0]})"
                              ) from None
    return model.eval()
