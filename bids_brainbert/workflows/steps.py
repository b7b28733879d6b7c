"""The steps of both levels: what each reads, writes and is configured by, and which steps ``--analysis`` runs.

A new step goes here: one :class:`Step` entry (its inputs, outputs and options, for the documentation in
docs/ARCHITECTURE.md and the dry run), one line in :data:`ANALYSES` for every ``--analysis`` value that runs it,
and its function under ``workflows/``, reached through :func:`run_step`. Per-recording work runs through
:func:`bids_brainbert.workflows.outcomes.per_recording`, the one failure wrapper of both levels.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bids import names


@dataclass(frozen=True)
class Step:
    name: str
    level: str                     # "participant" or "group"
    inputs: str
    outputs: str
    options: tuple[str, ...]       # the command-line options (snake_case) that configure it
    needs_training_files: bool = False   # refuses to start without every recording's spectrogram
    needs_atlas: bool = False            # reads --atlas (checked before any step runs)


STEPS: dict[str, Step] = {step.name: step for step in (
    Step("spectrogram", "participant", "raw recording + channels.tsv, electrodes.tsv, ieeg.json",
         "<entities>_desc-<kind>_spectrogram.npy/.json, _channels.tsv/.json",
         ("line_noise", "line_noise_quality", "line_noise_max_hz", "reference", "laplacian_min_neighbours",
          "sampling_rate", "include_dbs", "spectrogram", "superlet_*", "stft_*")),
    Step("embeddings", "participant", "spectrogram derivative, events.tsv, a model (--model or models/)",
         "<entities>_desc-<label>[Events]_embeddings.npy/.json (+ Events .tsv), and <label>Random",
         ("model", "model_label", "embedding_*", "decoding_offset_s", "precision", "decoding_features")),
    Step("pretrain", "group", "every selected recording's spectrogram derivative",
         f"{names.MODELS_DIR}/desc-<label>/checkpoints/step-*/, then the embeddings of every recording",
         ("model_size", "train_steps", "batch_size", "learning_rate", "optimizer", "mask_probability",
          "train_window_s", "validation_split", "validation_fraction", "holdout_participant_label",
          "checkpoint_every", "init_model"), needs_training_files=True),
    Step("decoding", "group", "event embeddings, spectrogram derivatives, raw recordings (baselines)",
         "task-<task>_desc-{decoding,dataefficiency,generalization,verdict,readoutoffset}_*.tsv/.json, figures",
         ("decoding_*", "data_efficiency_*", "atlas", "atlas_labels"), needs_atlas=True),
    Step("population", "group", "event embeddings of every subject, electrode coordinates",
         f"{names.MODELS_DIR}/population/task-<task>_desc-<label>/, rows in task-<task>_desc-decoding_*.tsv",
         ("population_steps",)),
    Step("finetune", "group", "event embeddings' model and spectrogram derivatives",
         "rows (feature <label>Finetuned) of task-<task>_desc-decoding_*.tsv",
         ("finetune_layers", "finetune_epochs", "finetune_electrodes")),
    Step("dimensionality", "group", "sliding-window embeddings and spectrogram derivatives",
         "task-<task>_desc-dimensionality_{electrodes,regions}.tsv/.json, figure",
         ("dimensionality_examples", "dimensionality_threshold", "atlas", "atlas_labels"), needs_atlas=True),
    Step("reports", "group", "every derivative above that exists",
         f"sub-<label>.html, {names.GROUP_REPORT}, logs/CITATION.md", ()),
)}

# --analysis value -> the group-level steps it runs, in order (reports always last: they show what exists)
ANALYSES: dict[str, tuple[str, ...]] = {
    "all": ("pretrain", "decoding", "population", "dimensionality", "reports"),
    "pretrain": ("pretrain", "reports"),
    "decoding": ("decoding", "reports"),
    "population": ("population", "reports"),
    "finetune": ("finetune", "reports"),
    "dimensionality": ("dimensionality", "reports"),
    "reports": ("reports",),
}


def steps_for(analysis: str) -> list[Step]:
    return [STEPS[name] for name in ANALYSES[analysis]]


def runs(analysis: str, step: str) -> bool:
    """Whether ``--analysis analysis`` runs ``step``."""
    return step in ANALYSES[analysis]
