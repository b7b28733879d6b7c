"""Shared pytest fixtures."""

import pytest

from bids_brainbert.io.simulate import write_demo_dataset


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """The small simulated BIDS iEEG dataset (seed 42), written once per session: ``(root, DemoTruth)``.

    Shared by many tests: treat it as read-only (copy it before changing anything).
    """
    root = tmp_path_factory.mktemp("demo") / "rawdata"
    truth = write_demo_dataset(root, small=True)
    return root, truth
