"""Group analyses on plain arrays: leakage-free cross-validation, linear decoding probes, baseline features,
intrinsic dimensionality and brain-region assignment. Nothing here reads or writes files."""
