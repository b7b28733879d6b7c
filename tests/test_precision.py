"""--precision: bf16 autocast where asked for (or where native with auto), and what it costs in accuracy."""

import numpy as np
import pytest
import torch

from bids_brainbert.frozen_embeddings import EmbeddingParams, windowed_embeddings
from bids_brainbert.errors import UsageError
from bids_brainbert.model import build_model
from bids_brainbert.precision import autocast, cpu_has_native_bf16, resolve_precision


def cosine_per_row(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]).astype(np.float64), b.reshape(-1, b.shape[-1]).astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_resolve_precision_and_cpu_flags(tmp_path):
    assert resolve_precision("float32", "cpu") == "float32"
    assert resolve_precision("bfloat16", "cpu") == "bfloat16"
    assert resolve_precision("auto", "cpu") == ("bfloat16" if cpu_has_native_bf16() else "float32")
    with pytest.raises(UsageError, match="precision must be one of"):
        resolve_precision("float16", "cpu")
    with pytest.raises(UsageError):
        autocast("auto", "cpu")   # must be resolved first
    native = tmp_path / "native"
    native.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n")
    emulated = tmp_path / "emulated"
    emulated.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert cpu_has_native_bf16(str(native)) and not cpu_has_native_bf16(str(emulated))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))


def test_autocast_runs_the_matrix_products_in_bf16():
    model = build_model("small", seed=0).eval()
    x = torch.randn(2, 50, 40)
    with torch.inference_mode():
        with autocast("float32", "cpu"):
            assert model.encoder(x).dtype == torch.float32
        with autocast("bfloat16", "cpu"):
            assert model.encoder(x).dtype == torch.bfloat16


def test_bf16_embeddings_match_float32_on_the_small_model():
    """The accuracy target of --precision bfloat16: cosine >= 0.999 per window against float32."""
    model = build_model("small", seed=3).eval()
    spectrogram = np.random.default_rng(0).gamma(2.0, 1e-5, size=(2, 205 * 4, 40)).astype(np.float32)
    kwargs = dict(window_s=5.0, layer=-1, pooling="mean", batch_size=3)
    fp32, centres = windowed_embeddings(spectrogram, 40.96, model, EmbeddingParams(**kwargs))
    bf16, centres_bf16 = windowed_embeddings(spectrogram, 40.96, model, EmbeddingParams(**kwargs,
                                                                                       precision="bfloat16"))
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape == (2, 4, 384)
    np.testing.assert_array_equal(centres, centres_bf16)
    assert not np.array_equal(bf16, fp32)            # bf16 really ran
    cosine = cosine_per_row(bf16, fp32)
    assert cosine.min() >= 0.999, cosine
