"""``main()``: parse -> configure -> select -> run -> report -> exit code. Holds no science."""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import tempfile
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path, PurePath

from ..bids import derivatives as deriv
from ..bids.discovery import Selection, check_dataset_root, expand_labels, read_filter_file, select_recordings
from ..bids.validation import validate_dataset
from ..config import RunConfig, build_config, read_config_file, replace, seed_everything, write_config_toml
from ..errors import (EXIT_OK, EXIT_PROCESSING_FAILURE, BadAnalysisLevelError, BidsBrainbertError,
                      OneLineFormatter, UsageError, one_line, resource_exhaustion)
from ..interrupts import sigterm_as_keyboard_interrupt
from ..threads import limit_threads
from ..workflows.steps import runs, steps_for
from .parser import ANALYSIS_LEVELS, build_demo_parser, build_parser

LOGGER = logging.getLogger("bids_brainbert")
_LABEL = re.compile(r"^[A-Za-z0-9]+$")


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at emit time: notebooks and test runners swap and close it."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one log line (no file name and source line, which mean nothing to a user)."""
    text = " ".join(str(message).split()) or category.__name__
    LOGGER.warning("%s", text if category is UserWarning else f"{category.__name__}: {text}")


def configure_logging(verbose: int) -> None:
    LOGGER.setLevel(logging.DEBUG if verbose else logging.INFO)
    warnings.showwarning = _log_warning
    if not any(getattr(h, "_bids_brainbert", False) for h in LOGGER.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(OneLineFormatter("%(asctime)s | %(levelname)-7s | %(message)s", "%H:%M:%S"))
        handler._bids_brainbert = True  # type: ignore[attr-defined]
        LOGGER.addHandler(handler)


def parse_config(argv: list[str]) -> RunConfig:
    """Command line (+ optional TOML config file) -> RunConfig with absolute, checked paths."""
    parser = build_parser()
    cli_values = vars(parser.parse_args(argv))
    file_values = {}
    if "config_file" in cli_values:
        path = cli_values.pop("config_file")
        file_values = check_file_values(path, read_config_file(path), parser)
    config = build_config(cli_values, file_values)
    if config.analysis_level not in ANALYSIS_LEVELS:
        raise BadAnalysisLevelError(f"analysis level {config.analysis_level!r} is not one of "
                                    f"{', '.join(ANALYSIS_LEVELS)}")
    return resolve(config)


def check_file_values(path: Path, values: dict, parser: argparse.ArgumentParser) -> dict:
    """Config-file values pass the command line's own checks (type, range, choices): a TOML typo must fail here
    with the file named, not as a crash in the middle of a run."""
    actions = {action.dest: action for action in parser._actions}
    checked = dict(values)
    for name, value in values.items():
        action = actions.get(name)
        if action is None or not action.option_strings:   # positional fields: the command line gives them
            continue
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._CountAction)):
            expected = int if isinstance(action, argparse._CountAction) else bool
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                wanted = "an integer" if expected is int else "true or false"
                raise UsageError(f"{path}: {name} = {value!r}: expected {wanted}")
            continue
        if action.nargs in ("+", "*"):   # lists: each element passes the option's own type and choices
            items = value if isinstance(value, list) else [value]
            checked[name] = [_checked_file_value(path, name, item, action) for item in items]
        else:
            checked[name] = _checked_file_value(path, name, value, action)
    return checked


def _checked_file_value(path: Path, name: str, value, action: argparse.Action):
    """One config-file value converted as the command line converts the same text (a string option stays a
    string, a number is checked by the option's type)."""
    try:
        if isinstance(value, (bool, list, dict)):
            raise ValueError("not a single value")
        converted = action.type(str(value)) if action.type else str(value)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
        raise UsageError(f"{path}: {name} = {value!r}: invalid value ({exc})") from None
    if action.choices is not None and converted not in action.choices:
        raise UsageError(f"{path}: {name} = {value!r}: must be one of {', '.join(map(str, action.choices))}")
    return converted


def _checked_labels(values: list[str], prefix: str, option: str) -> list[str]:
    labels = expand_labels(values, prefix)
    for label in labels:
        if not _LABEL.match(label):
            raise UsageError(f"{option}: {label!r} is not a BIDS label (letters and digits only)")
    return labels


def location_in_input(bids_dir: Path, path: Path) -> PurePath | None:
    """Where ``path`` lies inside the input dataset, relative to its root (``.`` for the root itself), or None
    when it lies outside. Symbolic links are followed, and the dataset reached another way is recognised too: a
    bind mount of it (an existing folder on the way to ``path`` with the dataset root's device and inode)."""
    root, target = bids_dir.resolve(), path.resolve()
    if target == root or root in target.parents:
        return target.relative_to(root)
    try:
        root_stat = os.stat(root)
    except OSError:
        return None
    for ancestor in (target, *target.parents):
        try:
            stat = os.stat(ancestor)
        except OSError:
            continue   # not created yet
        if (stat.st_dev, stat.st_ino) == (root_stat.st_dev, root_stat.st_ino):
            return target.relative_to(ancestor)
    return None


def resolve(config: RunConfig) -> RunConfig:
    bids_dir = Path(config.bids_dir).expanduser().absolute()
    output_dir = Path(config.output_dir).expanduser().absolute()
    output_location = location_in_input(bids_dir, output_dir)
    if output_location is not None and not in_derivatives_folder(output_location):
        raise UsageError(f"{output_dir}: the output directory must not be inside the BIDS directory {bids_dir} "
                         "(the input dataset is never written to), except under its derivatives/ folder")
    if config.work_dir and location_in_input(bids_dir, Path(config.work_dir).expanduser().absolute()) is not None:
        raise UsageError(f"{Path(config.work_dir).absolute()}: the work directory (-w) must not be inside the BIDS "
                         f"directory {bids_dir} (the input dataset is never written to)")
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"{output_dir}: output path exists and is not a directory")
    resolved = replace(
        config, bids_dir=bids_dir, output_dir=output_dir,
        work_dir=Path(config.work_dir).absolute() if config.work_dir else None,
        bids_filter_file=Path(config.bids_filter_file).absolute() if config.bids_filter_file else None,
        participant_label=_checked_labels(config.participant_label, "sub", "--participant-label"),
        exclude_participant_label=_checked_labels(config.exclude_participant_label, "sub",
                                                  "--exclude-participant-label"),
        session_label=_checked_labels(config.session_label, "ses", "--session-label"),
        task_label=_checked_labels(config.task_label, "task", "--task-label"),
        run=_checked_labels([str(r) for r in config.run], "run", "--run"),
        holdout_participant_label=_checked_labels(config.holdout_participant_label, "sub",
                                                  "--holdout-participant-label"),
        model_label=_checked_labels([config.model_label], "desc", "--model-label")[0],
        model=Path(config.model).absolute() if config.model else None,
        init_model=Path(config.init_model).absolute() if config.init_model else None,
        atlas=Path(config.atlas).absolute() if config.atlas else None,
        atlas_labels=Path(config.atlas_labels).absolute() if config.atlas_labels else None,
    )
    if resolved.holdout_participant_label and resolved.model_label == RunConfig.model_label:
        # a model pretrained without some subjects must not overwrite (or be mistaken for) the full one
        resolved = replace(resolved, model_label=RunConfig.model_label + "Holdout" +
                           "".join(resolved.holdout_participant_label))
    resolved.check_step_params()   # cross-option checks (--stft-noverlap < --stft-nperseg), once, before any work
    return resolved


def in_derivatives_folder(location: PurePath) -> bool:
    """Whether a place inside the input (from :func:`location_in_input`, so links already resolved: a
    ``derivatives`` symlink into the raw data does not count) is ``derivatives/<name>[/...]``, the conventional
    place for derivatives, which BIDS tools skip as raw data."""
    return len(location.parts) >= 2 and location.parts[0] == "derivatives"


def selection_of(config: RunConfig) -> Selection:
    return Selection(
        participant_label=config.participant_label,
        exclude_participant_label=config.exclude_participant_label,
        session_label=config.session_label,
        task_label=config.task_label,
        run=config.run,
        entity_filters=read_filter_file(config.bids_filter_file) if config.bids_filter_file else {},
    )


def check_output_writable(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{output_dir}: cannot create the output directory ({exc.strerror})") from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise UsageError(f"{output_dir}: output directory is not writable")


def run_app(argv: list[str]) -> int:
    config = parse_config(argv)
    configure_logging(config.verbose)
    limit_threads(config.nprocs)  # containers and cluster jobs see more cores than they were given
    seed_everything(config.random_seed)
    source_description = check_dataset_root(config.bids_dir)
    if not config.skip_bids_validation:
        validate_dataset(config.bids_dir)
    recordings = select_recordings(config.bids_dir, selection_of(config))
    from ..workflows.embeddings import find_model
    from ..workflows.participant import run_participant_level, spectrogram_paths_for

    model_source = find_model(config) if config.analysis_level == "participant" else None
    steps = steps_for(config.analysis) if config.analysis_level == "group" else []
    if any(step.needs_training_files for step in steps):
        from ..workflows.group import training_files

        training_files(config, recordings)  # fails before anything is written if the participant level is missing
    if any(step.needs_atlas for step in steps):
        from ..workflows.analyses import load_atlas

        load_atlas(config.atlas, config.atlas_labels)  # a bad atlas fails before hours of pretraining
    if config.dry_run:
        print(f"bids-brainbert would process {len(recordings)} recording(s) into {config.output_dir}:")
        for recording in recordings:
            print(f"  {recording.relative_path} -> {spectrogram_paths_for(config, recording)['data']}")
        if config.analysis_level == "group":
            if runs(config.analysis, "pretrain"):
                print(f"  then pretrain a {config.model_size} model ({config.train_steps} steps) and embed every "
                      "recording")
            if config.analysis != "pretrain":
                print(f"  then analyses ({config.analysis}) and reports (sub-<label>.html, group_ieeg.html)")
        elif model_source is None:
            print("  no model: spectrograms only (run the group level, or give --model, for embeddings)")
        return EXIT_OK
    check_output_writable(config.output_dir)
    deriv.write_dataset_files(config.output_dir, config.bids_dir, source_description)
    run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "_" + uuid.uuid4().hex[:8]
    for subject in sorted({r.subject for r in recordings}):
        log_dir = deriv.ensure_inside(config.output_dir, config.output_dir / f"sub-{subject}" / "log" / run_id)
        write_config_toml(config, log_dir / "bids-brainbert.toml")
    if config.analysis_level == "group":
        from ..workflows.group import run_group_level
        from ..workflows.run_log import group_log

        with group_log(config, run_id):   # OUTPUT_DIR/logs/group/<run id>/
            LOGGER.info("group level (%s) on %d recording(s); run %s", config.analysis, len(recordings), run_id)
            outcomes = run_group_level(config, recordings)
            return report_outcomes(outcomes)
    else:
        if model_source is None:
            LOGGER.info("no model given and none trained in %s/models: writing spectrograms only (run the group "
                        "level or pass --model PATH to get embeddings)", config.output_dir)
        LOGGER.info("processing %d recording(s) with %d process(es); run %s", len(recordings), config.nprocs,
                    run_id)
        outcomes = run_participant_level(config, recordings, run_id, model_source)
        from ..workflows.analyses import write_subject_reports

        write_subject_reports(config, recordings)   # OUTPUT_DIR/sub-<label>.html
    return report_outcomes(outcomes)


def report_outcomes(outcomes) -> int:
    failed = [o for o in outcomes if o.status == "failed"]
    for outcome in outcomes:
        LOGGER.info("%-8s %s (%.1f s)%s", outcome.status, outcome.recording, outcome.seconds,
                    f": {outcome.message}" if outcome.status == "failed" else "")
    if failed:
        print(f"bids-brainbert: {len(failed)} of {len(outcomes)} recording(s) failed:", file=sys.stderr)
        for outcome in failed:
            print(f"  {one_line(outcome.message)}", file=sys.stderr)
        return EXIT_PROCESSING_FAILURE
    return EXIT_OK


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def run_demo(argv: list[str]) -> int:
    from ..io.simulate import write_demo_dataset

    args = build_demo_parser().parse_args(argv)
    configure_logging(0)
    out = args.output_dir.absolute()
    rawdata = out / "rawdata"
    if not (rawdata / "dataset_description.json").exists():
        LOGGER.info("writing the simulated example dataset to %s", rawdata)
        if rawdata.exists():
            raise UsageError(f"{rawdata}: exists but holds no dataset; remove it or choose another OUTPUT_DIR")
        out.mkdir(parents=True, exist_ok=True)
        # written beside its final place and renamed, so an interrupted demo never leaves half a dataset
        staging = Path(tempfile.mkdtemp(prefix=".rawdata.tmp-", dir=out))
        staging.chmod(0o777 & ~_current_umask())  # mkdtemp makes it private; a dataset is for others to read
        try:
            write_demo_dataset(staging, seed=args.random_seed, small=args.small)
            os.replace(staging, rawdata)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if args.dataset_only:
        return EXIT_OK
    derivatives = out / "derivatives" / "bids-brainbert"
    code = run_app([str(rawdata), str(derivatives), "participant", "--nprocs", str(args.nprocs),
                    "--random-seed", str(args.random_seed)])
    if code == EXIT_OK:
        print(f"demo finished: dataset in {rawdata}, derivatives in {derivatives}")
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:   # a bare call: how to call it, not only what is missing
        print(build_parser().format_usage().rstrip(), file=sys.stderr)
        print("bids-brainbert: error: no arguments; 'bids-brainbert --help' lists every option, "
              "'bids-brainbert demo demo_out' runs the example", file=sys.stderr)
        return UsageError.exit_code
    try:
        with sigterm_as_keyboard_interrupt():   # SLURM's time limit ends like Ctrl-C: clean up, exit 130
            if argv and argv[0] == "demo":
                return run_demo(argv[1:])
            return run_app(argv)
    except BidsBrainbertError as exc:
        print(f"bids-brainbert: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bids-brainbert: interrupted; re-run the same command to finish what is missing", file=sys.stderr)
        return 130
    except (MemoryError, OSError) as exc:   # outside a recording (those are reported per recording)
        message = resource_exhaustion(exc, "bids-brainbert: error")
        if message is None:
            raise
        print(message, file=sys.stderr)
        return EXIT_PROCESSING_FAILURE


def console_entry() -> None:
    sys.exit(main())
