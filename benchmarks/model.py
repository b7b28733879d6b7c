"""Model speed on the CPU: embedding throughput (large, small), training steps (small), and where time goes.

Every figure is printed with a ratio against a reference run of the same work in the same process: the same
model in float64 (what a naive port without attention to dtypes would run). Also reported: the span masking
and the window reader (memory-mapped slices) per batch, which run in DataLoader workers during training.

Run: python benchmarks/model.py [--batch 16] [--repeats 3] [--threads N] [--no-profile]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from timing import best_time  # benchmarks/timing.py (the script's folder is on sys.path)

from bids_brainbert.model import MaskConfig, build_model, mask_spectrogram, masked_reconstruction_loss
from bids_brainbert.training import SpectrogramWindows

FRAMES, FREQS = 205, 40   # a 5 s window at 40.96 frames/s, 40 frequencies


def embedding_rate(preset: str, batch: int, repeats: int, dtype: torch.dtype) -> float:
    """Windows per second through the encoder (eval, inference mode)."""
    model = build_model(preset, seed=0).eval().to(dtype)
    x = torch.randn(batch, FRAMES, FREQS, dtype=dtype)

    def run() -> None:
        with torch.inference_mode():
            model.encoder(x)

    return batch / best_time(warmup=True, repeats=repeats, func=run)


def training_rate(preset: str, batch: int, repeats: int, dtype: torch.dtype) -> float:
    """Optimizer steps per second (forward, loss, backward, clip, AdamW) on pre-masked batches."""
    model = build_model(preset, seed=0).train().to(dtype)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, FRAMES, FREQS, generator=gen).to(dtype)
    masked = mask_spectrogram(x, MaskConfig(), gen)

    def step() -> None:
        prediction = model(masked.masked)
        loss = masked_reconstruction_loss(prediction, x, masked.mask).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return 1.0 / best_time(warmup=True, repeats=repeats, func=step)


def masking_seconds(batch: int, repeats: int) -> float:
    x = torch.randn(batch, FRAMES, FREQS)
    gen = torch.Generator().manual_seed(0)
    return best_time(warmup=True, repeats=repeats, func=lambda: mask_spectrogram(x, MaskConfig(), gen))


def reader_rates(batch: int, repeats: int) -> tuple[float, float]:
    """Windows/s read as memory-mapped slices (ours) vs loading the whole run for each window (reference)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sub-01_task-x_run-01_desc-superlet_spectrogram.npy"
        data = np.random.default_rng(0).uniform(0, 1e-5, (64, 41 * 60 * 5, FREQS)).astype(np.float32)  # 64 ch x 5 min
        np.save(path, data)
        path.with_suffix(".json").write_text(json.dumps({"SamplingFrequency": 40.96, "EdgeFrames": 5,
                                                         "Shape": list(data.shape)}))
        del data
        windows = SpectrogramWindows([path], window_s=5.0)
        order = np.random.default_rng(1).permutation(len(windows))[:batch]
        ours = best_time(warmup=True, repeats=repeats, func=lambda: [windows[int(i)] for i in order])

        def whole_run() -> None:
            for i in order:
                _, channel, start = windows.locate(int(i))
                run = np.load(path)
                window = run[channel, start:start + windows.window_frames].astype(np.float64)
                (window - window.mean(0)) / (window.std(0) + 1e-6)

        reference = best_time(warmup=True, repeats=1, func=whole_run)
    return batch / ours, batch / reference


def profile_summary(batch: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    large = build_model("large", seed=0).eval()
    x = torch.randn(batch, FRAMES, FREQS)
    with torch.inference_mode():
        large.encoder(x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with torch.inference_mode():
            large.encoder(x)
    print("\n== torch.profiler: large encoder, inference, batch", batch, "==")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))

    small = build_model("small", seed=0).train()
    optimizer = torch.optim.AdamW(small.parameters(), lr=1e-4)
    masked = mask_spectrogram(x, MaskConfig(), torch.Generator().manual_seed(0))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loss = masked_reconstruction_loss(small(masked.masked), x, masked.mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print("== torch.profiler: small, one training step, batch", batch, "==")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="5-s windows per batch (default 16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave as is)")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch of {args.batch} windows "
          f"({FRAMES} frames x {FREQS} freqs); reference = same work in float64")
    for preset in ("large", "small"):
        f32 = embedding_rate(preset, args.batch, args.repeats, torch.float32)
        f64 = embedding_rate(preset, args.batch, args.repeats, torch.float64)
        print(f"embedding  {preset:5s}: {f32:8.1f} windows/s (float64 reference {f64:7.1f}/s, x{f32 / f64:.2f})")
    f32 = training_rate("small", args.batch, args.repeats, torch.float32)
    f64 = training_rate("small", args.batch, args.repeats, torch.float64)
    print(f"training   small: {f32:8.2f} steps/s = {f32 * args.batch:.1f} windows/s "
          f"(float64 reference {f64:.2f} steps/s, x{f32 / f64:.2f})")
    seconds = masking_seconds(args.batch, args.repeats)
    print(f"masking         : {seconds * 1e3:8.2f} ms per batch ({args.batch / seconds:.0f} windows/s)")
    ours, reference = reader_rates(args.batch, args.repeats)
    print(f"window reader   : {ours:8.0f} windows/s from memory-mapped slices (whole-run np.load reference "
          f"{reference:.1f}/s, x{ours / reference:.0f})")
    if not args.no_profile:
        profile_summary(args.batch)


if __name__ == "__main__":
    main()
