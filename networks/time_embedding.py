"""Sinusoidal time features and the DiT time embedder used by the MeanFlowQL policy.

Faithful to the authors' `TimestepEmbedder`: the features use the *raw* t in [0, 1] (not t x 1000, as
image DiTs do) with max_period 1e4. Most of the 128 frequencies are then below 1 rad over the whole
interval, so the embedding resolves t coarsely; we keep it because it affects the reproduced numbers.
"""

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

# `kaiming_normal(scale=0.01)` in the authors' code: small-variance fan-in truncated normal.
small_kaiming = nn.initializers.variance_scaling(0.01, 'fan_in', 'truncated_normal')


def sinusoidal_time_features(times: jax.Array, num_features: int = 256, max_period: float = 1e4) -> jax.Array:
    """[cos(t f_k), sin(t f_k)] with f_k = exp(-ln(max_period) k / (num_features/2)), k = 0..num_features/2 - 1.

    times: (B, 1) or (B,). Returns (B, num_features) in the dtype of `times`.
    """
    if num_features % 2:
        raise ValueError(f'num_features must be even, got {num_features}')
    half = num_features // 2
    frequencies = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=times.dtype) / half)
    angles = times.reshape(-1, 1) * frequencies  # (B, half)
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


class TimestepEmbedder(nn.Module):
    """c = Dense(H)(SiLU(Dense(H)(features(t)))): (B, 1) -> (B, H)."""

    hidden_dim: int
    num_features: int = 256
    max_period: float = 1e4
    kernel_init: Callable = small_kaiming

    @nn.compact
    def __call__(self, times: jax.Array) -> jax.Array:
        x = sinusoidal_time_features(times, self.num_features, self.max_period)
        x = nn.Dense(self.hidden_dim, kernel_init=self.kernel_init)(x)
        x = nn.silu(x)
        return nn.Dense(self.hidden_dim, kernel_init=self.kernel_init)(x)
