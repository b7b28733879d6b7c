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


# ------------------------------------------------------------------------------ PowerLineFrequency "n/a"
def test_powerline_frequency_na_means_no_notch_with_a_warning(tiny_dataset, tmp_path, capsys):
    """BIDS allows "n/a" (unknown): no notch, a warning naming the recording, and the sidecar says why."""
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    set_ieeg_json(root / f"{RUN2}_ieeg.json", PowerLineFrequency="n/a")
    out = tmp_path / "out"
    assert main([str(root), str(out), "participant", "--skip-bids-validation", "--participant-label", "01"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "WARNING" in line and "line noise not removed" in line]
    assert len(warnings) == 1 and "sub-01_task-rest_run-02" in warnings[0]
    sidecars = {p.name.split("_desc-")[0]: json.loads(p.read_text()) for p in out.rglob("*_spectrogram.json")}
    assert sidecars["sub-01_task-rest_run-02"]["Preprocessing"]["LineNoise"]["applied"] is False
    assert sidecars["sub-01_task-rest_run-01"]["Preprocessing"]["LineNoise"]["notch_freqs_hz"] == [
        50.0, 100.0, 150.0, 200.0, 250.0]


# ------------------------------------------------------------------------------------ labels in reports
def test_channel_names_with_dollar_signs_are_drawn_as_plain_text(tiny_dataset, tmp_path, capsys):
    """A channel called '$\\x$' is not valid mathtext: the report used to crash after the derivatives were
    written. Now the run succeeds and the report names the channel as written."""
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    rename_channel_in_edf_header(root / f"{RUN1}_ieeg.edf", b"LA4", b"$\\x$")
    edit_text(root / f"{RUN1}_channels.tsv", "\nLA4\t", "\n$\\x$\t")
    out = tmp_path / "out"
    code = main([str(root), str(out), "participant", "--skip-bids-validation", "--participant-label", "01",
                 "--run", "1", "--reference", "none"])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err
    channels = next(out.rglob("sub-01_task-rest_run-01_desc-superlet_channels.tsv")).read_text()
    assert "$\\x$" in channels
    report = (out / "sub-01.html").read_text(encoding="utf-8")
    assert "$\\x$" in report and "<img" in report


# ------------------------------------------------------------------------- runs that meet or are stopped
SECONDS = 30.0
ARGS = ["participant", "--nprocs", "1", "--random-seed", "3", "--skip-bids-validation"]
ENV = {**{k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")},
       "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def long_dataset(tmp_path_factory) -> Path:
    """Two 30 s recordings of one subject: long enough to catch a run while it writes."""
    root = tmp_path_factory.mktemp("long") / "rawdata"
    write_tiny_recording(root, "01", "01", "EDF", seconds=SECONDS, seed=21)
    write_tiny_recording(root, "01", "02", "EDF", seconds=SECONDS, seed=22)
    return root


def cli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bids_brainbert", *map(str, args)], env=ENV, **kwargs)


@pytest.fixture(scope="module")
def long_reference(long_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("long-reference") / "out"
    process = cli(long_dataset, out, *ARGS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()
    return out


def outputs(out: Path) -> dict[str, bytes]:
    """Every output file by relative path, except the per-run logs and the reports (they list run times)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and "log" not in p.relative_to(out).parts[1:2] and p.suffix != ".html"}


def wait_for_temporary(process: subprocess.Popen, out: Path, timeout: float = 300) -> None:
    """Until the run has a temporary derivative file open (it is in the middle of writing a recording)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if list(out.rglob(f"*{TMP_MARK}*_spectrogram.npy")) or list(out.rglob(f".*_spectrogram.npy{TMP_MARK}*")):
            return
        time.sleep(0.002)
    raise AssertionError(f"the run never wrote a temporary file (exit {process.poll()})")


def test_two_runs_on_the_same_subject_both_finish_identically(long_dataset, long_reference, tmp_path):
    """A resubmitted array task starts while the first is writing: the second must not remove the first's live
    temporary file. Both finish, and the outputs are complete and equal to one run's."""
    out = tmp_path / "out"
    first = cli(long_dataset, out, *ARGS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_temporary(first, out)
    second = cli(long_dataset, out, *ARGS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    errors = [p.communicate(timeout=300)[1].decode() for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], errors
    for recording in index_recordings(long_dataset):
        assert is_complete(spectrogram_paths(out, recording, "superlet"))
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name]
    assert outputs(out) == outputs(long_reference)


def test_a_live_temporary_file_of_another_run_is_left_alone(tiny_dataset, tmp_path, capsys):
    """Deterministically what the test above races for: while another writer holds its temporary file of a
    recording (locked), a run on the same recording leaves it alone and still writes its own outputs; the
    unlocked temporary file of a killed run is removed as before."""
    from bids_brainbert.bids import derivatives as deriv

    out = tmp_path / "out"
    recording = next(r for r in index_recordings(tiny_dataset) if r.stem_entities == "sub-01_task-rest_run-01")
    paths = spectrogram_paths(out, recording, "superlet")
    paths["data"].parent.mkdir(parents=True)
    killed = paths["sidecar"].with_name(f".{paths['sidecar'].name}{TMP_MARK}killed")
    killed.write_text("{")
    with pytest.raises(InterruptedError):
        with deriv.atomic_path(paths["data"]) as live:   # the other run, in the middle of writing
            live.write_bytes(b"partial")
            assert main([str(tiny_dataset), str(out), *ARGS, "--participant-label", "01", "--run", "1"]) == 0
            assert live.read_bytes() == b"partial", "a live temporary file of another run was touched"
            raise InterruptedError   # the other run ends without renaming its file into place
    assert not live.exists() and not killed.exists()
    assert "left by an interrupted run" in capsys.readouterr().err
    assert is_complete(paths)


def test_sigterm_is_handled_like_ctrl_c_and_the_run_resumes(long_dataset, long_reference, tmp_path):
    """SIGTERM (what SLURM sends at the time limit) while a recording is being written: the temporary files
    are removed, the command exits 130 with one line saying how to finish, and the same command then finishes
    what is missing, equal to an uninterrupted run."""
    out, work = tmp_path / "out", tmp_path / "work"
    process = cli(long_dataset, out, *ARGS, "-w", work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_temporary(process, out)
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=120)[1].decode()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted; re-run the same command" in err
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name], "temporary files left by the interrupted run"
    assert not work.exists() or not any(work.iterdir()), "scratch left by the interrupted run"
    again = cli(long_dataset, out, *ARGS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = again.communicate(timeout=300)[1].decode()
    assert again.returncode == 0, err
    assert outputs(out) == outputs(long_reference)


def test_sigterm_reaches_the_keyboard_interrupt_path_in_process():
    """Within main() SIGTERM raises KeyboardInterrupt (the path pretraining saves its checkpoint on); outside,
    the previous handler is back."""
    from bids_brainbert.interrupts import sigterm_as_keyboard_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_keyboard_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) == before


# ----------------------------------------------------------------------------- every option via the file
def _sample(action: argparse.Action, tmp: Path) -> list[str]:
    """Command-line text for ``action`` that differs from its default."""
    dest, many = action.dest, action.nargs in ("+", "*")
    default = getattr(RunConfig(), dest)
    if action.choices is not None:
        if many:   # a list: one choice alone differs from the default list
            return [str(action.choices[-1])]
        return [str([c for c in action.choices if c != default][-1])]
    special = {"participant_label": ["01", "02"], "exclude_participant_label": ["03"],
               "holdout_participant_label": ["01"], "session_label": ["abc", "def2"], "task_label": ["x1"],
               "run": ["1", "3"], "decoding_contrast": ["a,b", "c,d"], "sampling_rate": ["native"],
               "data_efficiency_sizes": ["30", "60"],
               # values the parameters' cross-option checks accept with any other sample (orders >= 1, the
               # STFT overlap below the window)
               "superlet_order_min": ["2"], "stft_nperseg": ["512"]}
    if dest in special:
        return special[dest]
    if isinstance(default, Path) or "Path" in str(RunConfig.__dataclass_fields__[dest].type):
        return [str(tmp / f"{dest}.file")]
    for text in ("3", "0.25"):
        try:
            value = action.type(text) if action.type else None
        except (ValueError, argparse.ArgumentTypeError):
            continue
        if value is not None and value != default:
            return [text]
    return ["mymodel"]


def _toml_value(action: argparse.Action, texts: list[str]):
    """The same value as a TOML user writes it: numbers as numbers, lists as arrays, text as strings."""
    def natural(text: str):
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        return text
    values = [natural(t) if action.type not in (None, Path) else t for t in texts]
    if action.dest == "sampling_rate":
        values = ["native"]
    return values if action.nargs in ("+", "*") else values[0]


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.dest not in ("help", "version", "config_file")]


def test_every_option_round_trips_through_the_config_file(tmp_path):
    """Generated from the parser: each option given in a TOML file gives the same configuration as on the
    command line, and the configuration a run saves (bids-brainbert.toml) gives it back whole."""
    import tomli_w

    parser = build_parser()
    base = [str(tmp_path / "bids"), str(tmp_path / "out"), "participant"]
    options = _options(parser)
    assert len(options) >= 60
    everything: list[str] = []
    for action in options:
        flag = max(action.option_strings, key=len)
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            cli_args, value = [flag], isinstance(action, argparse._StoreTrueAction)
        elif isinstance(action, argparse._CountAction):
            cli_args, value = [flag, flag], 2
        else:
            texts = _sample(action, tmp_path)
            cli_args, value = [flag, *texts], _toml_value(action, texts)
        toml = tmp_path / f"{action.dest}.toml"
        toml.write_text(tomli_w.dumps({action.dest: value}))
        from_cli = parse_config(base + cli_args)
        from_file = parse_config(base + ["--config-file", str(toml)])
        assert from_file == from_cli, (action.dest, value)
        assert from_cli != parse_config(base), f"{action.dest}: the sample equals the default"
        everything += cli_args
    config = parse_config(base + everything)
    saved = tmp_path / "saved.toml"
    write_config_toml(config, saved)
    assert parse_config(base + ["--config-file", str(saved)]) == config


def test_a_string_option_in_the_config_file_is_accepted(tmp_path):
    toml = write(tmp_path / "c.toml", 'model_label = "mymodel"\ndevice = "cpu"\ndecoding_column = "cond"\n')
    config = parse_config([str(tmp_path / "bids"), str(tmp_path / "out"), "participant", "--config-file", str(toml)])
    assert (config.model_label, config.device, config.decoding_column) == ("mymodel", "cpu", "cond")


# ------------------------------------------------------------------------------- the validator crashing
def test_a_crashing_validator_is_not_an_invalid_dataset(tiny_dataset, tmp_path, capsys, monkeypatch):
    """The real BIDS validator run under a 64 MB address-space limit (a job's memory limit) dies before it
    reads the dataset: that is "the validator failed" with its own last words, exit 1, not exit 16."""
    real = find_validator()
    assert real is not None, "bids-validator-deno is a test dependency"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "bids-validator-deno"
    wrapper.write_text(f"#!/bin/sh\nulimit -v 65536\nexec {real} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "out"
    code = main([str(tiny_dataset), str(out), "participant"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("bids-brainbert: error:")]
    assert code == 1 and len(lines) == 1, err
    assert "the BIDS validator failed" in lines[0] and "bids-validator-deno" in lines[0]
    assert "--skip-bids-validation" in lines[0] and "Traceback" not in err
    assert not out.exists()
