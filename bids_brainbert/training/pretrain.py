"""Masked-spectrogram pretraining: the loop (data order, masking, steps, validation, checkpoints written, resume);
the optimizers and schedule are in :mod:`.optim`, the torchrun set-up in :mod:`.distributed`, finding the newest
checkpoint in :mod:`.checkpoint_index`.

:func:`pretrain` trains a :class:`~bids_brainbert.model.BrainBertPretrainModel` on
:class:`~bids_brainbert.training.windows.SpectrogramWindows` and writes resumable checkpoints under
``OUTPUT_DIR/checkpoints/step-XXXXXXXX/`` (see :mod:`bids_brainbert.model.checkpoints`), the newest one named
in ``OUTPUT_DIR/checkpoints/latest.json``, each with a ``loss_curve.png``.

Reproducibility. Every random stream is a function of (seed, step, rank): the data order is
``DistributedSampler``'s per-epoch permutation (seed + epoch), the masks of a batch come from a generator seeded
with (seed, step, rank), and the global torch RNG (dropout) is re-seeded with (seed, step, rank) before every
step. The step counter therefore *is* the RNG state: resuming from a checkpoint at step k replays steps k+1...
exactly as an uninterrupted run would (on the same hardware and world size), and DataLoader workers do not
change anything (masking runs inside them, keyed by the step). The caller's global RNG is left untouched.

Distributed. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the process group is initialised
(gloo on CPU, nccl on CUDA), the model is wrapped in DistributedDataParallel, every rank reads a disjoint shard
of each epoch, logged losses are averaged over ranks, and only rank 0 writes files.

Precision: ``precision="float32"`` (the default) trains in float32 everywhere; "bfloat16" runs the forward pass
under bf16 autocast (weights, gradients, optimizer state and loss in float32), "auto" picks bf16 on CUDA and on
CPUs with native bf16 (see :mod:`bids_brainbert.precision`). The precision used is recorded in the model card.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import UsageError
from ..params import OPTIMIZERS, default_of
from ..model.checkpoints import (load_checkpoint, load_training_state, save_checkpoint,
                                 software_versions)
from ..model.encoder import BrainBertPretrainModel, ModelConfig, resolve_model_config
from ..model.loss import masked_reconstruction_loss
from ..model.masking import MaskConfig, mask_spectrogram
from ..precision import PRECISIONS, autocast as precision_autocast, resolve_precision
from .interrupts import signals_deferred
from .windows import SpectrogramWindows
from .checkpoint_index import CHECKPOINTS_DIR, _write_latest, latest_checkpoint
from .distributed import _Dist, _NoBarrier, _resolve_device, _setup_distributed
from .optim import Lamb, build_optimizer, lr_factor

log = logging.getLogger(__name__)
LOSS_CURVE_NAME = "loss_curve.png"
DECAYS = ("step", "linear", "cosine", "none")


# ------------------------------------------------------------------------------------------------ settings
@dataclass
class PretrainConfig:
    """Pretraining settings. Defaults follow the published recipe where it is known (Wang et al. 2023), except the
    optimizer (AdamW; ``"lamb"`` gives the published LAMB) and the number of steps (500k published)."""

    model: str | ModelConfig = "small"     # preset name or ModelConfig (ignored when init_from is given)
    batch_size: int = default_of("batch_size")      # windows per step and rank
    steps: int = default_of("train_steps")          # optimizer steps in total
    lr: float = default_of("learning_rate")         # peak learning rate
    weight_decay: float = 0.01             # decoupled; not applied to biases and LayerNorm weights
    warmup_fraction: float = 0.025         # linear warm-up over this fraction of the steps
    decay: str = "step"                    # after warm-up: "step" (x decay_gamma every decay_every_fraction of
    decay_gamma: float = 0.99              # the remaining steps, as published), "linear", "cosine", "none"
    decay_every_fraction: float = 0.01
    optimizer: str = default_of("optimizer")        # "adamw" or "lamb"
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0                 # max global gradient norm; 0 disables clipping
    mask_p: float = default_of("mask_probability")  # probability a frame starts a time span
    mask_p_freq: float | None = None       # probability a bin starts a frequency span (None: mask_p)
    content_alpha: float = 2.0             # weight of the |target| > content_threshold term
    content_threshold: float = 1.0
    window_s: float = default_of("train_window_s")  # window length, seconds
    stride_s: float | None = None          # None: non-overlapping windows
    normalize: bool = True                 # z-score each frequency within each window
    norm_eps: float = 1e-6
    skip_edges: bool = True                # leave out EdgeFrames at recording ends
    num_workers: int = 0                   # DataLoader worker processes per rank
    seed: int = 0
    checkpoint_every: int = default_of("checkpoint_every")   # steps between checkpoints (and validations)
    val_every: int | None = None           # steps between validations (None: checkpoint_every)
    val_batches: int = 20                  # validation batches per evaluation (fixed windows, fixed masks)
    keep_checkpoints: int = 2              # newest checkpoints kept on disk (older ones are deleted)
    device: str = "auto"                   # "auto" (CUDA if available), "cpu", "cuda", "cuda:N"
    precision: str = "float32"             # "float32", "bfloat16" (autocast) or "auto" (bf16 where native)
    log_every: int = 50                    # steps between progress-bar / log updates

    def __post_init__(self) -> None:
        if isinstance(self.betas, list):
            self.betas = tuple(self.betas)
        positive = ("batch_size", "steps", "checkpoint_every", "val_batches", "keep_checkpoints", "log_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"pretrain config: {name} must be a positive integer, got {value!r}")
        if self.val_every is not None and self.val_every < 1:
            raise UsageError(f"pretrain config: val_every must be positive, got {self.val_every!r}")
        if self.num_workers < 0:
            raise UsageError("pretrain config: num_workers must be >= 0")
        if not self.lr > 0:
            raise UsageError(f"pretrain config: lr must be positive, got {self.lr!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise UsageError(f"pretrain config: warmup_fraction must lie in [0, 1), got {self.warmup_fraction!r}")
        if self.decay not in DECAYS:
            raise UsageError(f"pretrain config: decay must be one of {DECAYS}, got {self.decay!r}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"pretrain config: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise UsageError("pretrain config: grad_clip and weight_decay must be >= 0")
        self.mask_config()   # validates the probabilities
        if self.precision not in PRECISIONS:
            raise UsageError(f"pretrain config: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not isinstance(self.model, ModelConfig):
            resolve_model_config(self.model)

    def mask_config(self) -> MaskConfig:
        return MaskConfig(p_time=self.mask_p, p_freq=self.mask_p if self.mask_p_freq is None else self.mask_p_freq)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model"] = self.model.to_dict() if isinstance(self.model, ModelConfig) else self.model
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PretrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"pretrain config: unknown keys {unknown}")
        data = dict(data)
        if isinstance(data.get("model"), Mapping):
            data["model"] = ModelConfig.from_dict(data["model"])
        return cls(**data)


@dataclass
class StepInfo:
    """Passed to ``on_step`` after every optimizer step (on every rank)."""

    step: int                 # steps completed, 1-based
    epoch: int
    loss: float               # this rank's batch loss
    lr: float
    indices: list[int]        # dataset items of this rank's batch
    rank: int
    world_size: int


@dataclass
class TrainingResult:
    """What :func:`pretrain` did. ``train_losses[i]`` is the loss of step i+1 (averaged over ranks)."""

    output_dir: Path
    checkpoint_dir: Path                          # the final checkpoint
    train_losses: list[float]
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    steps: int = 0
    resumed_from_step: int | None = None
    world_size: int = 1
    rank: int = 0
    loss_curve: Path | None = None
    seconds: float = 0.0


# ----------------------------------------------------------------------------------------------- data order
def _mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (NumPy's SeedSequence hashing, so nearby inputs give unrelated seeds)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


_TRAIN_SALT, _VAL_SALT, _DROPOUT_SALT = 1, 2, 3


class StepBatches:
    """Yields ``(step, indices)`` for steps ``start_step+1 .. total_steps`` on one rank.

    Each epoch is ``DistributedSampler``'s permutation for (seed, epoch), split into disjoint per-rank shards
    (the tail that does not divide evenly is dropped), cut into batches of ``batch_size`` (a partial last batch
    is dropped). Step s is batch ``s % batches_per_epoch`` of epoch ``s // batches_per_epoch``, so resuming
    at any step is a computation, not a replay.
    """

    def __init__(self, dataset: Dataset, batch_size: int, total_steps: int, start_step: int = 0, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.batch_size = batch_size
        self.total_steps = total_steps
        self.start_step = start_step
        self.batches_per_epoch = len(self.sampler) // batch_size
        if self.batches_per_epoch < 1:
            raise UsageError(f"{len(dataset)} training windows cannot fill one batch of {batch_size} on each of "
                             f"{world_size} process(es); lower the batch size or add data")

    def epoch_of(self, step: int) -> int:
        """Epoch of the 1-based step ``step``."""
        return (step - 1) // self.batches_per_epoch

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        step = self.start_step
        epoch, offset = divmod(step, self.batches_per_epoch)
        while step < self.total_steps:
            self.sampler.set_epoch(epoch)
            order = list(self.sampler)
            for k in range(offset, self.batches_per_epoch):
                step += 1
                yield step, order[k * self.batch_size:(k + 1) * self.batch_size]
                if step >= self.total_steps:
                    return
            epoch, offset = epoch + 1, 0


class MaskedWindowBatches(Dataset):
    """Turns a ``(step, indices)`` request into a masked batch, inside DataLoader workers when there are any.

    Returns a dict: step, indices (long), target (B, T, F) float32, masked (B, T, F), mask (B, T, F) bool.
    The masks depend only on (seed, salt, step, rank), never on which process computes them.
    """

    def __init__(self, windows: SpectrogramWindows, mask: MaskConfig, seed: int, salt: int, rank: int):
        self.windows, self.mask, self.seed, self.salt, self.rank = windows, mask, seed, salt, rank

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.windows[index]

    def __getitems__(self, request: tuple[int, list[int]]) -> dict[str, Any]:
        step, indices = request
        target = torch.from_numpy(self.windows.read_windows(indices))   # one batched read, no per-window stack
        generator = torch.Generator().manual_seed(_mix_seed(self.seed, self.salt, step, self.rank))
        masked = mask_spectrogram(target, self.mask, generator)
        return {"step": step, "indices": torch.tensor(indices, dtype=torch.long), "target": target,
                "masked": masked.masked, "mask": masked.mask}


def _passthrough(batch: Any) -> Any:
    return batch


def plot_loss_curve(path: Path, train_losses: Sequence[float], val_steps: Sequence[int],
                    val_losses: Sequence[float]) -> Path:
    """Training loss per step (raw and running mean) and validation losses, as a PNG (Agg, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    steps = np.arange(1, len(train_losses) + 1)
    losses = np.asarray(train_losses, dtype=float)
    if len(losses):
        ax.plot(steps, losses, color="0.75", linewidth=0.8, label="train (per step)")
        width = max(1, len(losses) // 50)
        if width > 1:
            smooth = np.convolve(losses, np.ones(width) / width, mode="valid")
            ax.plot(steps[width - 1:], smooth, color="C0", linewidth=1.5, label=f"train (mean of {width})")
    if len(val_losses):
        ax.plot(val_steps, val_losses, "o-", color="C1", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("masked reconstruction loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


# -------------------------------------------------------------------------------------------------- training
def _loader(dataset: Dataset, batch_sampler: Iterable, num_workers: int, seed: int, pin: bool) -> DataLoader:
    # An explicit generator keeps DataLoader from drawing its base seed from the global RNG.
    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers, collate_fn=_passthrough,
                      pin_memory=pin, generator=torch.Generator().manual_seed(seed))


def _validation_requests(n_items: int, batch_size: int, n_batches: int, seed: int, ddp: _Dist
                         ) -> list[tuple[int, list[int]]]:
    """A fixed sample of validation windows (same at every evaluation), sharded over ranks."""
    order = torch.randperm(n_items, generator=torch.Generator().manual_seed(_mix_seed(seed, _VAL_SALT))).tolist()
    per_rank = order[ddp.rank::ddp.world_size]
    requests = []
    for b in range(min(n_batches, math.ceil(len(per_rank) / batch_size))):
        chunk = per_rank[b * batch_size:(b + 1) * batch_size]
        if chunk:
            requests.append((b, chunk))
    return requests


def _evaluate(model: nn.Module, loader: DataLoader, config: PretrainConfig, device: torch.device,
              autocast: Callable[[], Any], ddp: _Dist) -> float:
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    with torch.no_grad():
        for batch in loader:
            target = batch["target"].to(device, non_blocking=True)
            with autocast():
                prediction = model(batch["masked"].to(device, non_blocking=True))
            parts = masked_reconstruction_loss(prediction, target, batch["mask"].to(device),
                                               config.content_alpha, config.content_threshold)
            total[0] += parts.loss.double() * target.shape[0]
            total[1] += target.shape[0]
    model.train(was_training)
    total = ddp.sum(total)
    return float(total[0] / total[1]) if float(total[1]) > 0 else float("nan")


def pretrain(train_paths: Sequence[str | os.PathLike], val_paths: Sequence[str | os.PathLike] | None,
             output_dir: str | os.PathLike, config: PretrainConfig | None = None,
             init_from: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
             on_step: Callable[[StepInfo], None] | None = None,
             spans: tuple[Mapping[str, Sequence], Mapping[str, Sequence]] | None = None) -> TrainingResult:
    """Pretrain a BrainBERT model on spectrogram derivatives; return losses and the final checkpoint.

    Parameters
    ----------
    train_paths, val_paths : derivative ``.npy`` files (with ``.json`` sidecars); ``val_paths`` may be empty.
    output_dir : receives ``checkpoints/step-XXXXXXXX/`` (model.safetensors, config.json, model_card.md,
        training_state.*, loss_curve.png) and ``checkpoints/latest.json``.
    config : :class:`PretrainConfig` (defaults if None).
    init_from : start from these weights (our checkpoint directory or a published ``.pth``) instead of a random
        initialisation; the model size then comes from that checkpoint. Ignored when resuming.
    resume : continue from the newest checkpoint in ``output_dir`` if there is one (model, optimizer, step,
        loss history; the RNG streams follow from the step). A finished run returns at once. With
        ``resume=False`` an ``output_dir`` that already holds checkpoints is refused (UsageError), never
        overwritten.
    progress : show a progress bar (rank 0).
    on_step : called with a :class:`StepInfo` after every optimizer step on every rank (an exception raised
        there stops training; the last checkpoint stays resumable).
    spans : (training, validation) frame ranges per file (see :class:`SpectrogramWindows`), for a validation
        split by windows within runs (:mod:`.validation_share`); recorded in the checkpoint's training summary.
    """
    config = config or PretrainConfig()
    output_dir = Path(output_dir)
    started = time.perf_counter()
    ddp = _setup_distributed(config.device)
    finished = False
    try:
        device = _resolve_device(config.device, ddp)
        fork_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            result = _pretrain(list(map(Path, train_paths)), [Path(p) for p in (val_paths or [])], output_dir,
                               config, init_from, resume, progress, on_step, ddp, device, started, spans)
        finished = True
        return result
    finally:
        if ddp.owns_group and dist.is_initialized():
            # DDP's reducer sits in reference cycles: left to interpreter shutdown it is freed after the gloo
            # threads' Python state is gone and the process aborts. Free it now, and let no rank tear its
            # connections down while a peer is still using them.
            gc.collect()
            if finished:
                dist.barrier()
            dist.destroy_process_group()


def _pretrain(train_paths: list[Path], val_paths: list[Path], output_dir: Path, config: PretrainConfig,
              init_from: str | os.PathLike | None, resume: bool, progress: bool,
              on_step: Callable[[StepInfo], None] | None, ddp: _Dist, device: torch.device,
              started: float, spans: tuple[Mapping[str, Sequence], Mapping[str, Sequence]] | None = None
              ) -> TrainingResult:
    window_kwargs = {"window_s": config.window_s, "stride_s": config.stride_s, "skip_edges": config.skip_edges,
                     "normalize": config.normalize, "eps": config.norm_eps}
    train_spans, val_spans = spans or ({}, {})
    train_set = SpectrogramWindows(train_paths, **window_kwargs, spans=train_spans)
    val_set = SpectrogramWindows(val_paths, **window_kwargs, spans=val_spans) if val_paths else None
    if val_set is not None and len(val_set) == 0:
        val_set = None

    # ---- model (and where training starts)
    resume_dir = latest_checkpoint(output_dir)
    if resume_dir is not None and not resume:
        raise UsageError(f"{output_dir}: holds checkpoints of an earlier run ({resume_dir.name}); resume it or "
                         f"choose another output directory")
    torch.manual_seed(config.seed)
    if resume_dir is not None:
        model, model_config, _ = load_checkpoint(resume_dir, verify=True)
    elif init_from is not None:
        model, model_config, _ = load_checkpoint(init_from)
        log.info("initialised from %s", init_from)
    else:
        model_config = resolve_model_config(config.model)
        model = BrainBertPretrainModel(model_config)
    if train_set.n_freqs != model_config.n_freqs:
        raise UsageError(f"{train_set.recordings[0].path}: {train_set.n_freqs} frequencies per frame, the model "
                         f"expects {model_config.n_freqs}")
    if (train_set.window_frames or 0) > model_config.max_frames:
        raise UsageError(f"windows of {train_set.window_frames} frames exceed the model's max_frames "
                         f"({model_config.max_frames})")
    if val_set is not None and (val_set.window_frames, val_set.n_freqs) != (train_set.window_frames,
                                                                             train_set.n_freqs):
        raise UsageError(f"{val_paths[0]}: validation windows differ in frames or frequencies from training")
    model.to(device).train()
    optimizer = build_optimizer(model, config)

    start_step = 0
    history: list[float] = []
    val_steps: list[int] = []
    val_losses: list[float] = []
    if resume_dir is not None:
        state, tensors = load_training_state(resume_dir, optimizer)
        start_step = int(state["step"])
        history = tensors["train_loss"].tolist()[:start_step]
        val_steps = [int(s) for s in tensors["val_steps"].tolist()]
        val_losses = tensors["val_loss"].tolist()
        saved, current = dict(state.get("pretrain_config", {})), config.to_dict()
        for settings, source in ((saved, saved.get("model")), (current, config.model)):
            try:
                settings["model"] = resolve_model_config(source).to_dict()
            except UsageError:
                pass
        changed = sorted(k for k, v in current.items()
                         if k in saved and saved[k] != v and k not in ("num_workers", "device", "log_every"))
        if changed:
            warnings.warn(f"{resume_dir}: resuming with changed settings {changed}; the run will not match an "
                          f"uninterrupted one", stacklevel=3)
        if state.get("world_size", 1) != ddp.world_size:
            warnings.warn(f"{resume_dir}: saved with {state.get('world_size')} process(es), resuming with "
                          f"{ddp.world_size}: the data order changes", stacklevel=3)
        log.info("resuming from %s (step %d)", resume_dir, start_step)

    train_model: nn.Module = model
    if ddp.active:
        # The only buffer is the constant positional table: nothing to broadcast at every forward.
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)

    precision = resolve_precision(config.precision, device)

    def autocast() -> Any:
        return precision_autocast(precision, device)

    mask_config = config.mask_config()
    sampler = StepBatches(train_set, config.batch_size, config.steps, start_step, config.seed, ddp.rank,
                          ddp.world_size)
    pin = device.type == "cuda"
    train_loader = _loader(MaskedWindowBatches(train_set, mask_config, config.seed, _TRAIN_SALT, ddp.rank),
                           sampler, config.num_workers, config.seed, pin)
    val_loader = None
    if val_set is not None:
        requests = _validation_requests(len(val_set), config.batch_size, config.val_batches, config.seed, ddp)
        val_loader = _loader(MaskedWindowBatches(val_set, mask_config, config.seed, _VAL_SALT, ddp.rank),
                             requests, 0, config.seed, pin)
    val_every = config.val_every or config.checkpoint_every

    summary = {
        "train_files": [str(p) for p in train_paths], "val_files": [str(p) for p in val_paths],
        "n_train_windows": len(train_set), "n_val_windows": len(val_set) if val_set is not None else 0,
        "hours": round(train_set.hours, 4), "optimizer": config.optimizer, "lr": config.lr,
        "batch_size": config.batch_size, "seed": config.seed, "world_size": ddp.world_size,
        "window_s": config.window_s, "window_frames": train_set.window_frames, "mask_p": config.mask_p,
        "total_steps": config.steps, "precision": precision, "precision_requested": config.precision,
        "initialised_from": None if init_from is None else str(init_from),
    }
    if spans:                  # a validation split by windows within runs: which frames each side used
        summary.update({"train_spans": {str(k): [list(v) for v in s] for k, s in train_spans.items()},
                        "val_spans": {str(k): [list(v) for v in s] for k, s in val_spans.items()}})

    def save(step: int) -> Path:
        return _save_training_checkpoint(output_dir, model, model_config, optimizer, config, step, history,
                                         val_steps, val_losses, summary, ddp)

    show = progress and ddp.is_main
    bar = None
    if show and start_step < config.steps:
        from ..progress import progress_bar   # a bar on a terminal, log lines every few percent elsewhere

        bar = progress_bar(config.steps, "pretrain", initial=start_step, unit="steps")

    losses_device = torch.zeros(config.steps, dtype=torch.float32, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    last_dir = latest_checkpoint(output_dir) if start_step >= config.steps else None
    step = start_step
    completed = saved = start_step   # the last step applied to the model, and the last one saved
    try:
        for batch in train_loader:
            step = int(batch["step"])
            torch.manual_seed(_mix_seed(config.seed, _DROPOUT_SALT, step, ddp.rank))
            lr = config.lr * lr_factor(step - 1, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            target = batch["target"].to(device, non_blocking=True)
            masked = batch["masked"].to(device, non_blocking=True)
            mask = batch["mask"].to(device, non_blocking=True)
            with autocast():
                prediction = train_model(masked)
            parts = masked_reconstruction_loss(prediction, target, mask, config.content_alpha,
                                               config.content_threshold)
            optimizer.zero_grad(set_to_none=True)
            parts.loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            with signals_deferred():   # Ctrl-C / SIGTERM land between steps, never inside an update
                optimizer.step()
                losses_device[step - 1] = ddp.mean(parts.loss.detach().float())
                completed = step

            if on_step is not None:
                on_step(StepInfo(step=step, epoch=sampler.epoch_of(step), loss=float(parts.loss.detach()), lr=lr,
                                 indices=batch["indices"].tolist(), rank=ddp.rank, world_size=ddp.world_size))
            if bar is not None:
                bar.update(1)
                if step % config.log_every == 0 or step == config.steps:
                    bar.set_postfix(loss=f"{float(losses_device[step - 1]):.4f}", lr=f"{lr:.2e}")

            is_last = step >= config.steps
            if val_loader is not None and (step % val_every == 0 or is_last):
                val_steps.append(step)
                val_losses.append(_evaluate(model, val_loader, config, device, autocast, ddp))
                log.info("step %d: validation loss %.4f", step, val_losses[-1])
            if step % config.checkpoint_every == 0 or is_last:
                history = history[:start_step] + losses_device[start_step:step].tolist()
                last_dir = save(step)
                saved = step
    except KeyboardInterrupt:   # Ctrl-C, or SIGTERM routed here: keep the steps done, resumable
        if bar is not None:
            bar.close()
            bar = None
        if completed > saved:
            history = history[:start_step] + losses_device[start_step:completed].tolist()
            del val_steps[len(val_losses):]   # a validation cut short has a step but no loss
            # no barrier: the other processes are being interrupted too
            kept = _save_training_checkpoint(output_dir, model, model_config, optimizer, config, completed,
                                             history, val_steps, val_losses, summary, _NoBarrier(**vars(ddp)))
            if ddp.is_main:
                log.warning("interrupted at step %d of %d: checkpoint saved to %s; run the same command again to "
                            "resume from there", completed, config.steps, kept)
        raise
    finally:
        if bar is not None:
            bar.close()
    history = history[:start_step] + losses_device[start_step:step].tolist()
    if last_dir is None:   # only when nothing was left to do and no checkpoint exists (steps already done)
        last_dir = latest_checkpoint(output_dir) or save(step)
    curve = last_dir / LOSS_CURVE_NAME
    return TrainingResult(output_dir=output_dir, checkpoint_dir=last_dir, train_losses=history,
                          val_steps=list(val_steps), val_losses=list(val_losses), steps=step,
                          resumed_from_step=start_step if resume_dir is not None else None,
                          world_size=ddp.world_size, rank=ddp.rank, loss_curve=curve if curve.is_file() else None,
                          seconds=time.perf_counter() - started)


def _save_training_checkpoint(output_dir: Path, model: BrainBertPretrainModel, model_config: ModelConfig,
                              optimizer: torch.optim.Optimizer, config: PretrainConfig, step: int,
                              history: list[float], val_steps: list[int], val_losses: list[float],
                              summary: dict[str, Any], ddp: _Dist) -> Path:
    """Rank 0 writes checkpoints/step-XXXXXXXX atomically (temporary folder renamed), then latest.json."""
    root = output_dir / CHECKPOINTS_DIR
    name = f"step-{step:08d}"
    final_dir = root / name
    if ddp.is_main:
        root.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
        try:
            recent = history[-min(len(history), 100):]
            extra = dict(summary, steps=step,
                         final_train_loss=round(float(np.mean(recent)), 6) if recent else None,
                         final_val_loss=round(val_losses[-1], 6) if val_losses else None)
            tensors = {"train_loss": torch.tensor(history, dtype=torch.float32),
                       "val_steps": torch.tensor(val_steps, dtype=torch.int64),
                       # float64 so resumed runs restore the exact validation losses (they are float64 means)
                       "val_loss": torch.tensor(val_losses, dtype=torch.float64)}
            state = {"step": step, "world_size": ddp.world_size, "pretrain_config": config.to_dict(),
                     "scheduler": {"kind": config.decay, "warmup_fraction": config.warmup_fraction,
                                   "lr": optimizer.param_groups[0]["lr"], "last_step": step},
                     "software": software_versions()}
            save_checkpoint(tmp_dir, model, model_config, extra, optimizer=optimizer, training_state=state,
                            training_tensors=tensors)
            plot_loss_curve(tmp_dir / LOSS_CURVE_NAME, history, val_steps, val_losses)
            os.chmod(tmp_dir, 0o755)
            if final_dir.exists():
                shutil.rmtree(final_dir)
            os.replace(tmp_dir, final_dir)
        finally:
            if tmp_dir.exists():
                shutil.rmtree(tmp_dir, ignore_errors=True)
        _write_latest(root, name, step, step >= config.steps)
        old = sorted((p for p in root.glob("step-*") if p.is_dir() and p.name != name), key=lambda p: p.name)
        for stale in old[:max(0, len(old) - (config.keep_checkpoints - 1))]:
            shutil.rmtree(stale, ignore_errors=True)
    ddp.barrier()
    return final_dir


__all__ = ["Lamb", "PretrainConfig", "StepBatches", "StepInfo", "TrainingResult", "build_optimizer",
           "latest_checkpoint", "lr_factor", "plot_loss_curve", "pretrain"]
