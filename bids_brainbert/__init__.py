"""bids-brainbert: BrainBERT-style representation learning for BIDS iEEG datasets."""

__version__ = "0.1.0"
