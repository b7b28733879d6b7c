"""Configuration: TOML round trip, precedence, bad files."""

import pytest

from bids_brainbert.config import RunConfig, build_config, read_config_file, write_config_toml
from bids_brainbert.errors import UsageError


def test_toml_round_trip(tmp_path):
    config = RunConfig(bids_dir=tmp_path / "in", output_dir=tmp_path / "out", analysis_level="participant",
                       participant_label=["01"], nprocs=2, sampling_rate=0.0, reference="car")
    path = tmp_path / "run.toml"
    write_config_toml(config, path)
    again = build_config({}, read_config_file(path))
    assert again == config


def test_command_line_wins_over_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('nprocs = 3\nreference = "bipolar"\nparticipant-label = "02"\n')
    config = build_config({"nprocs": 1}, read_config_file(path))
    assert config.nprocs == 1 and config.reference == "bipolar" and config.participant_label == ["02"]


def test_bad_config_files(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("nprocs = = 3")
    with pytest.raises(UsageError, match="malformed TOML"):
        read_config_file(broken)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 1")
    with pytest.raises(UsageError, match="unknown option"):
        read_config_file(unknown)
    with pytest.raises(UsageError, match="not found"):
        read_config_file(tmp_path / "missing.toml")
