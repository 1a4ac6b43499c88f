"""A diagonal Gaussian policy head over an MLP trunk (IQL's AWR actor)."""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from networks.mlp import MLP


class GaussianActor(nn.Module):
    """π(a | s) = N(μ(s), diag σ²): observations (..., obs_dim) -> (means, log_stds), each (..., action_dim).

    μ(s) is an MLP whose hidden layers are Dense -> GELU [-> LayerNorm] and whose output layer is initialised
    with variance_scaling(`final_init_scale`, fan_avg, uniform), so the first means are near 0.
    log σ is state-independent: 0 (σ = 1) if `const_std`, else a learned (action_dim,) vector initialised at
    0. Either way it is clipped to [log_std_min, log_std_max] and broadcast to the shape of the means.
    With an `encoder` (visual tasks) the observations are frames (..., H, W, C), mapped to features first.
    """

    hidden_dims: Sequence[int]
    action_dim: int
    layer_norm: bool = False
    const_std: bool = True
    final_init_scale: float = 1e-2
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    encoder: nn.Module | None = None

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.encoder is not None:
            observations = self.encoder(observations)
        final_init = nn.initializers.variance_scaling(self.final_init_scale, 'fan_avg', 'uniform')
        means = MLP((*self.hidden_dims, self.action_dim), layer_norm=self.layer_norm,
                    final_kernel_init=final_init)(observations)
        if self.const_std:
            log_stds = jnp.zeros((self.action_dim,), means.dtype)
        else:
            log_stds = self.param('log_stds', nn.initializers.zeros, (self.action_dim,))
        log_stds = jnp.clip(log_stds, self.log_std_min, self.log_std_max)
        return means, jnp.broadcast_to(log_stds, means.shape)


def diagonal_gaussian_log_prob(actions: jax.Array, means: jax.Array, log_stds: jax.Array) -> jax.Array:
    """log N(a; μ, diag σ²) = Σ_j [−½ ((a_j − μ_j) / σ_j)² − log σ_j − ½ log 2π]: (..., A) x3 -> (...)."""
    standardized = (actions - means) * jnp.exp(-log_stds)
    return jnp.sum(-0.5 * standardized ** 2 - log_stds - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)
