"""What ``--precision bfloat16`` costs: embeddings and decoding AUCs in bf16 against float32, on a BIDS dataset.

Runs the participant level (spectrograms) on the dataset, then embeds every recording twice with the same model —
float32 and bf16 autocast — and reports the per-window cosine between the two (sliding windows every
``--stride-s`` seconds, edges included so that short recordings give windows too). Where a recording has an
events.tsv with a two-valued ``--column``, it decodes each electrode's event embeddings with the project's probe
(nested CV, ``--permutations`` label permutations) in both precisions and compares the AUC difference with the
spread of the permutation null.

The model: the ``large`` preset at a seeded random initialisation (the numerics of the published size),
``--model CHECKPOINT``, or (``--pretrain-steps N``) a small model pretrained here — N steps in float32 and the
same N steps in bf16 (same seed, data order, masks and dropout), whose loss curves are printed side by side.

Run: python benchmarks/precision_accuracy.py --demo            # the simulated demo dataset (small, 60 s runs)
     python benchmarks/precision_accuracy.py --bids DIR        # e.g. /work/shared/data/real/gripforce-ecog
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bids_brainbert.analyses.decoding import DecodingParams, decode
from bids_brainbert.bids import derivatives as deriv
from bids_brainbert.cli.run import main as run_cli
from bids_brainbert.frozen_embeddings import EmbeddingParams, event_locked_embeddings, windowed_embeddings
from bids_brainbert.io.simulate import write_demo_dataset
from bids_brainbert.model import build_model, load_checkpoint


def cosine_per_row(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def compare_pretraining(paths: list[Path], root: Path, steps: int):
    """The same pretraining run in float32 and bf16; prints the loss curves side by side, returns the fp32 model."""
    from bids_brainbert.training import PretrainConfig, pretrain

    runs = {}
    for precision in ("float32", "bfloat16"):
        config = PretrainConfig(model="small", batch_size=16, steps=steps, checkpoint_every=steps, device="cpu",
                                precision=precision, seed=0, lr=3e-4)
        runs[precision] = pretrain(paths, [], root / precision, config, progress=False)
    a, b = np.asarray(runs["float32"].train_losses), np.asarray(runs["bfloat16"].train_losses)
    block = max(1, steps // 10)
    print(f"pretraining 'small', {steps} steps, batch 16, same seed/data/masks; loss per block of {block} steps:")
    print("  steps      " + " ".join(f"{i * block + 1:>5d}+" for i in range(len(a) // block)))
    for name, losses in (("float32", a), ("bfloat16", b)):
        print(f"  {name:10s} " + " ".join(f"{losses[i * block:(i + 1) * block].mean():6.3f}"
                                         for i in range(len(a) // block)))
    print(f"  per-step |bf16 - float32|: mean {np.abs(a - b).mean():.4f}, max {np.abs(a - b).max():.4f}; "
          f"last {block} steps: float32 {a[-block:].mean():.4f}, bf16 {b[-block:].mean():.4f}; time "
          f"{runs['float32'].seconds:.0f} s vs {runs['bfloat16'].seconds:.0f} s")
    model, _, _ = load_checkpoint(runs["float32"].checkpoint_dir)
    return model, f"small, pretrained {steps} steps (float32)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bids", type=Path, help="BIDS iEEG dataset")
    source.add_argument("--demo", action="store_true", help="the simulated demo dataset (small, 60 s runs)")
    parser.add_argument("--model", type=Path, help="checkpoint (default: large preset, random init, seed 0)")
    parser.add_argument("--stride-s", type=float, default=1.0, help="sliding-window step in seconds (1)")
    parser.add_argument("--column", default="trial_type", help="events.tsv column to decode (trial_type)")
    parser.add_argument("--permutations", type=int, default=10, help="label permutations per probe (10)")
    parser.add_argument("--max-channels", type=int, default=2, help="electrodes decoded per recording (2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--pretrain-steps", type=int, default=0,
                        help="pretrain a small model this many steps in float32 and in bf16 (same seed, data, masks), "
                             "compare the loss curves and embed with the float32 one (default 0: no pretraining)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        model, _, _ = load_checkpoint(args.model)
        label = str(args.model)
    else:
        model, label = build_model("large", seed=0), "large preset, random init (seed 0)"
    model.eval()

    with tempfile.TemporaryDirectory() as tmp:
        bids = args.bids
        if args.demo:
            bids = Path(tmp) / "rawdata"
            write_demo_dataset(bids, small=True, duration_s=60.0)
        out = Path(tmp) / "out"
        assert run_cli([str(bids), str(out), "participant", "--skip-bids-validation", "--nprocs", "1"]) == 0
        spectrograms = sorted(out.rglob("*_desc-superlet_spectrogram.npy"))
        if args.pretrain_steps:
            model, label = compare_pretraining(spectrograms, Path(tmp) / "models", args.pretrain_steps)
        print(f"{bids}: {len(spectrograms)} recording(s); model: {label}; torch {torch.__version__}")
        all_cosines, all_centred, deltas, spreads = [], [], [], []
        for path in spectrograms:
            sidecar = deriv.read_json(path.with_suffix(".json"))
            rate, start = float(sidecar["SamplingFrequency"]), float(sidecar.get("StartTime", 0.0))
            spectrogram = np.load(path, mmap_mode="r")
            embeddings = {}
            for precision in ("float32", "bfloat16"):
                params = EmbeddingParams(stride_s=args.stride_s, pooling="mean", precision=precision)
                embeddings[precision], _ = windowed_embeddings(spectrogram, rate, model, params, start_time_s=start)
            cosine = cosine_per_row(embeddings["bfloat16"], embeddings["float32"])
            # centred on the float32 mean window: the part that differs between windows, which the probes use
            centre = embeddings["float32"].reshape(-1, embeddings["float32"].shape[-1]).mean(0)
            centred = cosine_per_row(embeddings["bfloat16"] - centre, embeddings["float32"] - centre)
            all_cosines.append(cosine)
            all_centred.append(centred)
            stem = path.name.split("_desc-")[0]
            print(f"  {stem}: {cosine.size} windows, cosine bf16 vs float32 min {cosine.min():.6f}, "
                  f"median {np.median(cosine):.6f}; centred on the mean window: min {centred.min():.6f}, "
                  f"median {np.median(centred):.6f}")
            events_path = bids / path.parent.relative_to(out) / f"{stem}_events.tsv"
            if not events_path.exists():
                continue
            events = pd.read_csv(events_path, sep="\t")
            values = sorted(events[args.column].dropna().unique()) if args.column in events else []
            if len(values) != 2:
                continue
            onsets = events["onset"].to_numpy(float)
            per_precision = {}
            for precision in ("float32", "bfloat16"):
                params = EmbeddingParams(precision=precision)    # middle 10 frames, as the probes use
                per_precision[precision], valid = event_locked_embeddings(spectrogram, rate, onsets, model, params,
                                                                          start_time_s=start)
            y = (events[args.column].to_numpy() == values[1])[valid]
            starts = onsets[valid] - params.window_s / 2
            for channel in range(min(args.max_channels, spectrogram.shape[0])):
                results = {p: decode(e[channel], y, starts, starts + params.window_s, None,
                                     DecodingParams(n_permutations=args.permutations), np.random.default_rng(0))
                           for p, e in per_precision.items()}
                a, b = results["float32"], results["bfloat16"]
                spread = (a.chance_high - a.chance_low) / 3.92      # sd of the null mean AUC (95 % range / 3.92)
                deltas.append(abs(a.auc_mean - b.auc_mean))
                spreads.append(spread)
                print(f"    channel {channel}: AUC float32 {a.auc_mean:.4f}, bf16 {b.auc_mean:.4f} "
                      f"(|diff| {deltas[-1]:.4f}; null sd {spread:.4f}; null 95% [{a.chance_low:.3f}, "
                      f"{a.chance_high:.3f}])")
        cosines = np.concatenate(all_cosines) if all_cosines else np.zeros(0)
        print(f"\nall windows: {cosines.size}, cosine min {cosines.min():.6f}, median {np.median(cosines):.6f} "
              f"(target >= 0.999: {'met' if cosines.size and cosines.min() >= 0.999 else 'NOT met'}); centred: "
              f"min {np.concatenate(all_centred).min():.6f}")
        if deltas:
            within = np.mean(np.asarray(deltas) <= np.asarray(spreads))
            print(f"decoding: {len(deltas)} probes, |AUC bf16 - AUC float32| max {max(deltas):.4f}, median "
                  f"{np.median(deltas):.4f}; permutation-null sd median {np.median(spreads):.4f}; within one null "
                  f"sd: {within:.0%}")


if __name__ == "__main__":
    main()
