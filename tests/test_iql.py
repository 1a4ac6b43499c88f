"""IQL agent: expectile loss and AWR weights against NumPy, the three losses against float64 NumPy networks,
gradient routing, the Gaussian actor, and training through the fused, seed-vmapped loop."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.iql import IQLAgent, awr_weights, expectile_loss, get_config
from tests.agent_helpers import ACTION_DIM, OBS_DIM, as_np, check_fused_training, np_critic, np_mlp, toy_batch


def tiny_config(**overrides):
    config = get_config()
    config.actor_hidden_dims = (8, 8)
    config.value_hidden_dims = (8, 8)
    config.discount = 0.9
    config.alpha = 3.0
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@functools.cache
def make_agent(seed: int = 1, **overrides) -> IQLAgent:
    agent = IQLAgent.create(jax.random.PRNGKey(seed), toy_batch(), tiny_config(**overrides))
    # A target critic different from the online one, so the tests tell them apart.
    return agent.replace(target_critic_params=jax.tree_util.tree_map(lambda p: 0.7 * p + 0.01,
                                                                     agent.target_critic_params))


def np_value(params, observations):
    return np_mlp(params['modules_value'], observations, layer_norm=True)[:, 0]


def np_gaussian_log_prob(actions, means, log_stds):
    std = np.exp(log_stds)
    return (-0.5 * ((actions - means) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)


@pytest.mark.parametrize('expectile', [0.5, 0.7, 0.9])
def test_expectile_loss_matches_numpy(expectile):
    u = np.array([-2.0, -0.5, -1e-3, 0.0, 1e-3, 0.3, 4.0])
    want = np.where(u >= 0, expectile, 1 - expectile) * u ** 2
    np.testing.assert_allclose(expectile_loss(jnp.asarray(u), expectile), want, rtol=1e-6)
    if expectile == 0.5:
        np.testing.assert_allclose(expectile_loss(jnp.asarray(u), 0.5), 0.5 * u ** 2, rtol=1e-6)


def test_awr_weights_and_their_clipping():
    advantages = jnp.array([-1.0, 0.0, 0.1, 0.46, 0.47, 2.0])
    # exp(10 A) = [e^-10, 1, e, 99.48, 109.9, e^20]; the last two are clipped to 100.
    want = np.minimum(np.exp(10.0 * np.asarray(advantages, np.float64)), 100.0)
    got = awr_weights(advantages, 10.0, 100.0)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert float(got[3]) < 100.0 and float(got[4]) == 100.0 and float(got[5]) == 100.0
    np.testing.assert_allclose(awr_weights(advantages, 1.0, 5.0), np.minimum(np.exp(advantages), 5.0), rtol=1e-6)


def test_value_and_critic_losses_match_numpy():
    agent = make_agent()
    batch, b = toy_batch(), as_np(toy_batch())
    params = as_np(agent.network.params)
    v = np_value(params, b['observations'])
    target_q = np_critic(as_np(agent.target_critic_params), b['observations'], b['actions']).min(0)
    want_value = (np.where(target_q - v >= 0, 0.9, 0.1) * (target_q - v) ** 2).mean()
    value_loss, value_info = agent.value_loss(batch, agent.network.params)
    np.testing.assert_allclose(float(value_loss), want_value, rtol=1e-4)
    np.testing.assert_allclose(float(value_info['v_mean']), v.mean(), rtol=1e-4, atol=1e-6)

    y = b['rewards'] + 0.9 * b['masks'] * np_value(params, b['next_observations'])
    q = np_critic(params['modules_critic'], b['observations'], b['actions'])
    critic_loss, critic_info = agent.critic_loss(batch, agent.network.params)
    np.testing.assert_allclose(float(critic_loss), ((q - y) ** 2).sum(0).mean(), rtol=1e-4)  # Σ over members
    np.testing.assert_allclose(float(critic_info['target_q_mean']), y.mean(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('const_std', [True, False])
def test_awr_actor_loss_matches_numpy(const_std):
    agent = make_agent(const_std=const_std, alpha=30.0)  # α = 30: some weights reach the clip at 100
    if not const_std:  # move log σ off 0 (and one entry past the clip at −5) to exercise the learned std
        params = agent.network.params
        params = params | {'modules_actor': params['modules_actor'] | {'log_stds': jnp.array([-0.7, -6.0])}}
        agent = agent.replace(network=agent.network.replace(params=params))
    batch, b = toy_batch(), as_np(toy_batch())
    params = as_np(agent.network.params)
    advantages = (np_critic(params['modules_critic'], b['observations'], b['actions']).min(0)
                  - np_value(params, b['observations']))
    weights = np.minimum(np.exp(30.0 * advantages), 100.0)
    means = np_mlp(params['modules_actor']['MLP_0'], b['observations'])
    log_stds = np.zeros(ACTION_DIM) if const_std else np.array([-0.7, -5.0])
    log_prob = np_gaussian_log_prob(b['actions'], means, log_stds)
    loss, info = agent.actor_loss(batch, agent.network.params)
    np.testing.assert_allclose(float(loss), -(weights * log_prob).mean(), rtol=1e-4)
    np.testing.assert_allclose(float(info['weight_max']), weights.max(), rtol=1e-4)
    np.testing.assert_allclose(float(info['adv']), advantages.mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(info['mse']), ((means - b['actions']) ** 2).mean(), rtol=1e-4)
    assert ('log_stds' in agent.network.params['modules_actor']) == (not const_std)


def _grads(agent, loss_fn):
    return jax.grad(lambda p: loss_fn(p)[0])(agent.network.params)


def _max_abs(tree):
    return max(float(jnp.abs(leaf).max()) for leaf in jax.tree_util.tree_leaves(tree))


def test_gradient_routing():
    agent, batch = make_agent(), toy_batch()
    for loss_name, moved in [('value_loss', 'modules_value'), ('critic_loss', 'modules_critic'),
                             ('actor_loss', 'modules_actor')]:
        grads = _grads(agent, lambda p: getattr(agent, loss_name)(batch, p))
        for module in ('modules_value', 'modules_critic', 'modules_actor'):
            assert (_max_abs(grads[module]) > 0) == (module == moved), (loss_name, module)


def test_total_loss_update_and_target():
    agent, batch = make_agent(), toy_batch()
    loss, info = agent.total_loss(batch, agent.network.params, jax.random.PRNGKey(0))
    np.testing.assert_allclose(float(loss), float(info['value/loss'] + info['critic/loss'] + info['actor/loss']),
                               rtol=1e-6)
    # No random draws: the rng does not matter.
    assert float(agent.total_loss(batch, agent.network.params, jax.random.PRNGKey(5))[0]) == float(loss)
    new_agent, update_info = agent.update(batch)
    assert set(update_info) == set(info) | {'grad_norm'}
    # The target follows the PRE-step critic: φ̄ ← τ φ_old + (1 − τ) φ̄.
    want = jax.tree_util.tree_map(lambda p, t: 0.005 * p + 0.995 * t, agent.network.params['modules_critic'],
                                  agent.target_critic_params)
    jax.tree_util.tree_map(lambda a, w: np.testing.assert_allclose(a, w, rtol=1e-6, atol=1e-7),
                           new_agent.target_critic_params, want)


def test_sample_actions_temperature_and_bounds():
    agent = make_agent()
    observations = jax.random.normal(jax.random.PRNGKey(3), (64, OBS_DIM))
    means, _ = agent.network.select('actor')(observations)
    for key in (jax.random.PRNGKey(4), jax.random.PRNGKey(5)):  # temperature 0: the mean, for any key
        np.testing.assert_allclose(agent.sample_actions(observations, key, 0.0), jnp.clip(means, -1, 1), atol=1e-6)
    noise = jax.random.normal(jax.random.PRNGKey(4), means.shape)
    np.testing.assert_allclose(agent.sample_actions(observations, jax.random.PRNGKey(4), 0.5),
                               jnp.clip(means + 0.5 * noise, -1, 1), atol=1e-6)  # σ = 1
    actions = agent.sample_actions(observations, jax.random.PRNGKey(6))
    assert actions.shape == (64, ACTION_DIM) and float(jnp.abs(actions).max()) <= 1.0
    assert float(jnp.abs(actions).max()) == 1.0  # σ = 1 pushes some samples past the bounds: they are clipped
    assert agent.sample_actions(observations[0], jax.random.PRNGKey(6)).shape == (ACTION_DIM,)


def test_fused_vmapped_training_validation_and_checkpoint(tmp_path):
    info = check_fused_training(IQLAgent, tiny_config(), tmp_path)
    assert {'value/loss', 'critic/loss', 'actor/loss', 'actor/weight_mean'} <= set(info)


def test_bad_config_raises_clear_errors():
    with pytest.raises(ValueError, match="expected 'iql'"):
        IQLAgent.create(jax.random.PRNGKey(0), toy_batch(), tiny_config(agent_name='fql'))
    config = tiny_config().to_dict()
    del config['expectile']
    with pytest.raises(ValueError, match=r"missing keys \['expectile'\]"):
        IQLAgent.create(jax.random.PRNGKey(0), toy_batch(), config)


def test_default_config_matches_fql():
    config = get_config()
    assert (config.agent_name, config.lr, config.batch_size) == ('iql', 3e-4, 256)
    assert config.actor_hidden_dims == (512,) * 4 and config.value_hidden_dims == (512,) * 4
    assert config.layer_norm is True and config.actor_layer_norm is False
    assert (config.discount, config.tau, config.expectile, config.alpha) == (0.99, 0.005, 0.9, 10.0)
    assert (config.max_awr_weight, config.const_std, config.actor_fc_scale) == (100.0, True, 0.01)
    assert config.normalize_observations is False
