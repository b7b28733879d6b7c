"""Embedding windows and pooling against direct model calls."""

import numpy as np
import pytest
import torch

from bids_brainbert.frozen_embeddings import (EmbeddingParams, event_locked_embeddings, event_window_starts, pool_frames,
                                      sliding_window_starts, windowed_embeddings)
from bids_brainbert.errors import UsageError
from bids_brainbert.model import ModelConfig, build_model
from bids_brainbert.training import zscore_frequencies


@pytest.fixture(scope="module")
def tiny_model():
    config = ModelConfig(n_freqs=8, d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0, max_frames=64)
    return build_model(config, seed=0).eval()


def test_pooling():
    hidden = torch.arange(2 * 12 * 3, dtype=torch.float32).reshape(2, 12, 3)
    np.testing.assert_allclose(pool_frames(hidden, "mean", 10), hidden.mean(1))
    np.testing.assert_allclose(pool_frames(hidden, "middle", 4), hidden[:, 4:8].mean(1))
    np.testing.assert_allclose(pool_frames(hidden, "middle", 50), hidden.mean(1))
    with pytest.raises(UsageError):
        EmbeddingParams(pooling="max")


def test_window_starts():
    np.testing.assert_array_equal(sliding_window_starts(100, 20, 20, edge_frames=5), [5, 25, 45, 65])
    assert len(sliding_window_starts(30, 20, 20, edge_frames=6)) == 0
    starts, valid = event_window_starts(np.array([0.1, 1.0, 2.45]), n_frames=50, frame_rate_hz=20, length=10)
    np.testing.assert_array_equal(starts, [-3, 15, 44])
    np.testing.assert_array_equal(valid, [False, True, False])


def test_windowed_embeddings_match_direct_model_calls(tiny_model):
    rng = np.random.default_rng(0)
    spec = rng.gamma(2.0, size=(3, 100, 8)).astype(np.float32)
    params = EmbeddingParams(window_s=1.0, stride_s=0.5, layer=1, pooling="middle", middle_frames=4, batch_size=3)
    embeddings, centres = windowed_embeddings(spec, 20.0, tiny_model, params, edge_frames=10)
    starts = sliding_window_starts(100, 20, 10, 10)
    assert embeddings.shape == (3, len(starts), 16)
    np.testing.assert_allclose(centres, (starts + 10) / 20.0)
    with torch.inference_mode():
        window = torch.from_numpy(zscore_frequencies(spec[2, starts[1]:starts[1] + 20]))[None]
        direct = tiny_model.encoder(window, return_layers=True)[1][0, 8:12].mean(0)
    np.testing.assert_allclose(embeddings[2, 1], direct.numpy(), rtol=1e-5, atol=1e-6)
    # the layer matters: the last layer gives something else
    other, _ = windowed_embeddings(spec, 20.0, tiny_model, EmbeddingParams(window_s=1.0, stride_s=0.5, layer=-1),
                                   edge_frames=10)
    assert not np.allclose(other, embeddings)


def test_event_locked_embeddings(tiny_model):
    rng = np.random.default_rng(1)
    spec = rng.gamma(2.0, size=(2, 80, 8)).astype(np.float32)
    params = EmbeddingParams(window_s=1.0, pooling="mean")
    embeddings, valid = event_locked_embeddings(spec, 20.0, np.array([0.2, 1.5, 3.0, 3.9]), tiny_model, params)
    np.testing.assert_array_equal(valid, [False, True, True, False])
    assert embeddings.shape == (2, 2, 16)
    with torch.inference_mode():
        window = torch.from_numpy(zscore_frequencies(spec[0, 20:40]))[None]
        direct = tiny_model.encoder(window)[0].mean(0)
    np.testing.assert_allclose(embeddings[0, 0], direct.numpy(), rtol=1e-5, atol=1e-6)
