"""BrainBERT model: encoder, span masking, reconstruction loss, checkpoints (ours and the published one)."""

from .checkpoints import (CheckpointError, load_checkpoint, load_published_checkpoint, save_checkpoint,
                          weights_sha256)
from .encoder import (PRESETS, BrainBertEncoder, BrainBertPretrainModel, ModelConfig, ReconstructionHead,
                      build_model, count_parameters, resolve_model_config)
from .loss import LossParts, masked_reconstruction_loss
from .masking import MaskConfig, MaskedBatch, mask_spectrogram

__all__ = [
    "PRESETS", "BrainBertEncoder", "BrainBertPretrainModel", "CheckpointError", "LossParts", "MaskConfig",
    "MaskedBatch", "ModelConfig", "ReconstructionHead", "build_model", "count_parameters", "load_checkpoint",
    "load_published_checkpoint", "mask_spectrogram", "masked_reconstruction_loss", "resolve_model_config",
    "save_checkpoint", "weights_sha256",
]
