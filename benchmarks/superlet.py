"""Superlet speed and memory against the original's method, in one process (ratios, not absolute claims).

Reference: the original BrainBERT approach, one full-rate scipy.signal.fftconvolve per Morlet wavelet (support
+-3 sd as published), geometric mean over orders, then every 50th sample. Ours: bids_brainbert's banded-spectrum
transform. BrainBERT parameters: 40 frequencies 0.1-200 Hz, orders 3->30, c1 = 1, 2048 Hz, decimation 50.

    python benchmarks/superlet.py            # 1 electrode x 60 s single-threaded, then 128 electrodes x 10 min
    python benchmarks/superlet.py --quick    # reference on 10 s (scaled), no 128-electrode run
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # single-threaded comparison unless told otherwise

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np
from scipy.signal import fftconvolve

from bids_brainbert.transforms.superlet import SuperletParams, superlet_transform, wavelet_set

SFREQ = 2048.0


def original_method(x: np.ndarray, sfreq: float, params: SuperletParams) -> np.ndarray:
    """Per-wavelet full-rate FFT convolution, as the original code computes it."""
    rows = []
    for freq, order in zip(params.freqs_hz, params.orders()):
        log_sum = np.zeros(len(x))
        for cycles, exponent in wavelet_set(order, params.base_cycles):
            sd = cycles / (params.k_sd * freq)
            t = np.arange(-math.ceil(3 * sd * sfreq), math.ceil(3 * sd * sfreq) + 1) / sfreq
            gauss = np.exp(-0.5 * (t / sd) ** 2)
            wavelet = gauss * np.exp(2j * np.pi * freq * t) / gauss.sum()
            log_sum += exponent * np.log(np.abs(fftconvolve(x, wavelet, mode="same")) + 1e-300)
        rows.append(np.exp(log_sum)[::params.decimation])
    return np.array(rows)


def timed(func, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def many_electrodes(n_channels: int, seconds: float, batch: int, workers: int) -> dict:
    """Run in a child process so its peak RSS is its own: the pipeline's way, channel batches."""
    params = SuperletParams()
    rng = np.random.default_rng(0)
    n = int(seconds * SFREQ)
    start = time.perf_counter()
    for c0 in range(0, n_channels, batch):
        x = rng.standard_normal((min(batch, n_channels - c0), n)).astype(np.float32)
        superlet_transform(x, SFREQ, params, workers=workers)
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": elapsed, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=4, metavar=("CHANNELS", "SECONDS", "BATCH", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        c, s, b, w = args.child
        print(json.dumps(many_electrodes(int(c), float(s), int(b), int(w))))
        return

    params = SuperletParams()
    rng = np.random.default_rng(0)
    ref_seconds = 10.0 if args.quick else 60.0
    x_ref = rng.standard_normal(int(ref_seconds * SFREQ))
    x = rng.standard_normal((1, int(60 * SFREQ)))
    reference = timed(lambda: original_method(x_ref, SFREQ, params)) * 60.0 / ref_seconds
    cold = timed(lambda: superlet_transform(x, SFREQ, params, workers=1))  # first call builds the wavelet bank
    warm = timed(lambda: superlet_transform(x, SFREQ, params, workers=1), repeats=3)
    print("1 electrode x 60 s at 2048 Hz, BrainBERT parameters, single thread")
    print(f"{'method':46s} {'seconds':>8s} {'speed-up':>9s}")
    scaled = " (10 s, scaled)" if args.quick else ""
    print(f"{'original method: fftconvolve per wavelet' + scaled:46s} {reference:8.2f} {1.0:9.1f}")
    print(f"{'bids_brainbert, first call (builds bank)':46s} {cold:8.3f} {reference / cold:9.1f}")
    print(f"{'bids_brainbert, bank cached (next channels)':46s} {warm:8.3f} {reference / warm:9.1f}")
    print(f"electrode-hours per core-hour: {60 / warm / 60:.1f} (original: {60 / reference / 60:.3f})")
    if args.quick:
        return
    child = subprocess.run([sys.executable, __file__, "--child", "128", "600", "16", "2"], capture_output=True,
                           text=True, check=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
    result = json.loads(child.stdout.strip().splitlines()[-1])
    hours = 128 * 600 / 3600
    print(f"128 electrodes x 10 min, 2 threads, batches of 16: {result['seconds']:.1f} s, "
          f"{hours / (result['seconds'] / 3600):.1f} electrode-hours per hour, peak RSS {result['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
