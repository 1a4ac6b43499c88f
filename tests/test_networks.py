"""Unit tests for the time embedding and the residual policy networks."""

import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from networks.policy import DiTPolicy, MLPPolicy, ScaledRMSNorm
from networks.time_embedding import TimestepEmbedder, sinusoidal_time_features

OBS_DIM, ACTION_DIM, BATCH = 5, 3, 7


def _inputs(seed: int = 0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    return (jax.random.normal(k1, (BATCH, OBS_DIM)), jax.random.normal(k2, (BATCH, ACTION_DIM)),
            jax.random.uniform(k3, (BATCH, 1)))


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def test_sinusoidal_features_values():
    t = jnp.array([[0.0], [0.5]])
    features = sinusoidal_time_features(t, num_features=256, max_period=1e4)
    assert features.shape == (2, 256)
    np.testing.assert_allclose(features[0, :128], 1.0)  # cos(0)
    np.testing.assert_allclose(features[0, 128:], 0.0)  # sin(0)
    f1 = math.exp(-math.log(1e4) / 128)
    np.testing.assert_allclose(features[1, 1], math.cos(0.5 * f1), rtol=1e-6)
    np.testing.assert_allclose(features[1, 129], math.sin(0.5 * f1), rtol=1e-6)
    # Raw t in [0, 1]: the lowest frequency barely moves (coarse resolution, kept for fidelity).
    assert float(features[1, 127]) > 0.9999
    with pytest.raises(ValueError, match='even'):
        sinusoidal_time_features(t, num_features=5)


def test_timestep_embedder_shape():
    module = TimestepEmbedder(hidden_dim=16)
    params = module.init(jax.random.PRNGKey(0), jnp.zeros((4, 1)))
    assert module.apply(params, jnp.ones((4, 1))).shape == (4, 16)


def test_scaled_rms_norm_has_rms_sqrt_dim():
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 64)) * 7.0
    module = ScaledRMSNorm()
    y = module.apply(module.init(jax.random.PRNGKey(0), x), x)
    np.testing.assert_allclose(jnp.sqrt(jnp.mean(y ** 2, axis=-1)), 8.0, rtol=1e-4)


@pytest.mark.parametrize('module', [
    DiTPolicy(ACTION_DIM, hidden_dim=32, depth=2),
    MLPPolicy(ACTION_DIM, hidden_dims=(32, 32)),
])
def test_policy_is_zero_at_init_with_nonzero_gradients(module):
    s, a, t = _inputs()
    params = module.init(jax.random.PRNGKey(0), s, a, t)
    g = module.apply(params, s, a, t)
    assert g.shape == (BATCH, ACTION_DIM)
    np.testing.assert_array_equal(g, 0.0)

    def loss(p):
        return jnp.sum((module.apply(p, s, a, t) - 0.5) ** 2)

    grads = jax.grad(loss)(params)
    assert float(jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree_util.tree_leaves(grads)))) > 1e-3
    # One gradient step makes the output depend on the inputs.
    stepped = jax.tree_util.tree_map(lambda p, d: p - 0.1 * d, params, grads)
    g1 = module.apply(stepped, s, a, t)
    assert float(jnp.abs(g1).max()) > 1e-4


def test_dit_has_no_dead_attention_parameters():
    """Parameter count = the authors' MFDiT_SIM minus the query/key projections and their qk-norms."""
    hidden, depth, ratio = 32, 2, 4
    s, a, t = _inputs()
    module = DiTPolicy(ACTION_DIM, hidden_dim=hidden, depth=depth, mlp_ratio=ratio)
    params = module.init(jax.random.PRNGKey(0), s, a, t)['params']
    h = hidden
    embed = (OBS_DIM + ACTION_DIM) * h + h + h  # feature Dense + pos_embed
    time = 256 * h + h + h * h + h
    block = (h * 6 * h + 6 * h) + 2 * h + 2 * (h * h + h) + (h * ratio * h + ratio * h) + (ratio * h * h + h)
    final = (h * 2 * h + 2 * h) + h + (h * ACTION_DIM + ACTION_DIM)
    assert _count(params) == embed + time + depth * block + final
    names = {name for path in flax.traverse_util.flatten_dict(params) for name in path}
    assert {'value', 'attention_out', 'pos_embed', 'output'} <= names
    assert not any(word in name.lower() for name in names for word in ('query', 'key', 'qkv'))


def test_dit_residual_scale_and_time_dependence():
    """With random params the output depends on t and residual_scale enters the blocks."""
    s, a, t = _inputs()
    module = DiTPolicy(ACTION_DIM, hidden_dim=16, depth=1)
    params = module.init(jax.random.PRNGKey(0), s, a, t)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(3), len(leaves))
    params = jax.tree_util.tree_unflatten(
        treedef, [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    g_a = module.apply(params, s, a, t)
    g_b = module.apply(params, s, a, 1.0 - t)
    assert float(jnp.abs(g_a - g_b).max()) > 1e-3
    other_scale = DiTPolicy(ACTION_DIM, hidden_dim=16, depth=1, residual_scale=0.5)
    assert float(jnp.abs(other_scale.apply(params, s, a, t) - g_a).max()) > 1e-3
