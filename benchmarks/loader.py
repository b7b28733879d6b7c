"""Pretraining data loader throughput on the CPU: training windows per second per core, against a GPU's appetite.

What is timed is what a DataLoader worker does for one step of pretraining: draw a batch of windows at random
across many memory-mapped spectrogram derivatives (``SpectrogramWindows``), z-score each window per frequency,
span-mask the batch (``mask_spectrogram``) and stack it (``MaskedWindowBatches``), then — on a CUDA machine —
copy it into pinned memory. Reported per stage, per core (one process, one thread), and through a real
``DataLoader`` with worker processes. The reference run in the same process is the per-window path (one window
read, z-scored and masked at a time, as a naive ``Dataset.__getitem__`` + default collate would do).

The GPU's appetite: an H200 training the large model at 40 % of its bf16 peak takes about 7,000 windows
(205 frames x 40 frequencies) per second; ``--appetite`` changes it. The machine is shared: every figure is the
best of ``--repeats`` runs.

Run: python benchmarks/loader.py [--files 16] [--channels 16] [--minutes 5] [--batch 64] [--workers 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from timing import best_time  # benchmarks/timing.py (the script's folder is on sys.path)

from bids_brainbert.model import MaskConfig, mask_spectrogram
from bids_brainbert.training import SpectrogramWindows
from bids_brainbert.training.pretrain import MaskedWindowBatches, StepBatches, _loader

FRAME_RATE, FREQS = 40.96, 40


def write_files(root: Path, n_files: int, channels: int, minutes: float) -> list[Path]:
    rng = np.random.default_rng(0)
    frames = int(minutes * 60 * FRAME_RATE)
    paths = []
    for i in range(n_files):
        path = root / f"sub-{i:02d}_task-rest_run-01_desc-superlet_spectrogram.npy"
        data = rng.gamma(2.0, 1e-6, (channels, frames, FREQS)).astype(np.float32)
        np.save(path, data)
        path.with_suffix(".json").write_text(json.dumps({"SamplingFrequency": FRAME_RATE, "EdgeFrames": 740,
                                                         "Shape": list(data.shape)}))
        paths.append(path)
    return paths


def per_window_reference(windows: SpectrogramWindows, indices: list[int], step: int) -> None:
    """One window at a time: read, z-score, mask, then stack (what the loader did before batching)."""
    generator = torch.Generator().manual_seed(step)
    items = [mask_spectrogram(windows[i], MaskConfig(), generator) for i in indices]
    torch.stack([m.masked for m in items]), torch.stack([m.mask for m in items])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16, help="spectrogram derivatives (default 16)")
    parser.add_argument("--channels", type=int, default=16, help="channels per file (default 16)")
    parser.add_argument("--minutes", type=float, default=5.0, help="minutes per file (default 5)")
    parser.add_argument("--batch", type=int, default=64, help="windows per step (default 64)")
    parser.add_argument("--steps", type=int, default=40, help="steps per timed run (default 40)")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2],
                        help="DataLoader worker counts to time (default 0 1 2)")
    parser.add_argument("--gpu-workers", type=int, default=8, help="workers a GPU node gives the loader (8)")
    parser.add_argument("--appetite", type=float, default=7000.0, help="windows/s the GPU consumes (7000)")
    parser.add_argument("--no-reference", action="store_true", help="skip the per-window reference")
    args = parser.parse_args()
    torch.set_num_threads(1)   # per core: the workers of a real loader run one thread each
    pin = torch.cuda.is_available()

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_files(Path(tmp), args.files, args.channels, args.minutes)
        windows = SpectrogramWindows(paths, window_s=5.0)
        batches = MaskedWindowBatches(windows, MaskConfig(), seed=0, salt=1, rank=0)
        requests = list(StepBatches(windows, args.batch, args.steps, seed=0))
        n_windows = args.batch * len(requests)
        print(f"{len(paths)} files x {args.channels} channels x {args.minutes:g} min, {len(windows)} windows of "
              f"{windows.window_frames} x {FREQS}; batches of {args.batch}; best of {args.repeats} "
              f"(shared machine); torch {torch.__version__}, {os.cpu_count()} CPUs visible; pinned memory: "
              f"{'yes' if pin else 'no (no CUDA here)'}")

        indices = [idx for _, idx in requests]
        read = best_time(lambda: [windows.read_windows(i) for i in indices], args.repeats, warmup=True)
        targets = [torch.from_numpy(windows.read_windows(i)) for i in indices]
        gens = [torch.Generator().manual_seed(s) for s in range(len(targets))]
        mask = best_time(lambda: [mask_spectrogram(t, MaskConfig(), g) for t, g in zip(targets, gens)],
                         args.repeats, warmup=True)

        def full() -> None:
            for request in requests:
                batch = batches.__getitems__(request)
                if pin:
                    {k: v.pin_memory() for k, v in batch.items() if isinstance(v, torch.Tensor)}

        total = best_time(full, args.repeats, warmup=True)
        per_core = n_windows / total
        print(f"{'stage (one core)':34s} {'ms/batch':>9s} {'windows/s':>10s}")
        for name, seconds in (("read (memory-mapped) + z-score", read), ("span masking", mask),
                              ("whole step" + (" + pinning" if pin else ""), total)):
            print(f"{name:34s} {1e3 * seconds / len(requests):9.2f} {n_windows / seconds:10.0f}")
        if not args.no_reference:
            reference = best_time(lambda: [per_window_reference(windows, i, s) for s, i in enumerate(indices)],
                                  1, warmup=False)
            print(f"{'per-window reference (same work)':34s} {1e3 * reference / len(requests):9.2f} "
                  f"{n_windows / reference:10.0f}   -> batched path x{reference / total:.1f}")

        print(f"\n{'DataLoader workers':18s} {'windows/s':>10s}  (timed from the first batch: worker start-up excluded)")
        for workers in args.workers:
            loader = _loader(batches, requests, workers, 0, pin)
            best = 0.0
            for _ in range(args.repeats):
                iterator = iter(loader)
                next(iterator)
                started, n = time.perf_counter(), 0
                for _batch in iterator:
                    n += args.batch
                best = max(best, n / (time.perf_counter() - started))
            print(f"{workers:18d} {best:10.0f}")

    needed = args.appetite / per_core
    projected = per_core * args.gpu_workers
    verdict = "enough" if projected >= args.appetite else "NOT enough"
    print(f"\nper core: {per_core:.0f} windows/s -> {args.gpu_workers} workers ~{projected:.0f} windows/s "
          f"(target >= 8000; GPU appetite {args.appetite:.0f}/s: {verdict}); cores needed for the appetite: "
          f"{needed:.1f} (~{int(np.ceil(needed * 1.25))} with 25 % headroom)")


if __name__ == "__main__":
    main()
