"""The parameters of each step, defined, defaulted and validated here once.

Every step takes only its own frozen parameter object, never the whole run configuration:

- :class:`PreprocessingParams`: channel selection, notch, re-referencing, resampling;
- :class:`SuperletSettings` and :class:`~bids_brainbert.transforms.stft.StftParams`, together in
  :class:`SpectrogramParams`: the time-frequency front end;
- :class:`EmbeddingSettings`: how a frozen model turns a spectrogram into embeddings;
- group level: :class:`PretrainSettings` (the BrainBERT model), :class:`DecodingSettings` (linear probes,
  data-efficiency curves), :class:`PopulationSettings`, :class:`FinetuneSettings`, :class:`DimensionalitySettings`.
  Each builds the domain object its step runs with (``PretrainConfig``, ``DecodingParams``, ``PretrainParams``,
  ``FinetuneParams``), whose defaults for these settings are taken from here.

Each field is one command-line option (``OPTIONS`` maps field -> option in snake_case): the command line, the
``--config-file`` TOML (both through :class:`bids_brainbert.config.RunConfig`, whose defaults come from here) and
the Python API (:mod:`bids_brainbert.api`, which builds only the objects it needs) share these defaults and checks.
:meth:`shaping` is the part of an object that changes the numbers of a derivative: its fingerprint
(:mod:`bids_brainbert.fingerprints`) is built from it, so a setting that shapes nothing (batch sizes, devices)
never makes a derivative stale.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, Mapping

import numpy as np

from .analyses.decoding import BRAINBERT_SIZES, PERMUTATION_SCHEMES, DecodingParams
from .errors import UsageError
from .preprocessing.referencing import REFERENCE_SCHEMES
from .precision import PRECISIONS
from .transforms.stft import StftParams
from .transforms.superlet_params import DEFINITIONS, SuperletParams
from .windowing import WINDOWINGS

SPECTROGRAM_KINDS = ("superlet", "stft")
SUPERLET_MODES = ("adaptive", "multiplicative")
SUPERLET_BACKENDS = ("auto", "numpy", "torch")   # auto: torch on a CUDA device when there is one, else numpy
POOLINGS = ("middle", "mean")
MODEL_SIZES = ("small", "base", "large")          # the encoder presets (model/encoder.py: PRESETS)
OPTIMIZERS = ("adamw", "lamb")
VALIDATION_SPLITS = ("run", "subject")
DECODING_FEATURES = ("voltage", "superlet", "stft", "laplacian", "embeddings", "random")


def _choice(value: Any, choices: tuple, option: str) -> None:
    if value not in choices:
        raise UsageError(f"--{option.replace('_', '-')} must be one of {', '.join(map(str, choices))}, got {value!r}")


def _positive(value: float, option: str, zero_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not zero_ok):
        raise UsageError(f"--{option.replace('_', '-')} must be a number {'>= 0' if zero_ok else '> 0'}, got {value!r}")


def _integer(value: Any, option: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"--{option.replace('_', '-')} must be an integer >= {minimum}, got {value!r}")


def _default(cls: type, name: str) -> Any:
    """The default of a domain dataclass's field (so that a default shared with it is written once)."""
    return {f.name: f for f in fields(cls)}[name].default


class _Options:
    """Mixin: build from command-line option names, and the shaping part for fingerprints."""

    OPTIONS: ClassVar[dict[str, str]]      # field -> command-line option (snake_case)
    NOT_SHAPING: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]):
        """The object from a mapping of option names (RunConfig fields, API keywords); others are ignored."""
        return cls(**{name: options[option] for name, option in cls.OPTIONS.items() if option in options})

    def shaping(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in self.NOT_SHAPING}


@dataclass(frozen=True)
class PreprocessingParams(_Options):
    include_dbs: bool = False              # DBS channels are analysed too
    line_noise: bool = True                # notch PowerLineFrequency and its harmonics
    line_noise_quality: float = 30.0
    line_noise_max_hz: float = 360.0       # highest harmonic notched (BrainBERT: 360 Hz)
    reference: str = "auto"
    laplacian_min_neighbours: int = 2
    sampling_rate: float = 2048.0          # Hz; 0 keeps each recording's own rate ('native')

    OPTIONS: ClassVar[dict[str, str]] = {name: name for name in (
        "include_dbs", "line_noise", "line_noise_quality", "line_noise_max_hz", "reference",
        "laplacian_min_neighbours", "sampling_rate")}

    def __post_init__(self) -> None:
        _choice(self.reference, REFERENCE_SCHEMES, "reference")
        _choice(self.laplacian_min_neighbours, (1, 2), "laplacian_min_neighbours")
        _positive(self.line_noise_quality, "line_noise_quality")
        _positive(self.line_noise_max_hz, "line_noise_max_hz")
        _positive(self.sampling_rate, "sampling_rate", zero_ok=True)

    @property
    def target_rate(self) -> float | None:
        """Resampling target in Hz; None keeps the recording's own rate."""
        return self.sampling_rate or None


@dataclass(frozen=True)
class SuperletSettings(_Options):
    freq_min: float = 0.1
    freq_max: float = 200.0
    n_freqs: int = 40
    base_cycles: float = 1.0
    order_min: float = 3.0
    order_max: float = 30.0
    decimation: int = 50
    mode: str = "adaptive"                 # or "multiplicative"
    definition: str = "brainbert"          # wavelet set: "brainbert" (c1*order_min .. c1*o cycles) or "moca"
    backend: str = "auto"

    OPTIONS: ClassVar[dict[str, str]] = {name: f"superlet_{name}" for name in (
        "freq_min", "freq_max", "n_freqs", "base_cycles", "order_min", "order_max", "decimation", "mode",
        "definition", "backend")}
    NOT_SHAPING: ClassVar[tuple[str, ...]] = ("backend",)   # the backend that ran is recorded with the transform

    def __post_init__(self) -> None:
        _choice(self.mode, SUPERLET_MODES, "superlet_mode")
        _choice(self.definition, DEFINITIONS, "superlet_definition")
        _choice(self.backend, SUPERLET_BACKENDS, "superlet_backend")
        for name in ("freq_min", "freq_max", "base_cycles", "order_min", "order_max"):
            _positive(getattr(self, name), f"superlet_{name}")
        for name in ("n_freqs", "decimation"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int) \
                    or getattr(self, name) < 1:
                raise UsageError(f"--superlet-{name.replace('_', '-')} must be an integer >= 1, "
                                 f"got {getattr(self, name)!r}")
        if self.freq_min > self.freq_max:
            raise UsageError(f"--superlet-freq-min ({self.freq_min:g}) is above --superlet-freq-max "
                             f"({self.freq_max:g})")
        if self.order_min < 1 or self.order_max < self.order_min:
            raise UsageError(f"superlet orders must be >= 1 and --superlet-order-max ({self.order_max:g}) >= "
                             f"--superlet-order-min ({self.order_min:g})")

    def transform_params(self) -> SuperletParams:
        return SuperletParams(freqs_hz=tuple(np.linspace(self.freq_min, self.freq_max, self.n_freqs)),
                              base_cycles=self.base_cycles, order_min=self.order_min, order_max=self.order_max,
                              decimation=self.decimation, mode=self.mode, definition=self.definition)


class StftOptions(_Options):
    """The command-line options of :class:`~bids_brainbert.transforms.stft.StftParams` (window and output are
    fixed to BrainBERT's)."""

    OPTIONS: ClassVar[dict[str, str]] = {name: f"stft_{name}" for name in ("nperseg", "noverlap", "n_bins")}

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> StftParams:
        params = StftParams(**{name: options[option] for name, option in cls.OPTIONS.items() if option in options})
        if not 0 <= params.noverlap < params.nperseg:
            raise UsageError(f"--stft-noverlap ({params.noverlap}) must be >= 0 and below --stft-nperseg "
                             f"({params.nperseg})")
        return params


@dataclass(frozen=True)
class SpectrogramParams(_Options):
    kind: str = "superlet"
    superlet: SuperletSettings = field(default_factory=SuperletSettings)
    stft: StftParams = field(default_factory=StftParams)
    channel_batch_size: int = 16           # channels transformed at once (memory, not numbers)
    device: str = "auto"                   # where the torch superlet backend runs

    OPTIONS: ClassVar[dict[str, str]] = {"kind": "spectrogram", "channel_batch_size": "channel_batch_size",
                                         "device": "device"}

    def __post_init__(self) -> None:
        _choice(self.kind, SPECTROGRAM_KINDS, "spectrogram")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "SpectrogramParams":
        own = {name: options[option] for name, option in cls.OPTIONS.items() if option in options}
        return cls(superlet=SuperletSettings.from_options(options), stft=StftOptions.from_options(options), **own)

    @property
    def n_freqs(self) -> int:
        """Frequencies per frame (a model's input width)."""
        return self.stft.n_bins if self.kind == "stft" else self.superlet.n_freqs

    def shaping(self) -> dict[str, Any]:
        """Only the configured front end's settings shape a spectrogram."""
        front_end = self.superlet.shaping() if self.kind == "superlet" else self.stft.to_dict()
        return {"kind": self.kind, self.kind: front_end}


@dataclass(frozen=True)
class EmbeddingSettings(_Options):
    layer: int = -1                        # -1 last layer, 0 input stage, i the i-th transformer layer
    pooling: str = "middle"                # event embeddings (decoding; BrainBERT: middle frames)
    window_pooling: str = "mean"           # sliding-window embeddings (dimensionality; BrainBERT: all frames)
    middle_frames: int = 10
    window_s: float = 5.0
    stride_s: float = 0.0                  # 0 = the window length (non-overlapping)
    batch_size: int = 64                   # windows per forward pass (memory, not numbers)
    windowing: str = "auto"                # "auto" | "recording" | "brainbert" (see bids_brainbert/windowing.py)
    readout_offset_s: float = 0.0          # event windows centred on onset + offset (BrainBERT: 0)
    precision: str = "float32"             # "float32", "bfloat16" (autocast), "auto" (bf16 where native)
    device: str = "auto"

    OPTIONS: ClassVar[dict[str, str]] = {
        **{name: f"embedding_{name}" for name in ("layer", "pooling", "window_pooling", "middle_frames", "window_s",
                                                  "stride_s", "batch_size", "windowing")},
        "readout_offset_s": "decoding_offset_s", "precision": "precision", "device": "device"}
    NOT_SHAPING: ClassVar[tuple[str, ...]] = ("batch_size", "device")

    def __post_init__(self) -> None:
        _choice(self.pooling, POOLINGS, "embedding_pooling")
        _choice(self.window_pooling, POOLINGS, "embedding_window_pooling")
        _choice(self.windowing, WINDOWINGS, "embedding_windowing")
        _choice(self.precision, PRECISIONS, "precision")
        _positive(self.window_s, "embedding_window_s")
        _positive(self.stride_s, "embedding_stride_s", zero_ok=True)
        if not math.isfinite(self.readout_offset_s):
            raise UsageError(f"--decoding-offset-s must be finite, got {self.readout_offset_s!r}")


@dataclass(frozen=True)
class PretrainSettings(_Options):
    """Group-level pretraining of the BrainBERT model (training/pretrain.py: ``PretrainConfig``)."""

    model_size: str = "small"              # "large" = published
    steps: int = 2000                      # optimizer steps (published: 500k; this default fits a CPU)
    batch_size: int = 64                   # windows per step and process
    learning_rate: float = 1e-4            # peak
    optimizer: str = "adamw"               # or "lamb", as published
    mask_probability: float = 0.05         # a frame starts a masked span
    window_s: float = 5.0
    validation_split: str = "run"          # validation held out by run or by subject
    validation_fraction: float = 0.1
    checkpoint_every: int = 500

    OPTIONS: ClassVar[dict[str, str]] = {
        **{name: name for name in ("model_size", "batch_size", "learning_rate", "optimizer", "mask_probability",
                                   "validation_split", "validation_fraction", "checkpoint_every")},
        "steps": "train_steps", "window_s": "train_window_s"}

    def __post_init__(self) -> None:
        _choice(self.model_size, MODEL_SIZES, "model_size")
        _choice(self.optimizer, OPTIMIZERS, "optimizer")
        _choice(self.validation_split, VALIDATION_SPLITS, "validation_split")
        for name, option in (("steps", "train_steps"), ("batch_size", "batch_size"),
                             ("checkpoint_every", "checkpoint_every")):
            _integer(getattr(self, name), option, 1)
        _positive(self.learning_rate, "learning_rate")
        _positive(self.mask_probability, "mask_probability")
        _positive(self.window_s, "train_window_s")

    def pretrain_config(self, seed: int, device: str, precision: str):
        """The training loop's ``PretrainConfig`` (a checkpoint at least at the end)."""
        from .training import PretrainConfig   # deferred: torch, which the command line's parsing does not need

        return PretrainConfig(model=self.model_size, batch_size=self.batch_size, steps=self.steps,
                              lr=self.learning_rate, optimizer=self.optimizer, mask_p=self.mask_probability,
                              window_s=self.window_s, seed=seed,
                              checkpoint_every=min(self.checkpoint_every, self.steps), device=device,
                              precision=precision)


@dataclass(frozen=True)
class DecodingSettings(_Options):
    """Group-level decoding: targets, features, the probes (``DecodingParams``) and the data-efficiency curves."""

    column: str = "trial_type"             # events.tsv column decoded
    contrast: tuple[str, ...] = ()         # "A,B" each (A positive); empty = each value against the rest
    window_s: float = 5.0                  # window centred on each onset (BrainBERT: 5 s)
    features: tuple[str, ...] = DECODING_FEATURES
    folds: int = _default(DecodingParams, "n_folds")
    permutations: int = _default(DecodingParams, "n_permutations")
    permutation_scheme: str = _default(DecodingParams, "permutation")
    data_efficiency_sizes: tuple[int, ...] = BRAINBERT_SIZES
    data_efficiency_draws: int = 5         # 0 disables the curve

    OPTIONS: ClassVar[dict[str, str]] = {
        **{name: f"decoding_{name}" for name in ("column", "contrast", "window_s", "features", "folds",
                                                 "permutations", "permutation_scheme")},
        "data_efficiency_sizes": "data_efficiency_sizes", "data_efficiency_draws": "data_efficiency_draws"}

    def __post_init__(self) -> None:
        for name in ("contrast", "features", "data_efficiency_sizes"):   # lists from the command line or TOML
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for feature in self.features:
            _choice(feature, DECODING_FEATURES, "decoding_features")
        _choice(self.permutation_scheme, PERMUTATION_SCHEMES, "decoding_permutation_scheme")
        _positive(self.window_s, "decoding_window_s")
        _integer(self.folds, "decoding_folds", 2)
        _integer(self.permutations, "decoding_permutations", 0)
        _integer(self.data_efficiency_draws, "data_efficiency_draws", 0)
        for size in self.data_efficiency_sizes:
            _integer(size, "data_efficiency_sizes", 1)

    def probe_params(self) -> DecodingParams:
        return DecodingParams(n_folds=self.folds, n_permutations=self.permutations,
                              permutation=self.permutation_scheme)


@dataclass(frozen=True)
class PopulationSettings(_Options):
    """Group-level population model (analyses/population.py: ``PretrainParams``)."""

    steps: int = 300                       # self-supervised pretraining steps over electrode coordinates

    OPTIONS: ClassVar[dict[str, str]] = {"steps": "population_steps"}

    def __post_init__(self) -> None:
        _integer(self.steps, "population_steps", 1)

    def pretrain_params(self):
        from .analyses.population import PretrainParams   # deferred: torch (see PretrainSettings)

        return PretrainParams(steps=self.steps)


@dataclass(frozen=True)
class FinetuneSettings(_Options):
    """``--analysis finetune`` (analyses/finetune.py: ``FinetuneParams``)."""

    layers: int = 1                        # top encoder layers trained with the head; 0 = all
    epochs: int = 10                       # most epochs per fold (early-stopped on an inner split)
    electrodes: tuple[str, ...] = ()       # empty = every electrode
    permutations: int = 9                  # refitted null: each one a whole fine-tuning

    OPTIONS: ClassVar[dict[str, str]] = {name: f"finetune_{name}" for name in
                                         ("layers", "epochs", "electrodes", "permutations")}

    def __post_init__(self) -> None:
        object.__setattr__(self, "electrodes", tuple(self.electrodes))
        _integer(self.layers, "finetune_layers", 0)
        _integer(self.epochs, "finetune_epochs", 1)
        _integer(self.permutations, "finetune_permutations", 0)

    def finetune_params(self, embedding: EmbeddingSettings, permutation_scheme: str):
        """Read out as the frozen embeddings are (layer, pooling), permuted as the probes are."""
        from .analyses.finetune import FinetuneParams   # deferred: torch (see PretrainSettings)

        return FinetuneParams(top_layers=self.layers or None, max_epochs=self.epochs, layer=embedding.layer,
                              pooling=embedding.pooling, middle_frames=embedding.middle_frames,
                              n_permutations=self.permutations, permutation=permutation_scheme)


@dataclass(frozen=True)
class DimensionalitySettings(_Options):
    examples: int = 500                    # windows per electrode for PCA (BrainBERT: 500)
    threshold: float = 0.95                # explained-variance fraction that defines the dimension

    OPTIONS: ClassVar[dict[str, str]] = {name: f"dimensionality_{name}" for name in ("examples", "threshold")}

    def __post_init__(self) -> None:
        _integer(self.examples, "dimensionality_examples", 1)
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not 0 < self.threshold < 1:
            raise UsageError(f"--dimensionality-threshold must be between 0 and 1 (exclusive), got "
                             f"{self.threshold!r}")


GROUP_PARAMS = (PretrainSettings, DecodingSettings, PopulationSettings, FinetuneSettings, DimensionalitySettings)
STEP_PARAMS = (PreprocessingParams, SuperletSettings, StftOptions, SpectrogramParams, EmbeddingSettings,
               *GROUP_PARAMS)


def default_of(option: str) -> Any:
    """The default of a command-line option (snake_case) that a step's parameters define."""
    for cls in STEP_PARAMS:
        for name, owner_option in cls.OPTIONS.items():
            if owner_option == option:
                target = StftParams if cls is StftOptions else cls
                spec = {f.name: f for f in fields(target)}[name]
                if spec.default is not MISSING:
                    return spec.default
    raise KeyError(option)


def default_list(option: str):
    """A ``default_factory`` for a list option whose default (a tuple) a step's parameters define."""
    return lambda: list(default_of(option))
