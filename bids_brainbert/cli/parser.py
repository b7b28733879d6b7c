"""The command line, following the BIDS-Apps conventions (see the README for every option and exit code).

Options are parsed with ``argparse.SUPPRESS`` defaults so that only what the user typed overrides the
``--config-file``; the defaults live in :mod:`bids_brainbert.params` (the steps' parameters) and
:class:`bids_brainbert.config.RunConfig` (the rest), and the help quotes them from there.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from .. import __version__
from ..analyses.decoding import PERMUTATION_SCHEMES
from ..params import (DECODING_FEATURES, MODEL_SIZES, OPTIMIZERS, POOLINGS, SPECTROGRAM_KINDS, SUPERLET_BACKENDS,
                      SUPERLET_MODES, VALIDATION_SPLITS, default_of)
from ..precision import PRECISIONS
from ..preprocessing.referencing import REFERENCE_SCHEMES
from ..transforms.superlet_params import DEFINITIONS
from ..windowing import WINDOWINGS
from ..workflows.steps import ANALYSES
from ..errors import UsageError

ANALYSIS_LEVELS = ("participant", "group")


USAGE = ("%(prog)s BIDS_DIR OUTPUT_DIR {participant,group} [options]\n"
         "       %(prog)s demo OUTPUT_DIR [--small] [--dataset-only] [--random-seed S] [--nprocs N]\n"
         "       %(prog)s --help | --version")


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage; BIDS-Apps use 64, raised as UsageError so main() maps it. main() names
    the program, so the message carries only the subcommand (``demo``), if any."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)   # --train-step must not pass for --train-steps

    def error(self, message: str) -> None:  # type: ignore[override]
        subcommand = self.prog.removeprefix("bids-brainbert").strip()
        raise UsageError(f"{subcommand}: {message}" if subcommand else message)


def _checked(cast, accept, requirement: str, form: str):
    """An argparse type: ``cast`` the text, then refuse values ``accept`` rejects. Either failure says what is
    accepted (argparse prefixes the option's name): "expected an integer >= 1, got 'x'"."""
    def convert(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {form}{requirement}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement.strip()}, got {text}")
        return value

    return convert


_positive_int = _checked(int, lambda v: v >= 1, " >= 1", "an integer")
_positive_float = _checked(float, lambda v: v > 0, " > 0", "a number")
_min_two = _checked(int, lambda v: v >= 2, " >= 2", "an integer")
_non_negative_int = _checked(int, lambda v: v >= 0, " >= 0", "an integer")
_fraction = _checked(float, lambda v: 0 < v < 1, " between 0 and 1 (exclusive)", "a number")
_integer = _checked(int, lambda v: True, "", "an integer")
_number = _checked(float, lambda v: True, "", "a number")
_finite_number = _checked(float, math.isfinite, " (finite)", "a number")


def _sampling_rate(text: str) -> float:
    """A rate in Hz, or 'native' (0 internally means: keep the recording's own rate)."""
    if text.lower() == "native":
        return 0.0
    if text.strip() in ("0", "0.0"):   # how a saved configuration (bids-brainbert.toml) spells 'native'
        return 0.0
    try:
        return _positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a rate in Hz (a number > 0) or 'native', got {text!r}") from None


def _d(option: str) -> str:
    """A step parameter's default as the help quotes it (0.1, 200, 40)."""
    value = default_of(option)
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bids-brainbert",
        description="BrainBERT-style time-frequency derivatives and representations of BIDS iEEG datasets. "
                    "Also: 'bids-brainbert demo OUTPUT_DIR' writes the example dataset and runs the pipeline on it.",
        usage=USAGE,
        argument_default=argparse.SUPPRESS,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("bids_dir", type=Path, help="root of the BIDS iEEG dataset (read only)")
    parser.add_argument("output_dir", type=Path, help="root of the derivative dataset to write")
    parser.add_argument("analysis_level", help=f"processing stage: one of {', '.join(ANALYSIS_LEVELS)}")
    parser.add_argument("--version", action="version", version=f"bids-brainbert {__version__}")

    sel = parser.add_argument_group("selecting data")
    sel.add_argument("--participant-label", "--participant_label", nargs="+", metavar="LABEL",
                     help="subjects to process, with or without 'sub-', or a file listing them")
    sel.add_argument("--exclude-participant-label", nargs="+", metavar="LABEL", help="subjects to leave out")
    sel.add_argument("--session-label", nargs="+", metavar="LABEL", help="sessions to process (without 'ses-')")
    sel.add_argument("--task-label", nargs="+", metavar="LABEL", help="tasks to process (without 'task-')")
    sel.add_argument("--run", nargs="+", metavar="INDEX", help="runs to process")
    sel.add_argument("--bids-filter-file", type=Path, metavar="FILE",
                     help="PyBIDS-style JSON of entity filters; the 'ieeg' query is used")
    sel.add_argument("--include-dbs", action="store_true", help="also analyse DBS channels")

    run = parser.add_argument_group("execution")
    run.add_argument("-w", "--work-dir", type=Path, metavar="DIR", help="scratch space for intermediate files")
    run.add_argument("--nprocs", "--n-cpus", type=_positive_int, metavar="N", help="recordings processed in parallel")
    run.add_argument("--random-seed", type=_integer, metavar="SEED", help="seed for every random generator")
    run.add_argument("--config-file", type=Path, metavar="FILE", help="TOML file of options (the command line wins)")
    run.add_argument("--skip-bids-validation", action="store_true", help="do not run the BIDS validator")
    run.add_argument("--dry-run", action="store_true", help="print what would be processed and write nothing")
    run.add_argument("--overwrite", action="store_true", help="recompute derivatives that are already complete")
    run.add_argument("-v", "--verbose", action="count", help="more log output (repeat for more)")

    pre = parser.add_argument_group("preprocessing")
    pre.add_argument("--no-line-noise", dest="line_noise", action="store_false",
                     help="do not notch PowerLineFrequency and its harmonics")
    pre.add_argument("--line-noise-quality", type=_positive_float, metavar="Q",
                     help=f"notch quality factor ({_d('line_noise_quality')})")
    pre.add_argument("--line-noise-max-hz", type=_positive_float, metavar="HZ",
                     help=f"highest harmonic notched in Hz ({_d('line_noise_max_hz')}, as BrainBERT)")
    pre.add_argument("--reference", choices=REFERENCE_SCHEMES,
                     help="re-reference: auto = shaft Laplacian for sEEG/DBS, common average per group for ECoG")
    pre.add_argument("--laplacian-min-neighbours", type=_integer, choices=(1, 2),
                     help=f"contacts need this many shaft neighbours ({_d('laplacian_min_neighbours')} as BrainBERT; 1 keeps "
                          "shaft ends)")
    pre.add_argument("--sampling-rate", type=_sampling_rate, metavar="HZ",
                     help=f"analysis rate in Hz (default {_d('sampling_rate')}, as BrainBERT), or 'native'")

    spec = parser.add_argument_group("spectrogram")
    spec.add_argument("--spectrogram", choices=SPECTROGRAM_KINDS,
                      help=f"time-frequency front end ({_d('spectrogram')})")
    spec.add_argument("--superlet-freq-min", type=_positive_float, metavar="HZ",
                      help=f"lowest frequency ({_d('superlet_freq_min')})")
    spec.add_argument("--superlet-freq-max", type=_positive_float, metavar="HZ",
                      help=f"highest frequency ({_d('superlet_freq_max')})")
    spec.add_argument("--superlet-n-freqs", type=_positive_int, metavar="N",
                      help=f"number of frequencies ({_d('superlet_n_freqs')})")
    spec.add_argument("--superlet-base-cycles", type=_positive_float, metavar="C1",
                      help=f"cycles of order 1 ({_d('superlet_base_cycles')})")
    spec.add_argument("--superlet-order-min", type=_positive_float, metavar="O",
                      help=f"order at lowest frequency ({_d('superlet_order_min')})")
    spec.add_argument("--superlet-order-max", type=_positive_float, metavar="O",
                      help=f"order at highest frequency ({_d('superlet_order_max')})")
    spec.add_argument("--superlet-decimation", type=_positive_int, metavar="N",
                      help=f"output every Nth sample ({_d('superlet_decimation')})")
    spec.add_argument("--superlet-mode", choices=SUPERLET_MODES,
                      help="order rises with frequency (adaptive, BrainBERT) or is the highest everywhere")
    spec.add_argument("--superlet-definition", choices=DEFINITIONS,
                      help="wavelet set of a superlet: brainbert: c1*order_min .. c1*o cycles, as BrainBERT's code "
                           "(default); moca: c1*1 .. c1*o cycles, as Moca et al. 2021")
    spec.add_argument("--superlet-backend", choices=SUPERLET_BACKENDS,
                      help=f"auto: torch on the --device GPU when one is available, else numpy ({_d('superlet_backend')})")
    spec.add_argument("--stft-nperseg", type=_positive_int, metavar="N",
                      help=f"STFT window length in samples ({_d('stft_nperseg')})")
    spec.add_argument("--stft-noverlap", type=_integer, metavar="N",
                      help=f"STFT window overlap in samples ({_d('stft_noverlap')})")
    spec.add_argument("--stft-n-bins", type=_positive_int, metavar="N",
                      help=f"STFT bins kept from 0 Hz ({_d('stft_n_bins')})")
    spec.add_argument("--channel-batch-size", type=_positive_int, metavar="N", help="channels transformed at once")

    model = parser.add_argument_group("model and embeddings")
    model.add_argument("--model", type=Path, metavar="PATH",
                       help="checkpoint for embeddings: our checkpoint folder/.safetensors or the published .pth "
                            "(default: the group model in OUTPUT_DIR/models, if trained)")
    model.add_argument("--model-label", metavar="LABEL", help="desc label of the model and its embeddings (brainbert)")
    model.add_argument("--embedding-layer", type=_integer, metavar="I", help="-1 last layer, 0 input stage, i layer i")
    model.add_argument("--embedding-pooling", choices=POOLINGS,
                       help="readout of the event embeddings used for decoding: middle: mean of the middle frames "
                            "(BrainBERT's probes); mean: all frames")
    model.add_argument("--embedding-window-pooling", choices=POOLINGS,
                       help="readout of the sliding-window embeddings used for intrinsic dimensionality: mean of all "
                            "frames (BrainBERT's analysis, default) or of the middle frames")
    model.add_argument("--embedding-middle-frames", type=_positive_int, metavar="K",
                       help=f"frames for middle pooling ({_d('embedding_middle_frames')})")
    model.add_argument("--embedding-window-s", type=_positive_float, metavar="S",
                       help=f"window length in seconds ({_d('embedding_window_s')})")
    model.add_argument("--embedding-stride-s", type=_positive_float, metavar="S", help="sliding-window step (= window)")
    model.add_argument("--embedding-windowing", choices=WINDOWINGS,
                       help="model input: recording: windows cut from the whole-recording spectrogram; brainbert: "
                            "each window transformed alone and normalised as the original code did; auto: brainbert "
                            f"for the published weights, else recording ({_d('embedding_windowing')})")
    model.add_argument("--embedding-batch-size", type=_positive_int, metavar="N",
                       help=f"windows per forward pass ({_d('embedding_batch_size')})")
    model.add_argument("--device", metavar="DEV", help="auto (CUDA when available), cpu, cuda, cuda:N")
    model.add_argument("--precision", choices=PRECISIONS,
                       help="model arithmetic for pretraining and embeddings: float32 (default, the same numbers on "
                            "any machine), bfloat16 autocast (3x faster on CPUs with native bf16), auto: bfloat16 "
                            "on CUDA and on CPUs with native bf16, else float32")

    group = parser.add_argument_group("group level: pretraining")
    group.add_argument("--init-model", type=Path, metavar="PATH", help="start pretraining from this checkpoint")
    group.add_argument("--model-size", choices=MODEL_SIZES,
                       help=f"encoder size ({_d('model_size')}; large = published)")
    group.add_argument("--train-steps", type=_positive_int, metavar="N", help=f"optimizer steps ({_d('train_steps')})")
    group.add_argument("--batch-size", type=_positive_int, metavar="N", help=f"windows per step and process ({_d('batch_size')})")
    group.add_argument("--learning-rate", type=_positive_float, metavar="LR", help=f"peak learning rate ({_d('learning_rate')})")
    group.add_argument("--optimizer", choices=OPTIMIZERS, help=f"{_d('optimizer')}, or lamb as published")
    group.add_argument("--mask-probability", type=_positive_float, metavar="P", help=f"span start probability ({_d('mask_probability')})")
    group.add_argument("--train-window-s", type=_positive_float, metavar="S", help=f"pretraining window length ({_d('train_window_s')})")
    group.add_argument("--validation-split", choices=VALIDATION_SPLITS,
                       help=f"validation held out by run or subject ({_d('validation_split')})")
    group.add_argument("--validation-fraction", type=_number, metavar="F",
                       help=f"fraction held out for validation ({_d('validation_fraction')})")
    group.add_argument("--holdout-participant-label", nargs="+", metavar="LABEL",
                       help="subjects left out of pretraining (generalization); embeddings are still written")
    group.add_argument("--checkpoint-every", type=_positive_int, metavar="N", help=f"steps between checkpoints ({_d('checkpoint_every')})")

    ana = parser.add_argument_group("group level: analyses and reports")
    ana.add_argument("--analysis", choices=tuple(ANALYSES),
                     help="all: pretrain, embed, decode, population model, dimensionality, reports; the others run "
                          "alone from existing derivatives (pretrain = pretrain + embed); reports are refreshed "
                          "after each; finetune (fine-tuning per electrode) is not part of all")
    ana.add_argument("--decoding-column", metavar="COLUMN", help=f"events.tsv column to decode ({_d('decoding_column')})")
    ana.add_argument("--decoding-contrast", nargs="+", metavar="A,B",
                     help="contrasts 'A,B' (A positive); default: each value against the rest")
    ana.add_argument("--decoding-window-s", type=_positive_float, metavar="S",
                     help=f"window centred on each onset ({_d('decoding_window_s')}, as BrainBERT)")
    ana.add_argument("--decoding-features", nargs="+",
                     choices=DECODING_FEATURES,
                     help="features to decode (all); random: the embedding model's architecture with untrained "
                          "weights (seeded by --random-seed), embedded and decoded as its own feature")
    ana.add_argument("--decoding-offset-s", type=_finite_number, metavar="S",
                     help="centre of the readout (the middle frames of the spectrogram features and embeddings) "
                          f"relative to the event onset ({_d('decoding_offset_s')}, as BrainBERT; e.g. 0.2 for responses after the "
                          "onset)")
    ana.add_argument("--decoding-folds", type=_min_two, metavar="K", help=f"outer folds when a subject has one run ({_d('decoding_folds')})")
    ana.add_argument("--decoding-permutations", type=_non_negative_int, metavar="N",
                     help="label permutations for chance level and p-values; each refits the nested "
                          f"cross-validation ({_d('decoding_permutations')})")
    ana.add_argument("--decoding-permutation-scheme", choices=PERMUTATION_SCHEMES,
                     help="how labels are permuted within a run: shuffle (event-related designs, default) or "
                          "circular shift in time order (block designs: keeps the labels' autocorrelation)")
    ana.add_argument("--data-efficiency-sizes", type=_positive_int, nargs="+", metavar="N",
                     help=f"training-set sizes ({_d('data_efficiency_sizes')}; those fitting the data are used)")
    ana.add_argument("--data-efficiency-draws", type=_non_negative_int, metavar="N",
                     help=f"random draws per size ({_d('data_efficiency_draws')}; 0 disables the curve)")
    ana.add_argument("--population-steps", type=_positive_int, metavar="N",
                     help="self-supervised pretraining steps of the population model over electrode coordinates "
                          f"({_d('population_steps')})")
    ana.add_argument("--finetune-layers", type=_non_negative_int, metavar="K",
                     help=f"--analysis finetune: top encoder layers trained with the head ({_d('finetune_layers')}; "
                          "0 = all layers)")
    ana.add_argument("--finetune-epochs", type=_positive_int, metavar="N",
                     help=f"--analysis finetune: most epochs per fold, early-stopped on an inner split "
                          f"({_d('finetune_epochs')})")
    ana.add_argument("--finetune-electrodes", nargs="+", metavar="NAME",
                     help="--analysis finetune: electrodes fine-tuned (all)")
    ana.add_argument("--finetune-permutations", type=_non_negative_int, metavar="N",
                     help="--analysis finetune: label permutations of the refitted null, each refitting every "
                          f"fold's fine-tuning ({_d('finetune_permutations')}: cost x10, smallest p 0.1; "
                          "0 = no null)")
    ana.add_argument("--dimensionality-examples", type=_positive_int, metavar="N",
                     help=f"windows per electrode for PCA ({_d('dimensionality_examples')}, as BrainBERT)")
    ana.add_argument("--dimensionality-threshold", type=_fraction, metavar="F",
                     help=f"explained-variance fraction defining the dimension "
                          f"({_d('dimensionality_threshold')})")
    ana.add_argument("--atlas", type=Path, metavar="FILE.nii.gz",
                     help="label image in the electrodes' space, for regions missing from electrodes.tsv")
    ana.add_argument("--atlas-labels", type=Path, metavar="FILE.tsv", help="atlas label table (index, name)")
    return parser


def build_demo_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bids-brainbert demo",
                     description="Write the simulated example BIDS iEEG dataset to OUTPUT_DIR/rawdata and run the "
                                 "participant level into OUTPUT_DIR/derivatives/bids-brainbert.")
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="a shorter, smaller dataset (seconds)")
    parser.add_argument("--random-seed", type=_integer, default=42)
    parser.add_argument("--nprocs", type=_positive_int, default=1)
    parser.add_argument("--dataset-only", action="store_true", help="write the dataset, do not run the pipeline")
    return parser
