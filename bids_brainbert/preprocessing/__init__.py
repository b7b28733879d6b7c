"""Signal preprocessing on plain arrays: line-noise removal, re-referencing, resampling.

All functions take float arrays of shape (n_channels, n_samples) with rates and frequencies in Hz, return new
float64 arrays and never touch files or MNE objects.
"""

from .line_noise import line_noise_description, notch_frequencies, remove_line_noise
from .referencing import (
    REFERENCE_SCHEMES,
    ReferencedData,
    ReferencePlan,
    apply_reference,
    bipolar_reference,
    common_average_reference,
    laplacian_reference,
    parse_contact_label,
    reference_plan,
)
from .resampling import resample_signal, resampling_description, resampling_factors

__all__ = [
    "REFERENCE_SCHEMES",
    "ReferencedData",
    "ReferencePlan",
    "apply_reference",
    "bipolar_reference",
    "common_average_reference",
    "laplacian_reference",
    "line_noise_description",
    "notch_frequencies",
    "parse_contact_label",
    "reference_plan",
    "remove_line_noise",
    "resample_signal",
    "resampling_description",
    "resampling_factors",
]
