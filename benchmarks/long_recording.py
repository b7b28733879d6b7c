"""Peak memory and wall time of the participant level on a long recording (1 h x 128 sEEG contacts at 2048 Hz).

The dataset is written on disk chunk by chunk as BrainVision int16 (never held in memory) in a temporary folder,
with the BIDS sidecars our loader checks; it has two runs whose data files are hard links to one file, so the
``--nprocs 2`` run processes two such recordings at once without doubling the disk space. The participant level
runs through the command line in a subprocess; a poller sums the resident memory (RSS) of its whole process tree.

    python benchmarks/long_recording.py                        # 60 min x 128 channels, --nprocs 1 and 2
    python benchmarks/long_recording.py --minutes 5 --channels 32 --nprocs 1
    python benchmarks/long_recording.py -- --reference car     # arguments after -- go to bids-brainbert
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

SFREQ = 2048
RESOLUTION_UV = 0.1            # int16 step: +-3.28 mV full scale, far above the simulated tens of microvolts
CHUNK_S = 10                   # seconds generated and written at once
CONTACTS_PER_SHAFT = 8
LIMIT_GB = 3.0                 # the bound the participant level must keep (whole process tree)
TASK = "long"


def contact_names(n_channels: int) -> list[str]:
    """Shafts A, B, ... of eight contacts each (A1..A8, B1..B8, ...)."""
    return [f"{chr(65 + i // CONTACTS_PER_SHAFT)}{i % CONTACTS_PER_SHAFT + 1}" for i in range(n_channels)]


def write_brainvision_int16(stem: Path, names: list[str], n_samples: int, seed: int) -> None:
    """``stem``.vhdr/.vmrk/.eeg, multiplexed int16, chunk by chunk: 1/f-like background (AR(1) random walk
    plus white noise) and 60 Hz mains, tens of microvolts."""
    n_channels = len(names)
    eeg, vhdr, vmrk = (stem.with_suffix(s) for s in (".eeg", ".vhdr", ".vmrk"))
    channel_lines = "\n".join(f"Ch{i + 1}={name},,{RESOLUTION_UV},µV" for i, name in enumerate(names))
    vhdr.write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n; written by benchmarks/long_recording.py\n\n"
        f"[Common Infos]\nCodepage=UTF-8\nDataFile={eeg.name}\nMarkerFile={vmrk.name}\nDataFormat=BINARY\n"
        f"DataOrientation=MULTIPLEXED\nNumberOfChannels={n_channels}\nSamplingInterval={1e6 / SFREQ}\n\n"
        f"[Binary Infos]\nBinaryFormat=INT_16\n\n[Channel Infos]\n{channel_lines}\n", encoding="utf-8")
    vmrk.write_text(
        "Brain Vision Data Exchange Marker File Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={eeg.name}\n\n[Marker Infos]\nMk1=New Segment,,1,1,0,20200101000000000000\n", encoding="utf-8")
    rng = np.random.default_rng(seed)
    state = np.zeros((n_channels, 1))
    mains_uv = rng.uniform(2.0, 10.0, (n_channels, 1))
    chunk = CHUNK_S * SFREQ
    with open(eeg, "wb") as out:
        for first in range(0, n_samples, chunk):
            n = min(chunk, n_samples - first)
            walk, state = lfilter([1.0], [1.0, -0.995], rng.standard_normal((n_channels, n)), axis=1, zi=state)
            t = (first + np.arange(n)) / SFREQ
            uv = 3.0 * walk + 15.0 * rng.standard_normal((n_channels, n)) + mains_uv * np.sin(2 * np.pi * 60 * t)
            counts = np.clip(np.round(uv / RESOLUTION_UV), -32768, 32767).astype("<i2")
            out.write(counts.T.tobytes())  # multiplexed: sample by sample, all channels


def write_long_dataset(root: Path, minutes: float, n_channels: int, runs: int = 2) -> list[Path]:
    """A BIDS iEEG dataset of ``runs`` recordings of ``minutes`` x ``n_channels`` sEEG contacts; the runs share
    one data file through hard links. Returns the .vhdr paths."""
    ieeg = root / "sub-01" / "ieeg"
    ieeg.mkdir(parents=True)
    names = contact_names(n_channels)
    n_samples = int(round(minutes * 60 * SFREQ))
    (root / "dataset_description.json").write_text(json.dumps(
        {"Name": "long recording benchmark", "BIDSVersion": "1.9.0", "DatasetType": "raw"}), encoding="utf-8")
    (root / "participants.tsv").write_text("participant_id\nsub-01\n", encoding="utf-8")
    channels = "name\ttype\tunits\tlow_cutoff\thigh_cutoff\tstatus\n" + "".join(
        f"{name}\tSEEG\tµV\tn/a\tn/a\tgood\n" for name in names)
    electrodes = "name\tx\ty\tz\tsize\tgroup\n" + "".join(
        f"{name}\t{0.01 * (i // CONTACTS_PER_SHAFT):.3f}\t{0.0035 * (i % CONTACTS_PER_SHAFT):.4f}\t0.0\t5\t"
        f"{name[0]}\n" for i, name in enumerate(names))
    (ieeg / "sub-01_space-ACPC_electrodes.tsv").write_text(electrodes, encoding="utf-8")
    (ieeg / "sub-01_space-ACPC_coordsystem.json").write_text(json.dumps(
        {"iEEGCoordinateSystem": "ACPC", "iEEGCoordinateUnits": "m"}), encoding="utf-8")
    paths = []
    for run in range(1, runs + 1):
        stem = ieeg / f"sub-01_task-{TASK}_run-{run:02d}_ieeg"
        (ieeg / f"{stem.name[:-5]}_channels.tsv").write_text(channels, encoding="utf-8")
        stem.with_suffix(".json").write_text(json.dumps(
            {"TaskName": TASK, "SamplingFrequency": SFREQ, "PowerLineFrequency": 60, "SoftwareFilters": "n/a",
             "iEEGReference": "unknown", "SEEGChannelCount": n_channels,
             "RecordingDuration": n_samples / SFREQ}), encoding="utf-8")
        if run == 1:
            write_brainvision_int16(stem, names, n_samples, seed=0)
            first = stem
        else:
            os.link(first.with_suffix(".eeg"), stem.with_suffix(".eeg"))
            for suffix in (".vhdr", ".vmrk"):
                text = first.with_suffix(suffix).read_text(encoding="utf-8")
                stem.with_suffix(suffix).write_text(text.replace(first.name, stem.name), encoding="utf-8")
        paths.append(stem.with_suffix(".vhdr"))
    return paths


def _tree_rss_bytes(root_pid: int) -> dict[int, int]:
    """RSS of ``root_pid`` and all its descendants, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    rss, todo = {}, [root_pid]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as statm:
                rss[pid] = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
        todo += children.get(pid, [])
    return rss


def run_participant(bids: Path, out: Path, work: Path, nprocs: int, extra: list[str]) -> dict:
    """The participant level through the command line; peak RSS of the whole tree and of its largest process."""
    command = [sys.executable, "-m", "bids_brainbert", str(bids), str(out), "participant", "--nprocs", str(nprocs),
               "--skip-bids-validation", "-w", str(work), *extra]
    peak = {"total": 0, "process": 0}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            rss = _tree_rss_bytes(process.pid)
            if rss:
                peak["total"] = max(peak["total"], sum(rss.values()))
                peak["process"] = max(peak["process"], max(rss.values()))
            done.wait(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    _, stderr = process.communicate()
    done.set()
    poller.join()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"bids-brainbert exited {process.returncode}:\n{stderr.decode()[-3000:]}")
    # the kernel's own record of the largest single process (ours never end before being waited for)
    kernel_max = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"wall_s": wall, "peak_tree_gb": peak["total"] / 1e9, "peak_process_gb": peak["process"] / 1e9,
            "kernel_max_process_gb": kernel_max / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="recording length (60)")
    parser.add_argument("--channels", type=int, default=128, help="sEEG contacts (128)")
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2], help="runs to measure (1 2)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the temporary dataset")
    parser.add_argument("extra", nargs="*", help="arguments for bids-brainbert (after --)")
    args = parser.parse_args()
    # keep every contact (shaft ends too) so that all channels are transformed, unless told otherwise
    extra = args.extra or ["--laplacian-min-neighbours", "1"]
    data_bytes = args.minutes * 60 * SFREQ * args.channels * 2
    # input, staged float32 signal (x2), spectrograms of two runs (frames x 40 x float32 = 1.6 x the input)
    needed = data_bytes * (1 + 2 + 2 * 1.6) + 1e9
    parent = args.dir or Path(tempfile.gettempdir())
    free = shutil.disk_usage(parent).free
    if free < needed:
        raise SystemExit(f"{parent}: {free / 1e9:.1f} GB free, this benchmark needs about {needed / 1e9:.1f} GB "
                         "(use --dir, or fewer --minutes / --channels)")
    tmp = Path(tempfile.mkdtemp(prefix="bids-brainbert-long-", dir=parent))
    try:
        start = time.perf_counter()
        write_long_dataset(tmp / "rawdata", args.minutes, args.channels, runs=2 if max(args.nprocs) > 1 else 1)
        print(f"dataset: {args.minutes:g} min x {args.channels} channels at {SFREQ} Hz "
              f"({data_bytes / 1e9:.2f} GB int16 per run) written in {time.perf_counter() - start:.0f} s")
        for nprocs in args.nprocs:
            out = tmp / f"out-nprocs{nprocs}"
            # one recording per worker: --nprocs 1 processes run 1 only, --nprocs N the N runs at once
            runs = ["--run", "1"] if nprocs == 1 else []
            result = run_participant(tmp / "rawdata", out, tmp / f"work-{nprocs}", nprocs, [*runs, *extra])
            shutil.rmtree(out)
            recordings = 1 if nprocs == 1 else 2
            print(f"--nprocs {nprocs} ({recordings} recording(s) of {args.minutes:g} min x {args.channels}): "
                  f"wall {result['wall_s']:.0f} s, peak RSS largest process {result['peak_process_gb']:.2f} GB "
                  f"(kernel ru_maxrss {result['kernel_max_process_gb']:.2f} GB), whole tree "
                  f"{result['peak_tree_gb']:.2f} GB = {result['peak_tree_gb'] / LIMIT_GB:.2f} x the "
                  f"{LIMIT_GB:g} GB limit")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
