"""Per-step parameters: defaults defined once (the run configuration, the help and the API quote them), checked
once at the boundary, and the domain code never sees the run configuration."""

import re
from pathlib import Path

import pytest

from bids_brainbert.cli.parser import build_parser
from bids_brainbert.cli.run import main
from bids_brainbert.config import RunConfig
from bids_brainbert.errors import UsageError
from bids_brainbert.analyses.decoding import DecodingParams
from bids_brainbert.analyses.finetune import FinetuneParams
from bids_brainbert.analyses.population import PretrainParams
from bids_brainbert.model import PRESETS
from bids_brainbert.params import (DecodingSettings, DimensionalitySettings, EmbeddingSettings, FinetuneSettings,
                                   MODEL_SIZES, PopulationSettings, PreprocessingParams, PretrainSettings,
                                   SpectrogramParams, SuperletSettings)
from bids_brainbert.training import PretrainConfig

PACKAGE = Path(__file__).resolve().parents[1] / "bids_brainbert"
DOMAIN = ("transforms", "io", "preprocessing", "model", "training", "analyses", "frozen_embeddings.py", "windowing.py")


def test_the_run_configuration_builds_the_default_step_parameters():
    config = RunConfig()
    assert config.preprocessing_params() == PreprocessingParams()
    assert config.spectrogram_params() == SpectrogramParams()
    assert config.embedding_settings() == EmbeddingSettings()
    changed = RunConfig(superlet_n_freqs=20, reference="car", embedding_layer=1, decoding_offset_s=0.2)
    assert changed.spectrogram_params().superlet.n_freqs == 20 and changed.spectrogram_params().n_freqs == 20
    assert changed.preprocessing_params().reference == "car"
    assert changed.embedding_settings().layer == 1 and changed.embedding_settings().readout_offset_s == 0.2


def test_help_quotes_the_defaults_of_the_parameters():
    help_text = " ".join(build_parser().format_help().split())
    settings = SuperletSettings()
    assert f"lowest frequency ({settings.freq_min:g})" in help_text
    assert f"order at highest frequency ({settings.order_max:g})" in help_text
    assert f"analysis rate in Hz (default {PreprocessingParams().sampling_rate:g}" in help_text


def test_cross_option_checks_fail_before_any_work(tmp_path, capsys):
    """Checked once, when the configuration is resolved: exit 64 and the options named, nothing written."""
    (tmp_path / "raw").mkdir()
    assert main([str(tmp_path / "raw"), str(tmp_path / "out"), "participant", "--stft-nperseg", "64",
                 "--stft-noverlap", "64"]) == 64
    assert "--stft-noverlap (64) must be >= 0 and below --stft-nperseg (64)" in capsys.readouterr().err
    assert main([str(tmp_path / "raw"), str(tmp_path / "out"), "participant", "--superlet-freq-min", "50",
                 "--superlet-freq-max", "20"]) == 64
    assert "--superlet-freq-min (50) is above --superlet-freq-max (20)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match="--reference must be one of"):
        PreprocessingParams(reference="average")


def test_domain_code_never_takes_the_run_configuration():
    offenders = []
    for entry in DOMAIN:
        for path in sorted((PACKAGE / entry).rglob("*.py")) if (PACKAGE / entry).is_dir() else [PACKAGE / entry]:
            if re.search(r"\bRunConfig\b|from \.+config import|\bconfig\.\w+_(params|settings)\(", path.read_text()):
                offenders.append(path.relative_to(PACKAGE).as_posix())
    assert offenders == []


def test_the_group_level_steps_build_their_domain_objects_from_one_set_of_defaults():
    """Pretraining, decoding, population and fine-tuning: the run configuration's defaults are the parameter
    objects', and the domain objects they build are the domain classes' defaults (one value each)."""
    config = RunConfig()
    assert config.pretrain_settings() == PretrainSettings()
    assert config.decoding_settings() == DecodingSettings()
    assert config.population_settings() == PopulationSettings()
    assert config.finetune_settings() == FinetuneSettings()
    assert config.dimensionality_settings() == DimensionalitySettings()
    assert config.decoding_settings().probe_params() == DecodingParams()
    assert config.population_settings().pretrain_params() == PretrainParams()
    assert config.finetune_settings().finetune_params(config.embedding_settings(),
                                                      config.decoding_permutation_scheme) == FinetuneParams()
    built = config.pretrain_settings().pretrain_config(seed=0, device="auto", precision="float32")
    assert built == PretrainConfig(checkpoint_every=min(PretrainConfig().checkpoint_every, PretrainConfig().steps))
    assert config.decoding_features == list(DecodingSettings().features) and config.data_efficiency_sizes == [
        50, 100, 200, 500, 1000]
    assert set(MODEL_SIZES) == set(PRESETS)
    changed = RunConfig(train_steps=40, checkpoint_every=500, decoding_folds=3, decoding_permutation_scheme="shift",
                        finetune_layers=0, embedding_layer=1, population_steps=7)
    assert changed.pretrain_settings().pretrain_config(1, "cpu", "float32").checkpoint_every == 40
    assert changed.decoding_settings().probe_params() == DecodingParams(n_folds=3, permutation="shift")
    tuned = changed.finetune_settings().finetune_params(changed.embedding_settings(), "shift")
    assert tuned.top_layers is None and tuned.layer == 1 and tuned.permutation == "shift"
    assert changed.population_settings().pretrain_params().steps == 7


def test_help_quotes_the_group_level_defaults():
    help_text = " ".join(build_parser().format_help().split())
    assert f"optimizer steps ({PretrainSettings().steps})" in help_text
    assert f"peak learning rate ({PretrainSettings().learning_rate:g})" in help_text
    assert f"training-set sizes ({' '.join(map(str, DecodingSettings().data_efficiency_sizes))};" in help_text
    assert f"cross-validation ({DecodingParams().n_permutations})" in help_text
    assert f"on an inner split ({FinetuneSettings().epochs})" in help_text
    assert f"windows per electrode for PCA ({DimensionalitySettings().examples}," in help_text


@pytest.mark.parametrize("option, value, message", [
    ("decoding_folds", 1, "--decoding-folds must be an integer >= 2"),
    ("decoding_features", ["voltage", "spikes"], "--decoding-features must be one of"),
    ("data_efficiency_sizes", [50, 0], "--data-efficiency-sizes must be an integer >= 1"),
    ("optimizer", "sgd", "--optimizer must be one of adamw, lamb"),
    ("train_steps", 0, "--train-steps must be an integer >= 1"),
    ("dimensionality_threshold", 1.5, "--dimensionality-threshold must be between 0 and 1"),
    ("finetune_epochs", 0, "--finetune-epochs must be an integer >= 1"),
    ("population_steps", "many", "--population-steps must be an integer >= 1"),
])
def test_the_group_level_parameters_check_their_values_without_the_parser(option, value, message):
    """The Python API (no parser) gets the command line's checks, naming the option."""
    with pytest.raises(UsageError, match=re.escape(message)):
        RunConfig(**{option: value}).check_step_params()
