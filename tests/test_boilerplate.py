"""The methods text says which superlet was computed (adaptive or multiplicative), from what the spectrogram
sidecars recorded."""

from bids_brainbert import __version__
from bids_brainbert.config import RunConfig
from bids_brainbert.reports.boilerplate import methods_text, package_versions
from bids_brainbert.workflows.provenance import _recorded_transform


def test_the_superlet_mode_is_named():
    adaptive = methods_text(RunConfig().to_toml_dict(), package_versions(), __version__, "reports", sections=set())
    multiplicative = methods_text(RunConfig(superlet_mode="multiplicative").to_toml_dict(), package_versions(), __version__,
                                  "reports", sections=set())
    assert "an adaptive superlet transform" in adaptive and "orders 3 to 30 rising with frequency" in adaptive
    assert "a multiplicative superlet transform" in multiplicative and "adaptive" not in multiplicative
    assert "order 30 at every frequency" in multiplicative


def test_the_recorded_transform_wins_over_the_options():
    recorded = {"Kind": "superlet", "freqs_hz": [1.0, 2.0, 3.0], "mode": "multiplicative", "order_max": 10.0,
                "base_cycles": 2.0, "decimation": 8, "definition": "moca", "order_min": 1.0}
    settings = {**RunConfig().to_toml_dict(), **_recorded_transform(recorded)}
    text = methods_text(settings, package_versions(), __version__, "reports", sections=set())
    assert "a multiplicative superlet transform" in text and "3 frequencies linearly spaced from 1 to 3 Hz" in text
    assert "order 10 at every frequency" in text and "decimated by 8" in text
