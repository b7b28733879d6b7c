"""Model speed on the CPU: embedding and pretraining throughput in float32 and bf16, against the GEMM peak.

The reference run in the same process is the machine's matrix-product peak: the best GFLOP/s of a
(batch x 205 tokens) x 768 by 768 x 3072 product (the encoder's largest GEMM) and of a square 2048 one, in float32
and in bf16. Each model figure is reported as GFLOP/s (analytic FLOPs of the encoder: projections, attention,
feed-forward) and as the fraction of that peak; bf16 runs under ``torch.autocast`` exactly as
``--precision bfloat16`` does. Attention in fp32 inference is timed both through PyTorch's fused encoder fast path
(the default) and through ``scaled_dot_product_attention`` (fast path off). The machine is shared: every figure
is the best of ``--repeats`` runs.

Run: python benchmarks/model.py [--batch 16] [--repeats 3] [--threads N] [--train-presets small] [--no-profile]
"""

from __future__ import annotations

import argparse

import torch

from timing import best_time  # benchmarks/timing.py (the script's folder is on sys.path)

from bids_brainbert.model import MaskConfig, ModelConfig, build_model, mask_spectrogram, masked_reconstruction_loss
from bids_brainbert.precision import autocast, cpu_has_native_bf16

FRAMES, FREQS = 205, 40   # a 5 s window at 40.96 frames/s, 40 frequencies


def encoder_flops(config: ModelConfig, frames: int = FRAMES) -> float:
    """Multiply-adds x 2 of one window through the encoder (input projection, attention, feed-forward)."""
    d, t = config.d_model, frames
    per_layer = 2 * t * (4 * d * d + 2 * d * config.d_ff) + 2 * 2 * t * t * d
    return 2 * t * config.n_freqs * d + config.n_layers * per_layer


def training_flops(config: ModelConfig, frames: int = FRAMES) -> float:
    """Forward + backward (x3) of encoder and reconstruction head, per window."""
    head = 2 * frames * (config.d_model * config.d_model + config.d_model * config.n_freqs)
    return 3 * (encoder_flops(config, frames) + head)


def gemm_peak(dtype: torch.dtype, batch: int, repeats: int) -> float:
    """Best GFLOP/s of the encoder-shaped and of a square matrix product in ``dtype``."""
    best = 0.0
    for m, k, n in ((batch * FRAMES, 768, 3072), (2048, 2048, 2048)):
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        seconds = best_time(lambda: torch.mm(a, b), repeats=max(5, repeats), warmup=True)
        best = max(best, 2 * m * k * n / seconds / 1e9)
    return best


def embedding_rate(preset: str, batch: int, repeats: int, precision: str, fastpath: bool = True) -> float:
    """Windows per second through the encoder (eval, inference mode)."""
    model = build_model(preset, seed=0).eval()
    x = torch.randn(batch, FRAMES, FREQS)
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(fastpath)

    def run() -> None:
        with torch.inference_mode(), autocast(precision, "cpu"):
            model.encoder(x)

    try:
        return batch / best_time(warmup=True, repeats=repeats, func=run)
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def training_rate(preset: str, batch: int, repeats: int, precision: str) -> float:
    """Optimizer steps per second (forward, loss, backward, clip, AdamW) on pre-masked batches."""
    model = build_model(preset, seed=0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, FRAMES, FREQS, generator=gen)
    masked = mask_spectrogram(x, MaskConfig(), gen)

    def step() -> None:
        with autocast(precision, "cpu"):
            prediction = model(masked.masked)
        loss = masked_reconstruction_loss(prediction, x, masked.mask).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return 1.0 / best_time(warmup=True, repeats=repeats, func=step)


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
    parser.add_argument("--repeats", type=int, default=3, help="best of N (default 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave as is)")
    parser.add_argument("--presets", nargs="+", default=["large", "small"], help="embedding presets")
    parser.add_argument("--train-presets", nargs="+", default=["small"], help="pretraining presets (small)")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = {"float32": gemm_peak(torch.float32, args.batch, args.repeats),
            "bfloat16": gemm_peak(torch.bfloat16, args.batch, args.repeats)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch of {args.batch} windows "
          f"({FRAMES} frames x {FREQS} freqs), best of {args.repeats} (shared machine); native bf16: "
          f"{cpu_has_native_bf16()}")
    print(f"same-process GEMM peak: float32 {peak['float32']:.0f} GFLOP/s, bf16 {peak['bfloat16']:.0f} GFLOP/s "
          f"(x{peak['bfloat16'] / peak['float32']:.2f})\n")
    print(f"{'embedding':10s} {'precision':9s} {'windows/s':>10s} {'GFLOP/s':>8s} {'of peak':>8s} "
          f"{'of fp32 peak':>12s} {'vs fp32':>8s}")
    for preset in args.presets:
        flops = encoder_flops(ModelConfig.preset(preset))
        rates = {p: embedding_rate(preset, args.batch, args.repeats, p) for p in ("float32", "bfloat16")}
        for precision, rate in rates.items():
            gflops = rate * flops / 1e9
            print(f"{preset:10s} {precision:9s} {rate:10.1f} {gflops:8.0f} {gflops / peak[precision]:8.2f} "
                  f"{gflops / peak['float32']:12.2f} {rate / rates['float32']:7.2f}x")
        sdpa = embedding_rate(preset, args.batch, args.repeats, "float32", fastpath=False)
        print(f"{preset:10s} {'fp32 SDPA':9s} {sdpa:10.1f} {sdpa * flops / 1e9:8.0f} "
              f"{sdpa * flops / 1e9 / peak['float32']:8.2f}   (fused encoder fast path off: x{sdpa / rates['float32']:.2f} "
              f"of the fast path)")
    print(f"\n{'pretraining':11s} {'precision':9s} {'steps/s':>8s} {'windows/s':>10s} {'GFLOP/s':>8s} {'of peak':>8s} "
          f"{'vs fp32':>8s}")
    for preset in args.train_presets:
        flops = training_flops(ModelConfig.preset(preset))
        rates = {p: training_rate(preset, args.batch, args.repeats, p) for p in ("float32", "bfloat16")}
        for precision, rate in rates.items():
            gflops = rate * args.batch * flops / 1e9
            print(f"{preset:11s} {precision:9s} {rate:8.2f} {rate * args.batch:10.1f} {gflops:8.0f} "
                  f"{gflops / peak[precision]:8.2f} {rate / rates['float32']:7.2f}x")
    if not args.no_profile:
        profile_summary(args.batch)


if __name__ == "__main__":
    main()
