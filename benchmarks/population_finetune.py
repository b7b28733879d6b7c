"""CPU cost of the population model's pretraining and of supervised fine-tuning (small model), each against a
reference run of related work in the same process.

* population model (default size, d_in 384 = the small encoder's width): seconds per pretraining step with 48 and
  128 electrodes; reference: one frozen forward pass over the same windows (the readout's cost);
* fine-tuning the small encoder (5 s windows, 205 frames x 40 frequencies): seconds per training epoch of 80
  windows with the top layer or all layers trained; reference: embedding the same 80 windows with the frozen model.
  The permutation null multiplies it by 1 + --finetune-permutations (every permutation refits every fold).

Run: python benchmarks/population_finetune.py [--threads N]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from timing import best_time  # benchmarks/timing.py (the script's folder is on sys.path)

from bids_brainbert.analyses.finetune import FinetuneModel, FinetuneParams, _fit, prepare_windows
from bids_brainbert.analyses.population import (PopulationConfig, PretrainParams, SubjectWindows,
                                                pretrain_population, summary_tokens)
from bids_brainbert.frozen_embeddings import EmbeddingParams, embed_windows
from bids_brainbert.model import build_model
from bids_brainbert.workflows.population import MODEL_SIZE

FRAMES, FREQS, WINDOWS = 205, 40, 80


def population(rng: np.random.Generator) -> None:
    for n_electrodes in (48, 128):
        subject = SubjectWindows("01", rng.standard_normal((300, n_electrodes, 384)).astype(np.float32),
                                 rng.uniform(-40, 40, (n_electrodes, 3)), [str(i) for i in range(n_electrodes)])
        config = PopulationConfig(d_in=384, **MODEL_SIZE)
        steps = 20
        model, _ = pretrain_population([subject], config, PretrainParams(steps=2), seed=0)
        step = best_time(lambda: pretrain_population([subject], config, PretrainParams(steps=steps), seed=0)) / steps
        readout = best_time(lambda: summary_tokens(model, subject), repeats=2)
        print(f"population model, {n_electrodes} electrodes: {step:.3f} s per pretraining step (32 windows); "
              f"300 steps {300 * step:.0f} s; frozen readout of 300 windows {readout:.2f} s "
              f"(one step = {step / readout * 300 / 32:.1f}x the frozen readout of its 32 windows)")


def finetune(rng: np.random.Generator) -> None:
    windows = rng.standard_normal((WINDOWS + 1, FRAMES, FREQS)).astype(np.float32)
    y = np.arange(WINDOWS + 1) % 2
    x = prepare_windows(windows)
    frozen = best_time(lambda: embed_windows(build_model("small", seed=0), windows[:WINDOWS], EmbeddingParams()),
                       repeats=2)
    for layers in (1, None):
        params = FinetuneParams(top_layers=layers, max_epochs=1, batch_size=16)

        def epoch():
            model = FinetuneModel(build_model("small", seed=0), params)
            _fit(model, x, y, np.arange(WINDOWS), np.array([WINDOWS]), params, torch.Generator().manual_seed(0),
                 set())

        seconds = best_time(epoch)
        null = FinetuneParams().n_permutations
        print(f"fine-tuning small, {'all' if layers is None else f'top {layers}'} layer(s): {seconds:.2f} s per epoch "
              f"of {WINDOWS} windows ({seconds / frozen:.1f}x embedding them frozen, {frozen:.2f} s); per electrode "
              f"with 100 events, 5 folds, 10 epochs: ~{seconds * 10 * 5:.0f} s, with the default {null}-permutation "
              f"refitted null (x{1 + null}): ~{seconds * 10 * 5 * (1 + null):.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    population(rng)
    finetune(rng)


if __name__ == "__main__":
    main()
