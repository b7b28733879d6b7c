"""The random-weights control: the same network as a trained model, never trained.

A frozen transformer with random weights already maps spectrogram windows to features a linear probe can use
(Neuroprobe found frozen BrainBERT no better than it), so every embedding model is decoded next to its untrained
twin. Initialisation is the one pretraining starts from: ``torch.manual_seed(seed)`` and then the model's own
constructor, i.e. PyTorch's default Kaiming-uniform weights for the linear layers (biases of our Linear layers at
zero) and attention projections (Xavier-uniform), LayerNorms at the identity. With the run's ``--random-seed`` the
control is therefore exactly the trained model's weights at step 0.
"""

from __future__ import annotations

import hashlib

import torch

from .encoder import BrainBertPretrainModel, ModelConfig, build_model

RANDOM_SUFFIX = "Random"
INITIALISATION = ("torch.manual_seed(seed), then PyTorch's default initialisation of the same architecture "
                  "(Linear: Kaiming-uniform, attention in-projections: Xavier-uniform, Linear biases 0, LayerNorm "
                  "weight 1 and bias 0): the pretraining run's weights at step 0 when the seeds match")


def random_label(label: str) -> str:
    """Desc label of the control's embedding files: ``<label>Random``."""
    return f"{label}{RANDOM_SUFFIX}"


def random_weights_model(config: ModelConfig, seed: int) -> BrainBertPretrainModel:
    """An untrained model of ``config``'s architecture and size, in eval mode, reproducible from ``seed``."""
    return build_model(config, seed=seed).eval()


def state_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the parameter names, shapes and float32 bytes: identifies the random weights in sidecars."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()
