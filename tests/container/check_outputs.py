"""Checks of what tests/container/run.sh produced in the container, against a native run on the same dataset.

Run by run.sh with the repository's .venv::

    python tests/container/check_outputs.py --work WORK --image-json IMAGE.json --revision SHA

WORK holds ``demo/rawdata`` (written in the container), ``out`` (participant + group level in the container),
``out-torchrun`` (group level under torchrun), ``layout/ds`` (a copy of the dataset with the participant level
written into its ``derivatives/bids-brainbert``), ``marker.json`` (the image's marker file),
``readme/demo_out/derivatives/bids-brainbert`` (the README's docker line) and ``native`` (the participant level run natively). Every failed check is listed; exit 1 if any.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for conftest.tree_digest

from bids_brainbert import __version__  # noqa: E402
from bids_brainbert.bids.derivatives import sha256_of_file  # noqa: E402
from bids_brainbert.bids.discovery import index_recordings  # noqa: E402
from bids_brainbert.bids.validation import find_validator, validation_errors  # noqa: E402
from bids_brainbert.io.simulate import write_demo_dataset  # noqa: E402
from conftest import tree_digest  # noqa: E402

CONTAINER_UID = 1234
# float32 spectrograms computed with the image's numpy/scipy builds may differ from the native ones in the last
# bits; anything beyond this (relative to the channel's largest value) is a real difference
SPECTROGRAM_RTOL = 1e-4
CACHE_VARIABLES = ("MPLCONFIGDIR", "NUMBA_CACHE_DIR", "TORCH_HOME", "XDG_CACHE_HOME")


class Checks:
    """Collects failures instead of stopping at the first, so one run shows everything that is wrong."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def check(self, condition: bool, message: str) -> None:
        if condition:
            self.passed += 1
        else:
            self.failures.append(message)


def check_image(checks: Checks, image: dict, revision: str) -> None:
    config = image["Config"]
    labels = config.get("Labels") or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    checks.check(config.get("Entrypoint") == ["bids-brainbert"], f"entrypoint is {config.get('Entrypoint')}")
    checks.check(labels.get("org.opencontainers.image.version") == __version__, f"version label {labels}")
    checks.check(labels.get("org.opencontainers.image.revision") == revision, f"revision label {labels}")
    checks.check(bool(labels.get("org.opencontainers.image.source")), "no source label")
    checks.check(not config.get("User"), f"image sets USER {config.get('User')!r}: sites choose the UID")
    for name in CACHE_VARIABLES:
        checks.check(env.get(name, "").startswith("/tmp/"), f"{name} is {env.get(name)!r}, not under /tmp")
    checks.check("OMP_NUM_THREADS" not in env, "OMP_NUM_THREADS is pinned in the image (threads follow --nprocs)")


def check_dataset(checks: Checks, rawdata: Path) -> None:
    """The container's demo writer gives the same bytes as the native one (same seed)."""
    with tempfile.TemporaryDirectory() as tmp:
        write_demo_dataset(Path(tmp) / "rawdata")
        checks.check(tree_digest(Path(tmp) / "rawdata") == tree_digest(rawdata),
                     "the demo dataset written in the container differs from the native one")


def spectrogram_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*_spectrogram.npy"))}


def check_participant(checks: Checks, out: Path, native: Path, rawdata: Path, label: str,
                      owner_uid: int | None = None) -> None:
    """Spectrogram derivatives as the native run's: same files, tables and sidecars, values within rounding;
    written by ``owner_uid`` when given (the container's --user)."""
    ours, theirs = spectrogram_files(out), spectrogram_files(native)
    checks.check(len(theirs) == len(index_recordings(rawdata)) > 0, f"native run wrote {len(theirs)} spectrograms")
    checks.check(sorted(ours) == sorted(theirs), f"{label}: spectrograms {sorted(ours)} != native {sorted(theirs)}")
    for name in sorted(set(ours) & set(theirs)):
        a, b = np.load(ours[name]), np.load(theirs[name])
        checks.check(a.dtype == np.float32 and a.shape == b.shape, f"{label}: {name} {a.dtype} {a.shape}")
        if a.shape == b.shape:
            scale = np.abs(b).max(axis=(1, 2), keepdims=True)
            checks.check(bool((np.abs(a - b) <= SPECTROGRAM_RTOL * scale).all()), f"{label}: {name} values differ")
        sidecar = json.loads(ours[name].with_suffix(".json").read_text())
        reference = json.loads(theirs[name].with_suffix(".json").read_text())
        checks.check(sidecar["DataSha256"] == sha256_of_file(ours[name]), f"{label}: {name} hash mismatch")
        for key in ("Shape", "FrequenciesHz", "SamplingFrequency", "EdgeFrames", "Preprocessing", "Transform",
                    "Sources", "ChannelsFile", "Axes"):
            checks.check(sidecar.get(key) == reference.get(key), f"{label}: {name} sidecar {key} differs")
        channels = ours[name].with_name(name.split("/")[-1].replace("_spectrogram.npy", "_channels.tsv"))
        reference_channels = theirs[name].with_name(channels.name)
        checks.check(pd.read_csv(channels, sep="\t").equals(pd.read_csv(reference_channels, sep="\t")),
                     f"{label}: {channels.name} differs from the native table")
        if owner_uid is not None:
            checks.check(ours[name].stat().st_uid == owner_uid, f"{label}: {name} not owned by UID {owner_uid}")
    description = json.loads((out / "dataset_description.json").read_text())
    container = description["GeneratedBy"][0].get("Container")
    # the tag given at build time (run.sh: the image's full name) shows that the image's ENV reached the app
    checks.check(container == {"Type": "docker", "Tag": f"localhost/bids-brainbert:{__version__}"},
                 f"{label}: GeneratedBy.Container is {container}")
    for subject in {r.subject for r in index_recordings(rawdata)}:
        checks.check(bool(list((out / f"sub-{subject}" / "log").glob("*/bids-brainbert.log"))),
                     f"{label}: no log for sub-{subject}")
    checks.check(not list(out.rglob(".*.tmp-*")), f"{label}: temporary files left behind")


def check_group(checks: Checks, out: Path, rawdata: Path, subjects: set[str], steps: int, world_size: int,
                label: str) -> None:
    """A model was pretrained and every selected recording has embeddings made with it."""
    checkpoints = out / "models" / "desc-brainbert" / "checkpoints"
    latest = json.loads((checkpoints / "latest.json").read_text()) if (checkpoints / "latest.json").exists() else {}
    checks.check(latest.get("checkpoint") == f"step-{steps:08d}", f"{label}: latest checkpoint {latest}")
    if not latest:
        return
    checkpoint = checkpoints / latest["checkpoint"]
    config = json.loads((checkpoint / "config.json").read_text())
    weights_hash = sha256_of_file(checkpoint / "model.safetensors")
    checks.check(config["weights_sha256"] == weights_hash, f"{label}: weights hash differs from config.json")
    checks.check(config["training"].get("world_size") == world_size,
                 f"{label}: trained with world size {config['training'].get('world_size')}, not {world_size}")
    for recording in index_recordings(rawdata):
        folder = out / recording.path.parent.relative_to(rawdata)
        windows_file = folder / f"{recording.stem_entities}_desc-brainbert_embeddings.npy"
        if recording.subject not in subjects:
            checks.check(not windows_file.exists(), f"{label}: {windows_file.name} written but not selected")
            continue
        if not windows_file.exists():
            checks.check(False, f"{label}: {windows_file.name} missing")
            continue
        spectrogram = np.load(folder / f"{recording.stem_entities}_desc-superlet_spectrogram.npy", mmap_mode="r")
        windows = np.load(windows_file)
        sidecar = json.loads(windows_file.with_suffix(".json").read_text())
        expected_shape = windows.shape[0] == spectrogram.shape[0] and windows.shape[2] == config["model"]["d_model"]
        checks.check(expected_shape and windows.shape[1] >= 1, f"{label}: {windows_file.name} {windows.shape}")
        checks.check(bool(np.isfinite(windows).all()) and float(windows.std()) > 0, f"{label}: degenerate embeddings")
        checks.check(sidecar["Model"]["Sha256"] == weights_hash, f"{label}: {windows_file.name} names another model")
        checks.check(sidecar["DataSha256"] == sha256_of_file(windows_file), f"{label}: {windows_file.name} hash")
        events = folder / f"{recording.stem_entities}_desc-brainbertEvents_embeddings.npy"
        table = pd.read_csv(events.with_suffix(".tsv"), sep="\t")
        checks.check(np.load(events).shape[:2] == (spectrogram.shape[0], len(table)), f"{label}: {events.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--image-json", type=Path, required=True)
    parser.add_argument("--revision", required=True)
    args = parser.parse_args(argv)
    work = args.work
    rawdata, native = work / "demo" / "rawdata", work / "native"
    checks = Checks()
    check_image(checks, json.loads(args.image_json.read_text())[0], args.revision)
    check_dataset(checks, rawdata)
    check_participant(checks, work / "out", native, rawdata, "container", owner_uid=CONTAINER_UID)
    check_participant(checks, work / "readme" / "demo_out" / "derivatives" / "bids-brainbert", native, rawdata,
                      "README docker line")
    layout = work / "layout" / "ds"
    check_participant(checks, layout / "derivatives" / "bids-brainbert", native, rawdata, "derivatives/ layout",
                      owner_uid=CONTAINER_UID)
    raw_part = {p.relative_to(layout).as_posix(): p.read_bytes() for p in layout.rglob("*")
                if p.is_file() and p.relative_to(layout).parts[0] != "derivatives"}
    checks.check(raw_part == {p.relative_to(rawdata).as_posix(): p.read_bytes() for p in rawdata.rglob("*")
                              if p.is_file()}, "derivatives/ layout: the raw data beside the derivatives changed")
    marker = json.loads((work / "marker.json").read_text())
    checks.check(marker == {"Type": "docker", "Tag": f"localhost/bids-brainbert:{__version__}"},
                 f"image marker /etc/bids-brainbert/container.json is {marker}")
    everyone = {r.subject for r in index_recordings(rawdata)}
    check_group(checks, work / "out", rawdata, everyone, steps=12, world_size=1, label="group")
    check_group(checks, work / "out-torchrun", rawdata, {"03"}, steps=12, world_size=2, label="torchrun")
    validator = find_validator()
    checks.check(validator is not None, "bids-validator-deno not installed in the .venv")
    if validator:
        errors = validation_errors(work / "out", validator)
        checks.check(errors == [], f"BIDS validator errors on the container's derivatives: {errors[:3]}")
    for failure in checks.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    print(f"container output checks: {checks.passed} passed, {len(checks.failures)} failed")
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())
