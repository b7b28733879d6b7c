"""The sha256 of every derivative data file the participant level (spectrograms and embeddings) writes, over the
tiny and demo datasets, every spectrogram front end (superlet in both modes and definitions, STFT, the window-exact
STFT and superlet of ``--embedding-windowing brainbert``) and every reference scheme.

The JSON sidecars and HTML reports are left out (they record the software version and, as the code evolves, new
fields); every other file (arrays, channel and event tables) must stay byte-identical for the same settings, which
``tests/test_golden_outputs.py`` checks against ``tests/data/golden_outputs.json``.

Run in a fresh process with one thread per library (summation order can depend on the thread count)::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python tests/golden_outputs.py --write

regenerates the golden file; only do so for a change that is meant to alter the numbers, and say so in the commit.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "data" / "golden_outputs.json"
COMMON = ["participant", "--skip-bids-validation", "--random-seed", "7", "--nprocs", "1",
          "--embedding-window-s", "2"]
# (dataset, model, extra options): one derivative folder each
CASES: dict[str, tuple[str, str | None, list[str]]] = {
    "tiny-superlet-auto": ("tiny", "ours", []),
    "tiny-superlet-car": ("tiny", None, ["--reference", "car"]),
    "tiny-superlet-bipolar": ("tiny", None, ["--reference", "bipolar"]),
    "tiny-superlet-laplacian": ("tiny", None, ["--reference", "laplacian"]),
    "tiny-superlet-none-native": ("tiny", None, ["--reference", "none", "--sampling-rate", "0"]),
    "tiny-superlet-moca-multiplicative": ("tiny", None, ["--superlet-definition", "moca", "--superlet-mode",
                                                         "multiplicative", "--superlet-n-freqs", "20"]),
    "tiny-superlet-window-exact": ("tiny", "ours", ["--embedding-windowing", "brainbert"]),
    "tiny-stft": ("tiny", "ours-stft", ["--spectrogram", "stft"]),
    "tiny-stft-window-exact": ("tiny", "published", ["--spectrogram", "stft", "--reference", "bipolar"]),
    "demo-superlet-auto": ("demo", "ours", []),
    "demo-stft-window-exact": ("demo", "published", ["--spectrogram", "stft"]),
}


def write_datasets(root: Path) -> dict[str, Path]:
    sys.path.insert(0, str(HERE))
    from conftest import write_tiny_recording

    from bids_brainbert.io.simulate import write_demo_dataset

    tiny = root / "tiny"
    write_tiny_recording(tiny, "01", "01", "EDF", seed=1)
    write_tiny_recording(tiny, "02", None, "BrainVision", seed=3)
    demo = root / "demo"
    write_demo_dataset(demo, n_subjects=2, small=True, duration_s=10.0)
    return {"tiny": tiny, "demo": demo}


def write_models(root: Path) -> dict[str, Path]:
    """Small models with fixed weights: ours (checkpoint folder) and one in the published release's format."""
    sys.path.insert(0, str(HERE))
    from test_model import PublishedLayout, save_published_layout

    from bids_brainbert.model import build_model, save_checkpoint

    size = {"d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 48}
    ours = save_checkpoint(root / "ours", build_model({"n_freqs": 40, **size}, seed=3))
    published = save_published_layout(root / "stft_small.pth", PublishedLayout(d=32, n_freqs=40, n_layers=2,
                                                                               nhead=4, d_ff=48))
    return {"ours": ours, "ours-stft": ours, "published": published}


def data_files(out: Path) -> dict[str, str]:
    """Relative path -> sha256 of every derivative file but the JSON sidecars, the HTML reports (they say which
    version wrote them) and the per-run logs."""
    from bids_brainbert.bids.derivatives import sha256_of_file

    return {p.relative_to(out).as_posix(): sha256_of_file(p) for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix not in (".json", ".html") and "log" not in p.relative_to(out).parts
            and not p.name.startswith(".")}


def compute(cases: list[str] | None = None) -> dict[str, dict[str, str]]:
    import torch

    from bids_brainbert.cli.run import main

    torch.manual_seed(0)   # the published layout's weights come from the global generator
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        datasets, models = write_datasets(root / "raw"), write_models(root / "models")
        for name in cases or list(CASES):
            dataset, model, extra = CASES[name]
            out = root / "out" / name
            args = [str(datasets[dataset]), str(out), *COMMON, *extra]
            if model is not None:
                args += ["--model", str(models[model])]
            with contextlib.redirect_stderr(io.StringIO()) as log:
                code = main(args)
            if code != 0:
                raise SystemExit(f"{name}: exit {code}\n{log.getvalue()}")
            results[name] = data_files(out)
    return results


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {GOLDEN.relative_to(HERE.parent)}")
    args = parser.parse_args()
    results = compute()
    if args.write:
        GOLDEN.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    else:
        json.dump(results, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main_cli()
