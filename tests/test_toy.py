"""Reduced-scale version of benchmarks/toy_multimodal.py plus checks of its metrics."""

import jax
import numpy as np
import pytest

from benchmarks.toy_multimodal import (CENTRES, SIGMA, evaluate, modes_covered, sample_grid, sliced_wasserstein,
                                       sw_floor, train)


def test_metrics_on_known_samples():
    true = np.asarray(sample_grid(jax.random.PRNGKey(0), 4000))
    assert modes_covered(true) == 16
    assert abs(true.mean()) < 0.05 and abs(true.std() - np.sqrt(0.3125 + SIGMA ** 2)) < 0.02
    one_mode = CENTRES[5] + SIGMA * np.random.default_rng(0).normal(size=(4000, 2))
    assert modes_covered(one_mode) == 1
    assert sliced_wasserstein(true, true) == 0.0
    # A shift δ along x: every projection moves by δ cos θ, so SW2 = δ sqrt(mean cos² θ) ≈ δ / sqrt(2).
    assert sliced_wasserstein(true + np.array([0.2, 0.0]), true) == pytest.approx(0.2 / np.sqrt(2), rel=0.03)
    with pytest.raises(ValueError, match='equal sample sizes'):
        sliced_wasserstein(true, true[:10])


def test_residual_form_fits_the_grid_and_naive_form_collapses():
    """Small MLP, 3000 steps: the residual form covers most modes in one step, starts inside the box and
    gets close to the data; the naive form (noise as input) collapses to the data mean, as derived."""
    num_eval, floor = 2048, sw_floor(2048, seed=0)[0]
    net_of, params, fractions = train('residual', 3000, 256, (64, 64, 64), 3e-3, seed=0)
    residual = evaluate('residual', net_of, params, num_eval, seed=0)
    assert fractions[0] == 0.0  # g ≡ 0 at init: all first actions are 0
    assert residual['modes'] >= 15, residual['modes']
    assert residual['sw'] < 3 * floor, (residual['sw'], floor)
    net_of, params, _ = train('naive', 1500, 256, (64, 64, 64), 3e-3, seed=0)
    naive = evaluate('naive', net_of, params, num_eval, seed=0)
    assert naive['modes'] <= 1
    assert np.abs(naive['samples'].mean(axis=0)).max() < 0.1 and naive['samples'].std() < 0.15
    assert naive['sw'] > 5 * residual['sw']
