"""Never lose or corrupt data: the input is only read, a killed run resumes to byte-identical outputs, damaged
outputs are recomputed, a failed recording leaves nothing half-written, and concurrent array tasks writing into
one output folder do not clobber its shared files."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bids_brainbert.bids import derivatives as deriv
from bids_brainbert.bids.derivatives import BIDSIGNORE_PATTERNS, TMP_MARK, is_complete, spectrogram_paths
from bids_brainbert.bids.discovery import index_recordings
from bids_brainbert.cli.run import main
from conftest import write_tiny_recording
from write_audit import snapshot, writes_under

SECONDS = 30.0           # long enough that killing the run while it writes a recording is easy to time
ARGS = ["participant", "--nprocs", "1", "--random-seed", "3", "--skip-bids-validation"]


@pytest.fixture(scope="module")
def resume_dataset(tmp_path_factory) -> Path:
    """Four recordings of three subjects (EDF and BrainVision), 30 s each."""
    root = tmp_path_factory.mktemp("resume") / "rawdata"
    write_tiny_recording(root, "01", "01", "EDF", seconds=SECONDS, seed=11)
    write_tiny_recording(root, "01", "02", "EDF", seconds=SECONDS, seed=12)
    write_tiny_recording(root, "02", None, "BrainVision", seconds=SECONDS, seed=13)
    write_tiny_recording(root, "03", None, "EDF", seconds=SECONDS, seed=14)
    return root


@pytest.fixture(scope="module")
def reference(resume_dataset, tmp_path_factory) -> Path:
    """An uninterrupted run: what every resumed or repaired run must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("reference") / "out"
    assert main([str(resume_dataset), str(out), *ARGS]) == 0
    return out


# Subprocess runs share one thread set-up (BLAS summation order can depend on the thread count), and are compared
# with a reference run the same way; in-process runs are compared with an in-process reference.
SUBPROCESS_ENV = {**{k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")},
                  "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bids_brainbert", *map(str, args)], env=SUBPROCESS_ENV,
                            **kwargs)


@pytest.fixture(scope="module")
def subprocess_reference(resume_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("subprocess-reference") / "out"
    process = cli(resume_dataset, out, *ARGS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()
    return out


def output_files(out: Path) -> dict[str, bytes]:
    """Every output file by relative path, except the per-run logs (their folder is named by the run id)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and "log" not in p.relative_to(out).parts[1:2]}


def assert_same_outputs(out: Path, reference: Path) -> None:
    ours, theirs = output_files(out), output_files(reference)
    assert sorted(ours) == sorted(theirs)
    assert [name for name in ours if ours[name] != theirs[name]] == []


# ---------------------------------------------------------------------------------------------- (a) read-only
def test_input_dataset_is_only_read(resume_dataset, tmp_path):
    """The run (validator included) leaves every file and folder of the input as it was: content, size, mode
    and modification time; and, within this Python process, no file under it is opened for writing, created,
    renamed, removed or chmod-ed (an audit hook records any attempt).

    The input is also made read-only (chmod -R a-w). As a normal user that alone makes any write fail; the tests
    may run as root, for whom permissions do not stop writes, which is why the snapshot and the audit hook are
    what this test relies on. (The BIDS validator runs in a subprocess: only the snapshot covers it.)"""
    root = tmp_path / "rawdata"
    shutil.copytree(resume_dataset, root)
    for sub in ("02", "03"):
        shutil.rmtree(root / f"sub-{sub}")   # one subject is enough here
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}
    before = None
    try:
        for path, mode in modes.items():
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        before = snapshot(root)
        with writes_under(root) as writes:
            code = main([str(root), str(tmp_path / "out"), "participant", "--nprocs", "1"])
        assert code == 0
        assert writes == []
        assert snapshot(root) == before
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    assert before is not None and all(mode & stat.S_IWUSR == 0 for mode, *_ in before.values())
    assert len(list((tmp_path / "out").rglob("*_spectrogram.npy"))) == 2


def test_the_audit_hook_sees_writes(tmp_path):
    """The hook of the test above is not blind: it reports a write, a rename and a removal under the root."""
    with writes_under(tmp_path) as writes:
        (tmp_path / "a.txt").write_text("x")
        os.replace(tmp_path / "a.txt", tmp_path / "b.txt")
        (tmp_path / "b.txt").read_text()
        (tmp_path / "b.txt").unlink()
    assert [event for event, _ in writes] == ["open", "os.rename", "os.remove"]


# -------------------------------------------------------------------------------------------- (b) kill -9
def test_killed_run_resumes_to_identical_outputs(resume_dataset, subprocess_reference, tmp_path):
    """kill -9 while the second recording is being written; the same command then finishes only what is missing,
    removes the killed run's temporary file, and every output equals the uninterrupted run's, byte for byte.
    (Sidecars hold no time stamps or run ids, so they are compared whole; only the per-run log folders differ.)"""
    out = tmp_path / "out"
    command = [resume_dataset, out, *ARGS]
    with open(tmp_path / "killed.log", "wb") as log:
        process = cli(*command, stdout=log, stderr=log)
        deadline = time.monotonic() + 300
        first_done = None
        while process.poll() is None and time.monotonic() < deadline:
            if first_done is None and list(out.rglob("*_spectrogram.json")):
                first_done = time.monotonic()
            # kill while a temporary file of the next recording is open (or 5 s after the first one finished)
            if first_done is not None and ([p for p in out.rglob(f"*{TMP_MARK}*")]
                                           or time.monotonic() - first_done > 5):
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    recordings = index_recordings(resume_dataset)
    done = [r for r in recordings if is_complete(spectrogram_paths(out, r, "superlet"))]
    assert 1 <= len(done) < len(recordings)
    stale = list(out.rglob(f"*{TMP_MARK}*"))
    assert stale, "the run was not killed in the middle of writing a file"
    mtimes = {p: p.stat().st_mtime_ns for r in done for p in spectrogram_paths(out, r, "superlet").values()}

    again = cli(*command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = again.communicate(timeout=300)[1].decode()
    assert again.returncode == 0, err
    for recording in recordings:
        status = "skipped" if recording in done else "written"
        assert f"{status}  {recording.relative_path}" in err or f"{status} {recording.relative_path}" in err, err
    assert err.count("complete derivative found, skipped") == len(done)
    assert "left by an interrupted run" in err
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in mtimes.items()), "a complete output was rewritten"
    assert not list(out.rglob(f"*{TMP_MARK}*"))
    assert_same_outputs(out, subprocess_reference)


# ------------------------------------------------------------------------------------ (c) damaged outputs
def _truncate_data(paths):
    data = paths["data"].read_bytes()
    paths["data"].write_bytes(data[: len(data) // 2])


def _wrong_hash(paths):
    sidecar = json.loads(paths["sidecar"].read_text())
    sidecar["DataSha256"] = "0" * 64
    paths["sidecar"].write_text(json.dumps(sidecar, indent=2) + "\n")


def _flip_one_value(paths):
    with open(paths["data"], "r+b") as fh:   # same size, valid .npy header: only the hash can tell
        fh.seek(-4, 2)
        fh.write(b"\x00\x00\xc0\x7f")


DAMAGE = {
    "data-truncated": _truncate_data,
    "data-one-value-changed": _flip_one_value,
    "sidecar-hash-mismatch": _wrong_hash,
    "sidecar-truncated": lambda p: p["sidecar"].write_text(p["sidecar"].read_text()[:40]),
    "sidecar-missing": lambda p: p["sidecar"].unlink(),
    "data-missing": lambda p: p["data"].unlink(),
    "channels-table-missing": lambda p: p["channels"].unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_output_is_recomputed(damage, resume_dataset, reference, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    recordings = index_recordings(resume_dataset)
    damaged = recordings[1]
    DAMAGE[damage](spectrogram_paths(out, damaged, "superlet"))
    intact = {p: p.stat().st_mtime_ns for r in recordings if r != damaged
              for p in spectrogram_paths(out, r, "superlet").values()}
    assert main([str(resume_dataset), str(out), *ARGS]) == 0
    err = capsys.readouterr().err
    assert f"written  {damaged.relative_path}" in err
    assert err.count("complete derivative found, skipped") == len(recordings) - 1
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in intact.items())
    assert_same_outputs(out, reference)


def test_overwrite_recomputes_complete_outputs_identically(resume_dataset, reference, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    assert main([str(resume_dataset), str(out), *ARGS, "--overwrite", "--participant-label", "03"]) == 0
    assert "skipped" not in capsys.readouterr().err.split("processing 1 recording")[1]
    assert_same_outputs(out, reference)


def test_failed_recording_leaves_no_half_derivative(resume_dataset, tmp_path, monkeypatch, capsys):
    """The disk fills up after the data file is in place, before its tables and sidecar: the error names the file
    and the reason, and the data file that was already renamed into place is removed with the rest."""
    real = deriv.atomic_write_tsv

    def full_disk(path, table):
        if "sub-03" in path.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, table)

    monkeypatch.setattr(deriv, "atomic_write_tsv", full_disk)
    out = tmp_path / "out"
    assert main([str(resume_dataset), str(out), *ARGS, "--participant-label", "02", "03"]) == 1
    err = capsys.readouterr().err
    failure = err.split("recording(s) failed:\n")[1].strip().splitlines()
    assert len(failure) == 1 and "sub-03_task-rest_desc-superlet_channels.tsv" in failure[0]
    assert "No space left on device" in failure[0]
    assert not list(out.rglob("sub-03_*")) and not list(out.rglob(f"*{TMP_MARK}*"))
    assert len(list(out.rglob("sub-02_*_spectrogram.npy"))) == 1


# --------------------------------------------------------------------------------- (d) concurrent array tasks
def test_concurrent_array_tasks_share_one_output_folder(resume_dataset, subprocess_reference, tmp_path):
    """Three processes started together, one subject each, into one output folder that already holds a user's
    .bidsignore line: the shared files end up valid and complete, each subject has its own log and every
    derivative equals the single-process run's."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".bidsignore").write_text("my_notes/\n")
    processes = [cli(resume_dataset, out, *ARGS, "--participant-label", subject, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE) for subject in ("01", "02", "03")]
    errors = [p.communicate(timeout=300)[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], errors
    assert json.loads((out / "dataset_description.json").read_text()) == \
        json.loads((subprocess_reference / "dataset_description.json").read_text())
    ignore = (out / ".bidsignore").read_text().splitlines()
    assert sorted(ignore) == sorted(["my_notes/", *BIDSIGNORE_PATTERNS])
    for subject in ("01", "02", "03"):
        runs = list((out / f"sub-{subject}" / "log").iterdir())
        assert len(runs) == 1 and {p.name for p in runs[0].iterdir()} == {"bids-brainbert.log", "bids-brainbert.toml"}
        log = (runs[0] / "bids-brainbert.log").read_text()
        assert f"sub-{subject}_" in log and not [s for s in ("01", "02", "03") if s != subject and f"sub-{s}_" in log]
    assert not list(out.rglob(f"*{TMP_MARK}*"))
    ours, theirs = output_files(out), output_files(subprocess_reference)
    assert sorted(ours) == sorted(theirs)
    assert [name for name in ours if name != ".bidsignore" and ours[name] != theirs[name]] == []


def test_shared_files_are_written_atomically_with_identical_content(tmp_path, monkeypatch):
    """Writers of dataset_description.json and .bidsignore only ever rename a complete file into place (so a
    concurrent reader sees the old or the new file, never half of one), and an up-to-date file is not rewritten."""
    renamed = []
    real_replace = os.replace

    def watching_replace(src, dst):
        renamed.append((Path(src).name, Path(dst).name, Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(deriv.os, "replace", watching_replace)
    description = {"Name": "x", "BIDSVersion": "1.10.0"}
    deriv.write_dataset_files(tmp_path, tmp_path / "raw", description)
    assert sorted(dst for _, dst, _ in renamed) == [".bidsignore", "dataset_description.json"]
    for src, dst, content in renamed:
        assert TMP_MARK in src and content == (tmp_path / dst).read_bytes()
    renamed.clear()
    deriv.write_dataset_files(tmp_path, tmp_path / "raw", description)
    assert renamed == []
