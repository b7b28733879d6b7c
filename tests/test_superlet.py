"""Superlet and STFT front ends against independent direct implementations, and their properties."""

import hashlib
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal as sps
from scipy.fft import next_fast_len
from scipy.signal import fftconvolve

from bids_brainbert.transforms import superlet_plan as superlet_plan_module
from bids_brainbert.transforms.stft import stft_spectrogram
from bids_brainbert.transforms.superlet import (SuperletParams, edge_frames, superlet_frame_times,
                                                superlet_transform)
from bids_brainbert.transforms.superlet_numba import GAIN_BLOCK, gaussian_gains
from bids_brainbert.transforms.superlet_plan import fft_length


def reference_wavelets(order: float, params: SuperletParams) -> list[tuple[float, float]]:
    """(cycles, weight) written from the two definitions, weights before the 1/span normalisation.

    BrainBERT's code (Syncopy's fractional adaptive transform): orders order_min, order_min + 1, ... up to o, the
    next one with the fractional remainder. Moca et al.: the same from order 1."""
    first = params.order_min if params.definition == "brainbert" else 1.0
    wavelets, k = [], first
    while k <= order + 1e-9:
        wavelets.append((params.base_cycles * k, 1.0))
        k += 1.0
    remainder = order - (k - 1.0)
    if remainder > 1e-9:
        wavelets.append((params.base_cycles * k, remainder))
    return wavelets


def direct_superlet(x: np.ndarray, sfreq: float, params: SuperletParams, support_sd: float = 8.0) -> np.ndarray:
    """Obviously-correct float64 reference: explicit time-domain Morlet wavelets (±``support_sd`` sd), one
    full-rate convolution each, geometric mean with the definition's exponents, then every ``decimation``-th
    sample."""
    out = []
    for freq, order in zip(params.freqs_hz, params.orders()):
        wavelets = reference_wavelets(order, params)
        span = sum(weight for _, weight in wavelets)
        log_sum = np.zeros(len(x))
        for cycles, weight in wavelets:
            sd = cycles / (params.k_sd * freq)
            reach = math.ceil(support_sd * sd * sfreq)
            t = np.arange(-reach, reach + 1) / sfreq
            wavelet = np.exp(-0.5 * (t / sd) ** 2) * np.exp(2j * np.pi * freq * t) / (sfreq * sd * math.sqrt(2 * math.pi))
            with warnings.catch_warnings():  # exact zeros far outside a chirp's band: log(0) = -inf is right
                warnings.simplefilter("ignore", RuntimeWarning)
                log_sum += weight * np.log(np.abs(fftconvolve(x, wavelet, mode="same")))
        out.append(np.exp(log_sum / span)[::params.decimation])
    return np.array(out)


def interior(a: np.ndarray, edge: int) -> np.ndarray:
    return a[..., edge:a.shape[-1] - edge]


SMALL = SuperletParams(freqs_hz=(3.0, 11.5, 40.0, 97.0, 180.0), order_min=1.0, order_max=6.5, decimation=8)


@pytest.mark.parametrize("kind", ["random", "chirp"])
def test_matches_direct_reference(kind):
    sfreq = 512.0
    rng = np.random.default_rng(123)
    t = np.arange(4096) / sfreq
    x = rng.standard_normal(len(t)) if kind == "random" else sps.chirp(t, f0=2, t1=t[-1], f1=200, method="log")
    reference = direct_superlet(x, sfreq, SMALL)
    edge = edge_frames(sfreq, SMALL)
    assert 0 < edge < reference.shape[1] // 3
    # Relative error, plus an absolute floor (a fraction of each frequency's peak) for the cells where a chirp has
    # no energy at that frequency: there every wavelet's magnitude is rounding noise in both implementations and
    # their geometric mean amplifies it (measured: ~4e-6 of the peak in float64, ~3e-4 in float32).
    peak = reference.max(axis=1, keepdims=True)
    for dtype, rtol, floor in ((np.float64, 1e-8, 1e-5), (np.float32, 1e-3, 1e-3)):
        fast = superlet_transform(x, sfreq, SMALL, dtype=dtype)[0]
        assert fast.dtype == dtype and fast.shape == reference.shape
        error = np.abs(interior(fast, edge) - interior(reference, edge))
        allowed = rtol * interior(reference, edge) + floor * peak
        assert (error <= allowed).all(), (dtype, (error / interior(reference, edge)).max())
        if kind == "random":  # no silent cells: the plain relative error must hold everywhere
            assert (error / interior(reference, edge)).max() < rtol


def test_brainbert_defaults_match_reference_on_a_short_recording():
    sfreq = 2048.0
    params = SuperletParams()  # 40 frequencies 0.1-200 Hz, orders 3->30, c1=1, decimation 50
    assert len(params.freqs_hz) == 40 and params.orders()[0] == 3 and params.orders()[-1] == 30
    x = np.random.default_rng(7).standard_normal(int(3 * sfreq))
    reference = direct_superlet(x, sfreq, params)
    fast = superlet_transform(x, sfreq, params, dtype=np.float64)[0]
    # 0.1 Hz needs +-18 s of context: compare the frequencies whose longest wavelet fits, 1 s from each end
    usable = np.asarray(params.freqs_hz) >= 5
    frames = slice(41, -41)
    error = np.abs(fast[usable, frames] - reference[usable, frames]) / reference[usable, frames]
    assert error.max() < 1e-8


def test_order_one_is_a_morlet_cwt():
    sfreq, freq = 1000.0, 37.0
    x = np.random.default_rng(3).standard_normal(3000)
    params = SuperletParams(freqs_hz=(freq,), order_min=1, order_max=1, base_cycles=4, decimation=5,
                            mode="multiplicative")
    sd = 4 / (5 * freq)
    t = np.arange(-int(8 * sd * sfreq), int(8 * sd * sfreq) + 1) / sfreq
    morlet = np.exp(-0.5 * (t / sd) ** 2) * np.exp(2j * np.pi * freq * t) / (sfreq * sd * math.sqrt(2 * math.pi))
    cwt = np.abs(fftconvolve(x, morlet, mode="same"))[::5]
    np.testing.assert_allclose(superlet_transform(x, sfreq, params, dtype=np.float64)[0, 0, 40:-40],
                               cwt[40:-40], rtol=1e-9)


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(1e-12, 1e12), seed=st.integers(0, 10_000))
def test_scaling_the_input_scales_the_output(scale, seed):
    # wide range: the geometric mean multiplies powers as mantissas and binary exponents, which must neither
    # overflow nor underflow for volts (1e-5) or raw ADC counts (1e4) alike, in float32 too
    x = np.random.default_rng(seed).standard_normal(1024)
    params = SuperletParams(freqs_hz=(4.0, 20.0, 60.0), order_min=1, order_max=4, decimation=4)
    for dtype, rtol in ((np.float64, 1e-9), (np.float32, 2e-4)):
        base = superlet_transform(x, 256.0, params, dtype=dtype)
        np.testing.assert_allclose(superlet_transform(scale * x, 256.0, params, dtype=dtype), scale * base,
                                   rtol=rtol)


@settings(max_examples=10, deadline=None)
@given(shift_frames=st.integers(1, 20), seed=st.integers(0, 10_000))
def test_shifting_by_the_decimation_shifts_the_frames(shift_frames, seed):
    params = SuperletParams(freqs_hz=(8.0, 30.0, 90.0), order_min=1.5, order_max=5, decimation=4)
    sfreq = 256.0
    x = np.random.default_rng(seed).standard_normal(2048)
    # zeros before the signal are what the transform assumes outside it anyway: every frame just moves
    shifted = np.concatenate([np.zeros(shift_frames * params.decimation), x])
    a = superlet_transform(x, sfreq, params, dtype=np.float64)[0]
    b = superlet_transform(shifted, sfreq, params, dtype=np.float64)[0]
    np.testing.assert_allclose(b[:, shift_frames:], a, rtol=1e-7, atol=1e-12 * a.max())


@pytest.mark.parametrize("sfreq", [512.0, 1000.0, 2048.0])
@pytest.mark.parametrize("tone", [13.0, 61.0, 150.0])
def test_a_sinusoid_peaks_at_the_nearest_frequency(sfreq, tone):
    params = SuperletParams()
    t = np.arange(int(40 * sfreq)) / sfreq
    spec = superlet_transform(np.sin(2 * np.pi * tone * t), sfreq, params)[0]
    middle = spec[:, spec.shape[1] // 2]
    freqs = np.asarray(params.freqs_hz)
    assert freqs[np.argmax(middle)] == freqs[np.argmin(np.abs(freqs - tone))]


@pytest.mark.parametrize("index", [5, 20, 38])
def test_a_sinusoid_on_an_analysed_frequency_has_half_its_amplitude(index):
    params = SuperletParams()
    sfreq = 2048.0
    t = np.arange(int(40 * sfreq)) / sfreq
    spec = superlet_transform(3.0 * np.sin(2 * np.pi * params.freqs_hz[index] * t), sfreq, params)[0]
    # every unit-area Morlet gives A/2 for a sinusoid at its centre, so their geometric mean does too, up to the
    # ripple from the short wavelets' leak of the negative-frequency image (4% for one cycle, <1% after the mean)
    assert spec[index, spec.shape[1] // 2] == pytest.approx(1.5, rel=1e-2)


def test_frame_times_and_output_kinds():
    np.testing.assert_allclose(superlet_frame_times(101, 100.0, 10), np.arange(11) / 10)
    x = np.random.default_rng(0).standard_normal((2, 500))
    params = SuperletParams(freqs_hz=(5.0, 25.0), order_min=1, order_max=3, decimation=10)
    magnitude = superlet_transform(x, 100.0, params, dtype=np.float64)
    assert magnitude.shape == (2, 2, 50)
    power = superlet_transform(x, 100.0, SuperletParams(**{**params.to_dict(), "freqs_hz": (5.0, 25.0),
                                                              "output": "power"}), dtype=np.float64)
    np.testing.assert_allclose(power, magnitude ** 2, rtol=1e-10)
    with pytest.raises(ValueError, match="Nyquist"):
        superlet_transform(x, 40.0, params)


def test_chunked_long_signal_equals_the_one_shot_transform():
    sfreq = 2048.0
    params = SuperletParams()
    x = np.random.default_rng(11).standard_normal((2, int(150 * sfreq)))
    one_shot = superlet_transform(x, sfreq, params, dtype=np.float64)
    # chunks of 500 frames (12 s) each need 45 s of context on both sides for the 0.1 Hz superlet
    chunked = superlet_transform(np.lib.stride_tricks.as_strided(x, writeable=False), sfreq, params,
                                 dtype=np.float64, chunk_frames=500)
    assert chunked.shape == one_shot.shape == (2, 40, 6144)
    np.testing.assert_allclose(chunked, one_shot, rtol=1e-9)
    chunked32 = superlet_transform(x, sfreq, params, dtype=np.float32, chunk_frames=1000)
    np.testing.assert_allclose(chunked32, one_shot, rtol=1e-3)


def test_torch_backend_matches_numpy_and_the_reference():
    sfreq = 512.0
    t = np.arange(4096) / sfreq
    x = np.stack([np.random.default_rng(5).standard_normal(len(t)),
                  sps.chirp(t, f0=2, t1=t[-1], f1=200, method="log")])
    edge = edge_frames(sfreq, SMALL)
    reference = interior(direct_superlet(x[0], sfreq, SMALL), edge)
    for dtype, rtol, floor in ((np.float64, 1e-8, 1e-5), (np.float32, 1e-3, 1e-3)):
        on_torch = superlet_transform(x, sfreq, SMALL, dtype=dtype, backend="torch", device="cpu")
        assert on_torch.dtype == dtype
        np.testing.assert_allclose(interior(on_torch[0], edge), reference, rtol=rtol)
        # the chirp's silent cells are rounding noise in both backends: allowed a floor of each frequency's peak
        on_numpy = superlet_transform(x, sfreq, SMALL, dtype=dtype)
        allowed = 2 * rtol * on_numpy + floor * on_numpy.max(axis=-1, keepdims=True)
        assert (np.abs(on_torch - on_numpy) <= allowed).all()
    chunked = superlet_transform(x, sfreq, SMALL, dtype=np.float64, backend="torch", device="cpu", chunk_frames=70)
    one_shot = superlet_transform(x, sfreq, SMALL, dtype=np.float64)
    np.testing.assert_allclose(chunked[0], one_shot[0], rtol=1e-9)
    assert (np.abs(chunked - one_shot) <= 1e-9 * one_shot + 1e-5 * one_shot.max(axis=-1, keepdims=True)).all()
    with pytest.raises(ValueError, match="backend"):
        superlet_transform(x, sfreq, SMALL, backend="jax")


def test_multiplicative_mode_edge_trimming_and_zscoring():
    sfreq = 512.0
    x = np.random.default_rng(9).standard_normal(4096)
    multiplicative = SuperletParams(**{**SMALL.to_dict(), "freqs_hz": SMALL.freqs_hz, "mode": "multiplicative"})
    assert (multiplicative.orders() == SMALL.order_max).all()
    edge = edge_frames(sfreq, multiplicative)
    reference = interior(direct_superlet(x, sfreq, multiplicative), edge)
    trimmed = superlet_transform(x, sfreq, multiplicative, dtype=np.float64, trim_edges=True)[0]
    np.testing.assert_allclose(trimmed, reference, rtol=1e-8)
    scored = superlet_transform(x, sfreq, multiplicative, dtype=np.float64, trim_edges=True, zscore=True)[0]
    np.testing.assert_allclose(scored, (reference - reference.mean(1, keepdims=True))
                               / reference.std(1, keepdims=True), atol=1e-7)
    log = superlet_transform(x, sfreq, SuperletParams(**{**SMALL.to_dict(), "freqs_hz": SMALL.freqs_hz,
                                                         "output": "log"}), dtype=np.float64)[0]
    np.testing.assert_allclose(interior(log, edge_frames(sfreq, SMALL)),
                               np.log(interior(direct_superlet(x, sfreq, SMALL), edge_frames(sfreq, SMALL))),
                               atol=1e-8)


def test_output_bits_do_not_depend_on_the_number_of_threads():
    # a resumed or re-run job on another node must reproduce the derivative byte for byte
    script = ("import hashlib, numpy as np; from bids_brainbert.transforms.superlet import superlet_transform, "
              "SuperletParams; x = np.random.default_rng(4).standard_normal((3, 40960)).astype(np.float32); "
              "print(hashlib.sha256(superlet_transform(x, 2048.0, SuperletParams()).tobytes()).hexdigest())")
    digests = set()
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        digests.add(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                   check=True).stdout.strip())
    x = np.random.default_rng(4).standard_normal((3, 40960)).astype(np.float32)
    digests.add(hashlib.sha256(superlet_transform(x, 2048.0, SuperletParams()).tobytes()).hexdigest())
    assert len(digests) == 1


def test_stft_matches_scipy_with_brainbert_parameters():
    sfreq = 2048.0
    t = np.arange(int(5 * sfreq)) / sfreq
    x = np.sin(2 * np.pi * 51.2 * t)
    spec, freqs, times = stft_spectrogram(x[None], sfreq)
    assert spec.shape[:2] == (1, 40) and freqs[-1] == pytest.approx(199.68)
    assert freqs[np.argmax(spec[0, :, spec.shape[2] // 2])] == pytest.approx(51.2)
    _, _, z = sps.stft(x, fs=sfreq, nperseg=400, noverlap=350)
    np.testing.assert_allclose(spec[0], np.abs(z[:40]))
    np.testing.assert_allclose(np.diff(times), 50 / sfreq)


@settings(max_examples=40, deadline=None)
@given(first=st.floats(-5000, 5000), n=st.integers(1, 3000), centre=st.floats(-5000, 5000),
       sd=st.floats(3.0, 2000.0))
def test_generated_gains_match_the_gaussian(first, n, centre, sd):
    # the recurrence that replaces one exponential per bin, over the stretches the fold asks for (within the
    # band's 7.5 sd in float64, where the kernel uses it)
    first = float(np.floor(first))
    bins = first + np.arange(n)
    exact = np.exp(-0.5 * ((bins - centre) / sd) ** 2)
    inside = np.abs(bins - centre) <= 7.5 * sd + 2
    out = np.empty(n)
    gaussian_gains(first, n, centre, sd, out, np.empty(GAIN_BLOCK), np.empty(GAIN_BLOCK))
    if inside.all():
        np.testing.assert_allclose(out, exact, rtol=1e-10)


def test_generated_gains_path_equals_the_cached_one(monkeypatch):
    # long recordings (gains over the cache limit) fold with gains generated on the fly: same result
    x = np.random.default_rng(21).standard_normal((2, int(20 * 2048)))
    params = SuperletParams()
    cached = {dtype: superlet_transform(x, 2048.0, params, dtype=dtype) for dtype in (np.float32, np.float64)}
    monkeypatch.setattr(superlet_plan_module, "GAIN_CACHE_ELEMENTS", 0)
    superlet_plan_module.superlet_plan.cache_clear()
    try:
        plan = superlet_plan_module.superlet_plan(fft_length(x.shape[1], 800, 50), 2048.0, params, "float32",
                                                  (0, 800))
        assert plan.cached_gains is None
        for dtype, rtol in ((np.float64, 1e-10), (np.float32, 1e-5)):
            np.testing.assert_allclose(superlet_transform(x, 2048.0, params, dtype=dtype), cached[dtype], rtol=rtol)
    finally:
        superlet_plan_module.superlet_plan.cache_clear()


@pytest.mark.parametrize("n_samples", [100, 4096, 122880, 1228800])
@pytest.mark.parametrize("context", [0, 800, 61450])
def test_fft_lengths_hold_signal_and_context_in_fast_sizes(n_samples, context):
    n_fft = fft_length(n_samples, context, 50)
    blocks = n_fft // 50
    assert n_fft % 50 == 0 and n_fft >= n_samples + context
    needed = -(-(n_samples + context) // 50)
    assert blocks <= max(1.06 * needed, next_fast_len(needed, real=True))  # at most 6 % beyond the shortest
    for prime in (2, 3, 5):
        while blocks % prime == 0:
            blocks //= prime
    assert blocks == 1  # only radix 2, 3 and 5 passes


def test_compiles_in_memory_where_no_cache_can_be_written():
    # a read-only image with no writable home leaves numba no cache locator: the kernels must still compile and
    # run (in memory, once per process). ZipCacheLocator alone accepts only zipped modules: no locator at all.
    script = ("import numpy as np; from bids_brainbert.transforms import superlet_numba; "
              "from bids_brainbert.transforms.superlet import superlet_transform, SuperletParams; "
              "assert not superlet_numba.fold_bands._cache_hits and superlet_numba.fold_bands._cache.__class__."
              "__name__ == 'NullCache'; x = np.random.default_rng(4).standard_normal((1, 4096)); "
              "print(superlet_transform(x, 512.0, SuperletParams(freqs_hz=(10.0, 60.0), decimation=8)).sum())")
    env = dict(os.environ, NUMBA_CACHE_LOCATOR_CLASSES="ZipCacheLocator")
    env.pop("NUMBA_CACHE_DIR", None)
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    x = np.random.default_rng(4).standard_normal((1, 4096))
    expected = superlet_transform(x, 512.0, SuperletParams(freqs_hz=(10.0, 60.0), decimation=8)).sum()
    assert float(run.stdout) == pytest.approx(float(expected), rel=1e-6)


# ------------------------------------------------------------------------ BrainBERT's wavelet set, Moca's
def test_brainbert_wavelet_set_starts_at_order_min():
    from bids_brainbert.transforms.superlet_params import wavelet_set

    params = SuperletParams()                         # BrainBERT's: c1 = 1, orders 3 -> 30
    assert params.definition == "brainbert"
    assert wavelet_set(3.0, params) == [(3.0, 1.0)]   # at 0.1 Hz one 3-cycle wavelet (Moca's: 1, 2 and 3)
    cycles, weights = zip(*wavelet_set(30.0, params))
    assert cycles == tuple(float(c) for c in range(3, 31)) and np.allclose(weights, 1 / 28)
    cycles, weights = zip(*wavelet_set(4.5, params))  # fractional: 3, 4 whole, 5 with half the weight
    assert cycles == (3.0, 4.0, 5.0) and np.allclose(weights, [1 / 2.5, 1 / 2.5, 0.5 / 2.5])
    moca = SuperletParams(definition="moca")
    cycles, weights = zip(*wavelet_set(4.5, moca))
    assert cycles == (1.0, 2.0, 3.0, 4.0, 5.0) and np.allclose(weights, [1 / 4.5] * 4 + [0.5 / 4.5])
    with pytest.raises(ValueError, match="definition"):
        SuperletParams(definition="syncopy")


DEFINITION_CASES = {
    # BrainBERT's parameters (40 frequencies 0.1-200 Hz, adaptive 3 -> 30, c1 = 1), at 512 Hz to keep it quick
    "brainbert-adaptive": (SuperletParams(decimation=16), 512.0, 60.0),
    "multiplicative-integer": (SuperletParams(freqs_hz=(4.0, 11.5, 40.0, 97.0, 180.0), order_min=2, order_max=5,
                                              base_cycles=1.5, mode="multiplicative", decimation=8), 512.0, 8.0),
    "multiplicative-fractional": (SuperletParams(freqs_hz=(6.0, 30.0, 120.0), order_min=3, order_max=6.4,
                                                 mode="multiplicative", decimation=8), 512.0, 8.0),
    "adaptive-fractional-min-c1-2": (SuperletParams(freqs_hz=(3.0, 9.0, 27.0, 81.0, 200.0), order_min=1.5,
                                                    order_max=6.2, base_cycles=2, decimation=8), 512.0, 10.0),
    "adaptive-syncopy-c1-3": (SuperletParams(freqs_hz=tuple(np.linspace(5, 200, 12)), order_min=2, order_max=7,
                                             base_cycles=3, decimation=8), 1024.0, 8.0),
}


@pytest.mark.parametrize("case", DEFINITION_CASES)
def test_brainbert_definition_matches_a_direct_convolution(case):
    """Every frequency, away from the edges: correlation >= 0.999 and relative error <= 1e-2 with the float64
    direct reference of BrainBERT's definition, in float32 as the pipeline runs it (and 1e-6 in float64, the reference cut at 6 sd)."""
    params, sfreq, seconds = DEFINITION_CASES[case]
    n = int(seconds * sfreq)
    t = np.arange(n) / sfreq
    x = np.random.default_rng(17).standard_normal(n) + 3 * sps.chirp(t, f0=1, t1=t[-1], f1=150, method="log")
    reference = direct_superlet(x, sfreq, params, support_sd=6.0)
    edge = edge_frames(sfreq, params)
    reference = interior(reference, edge)
    assert reference.shape[1] >= 20
    for dtype, rtol in ((np.float32, 1e-2), (np.float64, 1e-6)):
        fast = interior(superlet_transform(x, sfreq, params, dtype=dtype)[0], edge)
        assert (np.abs(fast - reference) / reference).max() <= rtol, dtype
        for row, ref_row in zip(fast, reference):
            assert np.corrcoef(row, ref_row)[0, 1] >= 0.999
    on_torch = interior(superlet_transform(x, sfreq, params, dtype=np.float64, backend="torch", device="cpu")[0],
                        edge)
    assert (np.abs(on_torch - reference) / reference).max() <= 1e-6


def test_moca_definition_is_kept_and_differs_where_brainbert_said():
    params, sfreq, seconds = DEFINITION_CASES["brainbert-adaptive"]
    moca = SuperletParams(**{**params.to_dict(), "freqs_hz": params.freqs_hz, "definition": "moca"})
    x = np.random.default_rng(5).standard_normal(int(seconds * sfreq))
    edge = edge_frames(sfreq, params)
    ours = interior(superlet_transform(x, sfreq, moca, dtype=np.float64)[0], edge)
    np.testing.assert_allclose(ours, interior(direct_superlet(x, sfreq, moca, support_sd=6.0), edge), rtol=1e-6)
    theirs = interior(superlet_transform(x, sfreq, params, dtype=np.float64)[0], edge)
    # the two wavelet sets share only the highest orders: they part most at the lowest frequencies
    low = np.corrcoef(ours[0], theirs[0])[0, 1]
    assert low < 0.99 and np.abs(ours[0] - theirs[0]).max() > 0.05 * theirs[0].max()


_CACHE_PROBE = ("import numpy as np, bids_brainbert; from bids_brainbert.transforms import superlet_numba; "
                "from bids_brainbert.transforms.superlet import superlet_transform, SuperletParams; "
                "x = np.random.default_rng(4).standard_normal((1, 4096)); "
                "superlet_transform(x, 512.0, SuperletParams(freqs_hz=(10.0, 60.0), decimation=8)); "
                "print(superlet_numba.fold_bands._cache.__class__.__name__); "
                "print(getattr(superlet_numba.fold_bands._cache, '_cache_path', ''))")


def _cache_probe(env_changes: dict) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    env.update(env_changes)
    run = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout.split("\n")


def _package_cache_files() -> list[Path]:
    import bids_brainbert

    return list(Path(bids_brainbert.__file__).parent.rglob("*.nb[ic]"))


def test_numba_caches_in_the_per_user_cache_directory_not_the_package(tmp_path):
    # numba's default (__pycache__ beside the source) writes into site-packages; the leftover folder then shadows
    # a later editable install as a namespace package. The cache belongs in the user's cache directory.
    for stale in _package_cache_files():   # left by an earlier version of this kernel's caching
        stale.unlink()
    kind, path, _ = _cache_probe({"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert kind == "FunctionCache"
    assert Path(path).is_relative_to(tmp_path / "xdg" / "bids-brainbert" / "numba")
    assert list((tmp_path / "xdg" / "bids-brainbert" / "numba").rglob("*.nbi"))
    assert _package_cache_files() == []
    # NUMBA_CACHE_DIR wins when set
    kind, path, _ = _cache_probe({"XDG_CACHE_HOME": str(tmp_path / "xdg"), "NUMBA_CACHE_DIR": str(tmp_path / "nb")})
    assert kind == "FunctionCache" and Path(path).is_relative_to(tmp_path / "nb")
    assert list((tmp_path / "nb").rglob("*.nbi")) and _package_cache_files() == []


def test_numba_compiles_in_memory_where_the_cache_directory_cannot_be_written(tmp_path):
    # a read-only location (here: under a plain file, which even root cannot create folders in) -> in memory,
    # and still nothing written into the package
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    for env in ({"XDG_CACHE_HOME": str(blocker / "cache")}, {"NUMBA_CACHE_DIR": str(blocker / "numba")}):
        kind, path, _ = _cache_probe(env)
        assert kind == "NullCache" and path == ""
        assert _package_cache_files() == []
