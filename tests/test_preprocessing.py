"""Tests for the array-level preprocessing: line-noise notches, re-referencing and resampling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from bids_brainbert.preprocessing import (
    ReferencedData,
    apply_reference,
    bipolar_reference,
    common_average_reference,
    laplacian_reference,
    line_noise_description,
    notch_frequencies,
    parse_contact_label,
    remove_line_noise,
    resample_signal,
    resampling_description,
    resampling_factors,
)

# ------------------------------------------------------------------------------------------------- helpers


def _sine(freq, sfreq, n_samples, amplitude=1.0, phase=0.0):
    t = np.arange(n_samples) / sfreq
    return amplitude * np.sin(2 * np.pi * freq * t + phase)


def _amplitudes(x, sfreq, freqs, start, stop):
    """Least-squares amplitude of each frequency in x[start:stop] (a DC term is fitted too)."""
    t = np.arange(len(x))[start:stop] / sfreq
    cols = [np.ones_like(t)]
    for f in freqs:
        cols += [np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)]
    coef, *_ = np.linalg.lstsq(np.column_stack(cols), x[start:stop], rcond=None)
    return np.hypot(coef[1::2], coef[2::2])


def _reconstruct(ref: ReferencedData, data, ch_names):
    """Rebuild the output from sources/weights, to check the recorded recipe."""
    index = {name: i for i, name in enumerate(ch_names)}
    out = np.zeros_like(ref.data)
    for row, (srcs, ws) in enumerate(zip(ref.sources, ref.weights)):
        for s, w in zip(srcs, ws):
            out[row] += w * data[index[s]]
    return out


# --------------------------------------------------------------------------------------------- line noise


@pytest.mark.parametrize("sfreq,line_freq", [(2048, 60), (1000, 60), (512, 60), (2048, 50), (1000, 50)])
def test_notch_removes_line_and_harmonic_keeps_other_frequency(sfreq, line_freq):
    n = int(4 * sfreq)
    x = np.vstack([
        _sine(line_freq, sfreq, n) + _sine(2 * line_freq, sfreq, n, 0.5, 0.3) + _sine(37, sfreq, n, 2.0, 1.0),
        _sine(37, sfreq, n, 1.0),
    ])
    y = remove_line_noise(x, sfreq, line_freq)
    assert y.shape == x.shape and y.dtype == np.float64
    start, stop = n // 4, 3 * n // 4          # away from the edges
    amp = _amplitudes(y[0], sfreq, [line_freq, 2 * line_freq, 37], start, stop)
    db = 20 * np.log10(amp[:2] / np.array([1.0, 0.5]))
    assert np.all(db < -30), db
    assert amp[2] == pytest.approx(2.0, rel=0.01)
    # a clean 37 Hz channel passes unchanged to within 1 % in the middle
    assert np.max(np.abs(y[1, start:stop] - x[1, start:stop])) < 0.01


def test_notch_is_zero_phase():
    sfreq, n = 1000.0, 8000
    rng = np.random.default_rng(0)
    band = signal.butter(4, [5, 150], btype="bandpass", fs=sfreq, output="sos")
    x = signal.sosfiltfilt(band, rng.standard_normal((1, n)), axis=-1)
    y = remove_line_noise(x, sfreq, 60.0)
    a = x[0, 1000:-1000] - x[0, 1000:-1000].mean()
    b = y[0, 1000:-1000] - y[0, 1000:-1000].mean()
    xcorr = signal.correlate(b, a, mode="full")
    lags = signal.correlation_lags(len(b), len(a), mode="full")
    assert lags[np.argmax(xcorr)] == 0
    # the notches remove little of a broadband signal
    assert np.corrcoef(a, b)[0, 1] > 0.98


def test_notch_impulse_response_is_symmetric():
    # zero phase <=> the impulse response is even around the impulse
    sfreq, n, centre = 1000.0, 20001, 10000
    impulse = np.zeros((1, n))
    impulse[0, centre] = 1.0
    h = remove_line_noise(impulse, sfreq, 50.0)[0]
    k = np.arange(1, 3000)
    np.testing.assert_allclose(h[centre + k], h[centre - k], atol=1e-9)
    assert h[centre] < 1.0 and np.max(np.abs(h[centre + k])) > 1e-3     # it did filter
    # and a sinusoid right next to the notch keeps its phase
    x = _sine(47, sfreq, n, 1.0, 0.7)[None]
    y = remove_line_noise(x, sfreq, 50.0)
    t = np.arange(n) / sfreq
    mid = slice(5000, 15000)
    c = np.linalg.lstsq(np.column_stack([np.sin(2 * np.pi * 47 * t[mid]), np.cos(2 * np.pi * 47 * t[mid])]),
                        y[0, mid], rcond=None)[0]
    assert np.arctan2(c[1], c[0]) == pytest.approx(0.7, abs=1e-3)


def test_notch_frequencies_respect_nyquist_and_cap():
    assert notch_frequencies(512, 60) == [60.0, 120.0, 180.0, 240.0]
    # 250 Hz is below 0.98 * 256 = 250.88 Hz, 300 is not
    assert notch_frequencies(512, 50) == [50.0, 100.0, 150.0, 200.0, 250.0]
    # 500 Hz equals Nyquist and 450 < 490 Hz limit
    assert notch_frequencies(1000, 50)[-1] == 450.0
    assert notch_frequencies(2048, 60, harmonics_up_to_hz=360) == [60.0, 120.0, 180.0, 240.0, 300.0, 360.0]
    assert notch_frequencies(2048, 60, harmonics_up_to_hz=359.9)[-1] == 300.0
    assert notch_frequencies(100, 60) == []     # line frequency above Nyquist: nothing to do
    for missing in (None, 0, 0.0, float("nan")):
        assert notch_frequencies(2048, missing) == []
    with pytest.raises(ValueError):
        notch_frequencies(2048, -50)


def test_harmonics_cap_leaves_higher_harmonics():
    sfreq, n = 2048, 8192
    x = (_sine(60, sfreq, n) + _sine(420, sfreq, n))[None]
    capped = remove_line_noise(x, sfreq, 60, harmonics_up_to_hz=360)
    full = remove_line_noise(x, sfreq, 60)
    amp_capped = _amplitudes(capped[0], sfreq, [60, 420], 2048, 6144)
    amp_full = _amplitudes(full[0], sfreq, [60, 420], 2048, 6144)
    assert amp_capped[0] < 0.0316 and amp_full[0] < 0.0316
    # 7th harmonic kept; only the skirt of the 12 Hz wide notch at 360 Hz touches it (about -1.4 %)
    assert amp_capped[1] == pytest.approx(1.0, rel=0.02)
    assert amp_full[1] < 0.0316


def test_notch_near_nyquist_harmonics_skipped_without_error():
    sfreq, n = 250.0, 2500          # 60 and 120 Hz notched (limit 122.5 Hz), 180 Hz aliased away
    x = (_sine(120, sfreq, n) + _sine(30, sfreq, n))[None]
    y = remove_line_noise(x, sfreq, 60)
    amp = _amplitudes(y[0], sfreq, [120, 30], 500, 2000)
    assert amp[0] < 0.0316
    assert amp[1] == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize("line_freq", [None, 0, float("nan")])
def test_no_line_freq_returns_unchanged_copy(line_freq):
    x = np.random.default_rng(1).standard_normal((3, 500)).astype(np.float32)
    y = remove_line_noise(x, 1000, line_freq)
    assert y.dtype == np.float64 and y is not x
    np.testing.assert_array_equal(y, x.astype(np.float64))
    desc = line_noise_description(1000, line_freq)
    assert desc["applied"] is False and desc["notch_freqs_hz"] == [] and desc["line_freq_hz"] is None


def test_notch_does_not_modify_input_and_handles_short_signals():
    x = _sine(60, 1000, 50)[None].copy()
    before = x.copy()
    y = remove_line_noise(x, 1000, 60)
    np.testing.assert_array_equal(x, before)
    assert y.shape == (1, 50) and np.all(np.isfinite(y))
    with pytest.raises(ValueError):
        remove_line_noise(np.zeros(100), 1000, 60)        # 1-D data
    with pytest.raises(ValueError):
        remove_line_noise(np.zeros((1, 100)), 1000, 60, quality=0)


def test_line_noise_description_lists_applied_notches():
    desc = line_noise_description(1000, 50, harmonics_up_to_hz=200, quality=25)
    json.dumps(desc)
    assert desc["applied"] is True
    assert desc["notch_freqs_hz"] == [50.0, 100.0, 150.0, 200.0]
    assert desc["quality"] == 25.0 and desc["line_freq_hz"] == 50.0 and desc["zero_phase"] is True
    assert desc["nyquist_limit_hz"] == pytest.approx(490.0)


# ------------------------------------------------------------------------------------------ contact labels


@pytest.mark.parametrize("name,expected", [
    ("LA1", ("LA", 1)),
    ("RH10", ("RH", 10)),
    ("A'3", ("A'", 3)),
    ("A3", ("A", 3)),
    ("LAH 4", ("LAH", 4)),
    ("LAH_04", ("LAH", 4)),
    (" LAH4 ", ("LAH", 4)),
    ("G012", ("G", 12)),
    ("la3", ("la", 3)),
    ("LA1-LA2", ("LA1-LA", 2)),
    ("LA", None),
    ("12", None),
    ("_4", None),
    ("REF", None),
    ("", None),
])
def test_parse_contact_label(name, expected):
    assert parse_contact_label(name) == expected


# ------------------------------------------------------------------------------------------------ Laplacian

SHAFT = ["LA1", "LA2", "LA3", "LA4"]
SHAFT_DATA = np.array([[1.0, 2.0, 3.0],
                       [4.0, 8.0, -2.0],
                       [9.0, 1.0, 0.0],
                       [16.0, 0.0, 5.0]])


def test_laplacian_interior_contacts_exact():
    ref = laplacian_reference(SHAFT_DATA, SHAFT)
    assert ref.ch_names == ["LA2", "LA3"]
    np.testing.assert_allclose(ref.data, [[4 - (1 + 9) / 2, 8 - (2 + 1) / 2, -2 - (3 + 0) / 2],
                                          [9 - (4 + 16) / 2, 1 - (8 + 0) / 2, 0 - (-2 + 5) / 2]])
    assert set(ref.dropped) == {"LA1", "LA4"}
    assert "only one neighbouring contact" in ref.dropped["LA1"]
    assert ref.sources == [["LA2", "LA1", "LA3"], ["LA3", "LA2", "LA4"]]
    assert ref.weights == [[1.0, -0.5, -0.5], [1.0, -0.5, -0.5]]
    assert ref.ch_types == ["seeg", "seeg"]
    assert ref.description["min_neighbours"] == 2
    json.dumps(ref.description)


def test_laplacian_min_neighbours_one_keeps_end_contacts():
    ref = laplacian_reference(SHAFT_DATA, SHAFT, min_neighbours=1)
    assert ref.ch_names == SHAFT and ref.dropped == {}
    np.testing.assert_allclose(ref.data[0], SHAFT_DATA[0] - SHAFT_DATA[1])
    np.testing.assert_allclose(ref.data[3], SHAFT_DATA[3] - SHAFT_DATA[2])
    np.testing.assert_allclose(ref.data[1], [-1.0, 6.5, -3.5])
    assert ref.sources[0] == ["LA1", "LA2"] and ref.weights[0] == [1.0, -1.0]


def test_laplacian_gap_in_numbering():
    names = ["LA1", "LA2", "LA4", "LA5", "LA6"]
    data = np.arange(10.0).reshape(5, 2) ** 2      # rows [0,1] [4,9] [16,25] [36,49] [64,81]
    ref = laplacian_reference(data, names)
    assert ref.ch_names == ["LA5"]
    np.testing.assert_allclose(ref.data, [[36 - (16 + 64) / 2, 49 - (25 + 81) / 2]])
    assert "(LA1)" in ref.dropped["LA2"] and "(LA5)" in ref.dropped["LA4"]

    ref1 = laplacian_reference(data, names, min_neighbours=1)
    assert ref1.ch_names == names
    np.testing.assert_allclose(ref1.data[1], [4 - 0, 9 - 1])        # LA2 - LA1, LA3 absent
    np.testing.assert_allclose(ref1.data[2], [16 - 36, 25 - 49])    # LA4 - LA5
    assert ref1.sources[1] == ["LA2", "LA1"]


def test_laplacian_primes_are_separate_shafts():
    names = ["A1", "A'1", "A2", "A'2", "A3", "A'3"]
    data = np.array([[1.0], [100.0], [2.0], [200.0], [4.0], [400.0]])
    ref = laplacian_reference(data, names)
    assert ref.ch_names == ["A2", "A'2"]
    np.testing.assert_allclose(ref.data[:, 0], [2 - (1 + 4) / 2, 200 - (100 + 400) / 2])
    assert ref.sources == [["A2", "A1", "A3"], ["A'2", "A'1", "A'3"]]


def test_laplacian_drops_unparseable_and_ambiguous_labels():
    names = ["LAH 1", "LAH_02", "LAH3", "REF", "RB2", "RB_2", "RB3"]
    data = np.arange(7.0)[:, None] * np.ones((1, 4))
    ref = laplacian_reference(data, names)
    assert ref.ch_names == ["LAH_02"]                       # separators do not split the shaft
    np.testing.assert_allclose(ref.data[0], 1 - (0 + 2) / 2)
    assert "contact number" in ref.dropped["REF"]
    assert "ambiguous" in ref.dropped["RB2"] and "ambiguous" in ref.dropped["RB_2"]
    assert "no neighbouring contact" in ref.dropped["RB3"]
    assert set(ref.dropped) == {"LAH 1", "LAH3", "REF", "RB2", "RB_2", "RB3"}
    assert ref.description["n_dropped_channels"] == 6


def test_referencing_validates_inputs():
    with pytest.raises(ValueError):
        laplacian_reference(np.zeros((2, 5)), ["LA1", "LA1"])
    with pytest.raises(ValueError):
        laplacian_reference(np.zeros((2, 5)), ["LA1"])
    with pytest.raises(ValueError):
        laplacian_reference(np.zeros((3, 5)), ["LA1", "LA2", "LA3"], min_neighbours=0)
    with pytest.raises(ValueError):
        apply_reference(np.zeros((2, 5)), ["LA1", "LA2"], ["seeg", "seeg"], "average")
    with pytest.raises(ValueError):
        apply_reference(np.zeros((2, 5)), ["LA1", "LA2"], ["seeg"])


# ------------------------------------------------------------------------------------------ common average


def test_car_single_group_exact():
    data = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    ref = common_average_reference(data, ["G1", "G2", "G3"])
    np.testing.assert_allclose(ref.data, [[-2.0, -4.0], [0.0, 0.0], [2.0, 4.0]])
    assert ref.ch_types == ["ecog"] * 3
    assert ref.sources[0] == ["G1", "G2", "G3"]
    np.testing.assert_allclose(ref.weights[0], [2 / 3, -1 / 3, -1 / 3])


def test_car_per_group_zero_mean_and_singletons_dropped():
    rng = np.random.default_rng(2)
    names = ["G1", "G2", "G3", "S1", "S2", "T1", "U1", "U2"]
    data = rng.standard_normal((8, 50)) + np.arange(8)[:, None]
    groups = {"G1": "grid", "G2": "grid", "G3": "grid", "S1": "strip", "S2": "strip", "T1": "lonely",
              "U1": "n/a"}                 # U1 explicitly ungrouped, U2 absent: pooled together
    ref = common_average_reference(data, names, groups)
    assert ref.ch_names == ["G1", "G2", "G3", "S1", "S2", "U1", "U2"]
    assert "only channel" in ref.dropped["T1"]
    out = dict(zip(ref.ch_names, ref.data))
    for members in (["G1", "G2", "G3"], ["S1", "S2"], ["U1", "U2"]):
        np.testing.assert_allclose(np.mean([out[m] for m in members], axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out["S1"], (data[3] - data[4]) / 2)
    assert ref.description["groups"] == {"grid": ["G1", "G2", "G3"], "strip": ["S1", "S2"], "lonely": ["T1"],
                                         "n/a": ["U1", "U2"]}
    # the same grouping given as one label per channel
    seq = common_average_reference(data, names, ["grid"] * 3 + ["strip"] * 2 + ["lonely", None, float("nan")])
    np.testing.assert_array_equal(seq.data, ref.data)
    np.testing.assert_allclose(_reconstruct(ref, data, names), ref.data, atol=1e-12)


# ------------------------------------------------------------------------------------------------- bipolar


def test_bipolar_names_and_values():
    names = ["LA1", "LA2", "LA3", "LA5", "B'1", "B'2", "X"]
    data = np.array([[1.0], [4.0], [9.0], [25.0], [7.0], [3.0], [0.0]])
    ref = bipolar_reference(data, names)
    assert ref.ch_names == ["LA1-LA2", "LA2-LA3", "B'1-B'2"]
    np.testing.assert_allclose(ref.data[:, 0], [1 - 4, 4 - 9, 7 - 3])
    assert ref.sources == [["LA1", "LA2"], ["LA2", "LA3"], ["B'1", "B'2"]]
    assert ref.weights == [[1.0, -1.0]] * 3
    assert set(ref.dropped) == {"LA5", "X"}               # gaps are not bridged
    assert "pair" in ref.dropped["LA5"]


# -------------------------------------------------------------------------------------------- apply_reference


def test_apply_reference_auto_mixed_seeg_ecog_dbs():
    names = ["LA1", "LA2", "LA3", "G1", "G2", "G3", "G4", "LD1", "LD2", "LD3"]
    types = ["seeg"] * 3 + ["ECOG"] * 4 + ["dbs"] * 3
    rng = np.random.default_rng(3)
    data = rng.standard_normal((10, 20))
    groups = {"G1": "gridA", "G2": "gridA", "G3": "stripB", "G4": "stripB"}
    ref = apply_reference(data, names, types, "auto", groups=groups)
    assert ref.ch_names == ["LA2", "G1", "G2", "G3", "G4", "LD2"]
    assert ref.ch_types == ["seeg", "ecog", "ecog", "ecog", "ecog", "dbs"]
    np.testing.assert_allclose(ref.data[0], data[1] - (data[0] + data[2]) / 2)
    np.testing.assert_allclose(ref.data[1], data[3] - (data[3] + data[4]) / 2)
    np.testing.assert_allclose(ref.data[3], data[5] - (data[5] + data[6]) / 2)
    np.testing.assert_allclose(ref.data[5], data[8] - (data[7] + data[9]) / 2)
    assert set(ref.dropped) == {"LA1", "LA3", "LD1", "LD3"}
    by_type = ref.description["by_type"]
    assert by_type["seeg"]["method"] == "laplacian" and by_type["dbs"]["method"] == "laplacian"
    assert by_type["ecog"]["method"] == "car"
    assert by_type["ecog"]["groups"] == {"gridA": ["G1", "G2"], "stripB": ["G3", "G4"]}
    assert ref.description["n_output_channels"] == 6
    json.dumps(ref.description)
    np.testing.assert_allclose(_reconstruct(ref, data, names), ref.data, atol=1e-12)


def test_apply_reference_types_never_mix():
    # an ECoG contact named like a shaft contact is not a Laplacian neighbour of the sEEG contacts
    names = ["LA1", "LA2", "LA3", "LA4"]
    types = ["seeg", "seeg", "ecog", "ecog"]
    data = np.array([[1.0], [2.0], [4.0], [8.0]])
    lap = apply_reference(data, names, types, "laplacian", min_neighbours=1)
    np.testing.assert_allclose(lap.data[:, 0], [1 - 2, 2 - 1, 4 - 8, 8 - 4])
    car = apply_reference(data, names, types, "car")          # one average per type
    np.testing.assert_allclose(car.data[:, 0], [-0.5, 0.5, -2.0, 2.0])
    bip = apply_reference(data, names, types, "bipolar")
    assert bip.ch_names == ["LA1-LA2", "LA3-LA4"]
    np.testing.assert_allclose(bip.data[:, 0], [-1.0, -4.0])


def test_apply_reference_none_and_empty():
    data = np.arange(6.0).reshape(3, 2)
    ref = apply_reference(data, ["A", "B", "C1"], ["seeg", "ecog", "dbs"], "none")
    np.testing.assert_array_equal(ref.data, data)
    assert ref.ch_names == ["A", "B", "C1"] and ref.dropped == {}
    assert ref.sources == [["A"], ["B"], ["C1"]] and ref.weights == [[1.0], [1.0], [1.0]]
    empty = apply_reference(data, ["A", "B", "C1"], ["seeg"] * 3, "laplacian")
    assert empty.data.shape == (0, 2) and len(empty.dropped) == 3


# ---------------------------------------------------------------------------------- properties (hypothesis)

STEMS = ["LA", "A", "A'", "RH"]


@st.composite
def _montage(draw):
    """Distinct contacts on up to three shafts, shuffled, with random signals."""
    contacts = draw(st.lists(st.tuples(st.sampled_from(STEMS), st.integers(1, 8)),
                             min_size=3, max_size=16, unique=True))
    contacts = draw(st.permutations(contacts))
    n_samples = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    names = [f"{stem}{num}" for stem, num in contacts]
    x, y, common = rng.standard_normal((len(names), n_samples)), rng.standard_normal((len(names), n_samples)), \
        rng.standard_normal((len(STEMS), n_samples))
    return contacts, names, x, y, common


_SCHEMES = [
    lambda d, n: laplacian_reference(d, n),
    lambda d, n: laplacian_reference(d, n, min_neighbours=1),
    lambda d, n: bipolar_reference(d, n),
    lambda d, n: common_average_reference(d, n, {name: name.rstrip("0123456789") for name in n}),
    lambda d, n: apply_reference(d, n, ["ecog" if name.startswith("R") else "seeg" for name in n], "auto",
                                 groups={name: "grid" for name in n}, min_neighbours=1),
]


@settings(max_examples=40, deadline=None)
@given(_montage(), st.floats(-5, 5), st.floats(-5, 5), st.sampled_from(range(len(_SCHEMES))))
def test_referencing_is_linear(montage, a, b, which):
    _, names, x, y, _ = montage
    ref = _SCHEMES[which]
    combined = ref(a * x + b * y, names)
    rx, ry = ref(x, names), ref(y, names)
    assert combined.ch_names == rx.ch_names == ry.ch_names
    np.testing.assert_allclose(combined.data, a * rx.data + b * ry.data, atol=1e-9)
    np.testing.assert_allclose(_reconstruct(rx, x, names), rx.data, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(_montage(), st.sampled_from(range(len(_SCHEMES))))
def test_referencing_cancels_common_mode_per_shaft(montage, which):
    contacts, names, x, _, common = montage
    # one shared signal per shaft (= per CAR group, and the R shaft is the auto scheme's ECoG grid)
    shifted = x + common[[STEMS.index(stem) for stem, _ in contacts]]
    ref = _SCHEMES[which]
    np.testing.assert_allclose(ref(shifted, names).data, ref(x, names).data, atol=1e-9)


# ---------------------------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("sfreq,target,up,down", [
    (1000, 2048, 256, 125),
    (2048, 1024, 1, 2),
    (512, 2048, 4, 1),
    (30000, 2048, 128, 1875),
])
def test_resample_keeps_40hz_sine(sfreq, target, up, down):
    n = int(2 * sfreq)
    x = np.vstack([_sine(40, sfreq, n, 1.0, 0.4), 3.0 + _sine(40, sfreq, n, 0.5)])
    y, achieved = resample_signal(x, sfreq, target)
    assert resampling_factors(sfreq, target)[:2] == (up, down)
    assert achieved == float(target)
    assert abs(y.shape[1] - round(n * target / sfreq)) <= 1
    m = y.shape[1]
    mid = slice(m // 8, m - m // 8)
    expected = _sine(40, achieved, m, 1.0, 0.4)
    # same frequency and phase: the output matches the analytic sine on the new time grid
    assert np.max(np.abs(y[0, mid] - expected[mid])) < 0.01
    amp = _amplitudes(y[1], achieved, [40], m // 8, m - m // 8)
    assert amp[0] == pytest.approx(0.5, rel=0.01)
    assert np.mean(y[1, mid]) == pytest.approx(3.0, rel=0.01)


def test_resample_noop_cases():
    x = np.random.default_rng(4).standard_normal((2, 100)).astype(np.float32)
    for target in (None, 1000, 1000.0):
        y, rate = resample_signal(x, 1000, target)
        assert rate == 1000.0 and y is not x and y.dtype == np.float64
        np.testing.assert_array_equal(y, x.astype(np.float64))
    desc = resampling_description(1000, 1000)
    assert desc["applied"] is False and desc["sfreq_hz"] == 1000.0


def test_resample_odd_rate_reports_achieved_rate():
    sfreq = 999.412
    up, down, achieved = resampling_factors(sfreq, 2048)
    assert down <= 10_000
    assert achieved == pytest.approx(sfreq * up / down, rel=1e-12)
    assert achieved == pytest.approx(2048, abs=1e-3)
    y, rate = resample_signal(np.zeros((1, 1000)), sfreq, 2048)
    assert rate == achieved and y.shape == (1, -(-1000 * up // down))
    desc = resampling_description(sfreq, 2048)
    json.dumps(desc)
    assert desc["applied"] is True and desc["up"] == up and desc["down"] == down and desc["sfreq_hz"] == achieved


def test_resample_validates_rates():
    with pytest.raises(ValueError):
        resample_signal(np.zeros((1, 10)), 0, 2048)
    with pytest.raises(ValueError):
        resample_signal(np.zeros((1, 10)), 1000, -1)
    with pytest.raises(ValueError):
        resample_signal(np.zeros(10), 1000, 2048)


# ------------------------------------------------------------------------- channel batches (bounded memory)
@pytest.mark.parametrize("scheme", ["auto", "car", "bipolar", "laplacian", "none"])
@pytest.mark.parametrize("batch_channels", [1, 2, 5])
def test_batched_preprocessing_equals_the_whole_signal_bit_for_bit(scheme, batch_channels):
    """Notch, re-reference and resample a few channels at a time (as the participant level does for long
    recordings) gives exactly the numbers of the whole-signal chain, for shafts and a grid with common average."""
    from bids_brainbert.preprocessing import reference_plan
    from bids_brainbert.preprocessing.batched import preprocessed_batches

    names = [f"LA{i}" for i in range(1, 6)] + [f"G{i}" for i in range(1, 7)] + ["RH1", "RH2", "X"]
    types = ["seeg"] * 5 + ["ecog"] * 6 + ["seeg", "seeg", "seeg"]
    groups = {**{f"G{i}": "grid" for i in range(1, 4)}, **{f"G{i}": "strip" for i in range(4, 7)}}
    data = np.random.default_rng(3).standard_normal((len(names), 5000)) * 1e-5
    notch = {"harmonics_up_to_hz": 360.0, "quality": 30.0}
    plan = reference_plan(names, types, scheme, groups=groups, min_neighbours=1)
    whole = plan.apply(remove_line_noise(data, 1000.0, 50.0, **notch)).data
    whole, _ = resample_signal(whole, 1000.0, 2048.0)
    reads = []

    def read(indices):
        reads.append(len(indices))
        return data[indices].copy()

    batches = list(preprocessed_batches(read, plan, 1000.0, line_freq=50.0, notch=notch, target_sfreq=2048.0,
                                        batch_channels=batch_channels))
    assert [start for start, _ in batches] == list(range(0, len(plan.derivations), batch_channels))
    np.testing.assert_array_equal(np.concatenate([rows for _, rows in batches]), whole.astype(np.float32))
    assert max(reads) <= 3 * batch_channels  # a batch and its neighbours, never the whole recording


# ------------------------------------------------------------------------------ ECoG grids: neighbours by position
def _grid(names, rows=4, cols=4, pitch=0.010, jitter=0.0, seed=0):
    """Positions of a rows x cols grid numbered row by row (metres), slightly jittered."""
    rng = np.random.default_rng(seed)
    return {name: ((k % cols) * pitch + rng.uniform(-jitter, jitter),
                   (k // cols) * pitch + rng.uniform(-jitter, jitter), 0.05)
            for k, name in enumerate(names)}


@pytest.mark.parametrize("names", [[f"G{i}" for i in range(1, 17)],      # labelled grid
                                   [str(i) for i in range(1, 17)]])       # numeric names (held-out datasets)
def test_ecog_grid_laplacian_uses_the_four_neighbourhood_from_coordinates(names):
    from bids_brainbert.preprocessing import reference_plan

    positions = _grid(names, jitter=0.0005)
    plan = reference_plan(names, ["ecog"] * 16, "laplacian", groups={n: "grid" for n in names},
                          positions=positions)
    neighbours = dict(zip(plan.ch_names, (set(near) for _, near in plan.neighbours)))
    rules = {rule for rule, _ in plan.neighbours}
    assert rules == {"coordinates"} and len(plan.ch_names) == 16      # corners have 2 neighbours: all kept
    g = names
    # G4 ends row 1 and G5 starts row 2: 31.6 mm apart, never neighbours
    assert g[4] not in neighbours[g[3]] and g[3] not in neighbours[g[4]]
    assert neighbours[g[0]] == {g[1], g[4]}                            # corner
    assert neighbours[g[1]] == {g[0], g[2], g[5]}                      # edge
    assert neighbours[g[5]] == {g[1], g[4], g[6], g[9]}                # interior: no diagonals
    # the reference is the mean of exactly those contacts
    data = np.random.default_rng(1).standard_normal((16, 50))
    out = plan.apply(data).data
    row = plan.ch_names.index(g[5])
    np.testing.assert_allclose(out[row], data[5] - data[[1, 4, 6, 9]].mean(axis=0))
    assert plan.summary["by_type"]["ecog"]["neighbours"] == "coordinates"


def test_seeg_shafts_keep_label_numbers_and_a_grid_without_coordinates_falls_back():
    from bids_brainbert.preprocessing import reference_plan

    names = [f"LA{i}" for i in range(1, 5)] + [f"G{i}" for i in range(1, 17)]
    types = ["seeg"] * 4 + ["ecog"] * 16
    positions = {**_grid(names[4:]), **{f"LA{i}": (0.0, 0.0, 0.004 * i) for i in range(1, 5)}}
    plan = reference_plan(names, types, "laplacian", positions=positions)
    rules = dict(zip(plan.ch_names, plan.neighbours))
    assert rules["LA2"] == ("label numbers", ["LA1", "LA3"])
    assert rules["G6"][0] == "coordinates"
    del positions["G7"]                               # one contact without coordinates: labels for its group
    plan = reference_plan(names, types, "laplacian", positions=positions)
    rules = dict(zip(plan.ch_names, plan.neighbours))
    assert rules["G6"] == ("label numbers", ["G5", "G7"])


def test_grid_neighbours_are_recorded_in_the_channels_table(tmp_path):
    """The participant level with --reference laplacian on a written ECoG grid: the channels table names the
    neighbours of every row and G4/G5 are not neighbours."""
    import warnings

    import mne
    import mne_bids
    import pandas as pd
    from datetime import datetime, timezone

    from bids_brainbert.cli.run import main

    names = [f"G{i}" for i in range(1, 17)]
    positions = _grid(names)
    sfreq, seconds = 256.0, 40.0
    data = np.random.default_rng(2).standard_normal((16, int(sfreq * seconds))) * 2e-5
    raw = mne.io.RawArray(data, mne.create_info(names, sfreq, ["ecog"] * 16, verbose=False), verbose=False)
    raw.set_meas_date(datetime(2020, 1, 1, tzinfo=timezone.utc))
    raw.info["line_freq"] = 50
    montage = mne.channels.make_dig_montage(ch_pos={n: np.asarray(p) for n, p in positions.items()},
                                            coord_frame="ras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw.set_montage(montage, on_missing="ignore", verbose=False)
    root = tmp_path / "raw"
    path = mne_bids.BIDSPath(subject="01", task="rest", datatype="ieeg", root=root, space="ACPC")
    with warnings.catch_warnings(), mne.utils.use_log_level("error"):
        warnings.simplefilter("ignore")
        mne_bids.write_raw_bids(raw, path, format="EDF", allow_preload=True, physical_range="channelwise",
                                overwrite=True, verbose=False, acpc_aligned=True)
    out = tmp_path / "out"
    assert main([str(root), str(out), "participant", "--reference", "laplacian", "--skip-bids-validation",
                 "--sampling-rate", "256", "--superlet-freq-max", "100", "--superlet-n-freqs", "8"]) == 0
    table = pd.read_csv(next(out.rglob("*_channels.tsv")), sep="\t", dtype=str)
    neighbours = dict(zip(table["name"], table["neighbours"].str.split(",")))
    assert set(table["neighbour_rule"]) == {"coordinates"} and len(table) == 16
    assert "G5" not in neighbours["G4"] and set(neighbours["G6"]) == {"G2", "G5", "G7", "G10"}
