"""Supervised fine-tuning of the encoder (all layers or the top k) with a linear head on one decoding target,
inside the leakage-free outer folds of the probes.

For every outer fold of :func:`~bids_brainbert.analyses.cross_validation.leakage_free_folds` (the folds the
frozen probes use): a fresh copy of the pretrained encoder (``make_encoder``, so nothing learnt in one fold reaches
another), a linear head on the pooled hidden states of the windows (the same z-scoring per frequency within the
window and middle-frames pooling as the frozen embeddings), trained with class-balanced cross-entropy on the
training part of the fold. Early stopping: the training part is split again by the same leakage-free rule (its
last contiguous block in time, or its last run, with the overlapping windows purged) and the epoch with the best
inner-validation AUC is kept. The test part of the fold is scored once, after training. Every fold records its
training, validation and test indices.

No permutation null: it would refit every fold's fine-tuning per permutation. The chance level of the frozen probe
on the same folds is the reference.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..embedding import pool_frames
from ..training.windows import zscore_frequencies
from .cross_validation import leakage_free_folds
from .decoding import roc_auc


@dataclass(frozen=True)
class FinetuneParams:
    top_layers: int | None = 1        # transformer layers trained (from the top); None = all (and the input stage)
    max_epochs: int = 30
    patience: int = 5                 # epochs without a better inner-validation AUC before stopping
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    validation_folds: int = 5         # the inner split holds out the last of this many blocks (or runs)
    layer: int = -1                   # hidden states read out (as the frozen embeddings)
    pooling: str = "middle"
    middle_frames: int = 10

    def __post_init__(self):
        from ..errors import UsageError

        if (self.top_layers is not None and self.top_layers < 0) or self.max_epochs < 1 or self.patience < 1 \
                or self.batch_size < 1 or self.validation_folds < 2:
            raise UsageError(f"fine-tuning: layers must be >= 0, epochs, patience and batch >= 1 and validation "
                             f"folds >= 2, got {self.to_dict()}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FinetuneFold:
    fold: int
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    auc: float
    best_epoch: int
    epochs: int
    seen: np.ndarray          # every example the model was run on before the test part was scored


@dataclass
class FinetuneResult:
    scheme: str
    folds: list[FinetuneFold] = field(default_factory=list)
    auc_mean: float = float("nan")
    auc_sd: float = float("nan")


class FinetuneModel(nn.Module):
    """The encoder of a :class:`~bids_brainbert.model.BrainBertPretrainModel` and a linear head."""

    def __init__(self, pretrained, params: FinetuneParams):
        super().__init__()
        self.pretrained = pretrained
        self.params = params
        self.head = nn.Linear(pretrained.config.d_model, 1)
        for p in pretrained.parameters():
            p.requires_grad_(params.top_layers is None)
        if params.top_layers is not None:
            for layer in list(pretrained.encoder.layers)[-params.top_layers:] if params.top_layers else []:
                for p in layer.parameters():
                    p.requires_grad_(True)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        hidden = self.pretrained.hidden_states(windows, layer=self.params.layer)
        return self.head(pool_frames(hidden, self.params.pooling, self.params.middle_frames))[:, 0]


def _inner_split(train: np.ndarray, y, starts_s, stops_s, runs, params: FinetuneParams):
    """(fit, validation) indices from ``train``: the last inner fold holding both classes; (train, empty) if none."""
    folds, _ = leakage_free_folds(starts_s[train], stops_s[train], runs[train], n_folds=params.validation_folds)
    for inner in reversed(folds):
        if len(np.unique(y[train[inner.test]])) == 2 and len(np.unique(y[train[inner.train]])) == 2:
            return train[inner.train], train[inner.test]
    return train, train[:0]


def _scores(model: FinetuneModel, x: torch.Tensor, batch: int) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]).double().numpy()


def _fit(model: FinetuneModel, x: torch.Tensor, y: np.ndarray, fit: np.ndarray, validation: np.ndarray,
         params: FinetuneParams, gen: torch.Generator, seen: set) -> tuple[int, int]:
    """Train on ``fit``, keep the epoch with the best AUC on ``validation`` (all epochs when it is empty);
    ``seen`` collects the rows of ``x`` the model is run on."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    target = torch.as_tensor(y[fit], dtype=torch.float32)
    n_pos = float(target.sum())
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(fit) - n_pos) / max(n_pos, 1.0)))
    best, best_epoch, best_state, epoch = -np.inf, 0, None, 0
    for epoch in range(1, params.max_epochs + 1):
        model.train()
        order = torch.randperm(len(fit), generator=gen)
        for i in range(0, len(fit), params.batch_size):
            rows = order[i:i + params.batch_size]
            seen.update(fit[rows.numpy()].tolist())
            loss = loss_fn(model(x[fit[rows.numpy()]]), target[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if not len(validation):
            continue
        seen.update(validation.tolist())
        auc = roc_auc(y[validation], _scores(model, x[validation], params.batch_size))
        if auc > best:
            best, best_epoch, best_state = auc, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= params.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return (best_epoch if best_state is not None else epoch), epoch


def prepare_windows(windows: np.ndarray) -> torch.Tensor:
    """(N, T, n_freqs) raw spectrogram windows -> z-scored per frequency within each window, as pretraining."""
    return torch.from_numpy(np.stack([zscore_frequencies(np.asarray(w, np.float32)) for w in windows]))


def finetune_decode(windows: np.ndarray, y, starts_s, stops_s, runs, make_encoder: Callable[[], nn.Module],
                    params: FinetuneParams, n_folds: int = 5, gap_s: float = 0.0, seed: int = 0) -> FinetuneResult:
    """Held-out ROC-AUC of the fine-tuned encoder + head for binary ``y`` on the probes' outer folds.

    ``make_encoder()`` returns a fresh pretrained model (a new copy per fold). Folds whose training or test part
    holds one class only are not scored, as in :func:`~bids_brainbert.analyses.decoding.decode`.
    """
    y = np.asarray(y).astype(int)
    starts_s, stops_s = np.asarray(starts_s, float), np.asarray(stops_s, float)
    runs = np.asarray(runs) if runs is not None else np.zeros(len(y), dtype=int)
    x = prepare_windows(windows)
    folds, scheme = leakage_free_folds(starts_s, stops_s, runs, n_folds=n_folds, gap_s=gap_s)
    result = FinetuneResult(scheme)
    gen = torch.Generator().manual_seed(int(seed))
    for index, fold in enumerate(folds):
        if len(np.unique(y[fold.train])) < 2 or len(np.unique(y[fold.test])) < 2:
            continue
        fit, validation = _inner_split(fold.train, y, starts_s, stops_s, runs, params)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) + index)
            model = FinetuneModel(make_encoder(), params)
            seen: set = set()
            best_epoch, epochs = _fit(model, x, y, fit, validation, params, gen, seen)
        auc = roc_auc(y[fold.test], _scores(model, x[fold.test], params.batch_size))
        result.folds.append(FinetuneFold(index, fit, validation, fold.test, auc, best_epoch, epochs,
                                         np.array(sorted(seen), dtype=int)))
    if result.folds:
        aucs = np.array([f.auc for f in result.folds])
        result.auc_mean = float(aucs.mean())
        result.auc_sd = float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0
    return result
