"""One typed configuration for a run: every option, its default, TOML load/save and seeding.

The command line, a ``--config-file`` TOML and the defaults all end up in :class:`RunConfig`; the command
line wins over the file. The resolved configuration is saved as TOML next to the outputs for provenance and can
be fed back with ``--config-file``.
"""

from __future__ import annotations

import dataclasses
import os
import random
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from .errors import UsageError
from .preprocessing.referencing import REFERENCE_SCHEMES  # noqa: F401 (choices for the parser)

SPECTROGRAM_KINDS = ("superlet", "stft")


@dataclass
class RunConfig:
    """All settings of one invocation. Paths are absolute once resolved."""

    bids_dir: Path | None = None
    output_dir: Path | None = None
    analysis_level: str | None = None

    # selection
    participant_label: list[str] = field(default_factory=list)
    exclude_participant_label: list[str] = field(default_factory=list)
    session_label: list[str] = field(default_factory=list)
    task_label: list[str] = field(default_factory=list)
    run: list[str] = field(default_factory=list)
    bids_filter_file: Path | None = None
    include_dbs: bool = False

    # execution
    work_dir: Path | None = None
    nprocs: int = 1
    random_seed: int = 0
    skip_bids_validation: bool = False
    dry_run: bool = False
    overwrite: bool = False
    verbose: int = 0

    # preprocessing
    line_noise: bool = True
    line_noise_quality: float = 30.0
    line_noise_max_hz: float = 360.0          # highest harmonic notched (BrainBERT: 360 Hz)
    reference: str = "auto"
    laplacian_min_neighbours: int = 2
    sampling_rate: float = 2048.0            # Hz; 0 keeps each recording's own rate ('native')

    # spectrogram
    spectrogram: str = "superlet"
    superlet_freq_min: float = 0.1
    superlet_freq_max: float = 200.0
    superlet_n_freqs: int = 40
    superlet_base_cycles: float = 1.0
    superlet_order_min: float = 3.0
    superlet_order_max: float = 30.0
    superlet_decimation: int = 50
    superlet_mode: str = "adaptive"           # or "multiplicative"
    superlet_definition: str = "brainbert"    # wavelet set: "brainbert" (c1*order_min .. c1*o cycles) or "moca"
    superlet_backend: str = "auto"            # "auto": torch on CUDA when available, else numpy; "numpy"; "torch"
    stft_nperseg: int = 400
    stft_noverlap: int = 350
    stft_n_bins: int = 40
    channel_batch_size: int = 16

    # model and embeddings
    model: Path | None = None                 # checkpoint for embeddings (default: the group model, if trained)
    model_label: str = "brainbert"            # desc label of the model folder and embedding files
    embedding_layer: int = -1
    embedding_pooling: str = "middle"               # event embeddings (decoding; BrainBERT: middle frames)
    embedding_window_pooling: str = "mean"          # sliding-window embeddings (dimensionality; BrainBERT: all)
    embedding_middle_frames: int = 10
    embedding_window_s: float = 5.0
    embedding_stride_s: float = 0.0           # 0 = the window length (non-overlapping)
    embedding_batch_size: int = 64
    embedding_windowing: str = "auto"         # "auto" | "recording" | "brainbert" (see bids_brainbert/windowing.py)
    device: str = "auto"
    precision: str = "float32"                # "float32", "bfloat16" (autocast), "auto" (bf16 where native)

    # group-level pretraining
    init_model: Path | None = None
    model_size: str = "small"
    train_steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 1e-4
    optimizer: str = "adamw"
    mask_probability: float = 0.05
    train_window_s: float = 5.0
    validation_split: str = "run"
    validation_fraction: float = 0.1
    holdout_participant_label: list[str] = field(default_factory=list)
    checkpoint_every: int = 500

    # group-level analyses (see workflows/analyses.py)
    analysis: str = "all"             # all | pretrain | decoding | population | finetune | dimensionality | reports
    decoding_column: str = "trial_type"
    decoding_contrast: list[str] = field(default_factory=list)     # "A,B" each; empty = one-vs-rest per value
    decoding_window_s: float = 5.0
    decoding_features: list[str] = field(default_factory=lambda: ["voltage", "superlet", "stft", "laplacian",
                                                                   "embeddings", "random"])
    decoding_offset_s: float = 0.0            # readout centre relative to the onset (BrainBERT: 0)
    decoding_folds: int = 5
    decoding_permutations: int = 100
    decoding_permutation_scheme: str = "shuffle"                  # "shuffle" | "shift" (block designs)
    data_efficiency_sizes: list[int] = field(default_factory=lambda: [50, 100, 200, 500, 1000])
    data_efficiency_draws: int = 5
    population_steps: int = 300                                   # population model pretraining steps
    finetune_layers: int = 1                                      # top encoder layers fine-tuned; 0 = all
    finetune_epochs: int = 10
    finetune_electrodes: list[str] = field(default_factory=list)  # empty = every electrode
    finetune_permutations: int = 9                                # refitted null: each one a whole fine-tuning
    dimensionality_examples: int = 500
    dimensionality_threshold: float = 0.95
    atlas: Path | None = None
    atlas_labels: Path | None = None

    def to_toml_dict(self) -> dict[str, Any]:
        """A TOML-serialisable dict (None values dropped, paths as strings)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


_PATH_FIELDS = {f.name for f in fields(RunConfig) if "Path" in str(f.type)}
_LIST_FIELDS = {f.name for f in fields(RunConfig) if str(f.type).startswith("list")}


def read_config_file(path: Path) -> dict[str, Any]:
    """Options from a TOML file, validated against :class:`RunConfig`'s field names."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: malformed TOML ({exc})") from None
    except RecursionError:
        raise UsageError(f"{path}: malformed TOML (nested too deeply to hold options)") from None
    known = {f.name for f in fields(RunConfig)}
    # accept both the TOML spelling (snake_case) and the CLI spelling (dashes)
    values = {key.replace("-", "_"): value for key, value in raw.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"{path}: unknown option(s) {', '.join(unknown)}")
    for name in values:
        if name in _PATH_FIELDS and values[name] is not None:
            values[name] = Path(values[name])
        if name in _LIST_FIELDS and not isinstance(values[name], list):
            values[name] = [values[name]]
    return values


def build_config(cli_values: dict[str, Any], file_values: dict[str, Any] | None = None) -> RunConfig:
    """Merge defaults < config file < command line (only options given on the command line count)."""
    merged = dict(file_values or {})
    merged.update({k: v for k, v in cli_values.items() if v is not None})
    try:
        return RunConfig(**merged)
    except TypeError as exc:
        raise UsageError(f"invalid configuration: {exc}") from None


def write_config_toml(config: RunConfig, path: Path) -> None:
    """Save the resolved configuration as TOML (atomically)."""
    from .bids.derivatives import atomic_write_bytes

    atomic_write_bytes(path, tomli_w.dumps(config.to_toml_dict()).encode())


def seed_everything(seed: int) -> None:
    """One seed for python, numpy and torch, so that a run is reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import torch
    except ImportError:  # torch is a dependency, but seeding must not be what breaks without it
        return
    torch.manual_seed(seed)


def replace(config: RunConfig, **changes: Any) -> RunConfig:
    return dataclasses.replace(config, **changes)
