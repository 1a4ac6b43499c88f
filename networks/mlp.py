"""Multi-layer perceptrons and the twin-critic ensemble shared by every agent."""

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

glorot_uniform = nn.initializers.variance_scaling(1.0, 'fan_avg', 'uniform')


class MLP(nn.Module):
    """Dense stack: every hidden layer is Dense -> activation [-> LayerNorm].

    The last entry of `hidden_dims` is the output size; no activation is applied after it
    unless `activate_final`. An `encoder` (visual tasks) maps the input, frames (..., H, W, C), to features
    first; the MLP then runs on those.
    """

    hidden_dims: Sequence[int]
    activation: Callable[[jax.Array], jax.Array] = nn.gelu
    activate_final: bool = False
    layer_norm: bool = False
    kernel_init: Callable = glorot_uniform
    final_kernel_init: Callable | None = None  # e.g. zeros for a residual policy head
    encoder: nn.Module | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.encoder is not None:
            x = self.encoder(x)
        for i, size in enumerate(self.hidden_dims):
            is_last = i + 1 == len(self.hidden_dims)
            init = self.final_kernel_init if (is_last and self.final_kernel_init is not None) else self.kernel_init
            x = nn.Dense(size, kernel_init=init)(x)
            if not is_last or self.activate_final:
                x = self.activation(x)
                if self.layer_norm:
                    x = nn.LayerNorm()(x)
        return x


class CriticEnsemble(nn.Module):
    """`num_members` independent Q-networks Q_m(s, a), stacked on a leading axis.

    Input: observations (B, obs_dim) (frames (B, H, W, C) with an `encoder`), actions (B, action_dim).
    Output: (num_members, B). Each member is an MLP over concat(s, a) with `hidden_dims` then a scalar head;
    members get independent initialisations through `nn.vmap` (split params RNG). An `encoder` (visual tasks)
    maps observations to features first, shared by the members (as in FQL's critic).
    """

    hidden_dims: Sequence[int] = (512, 512, 512, 512)
    layer_norm: bool = True
    num_members: int = 2
    encoder: nn.Module | None = None

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        if self.encoder is not None:
            observations = self.encoder(observations)
        members = nn.vmap(
            MLP,
            variable_axes={'params': 0},
            split_rngs={'params': True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_members,
        )
        q = members(hidden_dims=(*self.hidden_dims, 1), activate_final=False, layer_norm=self.layer_norm)(
            jnp.concatenate([observations, actions], axis=-1)
        )
        return q[..., 0]
