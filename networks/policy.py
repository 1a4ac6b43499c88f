"""Residual MeanFlow policy networks g_θ(s, a_t, t) -> (B, action_dim).

In the residual form g = a_t - u(a_t, 0, t), so g_θ(s, e, 1) is the action generated in one step from
noise e. Both networks output exactly 0 at initialisation (zero-initialised output layer), so the first
actions are 0, inside [-1, 1]; the output kernel still gets non-zero gradients.

`DiTPolicy` is the authors' actor (`MFDiT_SIM`): a DiT over a single token with adaLN-Zero time
conditioning. With one token the attention softmax is identically 1, so self-attention is the linear map
h -> W_o (W_v h + b_v) + b_o. We implement exactly that function with the same initialisation and leave
out the query/key projections and their per-head RMSNorm, which cannot affect the output or receive
gradients. `MLPPolicy` is the cheaper alternative (`--agent.actor_arch=mlp`).
"""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from networks.mlp import MLP
from networks.time_embedding import TimestepEmbedder, small_kaiming


class ScaledRMSNorm(nn.Module):
    """The authors' RMSNorm: x / sqrt(mean(x^2) + eps) * sqrt(dim) * scale, scale initialised to 1.

    Unlike the usual RMSNorm the output RMS is sqrt(dim) (16 for dim 256), not 1; kept for fidelity.
    """

    eps: float = 1e-6

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dim = x.shape[-1]
        scale = self.param('scale', nn.initializers.ones, (dim,))
        normed = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.eps)
        return normed * math.sqrt(dim) * scale


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """adaLN modulation x (1 + scale) + shift."""
    return x * (1.0 + scale) + shift


class DiTBlock(nn.Module):
    """One adaLN-Zero DiT block on a single token; returns the block's *increment* (B, H).

    (sh1, sc1, g1, sh2, sc2, g2) = Dense(6H, zeros)(SiLU(c))
    h1 = RMSNorm(x)(1 + sc1) + sh1;        x' = x + g1 * Attn(h1),  Attn(h) = W_o (W_v h + b_v) + b_o
    h2 = RMSNorm(x')(1 + sc2) + sh2;       increment = g1 * Attn(h1) + g2 * MLP(h2)
    MLP = Dense(mlp_ratio H) -> GELU(tanh) -> Dense(H). The block output x'' = x + increment; the caller
    adds residual_scale * increment, which equals the authors' x + s (x'' - x) without cancellation.
    """

    hidden_dim: int
    mlp_ratio: int = 4

    @nn.compact
    def __call__(self, x: jax.Array, conditioning: jax.Array) -> jax.Array:
        modulation = nn.Dense(6 * self.hidden_dim, kernel_init=nn.initializers.zeros)(nn.silu(conditioning))
        shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(modulation, 6, axis=-1)

        h1 = modulate(ScaledRMSNorm()(x), shift1, scale1)
        value = nn.Dense(self.hidden_dim, kernel_init=small_kaiming, name='value')(h1)
        attention = nn.Dense(self.hidden_dim, kernel_init=small_kaiming, name='attention_out')(value)
        attention_increment = gate1 * attention

        h2 = modulate(ScaledRMSNorm()(x + attention_increment), shift2, scale2)
        h2 = nn.Dense(self.mlp_ratio * self.hidden_dim, kernel_init=small_kaiming)(h2)
        h2 = nn.gelu(h2, approximate=True)
        h2 = nn.Dense(self.hidden_dim, kernel_init=small_kaiming)(h2)
        return attention_increment + gate2 * h2


class DiTPolicy(nn.Module):
    """One-token DiT g_θ(s, a_t, t): observations (B, o), actions (B, d), times (B, 1) or (1, 1) -> (B, d).

    A (1, 1) time is shared by every row: the time embedding and all adaLN modulations (about 40% of the
    multiply-adds at H = 256) then run once instead of B times, which the t = 1 sampling calls exploit.

    token x = Dense(H)(concat(s, a_t)) + pos_embed;  c = TimestepEmbedder(t)
    depth x  x <- x + residual_scale * DiTBlock(x, c)
    (sh, sc) = Dense(2H, zeros)(SiLU(c));  g = Dense(d, zeros)(RMSNorm(x)(1 + sc) + sh)
    Hidden Dense layers use variance_scaling(0.01, fan_in, truncated normal) and zero biases; the adaLN and
    output layers are zero, so g ≡ 0 at initialisation. No tanh and no clipping inside the network.
    """

    action_dim: int
    hidden_dim: int = 256
    depth: int = 3
    mlp_ratio: int = 4
    residual_scale: float = 0.1

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array, times: jax.Array) -> jax.Array:
        x = nn.Dense(self.hidden_dim, kernel_init=small_kaiming, name='feature_embed')(
            jnp.concatenate([observations, actions], axis=-1))
        x = x + self.param('pos_embed', nn.initializers.normal(0.005), (self.hidden_dim,))
        conditioning = TimestepEmbedder(self.hidden_dim)(times)
        for _ in range(self.depth):
            x = x + self.residual_scale * DiTBlock(self.hidden_dim, self.mlp_ratio)(x, conditioning)
        modulation = nn.Dense(2 * self.hidden_dim, kernel_init=nn.initializers.zeros)(nn.silu(conditioning))
        shift, scale = jnp.split(modulation, 2, axis=-1)
        x = modulate(ScaledRMSNorm()(x), shift, scale)
        return nn.Dense(self.action_dim, kernel_init=nn.initializers.zeros, name='output')(x)


class MLPPolicy(nn.Module):
    """Plain residual MLP g_θ(s, a_t, t) = MLP(concat(s, a_t, t)) with a zero output layer (g ≡ 0 at init).

    observations (B, o), actions (B, d), times (B, 1) or (1, 1) (broadcast) -> (B, d). GELU, no LayerNorm.
    """

    action_dim: int
    hidden_dims: Sequence[int] = (512, 512, 512, 512)

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array, times: jax.Array) -> jax.Array:
        times = jnp.broadcast_to(times.reshape(-1, 1), (actions.shape[0], 1)).astype(actions.dtype)
        inputs = jnp.concatenate([observations, actions, times], axis=-1)
        return MLP((*self.hidden_dims, self.action_dim), final_kernel_init=nn.initializers.zeros)(inputs)
