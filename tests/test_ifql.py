"""IFQL agent: rejection sampling against brute force, the Euler flow and the BC flow loss against float64
NumPy networks, IQL's value learning, and training through the fused, seed-vmapped loop."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.ifql import IFQLAgent, draw_loss_noise, get_config
from agents.iql import expectile_loss
from tests.agent_helpers import (ACTION_DIM, BATCH, OBS_DIM, as_np, check_fused_training, np_critic, np_mlp,
                                 toy_batch)


def tiny_config(**overrides):
    config = get_config()
    config.actor_hidden_dims = (8, 8)
    config.value_hidden_dims = (8, 8)
    config.flow_steps = 3
    config.num_samples = 6
    config.discount = 0.9
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@functools.cache
def make_agent(seed: int = 1, **overrides) -> IFQLAgent:
    return IFQLAgent.create(jax.random.PRNGKey(seed), toy_batch(), tiny_config(**overrides))


def np_flow(params, observations, noise, steps):
    x = noise.copy()
    for i in range(steps):
        times = np.full((*x.shape[:-1], 1), i / steps)
        x = x + np_mlp(params['modules_actor_bc_flow'], np.concatenate([observations, x, times], -1)) / steps
    return np.clip(x, -1, 1)


def test_rejection_sampling_is_the_argmax_q_of_the_flow_samples():
    agent = make_agent()
    observations = jax.random.normal(jax.random.PRNGKey(2), (7, OBS_DIM))
    noise = 2.0 * jax.random.normal(jax.random.PRNGKey(3), (7, 6, ACTION_DIM))  # large: some samples clip
    chosen = np.asarray(agent.rejection_sample(observations, noise))
    params, obs = as_np(agent.network.params), np.asarray(observations, np.float64)
    for b in range(7):  # brute force, one state and one candidate at a time
        candidates = [np_flow(params, obs[b:b + 1], np.asarray(noise[b, n:n + 1], np.float64), 3)[0] for n in range(6)]
        q = [np_critic(params['modules_critic'], obs[b:b + 1], c[None]).min(0)[0] for c in candidates]
        assert np.sort(q)[-1] - np.sort(q)[-2] > 1e-4, 'near-tie: choose another seed'
        np.testing.assert_allclose(chosen[b], candidates[int(np.argmax(q))], rtol=1e-4, atol=1e-5)
    # sample_actions draws z ~ N(0, temperature² I) of shape (..., N, A) from its key and rejection-samples.
    key = jax.random.PRNGKey(4)
    np.testing.assert_allclose(agent.sample_actions(observations, key, 0.5),
                               agent.rejection_sample(observations, 0.5 * jax.random.normal(key, (7, 6, ACTION_DIM))),
                               atol=1e-6)
    single = agent.sample_actions(observations[0], key)
    assert single.shape == (ACTION_DIM,) and float(jnp.abs(single).max()) <= 1.0
    # Temperature 0: every candidate is the flow from z = 0.
    np.testing.assert_allclose(agent.sample_actions(observations, key, 0.0),
                               agent.flow_actions(observations, jnp.zeros((7, ACTION_DIM))), atol=1e-6)


def test_flow_actions_match_numpy_euler():
    agent = make_agent(flow_steps=10)
    b = as_np(toy_batch())
    z = 3.0 * np.asarray(jax.random.normal(jax.random.PRNGKey(5), (BATCH, ACTION_DIM)), np.float64)
    got = agent.flow_actions(jnp.asarray(b['observations'], jnp.float32), jnp.asarray(z, jnp.float32))
    np.testing.assert_allclose(got, np_flow(as_np(agent.network.params), b['observations'], z, 10), rtol=1e-4,
                               atol=1e-5)


def test_bc_flow_loss_matches_numpy():
    agent = make_agent()
    batch, b = toy_batch(), as_np(toy_batch())
    noise = draw_loss_noise(jax.random.PRNGKey(6), BATCH, ACTION_DIM)
    loss, _ = agent.actor_loss(batch, agent.network.params, noise)
    x0, t = np.asarray(noise.flow_noise, np.float64), np.asarray(noise.flow_times, np.float64)
    x_t = (1 - t) * x0 + t * b['actions']
    velocity = np_mlp(as_np(agent.network.params)['modules_actor_bc_flow'],
                      np.concatenate([b['observations'], x_t, t], -1))
    np.testing.assert_allclose(float(loss), ((velocity - (b['actions'] - x0)) ** 2).mean(), rtol=1e-4)
    assert np.all((t >= 0) & (t < 1))


def test_value_learning_is_iqls_and_total_loss_is_the_sum():
    agent = make_agent()
    agent = agent.replace(target_critic_params=jax.tree_util.tree_map(lambda p: 0.7 * p, agent.target_critic_params))
    batch, b = toy_batch(), as_np(toy_batch())
    params = as_np(agent.network.params)
    v = np_mlp(params['modules_value'], b['observations'], layer_norm=True)[:, 0]
    target_q = np_critic(as_np(agent.target_critic_params), b['observations'], b['actions']).min(0)
    value_loss, _ = agent.value_loss(batch, agent.network.params)
    np.testing.assert_allclose(float(value_loss), np.asarray(expectile_loss(target_q - v, 0.9)).mean(), rtol=1e-4)

    rng = jax.random.PRNGKey(7)
    loss, info = agent.total_loss(batch, agent.network.params, rng)
    actor_loss, _ = agent.actor_loss(batch, agent.network.params, draw_loss_noise(rng, BATCH, ACTION_DIM))
    critic_loss, _ = agent.critic_loss(batch, agent.network.params)
    np.testing.assert_allclose(float(loss), float(value_loss + critic_loss + actor_loss), rtol=1e-6)
    assert {'value/loss', 'critic/loss', 'actor/loss'} <= set(info)
    grads = jax.grad(lambda p: agent.actor_loss(batch, p, draw_loss_noise(rng, BATCH, ACTION_DIM))[0])(
        agent.network.params)
    for module in ('modules_value', 'modules_critic'):  # the flow is trained by BC alone
        assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree_util.tree_leaves(grads[module]))


def test_fused_vmapped_training_validation_and_checkpoint(tmp_path):
    info = check_fused_training(IFQLAgent, tiny_config(), tmp_path)
    assert {'value/loss', 'critic/loss', 'actor/loss'} <= set(info)


def test_bad_config_raises_clear_errors():
    # The checker of CONFIG_RULES that main.py and sweep.py run (agents/config_rules.py), with its message.
    with pytest.raises(ValueError, match=r'--agent.num_samples=0 is not allowed: an integer >= 1'):
        IFQLAgent.create(jax.random.PRNGKey(0), toy_batch(), tiny_config(num_samples=0))
    with pytest.raises(ValueError, match=r'--agent.flow_steps=0 is not allowed: an integer >= 1'):
        IFQLAgent.create(jax.random.PRNGKey(0), toy_batch(), tiny_config(flow_steps=0))


def test_default_config_matches_fql():
    config = get_config()
    assert (config.agent_name, config.lr, config.batch_size) == ('ifql', 3e-4, 256)
    assert config.actor_hidden_dims == (512,) * 4 and config.value_hidden_dims == (512,) * 4
    assert config.layer_norm is True and config.actor_layer_norm is False
    assert (config.discount, config.tau, config.expectile) == (0.99, 0.005, 0.9)
    assert (config.num_samples, config.flow_steps) == (32, 10)
