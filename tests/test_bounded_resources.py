"""Bounded resources: channels are read and checked batch by batch, running out of memory or disk space (real
limits set on a subprocess) or losing a worker to the kernel ends in one clear line and no partial output, and the
scratch folders of a killed run are removed by the next one."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bids_brainbert.bids.derivatives import TMP_MARK
from bids_brainbert.bids.discovery import index_recordings
from bids_brainbert.io.loading import open_recording, read_raw
from bids_brainbert.workflows.scratch import PREFIX, remove_abandoned_scratch, scratch_dir
from conftest import tiny_signal, write_tiny_recording

ARGS = ["participant", "--skip-bids-validation", "--random-seed", "3"]
ENV = {**{k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}, "OMP_NUM_THREADS": "1"}


def cli(bids: Path, out: Path, *args: str, preexec_fn=None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bids_brainbert", str(bids), str(out), *ARGS, *args], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=preexec_fn, **kwargs)


@pytest.fixture(scope="module")
def two_recordings(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resources") / "rawdata"
    write_tiny_recording(root, "01", "01", "EDF", seconds=30.0, seed=21)
    write_tiny_recording(root, "01", "02", "BrainVision", seconds=30.0, seed=22)
    write_tiny_recording(root, "02", None, "EDF", seconds=60.0, seed=23)   # keeps a worker busy a while longer
    return root


def scratch_folders(work: Path) -> list[Path]:
    return sorted(work.glob(f"{PREFIX}*")) if work.exists() else []


def assert_no_partial_outputs(out: Path) -> None:
    assert not list(out.rglob("*_spectrogram.*")) and not list(out.rglob(f"*{TMP_MARK}*"))


def test_unusable_channels_are_found_batch_by_batch(tmp_path):
    """Reading one channel at a time finds the same NaN, flat and clipped channels and the same signal as reading
    the whole file into memory."""
    data = tiny_signal(512 * 10, seed=4)
    data[0, 7] = np.nan
    data[2] = 1e-6
    data[4] = np.clip(data[4], -5e-6, 5e-6)
    path = write_tiny_recording(tmp_path, "01", None, "BrainVision", seconds=10.0, data=data)
    recording = index_recordings(tmp_path)[0]
    one, whole = open_recording(recording, batch_channels=1), open_recording(recording)
    assert one.dropped == whole.dropped
    assert {"LA1", "LA3", "LA5"} <= set(one.dropped) and one.ch_names == ["LA2", "LA4", "LA6"]
    assert "NaN" in one.dropped["LA1"] and "flat" in one.dropped["LA3"] and "clipped" in one.dropped["LA5"]
    preloaded = read_raw(recording).get_data(picks=one.ch_names)
    np.testing.assert_array_equal(one.load().data, preloaded)
    np.testing.assert_array_equal(one.read([2, 0]), preloaded[[2, 0]])
    assert path.exists()


def test_disk_full_is_one_line_and_leaves_nothing(two_recordings, tmp_path):
    """A real write refusal: the kernel's file size limit (RLIMIT_FSIZE, as `ulimit -f`) is below the size of the
    staged signal, so writing it fails with EFBIG, as a full disk fails with ENOSPC."""
    out, work = tmp_path / "out", tmp_path / "work"
    limit = 100_000  # bytes: the logs and sidecars fit, no recording's signal does

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    process = cli(two_recordings, out, "-w", str(work), "--participant-label", "01", preexec_fn=small_files)
    err = process.communicate(timeout=300)[1].decode()
    assert process.returncode == 1, err
    assert "Traceback" not in err
    failures = err.split("recording(s) failed:\n")[1].strip().splitlines()
    assert len(failures) == 2
    for failure, recording in zip(failures, index_recordings(two_recordings)):
        assert failure.strip().startswith(str(recording.path)) and "disk full (File too large)" in failure
    assert_no_partial_outputs(out)
    assert scratch_folders(work) == []


MEMORY_WRAPPER = """
import resource, sys
import bids_brainbert.cli.run as run
import bids_brainbert.workflows.participant, bids_brainbert.workflows.analyses, bids_brainbert.workflows.embeddings
import bids_brainbert.transforms.spectrogram, bids_brainbert.reports.figures, mne_bids, scipy.signal, numpy
numpy.ones((256, 256)) @ numpy.ones((256, 256))   # OpenBLAS takes its buffers now (it aborts if it cannot later)
# every module is imported: the limit leaves the process {headroom} bytes more address space than it has now
size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (size + {headroom}, size + {headroom}))
sys.exit(run.main(sys.argv[1:]))
"""


def test_out_of_memory_is_one_line_and_leaves_nothing(tmp_path):
    """A real MemoryError: the address space of the process (RLIMIT_AS) leaves it 64 MB, less than preprocessing
    a 10-minute recording needs."""
    root, out, work = tmp_path / "rawdata", tmp_path / "out", tmp_path / "work"
    write_tiny_recording(root, "01", None, "EDF", seconds=600.0, seed=5)
    command = [sys.executable, "-c", MEMORY_WRAPPER.format(headroom=64 * 2**20), str(root), str(out), *ARGS,
               "-w", str(work)]
    process = subprocess.run(command, env=ENV, capture_output=True, timeout=300)
    err = process.stderr.decode()
    assert process.returncode == 1, err
    assert "Traceback" not in err
    failure = err.split("recording(s) failed:\n")[1].strip()
    assert failure.startswith(str(index_recordings(root)[0].path)) and "out of memory" in failure, failure
    assert len(failure.splitlines()) == 1
    assert_no_partial_outputs(out)
    assert scratch_folders(work) == []


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        found = predicate()
        if found:
            return found
        time.sleep(0.002)
    return None


def test_worker_killed_by_the_system_is_reported_without_traceback(two_recordings, tmp_path):
    """--nprocs 2: the worker processing a recording is killed (SIGKILL, as the out-of-memory killer does) in the
    middle of it; the run ends with one line per unfinished recording, and nothing half-written is left."""
    out, work = tmp_path / "out", tmp_path / "work"
    process = cli(two_recordings, out, "--nprocs", "2", "-w", str(work))
    busy = _wait_for(lambda: scratch_folders(work), process)
    assert busy, process.communicate()[1].decode()
    worker = int(busy[0].name[len(PREFIX):].split("@")[0])   # the scratch folder is named after its process
    os.kill(worker, signal.SIGKILL)
    err = process.communicate(timeout=300)[1].decode()
    assert process.returncode == 1, err
    assert "Traceback" not in err
    # the summary lists one line per unfinished recording (multiprocessing's resource tracker may add its own
    # warning about the dead worker's semaphore after it: not ours to print, and not a traceback)
    listed = err.split("recording(s) failed:\n")[1].splitlines()
    failures = [line for line in listed if line.startswith(f"  {two_recordings}")]
    assert failures and all("worker process was killed by the operating system" in f for f in failures), err
    assert not list(out.rglob(f"*{TMP_MARK}*"))
    assert scratch_folders(work) == []


def test_scratch_of_a_killed_run_is_removed_by_the_next(two_recordings, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    process = cli(two_recordings, out, "--nprocs", "1", "-w", str(work), "--participant-label", "01")
    busy = _wait_for(lambda: scratch_folders(work), process)
    assert busy, process.communicate()[1].decode()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert scratch_folders(work) == busy   # nobody could remove it
    again = cli(two_recordings, out, "--nprocs", "1", "-w", str(work), "--participant-label", "01")
    err = again.communicate(timeout=300)[1].decode()
    assert again.returncode == 0, err
    assert f"removed {busy[0]} left by an interrupted run" in err
    assert scratch_folders(work) == []


def test_only_abandoned_scratch_folders_of_ours_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    abandoned = tmp_path / f"{PREFIX}{dead.pid}@elsewhere.sub-01_task-x.abcd"
    abandoned.mkdir()
    (abandoned / "signal.npy").write_bytes(b"x")
    other = tmp_path / "someone-elses-scratch"
    other.mkdir()
    with scratch_dir(tmp_path, "sub-02_task-x") as in_use:
        assert in_use.name.startswith(f"{PREFIX}{os.getpid()}@")
        assert remove_abandoned_scratch(tmp_path) == [abandoned]   # its lock died with its process
        assert in_use.exists() and other.exists()
    assert not in_use.exists()
