"""GPU figures in one short run: superlet on the device vs the numba CPU path, pretraining MFU, embeddings in bf16.

On a CUDA machine (``--device cuda``, the default when one is visible) it measures, in one process:

1. superlet, torch backend on the device, against the numba kernel on this machine's CPU (all its cores):
   electrode-hours per device-hour, the fraction of the device's memory bandwidth (estimated minimum traffic
   of the folded transform over a same-process device-to-device copy), and the largest difference between the
   two results (float32 tolerance: 1e-3 relative to each row's peak);
2. pretraining steps/s and model FLOP utilisation (MFU) for ``base`` and ``large``: bf16 autocast (as
   ``--precision bfloat16``), attention through ``scaled_dot_product_attention``, fused AdamW, optionally
   ``torch.compile`` (``--compile``); MFU against the same-process bf16 GEMM peak and, for known devices,
   the datasheet peak (target: >= 40 % for large);
3. that ``torchrun --nproc-per-node 1`` gives the same losses and weights as the plain run (float32, a few
   steps of the project's ``pretrain`` on a small synthetic derivative set, both in child processes);
4. embedding throughput (windows/s) in bf16 and float32.

It prints one table. ``--device cpu --tiny`` runs every part with tiny sizes on the CPU (tests/test_benchmarks.py
does, so the script cannot rot). A hard time limit (``--time-limit``, default 420 s) stops it cleanly with the
rows measured so far. The machine may be shared: every figure is the best of ``--repeats`` timed runs.

Run: python benchmarks/gpu.py [--device cuda] [--compile] [--time-limit 420] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from model import FRAMES, FREQS, encoder_flops, training_flops  # benchmarks/model.py (same folder)

from bids_brainbert.model import MaskConfig, ModelConfig, build_model, mask_spectrogram, masked_reconstruction_loss
from bids_brainbert.precision import autocast
from bids_brainbert.transforms.superlet import SuperletParams, superlet_transform, wavelet_set

SFREQ = 2048.0
# dense bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s (SXM parts)
DATASHEET_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}
TINY_MODEL = ModelConfig(n_freqs=FREQS, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_frames=256)
ROWS: list[tuple[str, str, str, str]] = []


def flops_text(tflops: float) -> str:
    return f"{tflops:.1f} TFLOP/s" if tflops >= 1 else f"{tflops * 1e3:.1f} GFLOP/s"


class OutOfTime(Exception):
    pass


def row(section: str, metric: str, value: str, note: str = "") -> None:
    ROWS.append((section, metric, value, note))
    print(f"  {section} | {metric}: {value} {note}", flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(func, device: torch.device, repeats: int) -> float:
    func()
    sync(device)
    best = math.inf
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        func()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


# ---------------------------------------------------------------------------------------------- 1. superlet
def copy_bandwidth(device: torch.device, n_bytes: int, repeats: int) -> float:
    """Bytes/s of a device-to-device copy (read + write), the bandwidth reference."""
    src = torch.empty(n_bytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    seconds = best_of(lambda: dst.copy_(src), device, repeats)
    return 2 * src.numel() * 4 / seconds


def superlet_traffic_bytes(n_channels: int, n_samples: int, params: SuperletParams) -> float:
    """A lower bound on the memory traffic of the folded transform: signal in, its spectrum written and read,
    and per wavelet its folded band written, inverted (read + write) and read for the power (complex64)."""
    n_wavelets = sum(len(wavelet_set(order, params.base_cycles)) for order in params.orders())
    n_frames = -(-n_samples // params.decimation)
    return n_channels * (4 * n_samples + 2 * 8 * n_samples + n_wavelets * n_frames * 8 * 4)


def bench_superlet(device: torch.device, args) -> None:
    params = SuperletParams()
    n_channels, seconds = (2, 4.0) if args.tiny else (args.superlet_channels, args.superlet_seconds)
    x = np.random.default_rng(0).standard_normal((n_channels, int(seconds * SFREQ))).astype(np.float32)
    electrode_hours = n_channels * seconds / 3600.0
    result = {}

    def on_device() -> None:
        result["torch"] = superlet_transform(x, SFREQ, params, backend="torch", device=device)

    def on_cpu() -> None:
        result["numba"] = superlet_transform(x, SFREQ, params, backend="numpy", workers=os.cpu_count())

    t_dev = best_of(on_device, device, args.repeats)
    t_cpu = best_of(on_cpu, torch.device("cpu"), 1)
    peak = np.abs(result["numba"]).max(axis=-1, keepdims=True)
    error = float((np.abs(result["torch"] - result["numba"]) / np.maximum(peak, 1e-30)).max())
    row("superlet", f"torch on {device.type}", f"{electrode_hours * 3600 / t_dev:,.0f} electrode-h per device-h",
        f"({n_channels} electrodes x {seconds:g} s in {t_dev:.3f} s)")
    row("superlet", "numba on CPU", f"{electrode_hours * 3600 / t_cpu:,.0f} electrode-h per hour",
        f"({os.cpu_count()} cores; device x{t_cpu / t_dev:.1f})")
    verdict = "equal within float32 tolerance" if error < 1e-3 else "DIFFERENT"
    row("superlet", "max abs(torch - numba) / row peak", f"{error:.2e}", verdict)
    if device.type == "cuda":
        bandwidth = copy_bandwidth(device, 1 << (24 if args.tiny else 30), args.repeats)
        achieved = superlet_traffic_bytes(n_channels, x.shape[1], params) / t_dev
        row("superlet", "memory bandwidth used (est. minimum)", f"{achieved / bandwidth:.2f}",
            f"of {bandwidth / 1e9:,.0f} GB/s (same-process copy)")


# ------------------------------------------------------------------------------------------- 2. pretraining
def gemm_peak_tflops(device: torch.device, dtype: torch.dtype, size: int, repeats: int) -> float:
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    return 2 * size ** 3 / best_of(lambda: a @ b, device, repeats) / 1e12


def bench_pretraining(device: torch.device, args, peak: float, datasheet: float | None) -> None:
    presets = [("tiny", TINY_MODEL)] if args.tiny else [(p, ModelConfig.preset(p)) for p in ("base", "large")]
    batch = 4 if args.tiny else args.batch
    steps = 2 if args.tiny else args.steps
    for name, config in presets:
        model = build_model(config, seed=0).to(device).train()
        fused = {"fused": True} if device.type == "cuda" else {}
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **fused)
        forward = torch.compile(model) if args.compile else model
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, FRAMES, FREQS, generator=gen)
        masked = mask_spectrogram(x, MaskConfig(), gen)
        target, inputs, mask = x.to(device), masked.masked.to(device), masked.mask.to(device)

        def run_steps() -> None:
            for _ in range(steps):
                with autocast("bfloat16", device):
                    prediction = forward(inputs)
                loss = masked_reconstruction_loss(prediction, target, mask).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()

        seconds = best_of(run_steps, device, args.repeats) / steps
        achieved = batch * training_flops(config) / seconds / 1e12
        mfu = f"MFU {achieved / peak:.2f} of measured bf16 GEMM peak"
        if datasheet:
            mfu += f", {achieved / datasheet:.2f} of datasheet {datasheet:g} TFLOP/s"
        row("pretraining", f"{name} bf16, batch {batch}{' compiled' if args.compile else ''}",
            f"{1 / seconds:.2f} steps/s = {batch / seconds:,.0f} windows/s", f"({flops_text(achieved)}; {mfu})")


# ----------------------------------------------------------------------------------------------- 3. torchrun
def write_derivatives(root: Path, n_files: int = 3, channels: int = 4, frames: int = 1400) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n_files):
        path = root / f"sub-{i:02d}_task-rest_run-01_desc-superlet_spectrogram.npy"
        data = rng.gamma(2.0, 1e-6, (channels, frames, FREQS)).astype(np.float32)
        np.save(path, data)
        path.with_suffix(".json").write_text(json.dumps({"SamplingFrequency": 40.96, "EdgeFrames": 10,
                                                         "Shape": list(data.shape)}))
        paths.append(path)
    return paths


def torchrun_worker(data_dir: str, out_dir: str, device: str, steps: int) -> None:
    """Child process: a few pretraining steps with the project's pretrain(), losses and weights to out_dir."""
    from safetensors.torch import load_file

    from bids_brainbert.training import PretrainConfig, pretrain

    config = PretrainConfig(model=TINY_MODEL, batch_size=8, steps=steps, checkpoint_every=steps, device=device,
                            precision="float32", seed=3)
    result = pretrain(sorted(Path(data_dir).glob("*.npy")), [], out_dir, config, progress=False)
    if result.rank == 0:
        weights = load_file(str(result.checkpoint_dir / "model.safetensors"))
        digest = {k: float(v.double().sum()) for k, v in weights.items()}
        Path(out_dir, "result.json").write_text(json.dumps({"losses": result.train_losses, "weights": digest,
                                                            "world_size": result.world_size}))


def bench_torchrun(device: torch.device, args, deadline: float) -> None:
    steps = 3 if args.tiny else 20
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        write_derivatives(data)
        script = str(Path(__file__).resolve())
        env = dict(os.environ, OMP_NUM_THREADS="1")
        results = {}
        for label, launcher in (("plain", [sys.executable, script]),
                                ("torchrun", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                              "--nproc-per-node", "1", script])):
            out = Path(tmp) / label
            command = launcher + ["--torchrun-worker", str(data), str(out), device.type, str(steps)]
            started = time.perf_counter()
            proc = subprocess.run(command, capture_output=True, text=True, env=env,
                                  timeout=max(10.0, deadline - time.perf_counter()))
            if proc.returncode != 0:
                row("torchrun", label, f"FAILED (exit {proc.returncode})", (proc.stderr.strip().splitlines() or [""])[-1])
                return
            results[label] = json.loads((out / "result.json").read_text())
            results[label]["seconds"] = time.perf_counter() - started
        plain, launched = results["plain"], results["torchrun"]
        same_losses = plain["losses"] == launched["losses"]
        same_weights = plain["weights"] == launched["weights"]
        verdict = "equal" if same_losses and same_weights else "DIFFERENT"
        delta = max(abs(a - b) for a, b in zip(plain["losses"], launched["losses"]))
        row("torchrun", f"--nproc-per-node 1 vs plain ({steps} steps, float32)", verdict,
            f"(max loss difference {delta:.1e}; {plain['seconds']:.1f} s and {launched['seconds']:.1f} s)")


# ---------------------------------------------------------------------------------------------- 4. embedding
def bench_embedding(device: torch.device, args) -> None:
    config = TINY_MODEL if args.tiny else ModelConfig.preset("large")
    batch = 4 if args.tiny else args.embedding_batch
    model = build_model(config, seed=0).to(device).eval()
    x = torch.randn(batch, FRAMES, FREQS, device=device)
    rates = {}
    for precision in ("bfloat16", "float32"):
        def run() -> None:
            with torch.inference_mode(), autocast(precision, device):
                model.encoder(x)

        rates[precision] = batch / best_of(run, device, args.repeats)
    flops = encoder_flops(config)
    for precision, rate in rates.items():
        row("embedding", f"{'tiny' if args.tiny else 'large'} {precision}, batch {batch}",
            f"{rate:,.0f} windows/s", f"({flops_text(rate * flops / 1e12)}; x{rate / rates['float32']:.2f} of float32)")


# --------------------------------------------------------------------------------------------------- main
def print_table(device_name: str, elapsed: float) -> None:
    widths = [max(len(r[i]) for r in ROWS + [("section", "measure", "value", "")]) for i in range(3)]
    print(f"\n== benchmarks/gpu.py on {device_name}, torch {torch.__version__}, {elapsed:.0f} s, best of N ==")
    print(f"{'section':{widths[0]}s} | {'measure':{widths[1]}s} | {'value':{widths[2]}s} | note")
    print("-" * (sum(widths) + 16))
    for section, metric, value, note in ROWS:
        print(f"{section:{widths[0]}s} | {metric:{widths[1]}s} | {value:{widths[2]}s} | {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (CPU smoke test)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the pretraining model")
    parser.add_argument("--repeats", type=int, default=3, help="best of N timed runs (default 3)")
    parser.add_argument("--batch", type=int, default=64, help="pretraining windows per step (64)")
    parser.add_argument("--steps", type=int, default=10, help="pretraining steps per timed run (10)")
    parser.add_argument("--embedding-batch", type=int, default=512, help="windows per embedding pass (512)")
    parser.add_argument("--superlet-channels", type=int, default=64, help="electrodes (64)")
    parser.add_argument("--superlet-seconds", type=float, default=600.0, help="seconds per electrode (600)")
    parser.add_argument("--time-limit", type=float, default=420.0, help="stop after this many seconds (420)")
    parser.add_argument("--only", nargs="+", choices=("superlet", "pretraining", "torchrun", "embedding"))
    parser.add_argument("--torchrun-worker", nargs=4, metavar=("DATA", "OUT", "DEVICE", "STEPS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torchrun_worker:
        data, out, device, steps = args.torchrun_worker
        torchrun_worker(data, out, device, int(steps))
        return 0

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py: --device cuda but CUDA is not available (use --device cpu)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    deadline = started + args.time_limit

    def out_of_time(*_) -> None:
        raise OutOfTime

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(max(1, int(args.time_limit)))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"benchmarks/gpu.py on {name}; time limit {args.time_limit:g} s", flush=True)
    datasheet = next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in name), None)
    finished = True
    try:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False     # float32 means float32 (the equality checks)
        parts = args.only or ["superlet", "pretraining", "torchrun", "embedding"]
        if "superlet" in parts:
            bench_superlet(device, args)
        if "pretraining" in parts:
            peak = gemm_peak_tflops(device, torch.bfloat16, 256 if args.tiny else 8192, args.repeats)
            row("pretraining", "bf16 GEMM peak (same process)", flops_text(peak),
                f"(datasheet {datasheet:g})" if datasheet else "")
            bench_pretraining(device, args, peak, datasheet)
        if "torchrun" in parts:
            bench_torchrun(device, args, deadline)
        if "embedding" in parts:
            bench_embedding(device, args)
    except OutOfTime:
        finished = False
        row("(stopped)", f"time limit of {args.time_limit:g} s reached", "partial table", "")
    finally:
        signal.alarm(0)
    print_table(name, time.perf_counter() - started)
    return 0 if finished else 3


if __name__ == "__main__":
    sys.exit(main())
