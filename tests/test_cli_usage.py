"""The command line's own messages: no abbreviations, type errors that name the option and the accepted form,
the program named once, a usage hint for a bare call, and ``demo`` in the usage."""

import argparse
from pathlib import Path

import pytest

from bids_brainbert.cli.parser import build_demo_parser, build_parser
from bids_brainbert.cli.run import main


def error_of(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 64
    return capsys.readouterr().err


@pytest.mark.parametrize("abbreviated", [["--train-step", "10"], ["--no-line"], ["--sampling", "512"]])
def test_abbreviated_options_are_refused(demo_dataset, tmp_path, capsys, abbreviated):
    root, _ = demo_dataset
    err = error_of(capsys, root, tmp_path / "out", "participant", "--dry-run", *abbreviated)
    assert f"unrecognized arguments: {' '.join(abbreviated)}" in err


def test_demo_refuses_abbreviations_too(tmp_path, capsys):
    assert "unrecognized arguments: --smal" in error_of(capsys, "demo", tmp_path, "--smal")


def _typed_options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if action.option_strings and action.type not in (None, Path) and action.choices is None:
            yield action.option_strings[-1], "/".join(action.option_strings)   # argparse names them all


def test_every_type_error_names_the_option_and_the_accepted_form(tmp_path, capsys):
    options = dict(_typed_options(build_parser()))
    assert "--sampling-rate" in options and "--random-seed" in options and len(options) > 30
    for option, named in options.items():
        err = error_of(capsys, tmp_path, tmp_path / "out", "participant", option, "fast")
        assert f"argument {named}:" in err and "'fast'" in err, err
        assert "expected " in err and "invalid" not in err and "_" not in err.split(named)[1], err
    err = error_of(capsys, tmp_path, tmp_path / "out", "participant", "--sampling-rate", "fast")
    assert "a number > 0) or 'native'" in err
    for option, named in _typed_options(build_demo_parser()):
        err = error_of(capsys, "demo", tmp_path, option, "fast")
        assert f"argument {named}:" in err and "expected an integer" in err


def test_the_program_is_named_once(tmp_path, capsys):
    err = error_of(capsys, tmp_path, tmp_path / "out", "participant", "--nprocs", "0")
    assert err.count("bids-brainbert") == 1 and err.startswith("bids-brainbert: error: argument --nprocs")
    err = error_of(capsys, "demo")
    assert err.count("bids-brainbert") == 1 and "demo: the following arguments are required" in err


def test_a_bare_call_prints_the_usage_and_where_to_look(capsys):
    err = error_of(capsys)
    assert err.startswith("usage: bids-brainbert BIDS_DIR OUTPUT_DIR {participant,group}")
    assert "bids-brainbert --help" in err and "bids-brainbert demo" in err


def test_demo_is_in_the_usage_line(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert "bids-brainbert demo OUTPUT_DIR" in usage and "bids-brainbert BIDS_DIR OUTPUT_DIR" in usage
