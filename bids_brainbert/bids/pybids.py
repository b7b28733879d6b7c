"""Our derivative dataset as a PyBIDS layout.

Plain ``bids.BIDSLayout(OUTPUT_DIR, validate=False)`` (or ``BIDSLayout(raw, derivatives=OUTPUT_DIR)``) already
finds spectrograms, channel tables, embeddings, event embeddings and the group tables by subject, session,
task, run, desc, suffix and extension, with their JSON sidecars through ``get_metadata``: our file names are BIDS
derivative names. Two things need more: PyBIDS leaves out a top-level ``models/`` folder (BIDS-StatsModels
live there), and a checkpoint's ``step-<n>`` folder is no BIDS entity. :func:`derivatives_layout` indexes the
models too, with :data:`PYBIDS_CONFIG` adding the ``step`` entity::

    layout = derivatives_layout(OUTPUT_DIR)
    layout.get(subject="01", desc="superlet", suffix="spectrogram", extension=".npy")
    layout.get(desc="brainbert", suffix="model", extension=".safetensors", step="00000012")
"""

from __future__ import annotations

import os
import re

# Entities beyond BIDS' own that our derivatives carry (in folder names).
PYBIDS_CONFIG = {
    "name": "bids-brainbert",
    "entities": [{"name": "step", "pattern": r"[/\\]+step-([0-9]+)[/\\]"}],
}
# PyBIDS' default ignore list without "models" (ours hold the pretrained checkpoints).
_IGNORED = [re.compile(r"^/(code|sourcedata|stimuli)")]


def derivatives_layout(output_dir: str | os.PathLike, raw_dir: str | os.PathLike | None = None):
    """A ``bids.BIDSLayout`` over our derivative dataset ``output_dir``, models included; with ``raw_dir``, the
    raw dataset's layout with ours added as its derivatives (query ours with ``scope="bids-brainbert"``)."""
    from bids import BIDSLayout, BIDSLayoutIndexer

    config = ["bids", "derivatives", PYBIDS_CONFIG]
    if raw_dir is None:
        return BIDSLayout(output_dir, validate=False, config=config, indexer=BIDSLayoutIndexer(ignore=_IGNORED))
    layout = BIDSLayout(raw_dir, validate=False)
    layout.add_derivatives(output_dir, config=config, indexer=BIDSLayoutIndexer(ignore=_IGNORED))
    return layout
