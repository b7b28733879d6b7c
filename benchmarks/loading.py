"""Loading throughput and peak memory per format: one long recording (1 h x 128 sEEG contacts at 2048 Hz) as
BrainVision (int16, the reference), MEF3 (mef3io) and NWB (pynwb), loaded as the participant level loads it.

The BrainVision dataset is written chunk by chunk (``long_recording.write_long_dataset``); its MEF3 and NWB twins
are written from it a block at a time (``bids_brainbert.io.convert.twin_dataset``). Each format is then loaded in
a fresh subprocess: ``open_recording`` (sidecar checks and the per-channel signal checks, one channel batch at a
time) and one more pass over every channel in batches (what preprocessing reads). Printed: seconds, channel-hours
per second and the ratio to BrainVision, and the subprocess' peak RSS (kernel ru_maxrss) against the README's
per-recording bound.

    python benchmarks/loading.py                       # 60 min x 128 channels
    python benchmarks/loading.py --minutes 5 --channels 32
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from long_recording import LIMIT_GB, RESOLUTION_UV, SFREQ, write_long_dataset

FORMATS = ("BrainVision", "MEF3", "NWB")


def measure(root: Path) -> dict:
    """Load the one recording of ``root`` as the participant level does; seconds and peak RSS."""
    from bids_brainbert.bids.discovery import index_recordings
    from bids_brainbert.io.loading import channels_per_batch, open_recording

    recording = index_recordings(root)[0]
    start = time.perf_counter()
    opened = open_recording(recording)
    checked = time.perf_counter() - start
    batch = channels_per_batch(opened.n_samples)
    for first in range(0, len(opened.ch_names), batch):
        block = opened.read(list(range(first, min(first + batch, len(opened.ch_names)))))
        del block
    total = time.perf_counter() - start
    return {"open_s": checked, "total_s": total, "channels": len(opened.ch_names), "n_samples": opened.n_samples,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="recording length (60)")
    parser.add_argument("--channels", type=int, default=128, help="sEEG contacts (128)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the temporary datasets")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the subprocess' side
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    from bids_brainbert.io.convert import twin_dataset

    int16_bytes = args.minutes * 60 * SFREQ * args.channels * 2
    parent = args.dir or Path(tempfile.gettempdir())
    if shutil.disk_usage(parent).free < 6 * int16_bytes + 1e9:  # int16 + MEF3 (~int32) + NWB (float32)
        raise SystemExit(f"{parent}: not enough free disk for {6 * int16_bytes / 1e9:.1f} GB (use --dir)")
    tmp = Path(tempfile.mkdtemp(prefix="bids-brainbert-loading-", dir=parent))
    try:
        roots = {"BrainVision": tmp / "BrainVision"}
        start = time.perf_counter()
        write_long_dataset(roots["BrainVision"], args.minutes, args.channels, runs=1)
        print(f"recording: {args.minutes:g} min x {args.channels} channels at {SFREQ} Hz; BrainVision int16 "
              f"{int16_bytes / 1e9:.2f} GB written in {time.perf_counter() - start:.0f} s", flush=True)
        for fmt in ("MEF3", "NWB"):
            start = time.perf_counter()
            # MEF3 stores the BrainVision file's 0.1 µV steps as counts, as an amplifier's MEF3 export would
            options = {"precision": round(-np.log10(RESOLUTION_UV))} if fmt == "MEF3" else {}
            roots[fmt] = twin_dataset(roots["BrainVision"], tmp / fmt, fmt, **options)
            size = sum(p.stat().st_size for p in roots[fmt].rglob("*") if p.is_file())
            print(f"{fmt} twin written in {time.perf_counter() - start:.0f} s ({size / 1e9:.2f} GB on disk)",
                  flush=True)
        reference = None
        for fmt in FORMATS:  # each printed as soon as measured
            done = subprocess.run([sys.executable, __file__, "--measure", str(roots[fmt])], check=True,
                                  capture_output=True, text=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            reference = reference or result["total_s"]
            hours = result["channels"] * result["n_samples"] / SFREQ / 3600
            print(f"{fmt:>11}: open + checks {result['open_s']:.1f} s, + one batched pass {result['total_s']:.1f} s "
                  f"({hours / result['total_s']:.2f} channel-hours/s, {reference / result['total_s']:.2f} x "
                  f"BrainVision's speed); peak RSS {result['peak_rss_gb']:.2f} GB = "
                  f"{result['peak_rss_gb'] / LIMIT_GB:.2f} x the {LIMIT_GB:g} GB per-recording bound", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
