"""Per-step parameters: defaults defined once (the run configuration, the help and the API quote them), checked
once at the boundary, and the domain code never sees the run configuration."""

import re
from pathlib import Path

import pytest

from bids_brainbert.cli.parser import build_parser
from bids_brainbert.cli.run import main
from bids_brainbert.config import RunConfig
from bids_brainbert.errors import UsageError
from bids_brainbert.params import EmbeddingSettings, PreprocessingParams, SpectrogramParams, SuperletSettings

PACKAGE = Path(__file__).resolve().parents[1] / "bids_brainbert"
DOMAIN = ("transforms", "io", "preprocessing", "model", "training", "analyses", "embedding.py", "windowing.py")


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
