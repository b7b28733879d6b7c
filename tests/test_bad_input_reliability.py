"""Reliability corpus: inputs that used to hang, crash with a traceback, vanish silently or blame the wrong file.

The cases of :data:`RELIABILITY_CORPUS` run exactly like the bad-input corpus of ``tests/test_bad_input.py``
(same tiny dataset, same checks: one line naming the file and the problem, the documented exit code, nothing
partial); the tests below them cover what is not one bad file: PowerLineFrequency "n/a", labels in reports, two
runs on one subject at once, SIGTERM, every option through ``--config-file`` and a validator that crashes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bids_brainbert.bids.derivatives import TMP_MARK, is_complete, spectrogram_paths
from bids_brainbert.bids.discovery import index_recordings
from bids_brainbert.bids.validation import find_validator
from bids_brainbert.cli.parser import build_parser
from bids_brainbert.cli.run import main, parse_config
from bids_brainbert.config import RunConfig, write_config_toml
from conftest import write_tiny_recording
from test_bad_input import (ALL_STEMS, RUN1, RUN2, SUB2, Case, Ctx, config_file, edit_text, edit_tsv, filter_file,
                            rename_channel_in_edf_header, write)
from test_bad_input import test_bad_input_gets_one_clear_error as check_case

ELECTRODES1 = "sub-01/ieeg/sub-01_electrodes.tsv"
SUB1_STEMS = ("sub-01_task-rest_run-01", "sub-01_task-rest_run-02")
DEEP = 100_000   # levels of nesting: far beyond Python's recursion limit


# ------------------------------------------------------------------------------------------------ breakers
def set_ieeg_json(path: Path, **fields) -> None:
    content = json.loads(path.read_text(encoding="utf-8"))
    content.update(fields)
    path.write_text(json.dumps(content), encoding="utf-8")   # json.dumps writes inf as Infinity, as a tool might


def replace_by(path: Path, make) -> None:
    path.unlink()
    make(path)


def edf_record_duration(path: Path, text: bytes) -> None:
    content = bytearray(path.read_bytes())
    content[244:252] = text.ljust(8)       # the data record duration field of the fixed EDF header
    path.write_bytes(bytes(content))


def copy_recording(ctx: Ctx, source_stem: str, new_stem: str) -> None:
    """Copy every file of ``source_stem`` (data and sidecars) under the name ``new_stem``."""
    for path in (ctx.root / "sub-01" / "ieeg").glob(f"{source_stem}_*"):
        shutil.copy(path, path.with_name(new_stem + path.name[len(source_stem):]))


def orphan_fdt(ctx: Ctx) -> None:
    write(ctx.root / "sub-01/ieeg/sub-01_task-rest_run-03_ieeg.fdt", b"\0" * 64)


def garbage_vmrk(ctx: Ctx) -> None:
    write(ctx.root / f"{SUB2}_ieeg.vmrk", bytes(range(256)) * 4)


def bad_marker_line(ctx: Ctx) -> None:
    path = ctx.root / f"{SUB2}_ieeg.vmrk"
    text = path.read_text(encoding="utf-8")
    marker = re.search(r"^Mk2=.*$", text, re.MULTILINE).group(0)
    edit_text(path, marker, marker.split(",")[0] + ",S  1,soon,1,0", 1)


RELIABILITY_CORPUS = [
    # denial of service: absurd PowerLineFrequency, data files that would block a read
    Case("powerline-frequency-tiny", lambda c: set_ieeg_json(c.root / f"{RUN2}_ieeg.json", PowerLineFrequency=0.001),
         1, "sub-01_task-rest_run-02_ieeg.json", "notches", ("sub-01_task-rest_run-02",)),
    Case("powerline-frequency-zero", lambda c: set_ieeg_json(c.root / f"{RUN2}_ieeg.json", PowerLineFrequency=0), 1,
         "sub-01_task-rest_run-02_ieeg.json", "PowerLineFrequency 0 must be", ("sub-01_task-rest_run-02",)),
    Case("powerline-frequency-negative", lambda c: set_ieeg_json(c.root / f"{RUN2}_ieeg.json",
                                                                 PowerLineFrequency=-50), 1,
         "sub-01_task-rest_run-02_ieeg.json", "PowerLineFrequency -50 must be", ("sub-01_task-rest_run-02",)),
    Case("powerline-frequency-infinite", lambda c: set_ieeg_json(c.root / f"{RUN2}_ieeg.json",
                                                                 PowerLineFrequency=float("inf")), 1,
         "sub-01_task-rest_run-02_ieeg.json", "PowerLineFrequency Infinity", ("sub-01_task-rest_run-02",)),
    Case("powerline-frequency-true", lambda c: set_ieeg_json(c.root / f"{RUN2}_ieeg.json", PowerLineFrequency=True),
         1, "sub-01_task-rest_run-02_ieeg.json", "PowerLineFrequency true", ("sub-01_task-rest_run-02",)),
    Case("powerline-frequency-text", lambda c: set_ieeg_json(c.root / f"{RUN2}_ieeg.json", PowerLineFrequency="50Hz"),
         1, "sub-01_task-rest_run-02_ieeg.json", "PowerLineFrequency \"50Hz\"", ("sub-01_task-rest_run-02",)),
    Case("edf-is-a-fifo", lambda c: replace_by(c.root / f"{RUN2}_ieeg.edf", os.mkfifo), 1,
         "sub-01_task-rest_run-02_ieeg.edf", "not a regular file (a named pipe (FIFO))", ("sub-01_task-rest_run-02",)),
    Case("events-tsv-is-a-fifo", lambda c: replace_by(c.root / f"{RUN2}_events.tsv", os.mkfifo), 1,
         "sub-01_task-rest_run-02_events.tsv", "not a regular file", ("sub-01_task-rest_run-02",)),
    Case("brainvision-eeg-is-a-fifo", lambda c: replace_by(c.root / f"{SUB2}_ieeg.eeg", os.mkfifo), 1,
         "sub-02_task-rest_ieeg.eeg", "not a regular file", ("sub-02_task-rest",)),
    # input read errors are not write errors
    Case("edf-is-a-folder", lambda c: replace_by(c.root / f"{RUN2}_ieeg.edf", Path.mkdir), 1,
         "sub-01_task-rest_run-02_ieeg.edf", "not a regular file (a folder)", ("sub-01_task-rest_run-02",)),
    Case("channels-tsv-is-a-folder", lambda c: replace_by(c.root / f"{RUN2}_channels.tsv", Path.mkdir), 1,
         "sub-01_task-rest_run-02_channels.tsv", "not a regular file (a folder)", ("sub-01_task-rest_run-02",)),
    # name the file that is wrong: events
    Case("events-onset-infinite", lambda c: edit_text(c.root / f"{RUN2}_events.tsv", "\n3.0\t", "\ninf\t", 1), 1,
         "sub-01_task-rest_run-02_events.tsv", "not a finite number", ("sub-01_task-rest_run-02",)),
    Case("events-onset-huge", lambda c: edit_text(c.root / f"{RUN2}_events.tsv", "\n3.0\t", "\n1e300\t", 1), 1,
         "sub-01_task-rest_run-02_events.tsv", "outside the recording", ("sub-01_task-rest_run-02",)),
    Case("events-duration-infinite", lambda c: edit_text(c.root / f"{RUN2}_events.tsv", "\n3.0\t0.5\t",
                                                         "\n3.0\tinf\t", 1), 1,
         "sub-01_task-rest_run-02_events.tsv", "duration 'inf' on line 3", ("sub-01_task-rest_run-02",)),
    Case("events-duration-nan", lambda c: edit_text(c.root / f"{RUN2}_events.tsv", "\n3.0\t0.5\t", "\n3.0\tNaN\t", 1),
         1, "sub-01_task-rest_run-02_events.tsv", "duration 'NaN'", ("sub-01_task-rest_run-02",)),
    Case("events-duration-huge", lambda c: edit_text(c.root / f"{RUN2}_events.tsv", "\n3.0\t0.5\t",
                                                     "\n3.0\t1e300\t", 1), 1,
         "sub-01_task-rest_run-02_events.tsv", "duration '1e300'", ("sub-01_task-rest_run-02",)),
    # ieeg.json
    Case("ieeg-json-array", lambda c: write(c.root / f"{RUN2}_ieeg.json", "[50, 60]"), 1,
         "sub-01_task-rest_run-02_ieeg.json", "must hold a JSON object", ("sub-01_task-rest_run-02",)),
    Case("ieeg-json-deeply-nested", lambda c: write(c.root / f"{RUN2}_ieeg.json",
                                                    '{"a": ' + "[" * DEEP + "]" * DEEP + "}"), 1,
         "sub-01_task-rest_run-02_ieeg.json", "nested too deeply", ("sub-01_task-rest_run-02",)),
    Case("coordsystem-json-array", lambda c: write(c.root / "sub-02/ieeg/sub-02_coordsystem.json", "[]"), 1,
         "sub-02_coordsystem.json", "must hold a JSON object", ("sub-02_task-rest",)),
    # electrodes.tsv
    Case("electrodes-tsv-duplicate-names", lambda c: edit_text(c.root / ELECTRODES1, "\nLA3\t", "\nLA2\t", 1), 1,
         "sub-01_electrodes.tsv", "duplicate electrode name(s) LA2", SUB1_STEMS),
    Case("electrodes-tsv-coordinate-not-a-number",
         lambda c: edit_tsv(c.root / ELECTRODES1, lambda t: t.assign(x=["left"] + list(t["x"][1:]))), 1,
         "sub-01_electrodes.tsv", "x coordinate 'left' on line 2 is not a number", SUB1_STEMS),
    # data file headers and markers
    Case("edf-record-duration-zero", lambda c: edf_record_duration(c.root / f"{RUN2}_ieeg.edf", b"0"), 1,
         "sub-01_task-rest_run-02_ieeg.edf", "data record duration '0'", ("sub-01_task-rest_run-02",)),
    Case("edf-record-duration-negative", lambda c: edf_record_duration(c.root / f"{RUN2}_ieeg.edf", b"-1"), 1,
         "sub-01_task-rest_run-02_ieeg.edf", "data record duration '-1'", ("sub-01_task-rest_run-02",)),
    Case("brainvision-sampling-interval-zero",
         lambda c: (lambda p: edit_text(p, re.search(r"SamplingInterval=\S+", p.read_text()).group(0),
                                        "SamplingInterval=0"))(c.root / f"{SUB2}_ieeg.vhdr"), 1,
         "sub-02_task-rest_ieeg.vhdr", "SamplingInterval '0'", ("sub-02_task-rest",)),
    Case("brainvision-sampling-interval-negative",
         lambda c: (lambda p: edit_text(p, re.search(r"SamplingInterval=\S+", p.read_text()).group(0),
                                        "SamplingInterval=-1953.125"))(c.root / f"{SUB2}_ieeg.vhdr"), 1,
         "sub-02_task-rest_ieeg.vhdr", "SamplingInterval '-1953.125'", ("sub-02_task-rest",)),
    Case("brainvision-vmrk-garbage", garbage_vmrk, 1, "sub-02_task-rest_ieeg.vmrk", "not a BrainVision marker file",
         ("sub-02_task-rest",)),
    Case("brainvision-vmrk-bad-marker", bad_marker_line, 1, "sub-02_task-rest_ieeg.vmrk", "is not a marker",
         ("sub-02_task-rest",)),
    # the dataset's tables
    Case("participants-tsv-ragged", lambda c: edit_text(c.root / "participants.tsv", "\nsub-01\t", "\nsub-01\t\t", 1),
         1, "participants.tsv", "ragged", ALL_STEMS),
    # discovery
    Case("subject-folder-alias", lambda c: (c.root / "sub-09").symlink_to(c.root / "sub-02", target_is_directory=True),
         16, "sub-09/ieeg/sub-02_task-rest_ieeg.", "a file of sub-02 in the folder sub-09"),
    Case("file-of-another-subject", lambda c: shutil.copy(c.root / f"{RUN1}_ieeg.edf",
                                                          c.root / "sub-02/ieeg/sub-09_task-rest_ieeg.edf"),
         16, "sub-02/ieeg/sub-09_task-rest_ieeg.edf", "a file of sub-09 in the folder sub-02"),
    Case("task-label-not-ascii", lambda c: copy_recording(c, "sub-01_task-rest_run-02", "sub-01_task-r\u00e9st_run-03"),
         16, "sub-01_task-r\u00e9st_run-03_ieeg.edf", "not a valid BIDS iEEG file name"),
    # deep nesting
    Case("dataset-description-deeply-nested",
         lambda c: write(c.root / "dataset_description.json",
                         '{"Name": "x", "BIDSVersion": "1.9.0", "a": ' + "[" * DEEP + "]" * DEEP + "}"), 16,
         "dataset_description.json", "nested too deeply"),
    Case("filter-file-deeply-nested", lambda c: filter_file(c, '{"ieeg": ' + "[" * DEEP + "]" * DEEP + "}"), 64,
         "filter.json", "nested too deeply"),
    Case("config-toml-deeply-nested", lambda c: config_file(c, "nprocs = " + "[" * DEEP + "]" * DEEP + "\n"), 64,
         "options.toml", "nested too deeply"),
    # labels
    Case("channel-name-with-newline", lambda c: rename_channel_in_edf_header(c.root / f"{RUN2}_ieeg.edf", b"LA3",
                                                                             b"LA\n3"), 1,
         "sub-01_task-rest_run-02_channels.tsv", "only in the file: LA\\n3", ("sub-01_task-rest_run-02",)),
    Case("task-label-215-characters", lambda c: copy_recording(c, "sub-01_task-rest_run-02",
                                                               f"sub-01_task-{'a' * 215}_run-03"),
         1, f"sub-01_task-{'a' * 215}_run-03_ieeg.edf", "file name too long",
         (f"sub-01_task-{'a' * 215}_run-03",)),
    # orphan data files
    Case("brainvision-without-vhdr", lambda c: (c.root / f"{SUB2}_ieeg.vhdr").unlink(), 1,
         "sub-02_task-rest_ieeg.eeg", "without its header sub-02_task-rest_ieeg.vhdr", ("sub-02_task-rest",)),
    Case("eeglab-fdt-without-set", orphan_fdt, 1, "sub-01_task-rest_run-03_ieeg.fdt",
         "without its header sub-01_task-rest_run-03_ieeg.set", ("sub-01_task-rest_run-03",)),
]


@pytest.mark.parametrize("case", RELIABILITY_CORPUS, ids=lambda c: c.id)
def test_reliability_case_gets_one_clear_error(case: Case, tiny_dataset, tmp_path, capsys):
    check_case(case, tiny_dataset, tmp_path, capsys)


def test_reliability_corpus_is_distinct_from_the_first():
    from test_bad_input import ONE_RECORDING, WHOLE_RUN

    ids = [c.id for c in RELIABILITY_CORPUS]
    assert len(ids) == len(set(ids)) >= 35
    assert not set(ids) & {c.id for c in WHOLE_RUN + ONE_RECORDING}
