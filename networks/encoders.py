"""Pixel encoders for visual tasks: the IMPALA residual CNN in the sizes FQL uses.

`ImpalaEncoder` maps uint8 frames (..., H, W, C) to features (..., mlp_hidden_dims[-1]):
    x = frames / 255;  for each stack size c: x = ResidualStack(c)(x);  relu;  flatten;  MLP (activated output).
A residual stack is a 3×3 conv to c channels, a 3×3 max-pool with stride 2 (H and W halve, rounding up),
then `num_blocks` blocks x ← x + conv(relu(conv(relu(x)))). For 64×64 inputs and three stacks the flattened
map is 8×8×c_last. `ENCODERS` names the configurations agents select with their `encoder` config key; FQL's
visual tasks use 'impala_small' (one block per stack: 16, 32, 32 channels, then a 512-unit layer).
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from networks.mlp import MLP

conv_init = nn.initializers.xavier_uniform()


class ResidualStack(nn.Module):
    """Conv 3×3 (stride 1) -> max-pool 3×3 stride 2 -> `num_blocks` residual blocks of two ReLU-conv layers."""

    num_features: int
    num_blocks: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(nn.Conv, self.num_features, kernel_size=(3, 3), strides=1, padding='SAME',
                                 kernel_init=conv_init)
        x = conv()(x)
        x = nn.max_pool(x, window_shape=(3, 3), strides=(2, 2), padding='SAME')
        for _ in range(self.num_blocks):
            x = x + conv()(nn.relu(conv()(nn.relu(x))))
        return x


class ImpalaEncoder(nn.Module):
    """IMPALA CNN + MLP: frames (..., H, W, C) (uint8 or float in [0, 255]) -> features (..., mlp_hidden_dims[-1])."""

    stack_sizes: Sequence[int] = (16, 32, 32)
    num_blocks: int = 2
    mlp_hidden_dims: Sequence[int] = (512,)

    @nn.compact
    def __call__(self, frames: jax.Array) -> jax.Array:
        batch_shape = frames.shape[:-3]
        x = frames.astype(jnp.float32).reshape(-1, *frames.shape[-3:]) / 255.0
        for size in self.stack_sizes:
            x = ResidualStack(size, self.num_blocks)(x)
        x = nn.relu(x).reshape(*batch_shape, -1)
        return MLP(self.mlp_hidden_dims, activate_final=True)(x)


# Encoder names for the agents' `encoder` config key (FQL's names and sizes; 'impala_debug' is for fast tests).
ENCODERS = {
    'impala': ImpalaEncoder,
    'impala_small': functools.partial(ImpalaEncoder, num_blocks=1),
    'impala_debug': functools.partial(ImpalaEncoder, stack_sizes=(4, 4), num_blocks=1),
}


def make_encoder(name: str | None) -> nn.Module | None:
    """A fresh encoder module for config value `name` (None: no encoder, observations are states)."""
    if name is None:
        return None
    if name not in ENCODERS:
        raise ValueError(f'unknown encoder {name!r}; known encoders: {", ".join(ENCODERS)} (or None for states)')
    return ENCODERS[name]()
