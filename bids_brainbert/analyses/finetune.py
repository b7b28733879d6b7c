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

Population variant: windows of shape (N, n_electrodes, frames, freqs) fine-tune one encoder shared by all the
electrodes of a subject, with one linear head on their pooled hidden states side by side (the concatenation, as
the concatenated population probe reads the frozen embeddings).

Chance level: a refitted permutation null, as the frozen probes have, but with few permutations
(``n_permutations``, 9 by default: each one refits every fold's fine-tuning, so the cost is ``1 + n_permutations``
times the fine-tuning alone, and the smallest attainable p-value is ``1 / (1 + n_permutations)``). The labels are
permuted within each run (:func:`~bids_brainbert.analyses.decoding.label_permutations`, the probes' schemes), the
same outer folds are refitted (inner split, early stopping and all) and scored against the permuted test labels;
the fold-mean AUCs of the permutations are the null, ``p = (1 + #{null >= observed}) / (1 + n)``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .. import seeds
from ..frozen_embeddings import pool_frames
from ..errors import UsageError
from ..params import default_of
from ..training.windows import zscore_frequencies
from .cross_validation import leakage_free_folds
from .decoding import PERMUTATION_SCHEMES, label_permutations, roc_auc


@dataclass(frozen=True)
class FinetuneParams:
    top_layers: int | None = default_of("finetune_layers")   # layers trained (from the top); None = all (and input)
    max_epochs: int = default_of("finetune_epochs")
    patience: int = 5                 # epochs without a better inner-validation AUC before stopping
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    validation_folds: int = 5         # the inner split holds out the last of this many blocks (or runs)
    layer: int = default_of("embedding_layer")             # hidden states read out (as the frozen embeddings)
    pooling: str = default_of("embedding_pooling")
    middle_frames: int = default_of("embedding_middle_frames")
    n_permutations: int = default_of("finetune_permutations")   # refitted null (each one a whole fine-tuning)
    permutation: str = default_of("decoding_permutation_scheme")   # see decoding.PERMUTATION_SCHEMES

    def __post_init__(self):
        if (self.top_layers is not None and self.top_layers < 0) or self.max_epochs < 1 or self.patience < 1 \
                or self.batch_size < 1 or self.validation_folds < 2 or self.n_permutations < 0 \
                or self.permutation not in PERMUTATION_SCHEMES:
            raise UsageError(f"fine-tuning: layers and permutations must be >= 0, epochs, patience and batch >= 1, "
                             f"validation folds >= 2 and the permutation scheme one of {PERMUTATION_SCHEMES}, got "
                             f"{self.to_dict()}")

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
    null_aucs: np.ndarray = field(default_factory=lambda: np.zeros(0))   # this fold's AUC per permutation
    null_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))   # ditto, the permuted fits


@dataclass
class FinetuneResult:
    scheme: str
    folds: list[FinetuneFold] = field(default_factory=list)
    auc_mean: float = float("nan")
    auc_sd: float = float("nan")
    null: np.ndarray = field(default_factory=lambda: np.zeros(0))   # fold-mean AUC of each permutation
    chance_mean: float = float("nan")
    chance_low: float = float("nan")                 # 2.5th percentile of the null
    chance_high: float = float("nan")                # 97.5th percentile
    p_value: float = float("nan")


class FinetuneModel(nn.Module):
    """The encoder of a :class:`~bids_brainbert.model.BrainBertPretrainModel` and a linear head; with
    ``n_electrodes > 1`` the encoder reads every electrode's window and the head their pooled states side by side."""

    def __init__(self, pretrained, params: FinetuneParams, n_electrodes: int = 1):
        super().__init__()
        self.pretrained = pretrained
        self.params = params
        self.head = nn.Linear(pretrained.config.d_model * n_electrodes, 1)
        for p in pretrained.parameters():
            p.requires_grad_(params.top_layers is None)
        if params.top_layers is not None:
            for layer in list(pretrained.encoder.layers)[-params.top_layers:] if params.top_layers else []:
                for p in layer.parameters():
                    p.requires_grad_(True)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, frames, freqs) or (N, n_electrodes, frames, freqs) -> (N,) logits."""
        batch = windows.shape[0]
        hidden = self.pretrained.hidden_states(windows.reshape(-1, *windows.shape[-2:]), layer=self.params.layer)
        pooled = pool_frames(hidden, self.params.pooling, self.params.middle_frames)
        return self.head(pooled.reshape(batch, -1))[:, 0]


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


def _fit_fold(x: torch.Tensor, y: np.ndarray, train: np.ndarray, test: np.ndarray, starts_s, stops_s, runs,
              make_encoder: Callable[[], nn.Module], params: FinetuneParams, gen: torch.Generator, torch_seed: int):
    """Fine-tune a fresh encoder on ``train`` (inner split for early stopping), score ``test`` once:
    (auc, fit, validation, best_epoch, epochs, seen)."""
    fit, validation = _inner_split(train, y, starts_s, stops_s, runs, params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed)
        model = FinetuneModel(make_encoder(), params, n_electrodes=x.shape[1] if x.dim() == 4 else 1)
        seen: set = set()
        best_epoch, epochs = _fit(model, x, y, fit, validation, params, gen, seen)
    auc = roc_auc(y[test], _scores(model, x[test], params.batch_size))
    return auc, fit, validation, best_epoch, epochs, np.array(sorted(seen), dtype=int)


def finetune_decode(windows: np.ndarray, y, starts_s, stops_s, runs, make_encoder: Callable[[], nn.Module],
                    params: FinetuneParams, n_folds: int = 5, gap_s: float = 0.0, seed: int = 0) -> FinetuneResult:
    """Held-out ROC-AUC of the fine-tuned encoder + head for binary ``y`` on the probes' outer folds, with its
    refitted permutation null (``params.n_permutations``).

    ``windows``: (N, frames, freqs), or (N, n_electrodes, frames, freqs) for the population variant.
    ``make_encoder()`` returns a fresh pretrained model (a new copy per fold and permutation). Folds whose training
    or test part holds one class only are not scored, as in :func:`~bids_brainbert.analyses.decoding.decode`.
    """
    y = np.asarray(y).astype(int)
    starts_s, stops_s = np.asarray(starts_s, float), np.asarray(stops_s, float)
    runs = np.asarray(runs) if runs is not None else np.zeros(len(y), dtype=int)
    x = prepare_windows(windows)
    folds, scheme = leakage_free_folds(starts_s, stops_s, runs, n_folds=n_folds, gap_s=gap_s)
    result = FinetuneResult(scheme)
    gen = torch.Generator().manual_seed(int(seed))
    labels = label_permutations(y, starts_s, runs, params.n_permutations, np.random.default_rng([int(seed), seeds.FINETUNE_NULL]),
                                params.permutation)
    for index, fold in enumerate(folds):
        if len(np.unique(y[fold.train])) < 2 or len(np.unique(y[fold.test])) < 2:
            continue
        auc, fit, validation, best_epoch, epochs, seen = _fit_fold(
            x, y, fold.train, fold.test, starts_s, stops_s, runs, make_encoder, params, gen, int(seed) + index)
        null_aucs, null_seen = [], set()
        for column in range(1, params.n_permutations + 1):      # the same fold refitted on permuted labels
            permuted = labels[:, column]
            if len(np.unique(permuted[fold.train])) < 2 or len(np.unique(permuted[fold.test])) < 2:
                null_aucs.append(float("nan"))
                continue
            perm_gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + 7919 * column + index)
            null_auc, *_, null_used = _fit_fold(x, permuted, fold.train, fold.test, starts_s, stops_s, runs,
                                                make_encoder, params, perm_gen, int(seed) + index + 7919 * column)
            null_aucs.append(null_auc)
            null_seen.update(null_used.tolist())
        result.folds.append(FinetuneFold(index, fit, validation, fold.test, auc, best_epoch, epochs, seen,
                                         np.array(null_aucs, float), np.array(sorted(null_seen), dtype=int)))
    if result.folds:
        aucs = np.array([f.auc for f in result.folds])
        result.auc_mean = float(aucs.mean())
        result.auc_sd = float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0
        _permutation_summary(result, params.n_permutations)
    return result


def _permutation_summary(result: FinetuneResult, n_permutations: int) -> None:
    """The null (fold-mean AUC per permutation over the folds it could score), its band and the p-value."""
    if n_permutations < 1:
        return
    per_fold = np.stack([f.null_aucs for f in result.folds])
    scored = np.isfinite(per_fold).sum(axis=0)
    null = (np.nansum(per_fold, axis=0) / np.maximum(scored, 1))[scored > 0]
    if not len(null):
        return
    result.null = null
    result.chance_mean = float(null.mean())
    result.chance_low, result.chance_high = (float(v) for v in np.percentile(null, [2.5, 97.5]))
    result.p_value = float((1 + np.sum(null >= result.auc_mean - 1e-12)) / (1 + len(null)))
