"""Shared pytest fixtures."""

import hashlib
from pathlib import Path

import pytest

from bids_brainbert.cli.run import main
from bids_brainbert.io.simulate import write_demo_dataset

# long enough that windows fit between the superlet edge zones (18 s at each end for 0.1 Hz)
DEMO_SECONDS = 60.0


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """The small simulated BIDS iEEG dataset (seed 42), written once per session: ``(root, DemoTruth)``.

    Shared by many tests: treat it as read-only (copy it before changing anything).
    """
    root = tmp_path_factory.mktemp("demo") / "rawdata"
    truth = write_demo_dataset(root, small=True, duration_s=DEMO_SECONDS)
    return root, truth


def tree_digest(root: Path) -> str:
    """One hash over every file's relative path and bytes (to prove a tree was not modified)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def demo_derivatives(demo_dataset, tmp_path_factory):
    """The participant level run once (validator on, two processes) on the small demo dataset:
    ``(root, output_dir, DemoTruth)``. Read-only for the tests: copy before changing."""
    root, truth = demo_dataset
    before = tree_digest(root)
    out = tmp_path_factory.mktemp("derivatives") / "bids-brainbert"
    assert main([str(root), str(out), "participant", "--nprocs", "2", "--random-seed", "7"]) == 0
    assert tree_digest(root) == before, "the input dataset was modified"
    return root, out, truth
