"""The committed Boutiques descriptor: valid, in sync with the argument parser, and producing command lines the
parser reads back as intended."""

import argparse
import json
import shlex
from pathlib import Path

import pytest
from boutiques import bosh
from boutiques.invocationSchemaHandler import InvocationValidationError

from bids_brainbert import __version__
from bids_brainbert.cli.boutiques import descriptor_json, main as export_descriptor
from bids_brainbert.cli.parser import build_parser
from bids_brainbert.cli.run import parse_config

DESCRIPTOR = Path(__file__).resolve().parents[1] / "boutiques" / "bids-brainbert.json"
REGENERATE = "python -m bids_brainbert.cli.boutiques boutiques/bids-brainbert.json"


@pytest.fixture(scope="module")
def descriptor() -> dict:
    return json.loads(DESCRIPTOR.read_text(encoding="utf-8"))


def test_committed_descriptor_is_what_the_parser_generates():
    assert DESCRIPTOR.read_text(encoding="utf-8") == descriptor_json(), f"out of date: run {REGENERATE}"


def test_export_script_writes_the_descriptor(tmp_path):
    target = tmp_path / "descriptor.json"
    assert export_descriptor([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == DESCRIPTOR.read_text(encoding="utf-8")
    assert export_descriptor([]) == 64


def test_descriptor_is_valid_boutiques():
    bosh(["validate", str(DESCRIPTOR)])  # raises DescriptorValidationError otherwise


def test_every_cli_option_appears(descriptor):
    flags = {entry.get("command-line-flag") for entry in descriptor["inputs"]}
    ids = [entry["id"] for entry in descriptor["inputs"]]
    assert len(ids) == len(set(ids))
    for action in build_parser()._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            assert set(action.option_strings) & flags, f"{action.option_strings} missing from the descriptor"
        else:
            assert action.dest in ids, f"positional {action.dest} missing from the descriptor"
    assert descriptor["tool-version"] == __version__
    assert descriptor["container-image"]["image"] == f"bids-brainbert:{__version__}"
    choices = {entry["id"]: entry.get("value-choices") for entry in descriptor["inputs"]}
    assert choices["analysis_level"] == ["participant", "group"]
    assert choices["reference"] == ["auto", "laplacian", "car", "bipolar", "none"]


def test_a_simulated_invocation_parses_back_to_the_intended_configuration(tmp_path, descriptor):
    invocation = {"bids_dir": str(tmp_path / "bids"), "output_dir": str(tmp_path / "out"),
                  "analysis_level": "participant", "participant_label": ["01", "sub-02"], "nprocs": 3,
                  "no_line_noise": True, "reference": "car", "sampling_rate": "native", "verbose": True,
                  "work_dir": str(tmp_path / "work"), "superlet_n_freqs": 20, "embedding_pooling": "mean",
                  "laplacian_min_neighbours": 1, "learning_rate": 0.0003}
    invocation_file = tmp_path / "invocation.json"
    invocation_file.write_text(json.dumps(invocation))
    command = bosh(["exec", "simulate", str(DESCRIPTOR), "-i", str(invocation_file)]).shell_command
    words = shlex.split(command)
    assert words[0] == "bids-brainbert"
    config = parse_config(words[1:])
    assert config.participant_label == ["01", "02"] and config.nprocs == 3 and config.line_noise is False
    assert config.reference == "car" and config.sampling_rate == 0.0 and config.verbose == 1
    assert config.work_dir == tmp_path / "work" and config.superlet_n_freqs == 20
    assert config.embedding_pooling == "mean" and config.laplacian_min_neighbours == 1
    assert config.learning_rate == pytest.approx(3e-4)
    # options not in the invocation keep the app's defaults (the descriptor adds none of its own)
    assert config.train_steps == 2000 and config.spectrogram == "superlet"


@pytest.mark.parametrize("bad", [{"analysis_level": "everything"}, {"nprocs": 0}, {"reference": "average"}])
def test_invalid_invocations_are_refused_by_the_descriptor(tmp_path, bad):
    invocation = {"bids_dir": "/data", "output_dir": "/out", "analysis_level": "participant", **bad}
    invocation_file = tmp_path / "bad.json"
    invocation_file.write_text(json.dumps(invocation))
    with pytest.raises(InvocationValidationError):
        bosh(["exec", "simulate", str(DESCRIPTOR), "-i", str(invocation_file)])
