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
from .params import (DecodingSettings, DimensionalitySettings, EmbeddingSettings, FinetuneSettings,
                     PopulationSettings, PreprocessingParams, PretrainSettings, SpectrogramParams, default_list,
                     default_of)


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
    include_dbs: bool = default_of("include_dbs")

    # execution
    work_dir: Path | None = None
    nprocs: int = 1
    random_seed: int = 0
    skip_bids_validation: bool = False
    dry_run: bool = False
    overwrite: bool = False
    verbose: int = 0

    # preprocessing (defaults, meanings and checks: bids_brainbert/params.py)
    line_noise: bool = default_of("line_noise")
    line_noise_quality: float = default_of("line_noise_quality")
    line_noise_max_hz: float = default_of("line_noise_max_hz")
    reference: str = default_of("reference")
    laplacian_min_neighbours: int = default_of("laplacian_min_neighbours")
    sampling_rate: float = default_of("sampling_rate")

    # spectrogram
    spectrogram: str = default_of("spectrogram")
    superlet_freq_min: float = default_of("superlet_freq_min")
    superlet_freq_max: float = default_of("superlet_freq_max")
    superlet_n_freqs: int = default_of("superlet_n_freqs")
    superlet_base_cycles: float = default_of("superlet_base_cycles")
    superlet_order_min: float = default_of("superlet_order_min")
    superlet_order_max: float = default_of("superlet_order_max")
    superlet_decimation: int = default_of("superlet_decimation")
    superlet_mode: str = default_of("superlet_mode")
    superlet_definition: str = default_of("superlet_definition")
    superlet_backend: str = default_of("superlet_backend")
    stft_nperseg: int = default_of("stft_nperseg")
    stft_noverlap: int = default_of("stft_noverlap")
    stft_n_bins: int = default_of("stft_n_bins")
    channel_batch_size: int = default_of("channel_batch_size")

    # model and embeddings
    model: Path | None = None                 # checkpoint for embeddings (default: the group model, if trained)
    model_label: str = "brainbert"            # desc label of the model folder and embedding files
    embedding_layer: int = default_of("embedding_layer")
    embedding_pooling: str = default_of("embedding_pooling")
    embedding_window_pooling: str = default_of("embedding_window_pooling")
    embedding_middle_frames: int = default_of("embedding_middle_frames")
    embedding_window_s: float = default_of("embedding_window_s")
    embedding_stride_s: float = default_of("embedding_stride_s")
    embedding_batch_size: int = default_of("embedding_batch_size")
    embedding_windowing: str = default_of("embedding_windowing")
    device: str = default_of("device")
    precision: str = default_of("precision")

    # group-level pretraining (defaults, meanings and checks: bids_brainbert/params.py, PretrainSettings)
    init_model: Path | None = None
    model_size: str = default_of("model_size")
    train_steps: int = default_of("train_steps")
    batch_size: int = default_of("batch_size")
    learning_rate: float = default_of("learning_rate")
    optimizer: str = default_of("optimizer")
    mask_probability: float = default_of("mask_probability")
    train_window_s: float = default_of("train_window_s")
    validation_split: str = default_of("validation_split")
    validation_fraction: float = default_of("validation_fraction")
    holdout_participant_label: list[str] = field(default_factory=list)
    checkpoint_every: int = default_of("checkpoint_every")

    # group-level analyses (workflows/steps.py; their parameters: DecodingSettings, PopulationSettings,
    # FinetuneSettings, DimensionalitySettings)
    analysis: str = "all"             # all | pretrain | decoding | population | finetune | dimensionality | reports
    decoding_column: str = default_of("decoding_column")
    decoding_contrast: list[str] = field(default_factory=default_list("decoding_contrast"))
    decoding_window_s: float = default_of("decoding_window_s")
    decoding_features: list[str] = field(default_factory=default_list("decoding_features"))
    decoding_offset_s: float = default_of("decoding_offset_s")   # readout centre relative to the onset
    decoding_folds: int = default_of("decoding_folds")
    decoding_permutations: int = default_of("decoding_permutations")
    decoding_permutation_scheme: str = default_of("decoding_permutation_scheme")
    data_efficiency_sizes: list[int] = field(default_factory=default_list("data_efficiency_sizes"))
    data_efficiency_draws: int = default_of("data_efficiency_draws")
    population_steps: int = default_of("population_steps")
    finetune_layers: int = default_of("finetune_layers")
    finetune_epochs: int = default_of("finetune_epochs")
    finetune_electrodes: list[str] = field(default_factory=default_list("finetune_electrodes"))
    finetune_permutations: int = default_of("finetune_permutations")
    dimensionality_examples: int = default_of("dimensionality_examples")
    dimensionality_threshold: float = default_of("dimensionality_threshold")
    atlas: Path | None = None
    atlas_labels: Path | None = None

    # the step parameters, built (and so validated) from these options
    def preprocessing_params(self) -> PreprocessingParams:
        return PreprocessingParams.from_options(vars(self))

    def spectrogram_params(self) -> SpectrogramParams:
        return SpectrogramParams.from_options(vars(self))

    def embedding_settings(self) -> EmbeddingSettings:
        return EmbeddingSettings.from_options(vars(self))

    def pretrain_settings(self) -> PretrainSettings:
        return PretrainSettings.from_options(vars(self))

    def decoding_settings(self) -> DecodingSettings:
        return DecodingSettings.from_options(vars(self))

    def population_settings(self) -> PopulationSettings:
        return PopulationSettings.from_options(vars(self))

    def finetune_settings(self) -> FinetuneSettings:
        return FinetuneSettings.from_options(vars(self))

    def dimensionality_settings(self) -> DimensionalitySettings:
        return DimensionalitySettings.from_options(vars(self))

    def check_step_params(self) -> None:
        """Every step's parameters are valid (UsageError naming the option otherwise)."""
        for build in (self.preprocessing_params, self.spectrogram_params, self.embedding_settings,
                      self.pretrain_settings, self.decoding_settings, self.population_settings,
                      self.finetune_settings, self.dimensionality_settings):
            build()

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
    from .bids.derivatives import atomic_write_bytes   # deferred: pandas, which RunConfig alone does not need

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
