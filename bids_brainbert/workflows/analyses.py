"""Group analyses wired to the derivative dataset: what ``--analysis`` runs after (or instead of) pretraining. Each
step has its own module: :mod:`.decoding` (baselines and embeddings), :mod:`.dimensionality`, the reports
(:mod:`.subject_report`, :mod:`.group_report` with the methods text) and the tables they share
(:mod:`.group_tables`); atlas loading is :func:`bids_brainbert.analyses.regions.load_atlas`. The arithmetic lives in
:mod:`bids_brainbert.analyses` and the drawing in :mod:`bids_brainbert.reports`.

Outputs at the output root (``<task>`` = ``task-<label>``)::

    <task>_desc-decoding_scores.tsv        one row per subject x target x electrode (or population) x feature x fold
    <task>_desc-decoding_summary.tsv       one row per subject x target x electrode x feature (mean, sd, chance, p)
    <task>_desc-dataefficiency_scores.tsv  population-probe AUC per training-set size, draw and fold
    <task>_desc-generalization_summary.tsv embedding AUC on subjects in / held out of the model's pretraining
    <task>_desc-dimensionality_electrodes.tsv, <task>_desc-dimensionality_regions.tsv
    (+ a JSON sidecar each), figures/<task>_desc-*.png, sub-<label>.html, group_ieeg.html, logs/CITATION.md
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..analyses.decoding import BRAINBERT_SIZES  # noqa: F401 (re-exported)
from ..analyses.regions import load_atlas
from ..bids.discovery import Recording
from ..config import RunConfig
from ..errors import BidsBrainbertError  # noqa: F401 (re-exported)
from .steps import ANALYSES, runs  # noqa: F401 (ANALYSES re-exported)
# the step modules' names, for the population and fine-tuning workflows (``group.<name>``) and the tests
from .decoding import (FEATURE_CHOICES, SCORE_COLUMNS, SUMMARY_COLUMNS,  # noqa: F401
                       gather_subject, run_decoding, write_verdict_table)
from .dimensionality import run_dimensionality
from .group_report import write_citation, write_group_report
from .group_tables import (_read_tsv, by_task, decoding_targets, events_path,  # noqa: F401
                           model_training_subjects, natural_contrast_order, provenance, read_channels_derivative,
                           root_path, write_table)
from .embeddings import read_events  # noqa: F401
from .subject_report import write_subject_reports

LOGGER = logging.getLogger("bids_brainbert")


# ------------------------------------------------------------------------------------------------ entry points

def run_group_analyses(config: RunConfig, recordings: list[Recording], analysis: str) -> list[Path]:
    """The steps of ``--analysis analysis`` after pretraining (see :data:`bids_brainbert.workflows.steps.ANALYSES`),
    then the reports."""
    atlas = load_atlas(config.atlas, config.atlas_labels)
    written: list[Path] = []
    if runs(analysis, "decoding"):
        written += run_decoding(config, recordings, atlas)
    if runs(analysis, "population"):          # the population model over coordinates: workflows/population.py
        from .population import run_population  # imports this module
        written += run_population(config, recordings)
    if runs(analysis, "finetune"):            # supervised fine-tuning per electrode: workflows/finetune.py
        from .finetune import run_finetune      # imports this module
        written += run_finetune(config, recordings)
    if runs(analysis, "dimensionality"):
        written += run_dimensionality(config, recordings, atlas)
    written.append(write_citation(config, analysis, recordings))
    written += write_subject_reports(config, recordings)
    LOGGER.info("report: group_ieeg.html")
    written.append(write_group_report(config, recordings))
    LOGGER.info("reports written to %s", config.output_dir)
    return written


__all__ = ["ANALYSES", "FEATURE_CHOICES", "run_decoding", "run_dimensionality", "load_atlas", "run_group_analyses",
           "BRAINBERT_SIZES", "BidsBrainbertError"]
