"""The Boutiques descriptor of the BIDS-App command, generated from the argument parser so that it cannot drift.

``python -m bids_brainbert.cli.boutiques boutiques/bids-brainbert.json`` rewrites the committed descriptor;
``tests/test_boutiques.py`` fails when the committed file differs from what the parser gives now. The defaults
live in :class:`bids_brainbert.config.RunConfig`, not in the parser (so that a ``--config-file`` can fill them),
and are not repeated in the descriptor. The ``demo`` subcommand and ``--help`` are not part of the BIDS-App
interface and are left out.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from .parser import ANALYSIS_LEVELS, build_parser

SCHEMA_VERSION = "0.5"
DOCKER_IMAGE = f"bids-brainbert:{__version__}"
POSITIONAL_NAMES = {"bids_dir": "BIDS dataset", "output_dir": "Output directory", "analysis_level": "Analysis level"}
# path arguments naming folders the app creates, not existing inputs (Boutiques File inputs must exist)
CREATED_PATHS = {"output_dir", "work_dir"}


def _value_key(dest: str) -> str:
    return f"[{dest.upper()}]"


def _group_id(title: str) -> str:
    """``group level: pretraining`` -> ``group_group_level_pretraining`` (ids share one namespace with inputs)."""
    return "group_" + "".join(c if c.isalnum() else "_" for c in title).strip("_").replace("__", "_")


def _flag(action: argparse.Action) -> str:
    """The long spelling (``--work-dir`` rather than ``-w``); the first one when there are aliases."""
    long_flags = [s for s in action.option_strings if s.startswith("--")]
    return (long_flags or action.option_strings)[0]


def _accepts(convert: Callable[[str], Any], text: str) -> bool:
    try:
        convert(text)
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        return False
    return True


def _numeric_kind(action: argparse.Action) -> str | None:
    """"integer" or "float" when the option takes only numbers, else None.

    Decided by calling the option's own converter, so new validators in the parser need no change here: it must
    accept a small number and return a number, and reject every word its help text quotes (``--sampling-rate`` takes
    'native', so it is a String).
    """
    convert = action.type
    sample = next((text for text in ("1", "2", "0.5", "0", "10") if convert and _accepts(convert, text)), None)
    if sample is None:
        return None
    if any(_accepts(convert, word) for word in re.findall(r"'([A-Za-z]+)'", action.help or "")):
        return None
    value = convert(sample)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return "integer" if isinstance(value, int) else "float"


def _integer_bounds(convert: Callable[[str], Any]) -> dict[str, Any]:
    accepted = [v for v in range(-2, 4) if _accepts(convert, str(v))]
    return {"minimum": accepted[0]} if accepted and accepted[0] > -2 else {}


def _float_bounds(convert: Callable[[str], Any]) -> dict[str, Any]:
    """Bounds at 0 and 1, the ones iEEG options use (rates, lengths > 0; probabilities, fractions in (0, 1))."""
    bounds: dict[str, Any] = {}
    if not _accepts(convert, "-1e-9"):
        bounds = {"minimum": 0} if _accepts(convert, "0") else {"minimum": 0, "exclusive-minimum": True}
    if not _accepts(convert, "1e9"):
        bounds.update({"maximum": 1} if _accepts(convert, "1") else {"maximum": 1, "exclusive-maximum": True})
    return bounds


def _is_input_path(action: argparse.Action) -> bool:
    """Files and folders the app reads (Boutiques type File: bosh mounts them into the container)."""
    return action.type is Path and action.dest not in CREATED_PATHS


def _number_or_string(action: argparse.Action) -> dict[str, Any]:
    if action.choices is not None:
        choices = list(action.choices)
        if all(isinstance(c, int) and not isinstance(c, bool) for c in choices):
            return {"type": "Number", "integer": True, "value-choices": choices}
        return {"type": "String", "value-choices": [str(c) for c in choices]}
    kind = _numeric_kind(action)
    if kind == "integer":
        return {"type": "Number", "integer": True, **_integer_bounds(action.type)}
    if kind == "float":
        return {"type": "Number", **_float_bounds(action.type)}
    if _is_input_path(action):
        return {"type": "File"}
    return {"type": "String"}  # free text, and values such as --sampling-rate's 'native'


def input_id(action: argparse.Action) -> str:
    """The input's id: the option's destination, or for a negative flag (``--no-line-noise``, stored as
    ``line_noise = False``) the flag's own name, so that ``"no_line_noise": true`` reads the right way round."""
    if isinstance(action, argparse._StoreFalseAction):
        return _flag(action).lstrip("-").replace("-", "_")
    return action.dest


def describe_action(action: argparse.Action) -> dict[str, Any]:
    """One Boutiques input for one argparse action.

    No ``default-value`` is given: bosh would write defaults onto the command line, where they would override
    a ``--config-file`` (the app's defaults are listed in the option's description and in RunConfig).
    """
    name = _flag(action) if action.option_strings else POSITIONAL_NAMES.get(action.dest, action.dest)
    entry: dict[str, Any] = {"id": input_id(action), "name": name, "value-key": _value_key(input_id(action)),
                             "description": (action.help or "").strip()}
    if not action.option_strings:  # positional
        entry.update({"type": "File" if _is_input_path(action) else "String", "optional": False})
        if action.dest == "analysis_level":
            entry["value-choices"] = list(ANALYSIS_LEVELS)
        return entry
    entry.update({"command-line-flag": _flag(action), "optional": True})
    if action.nargs == 0:  # store_true/store_false/count/version: present or not
        entry["type"] = "Flag"
        return entry
    entry.update(_number_or_string(action))
    if action.nargs in ("+", "*"):
        entry.update({"list": True, "min-list-entries": 1 if action.nargs == "+" else 0})
    return entry


def build_descriptor(parser: argparse.ArgumentParser | None = None) -> dict[str, Any]:
    """The Boutiques descriptor (schema 0.5) of ``bids-brainbert BIDS_DIR OUTPUT_DIR LEVEL [options]``."""
    parser = parser or build_parser()
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    inputs = [describe_action(action) for action in actions]
    command_line = " ".join(["bids-brainbert"] + [entry["value-key"] for entry in inputs])
    return {
        "name": "bids-brainbert",
        "tool-version": __version__,
        "description": parser.description,
        "author": "bids-brainbert developers",
        "url": "https://github.com/bids-brainbert/bids-brainbert",
        "schema-version": SCHEMA_VERSION,
        "command-line": command_line,
        "container-image": {"type": "docker", "image": DOCKER_IMAGE},
        "inputs": inputs,
        "output-files": [{"id": "derivatives", "name": "Derivative dataset", "path-template": "[OUTPUT_DIR]",
                          "optional": False,
                          "description": "BIDS derivative dataset: spectrograms, embeddings, models, logs"}],
        "groups": [{"id": _group_id(group.title),
                    "name": group.title,
                    "members": [input_id(a) for a in group._group_actions if a in actions]}
                   for group in parser._action_groups
                   if group.title not in ("positional arguments", "options", "optional arguments")
                   and any(a in actions for a in group._group_actions)],
        "suggested-resources": {"cpu-cores": 4, "ram": 16, "walltime-estimate": 3600},
        "tags": {"domain": ["neuroinformatics", "bids", "ieeg", "deep-learning"], "bids-app": True},
    }


def descriptor_json(parser: argparse.ArgumentParser | None = None) -> str:
    """The descriptor as the committed file's text (stable key order, trailing newline)."""
    return json.dumps(build_descriptor(parser), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m bids_brainbert.cli.boutiques OUTPUT.json", file=sys.stderr)
        return 64
    Path(argv[0]).write_text(descriptor_json(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
