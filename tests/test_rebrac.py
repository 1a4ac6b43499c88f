"""ReBRAC agent: the BC and critic-penalty terms against float64 NumPy networks, the delayed actor-update
schedule (actor, its Adam state and both targets move only on scheduled updates), sampling, and training
through the fused, seed-vmapped loop."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.rebrac import ReBRACAgent, draw_loss_noise, get_config
from tests.agent_helpers import (ACTION_DIM, BATCH, OBS_DIM, as_np, check_fused_training, max_abs_difference,
                                 np_critic, np_mlp, toy_batch)


def tiny_config(**overrides):
    config = get_config()
    config.actor_hidden_dims = (8, 8)
    config.value_hidden_dims = (8, 8)
    config.discount = 0.9
    config.alpha_actor = 0.7
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def batch_with_next_actions(seed: int = 0) -> dict:
    batch = toy_batch(seed)
    next_actions = jnp.clip(0.5 * jax.random.normal(jax.random.PRNGKey(seed + 100), (BATCH, ACTION_DIM)), -1, 1)
    return batch | {'next_actions': next_actions}


@functools.cache
def make_agent(seed: int = 1, **overrides) -> ReBRACAgent:
    agent = ReBRACAgent.create(jax.random.PRNGKey(seed), batch_with_next_actions(), tiny_config(**overrides))
    # Targets different from the online networks, so the tests tell them apart.
    return agent.replace(
        target_actor_params=jax.tree_util.tree_map(lambda p: 1.3 * p + 0.02, agent.target_actor_params),
        target_critic_params=jax.tree_util.tree_map(lambda p: 0.7 * p + 0.01, agent.target_critic_params))


def np_actor(actor_params, observations):
    return np.tanh(np_mlp(actor_params, observations))


def test_critic_loss_with_smoothing_and_penalty_matches_numpy():
    agent = make_agent(alpha_critic=0.4)
    batch, b = batch_with_next_actions(), as_np(batch_with_next_actions())
    epsilon = 3.0 * jax.random.normal(jax.random.PRNGKey(8), (BATCH, ACTION_DIM))  # large: some noise is clipped
    loss, info = agent.critic_loss(batch, agent.network.params, epsilon)

    noise = np.clip(0.2 * np.asarray(epsilon, np.float64), -0.5, 0.5)
    assert np.any(np.abs(0.2 * np.asarray(epsilon)) > 0.5)
    next_actions = np.clip(np_actor(as_np(agent.target_actor_params), b['next_observations']) + noise, -1, 1)
    penalty = ((next_actions - b['next_actions']) ** 2).sum(-1)
    next_q = np_critic(as_np(agent.target_critic_params), b['next_observations'], next_actions).min(0)
    target = b['rewards'] + 0.9 * b['masks'] * (next_q - 0.4 * penalty)
    q = np_critic(as_np(agent.network.params['modules_critic']), b['observations'], b['actions'])
    np.testing.assert_allclose(float(loss), ((q - target) ** 2).mean(), rtol=1e-4)
    np.testing.assert_allclose(float(info['penalty']), penalty.mean(), rtol=1e-4)
    np.testing.assert_allclose(float(info['target_q_mean']), target.mean(), rtol=1e-4, atol=1e-6)
    # Without the penalty the target is the plain smoothed TD3 target and next_actions are not read.
    plain = make_agent(alpha_critic=0.0)
    _, plain_info = plain.critic_loss({k: v for k, v in batch.items() if k != 'next_actions'},
                                      plain.network.params, epsilon)
    np.testing.assert_allclose(float(plain_info['target_q_mean']),
                               (b['rewards'] + 0.9 * b['masks'] * next_q).mean(), rtol=1e-4, atol=1e-6)
    assert 'penalty' not in plain_info


@pytest.mark.parametrize('alpha_actor', [0.0, 2.5])
def test_actor_loss_bc_term_and_normalised_q_match_numpy(alpha_actor):
    agent = make_agent(alpha_actor=alpha_actor)
    batch, b = toy_batch(), as_np(toy_batch())
    loss, info = agent.actor_loss(batch, agent.network.params)
    params = as_np(agent.network.params)
    actions = np_actor(params['modules_actor'], b['observations'])
    q = np_critic(params['modules_critic'], b['observations'], actions).min(0)
    distance = ((actions - b['actions']) ** 2).sum(-1)
    q_loss, bc_loss = -(q / np.abs(q).mean()).mean(), alpha_actor * distance.mean()
    for key, want in [('q_loss', q_loss), ('bc_loss', bc_loss), ('mse', distance.mean()), ('q', q.mean()),
                      ('loss', q_loss + bc_loss)]:
        np.testing.assert_allclose(float(info[key]), want, rtol=1e-4, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(float(loss), q_loss + bc_loss, rtol=1e-4, atol=1e-6)


def _max_abs(tree):
    return max(float(jnp.abs(leaf).max()) for leaf in jax.tree_util.tree_leaves(tree))


def test_gradient_routing_and_stop_gradient_on_q_scale():
    agent, batch = make_agent(alpha_critic=0.4), batch_with_next_actions()
    noise = draw_loss_noise(jax.random.PRNGKey(2), BATCH, ACTION_DIM)
    critic_grads = jax.grad(lambda p: agent.critic_loss(batch, p, noise.target_noise)[0])(agent.network.params)
    assert _max_abs(critic_grads['modules_actor']) == 0 and _max_abs(critic_grads['modules_critic']) > 0
    actor_grads = jax.grad(lambda p: agent.actor_loss(batch, p)[0])(agent.network.params)
    assert _max_abs(actor_grads['modules_critic']) == 0 and _max_abs(actor_grads['modules_actor']) > 0
    # λ = 1 / mean|Q| is a constant: the Q-term gradient is λ times that of −mean Q.
    params = agent.network.params
    q = agent.network.select('critic')(batch['observations'], agent.actor_actions(batch['observations'])).min(0)
    scale = 1.0 / float(jnp.abs(q).mean())
    raw = jax.grad(lambda p: -agent.network.select('critic')(
        batch['observations'], agent.actor_actions(batch['observations'], params=p)).min(0).mean())(params)
    q_only = jax.grad(lambda p: agent.actor_loss(batch, p)[1]['q_loss'])(params)
    jax.tree_util.tree_map(lambda a, r: np.testing.assert_allclose(a, scale * r, rtol=1e-4, atol=1e-7),
                           q_only['modules_actor'], raw['modules_actor'])


def test_actor_loss_and_targets_only_on_scheduled_updates_and_momentum_between():
    """actor_freq = 3, as in FQL's code: updates 3 and 6 include the actor's loss and move both targets; on the
    others the actor's gradient is zero, yet one shared Adam's momentum moves it once it has had a gradient
    (updates 4 and 5), and not before (updates 1 and 2). The critic steps every update."""
    agent = ReBRACAgent.create(jax.random.PRNGKey(4), toy_batch(), tiny_config(actor_freq=3))
    batch = toy_batch(1)
    for update in range(1, 7):
        new, info = agent.update(batch)
        scheduled = update % 3 == 0
        assert float(info['actor/updated']) == float(scheduled)
        assert max_abs_difference(new.network.params['modules_critic'], agent.network.params['modules_critic']) > 0
        grads = jax.grad(lambda p: agent.total_loss(batch, p, agent.rng, jnp.asarray(scheduled))[0])(
            agent.network.params)
        assert (_max_abs(grads['modules_actor']) > 0) == scheduled, update
        actor_moved = max_abs_difference(new.network.params['modules_actor'], agent.network.params['modules_actor'])
        assert (actor_moved > 0) == (update >= 3), update
        for target, online in (('target_actor_params', 'modules_actor'), ('target_critic_params', 'modules_critic')):
            old_target, new_target = getattr(agent, target), getattr(new, target)
            if scheduled:  # Polyak from the PRE-step online parameters
                want = jax.tree_util.tree_map(lambda p, t: 0.005 * p + 0.995 * t, agent.network.params[online],
                                              old_target)
                jax.tree_util.tree_map(lambda a, w: np.testing.assert_allclose(a, w, rtol=1e-6, atol=1e-7),
                                       new_target, want)
            else:
                jax.tree_util.tree_map(np.testing.assert_array_equal, new_target, old_target)
        agent = new
    assert int(agent.network.step) == 6
    counts = [int(x) for x in jax.tree_util.tree_leaves(agent.network.opt_state) if jnp.ndim(x) == 0]
    assert set(counts) == {6}  # one Adam, stepped on every update


def one_step_task(num_rows: int = 2048) -> tuple[dict, jax.Array]:
    """Every transition terminal (mask 0), so Q(s, a) = r(s, a) = −‖a − a*(s)‖² with a*(s) = 0.8 tanh(W s); the
    data's actions are uniform on [−1, 1]², so the BC optimum is π(s) ≈ 0, far from a*(s)."""
    keys = jax.random.split(jax.random.PRNGKey(11), 3)
    observations = jax.random.normal(keys[0], (num_rows, OBS_DIM))
    best = 0.8 * jnp.tanh(observations @ jax.random.normal(keys[1], (OBS_DIM, ACTION_DIM)))
    actions = jax.random.uniform(keys[2], (num_rows, ACTION_DIM), minval=-1.0, maxval=1.0)
    data = dict(observations=observations, actions=actions, rewards=-jnp.sum((actions - best) ** 2, axis=-1),
                masks=jnp.zeros(num_rows), next_observations=observations)
    return data, best


@pytest.mark.parametrize('alpha_actor', [1.0, 100.0])
def test_actor_climbs_the_critic_unless_bc_dominates(alpha_actor):
    """End to end through `update` (scanned): the critic learns r(s, a), and the actor, updated every second step
    through the normalised Q term, moves from the BC mean to a*(s) at α_actor = 1 (FQL's cube-single value);
    at α_actor = 100 the BC term wins and π stays near the data's mean action."""
    data, best = one_step_task()
    agent = ReBRACAgent.create(jax.random.PRNGKey(0), {k: v[:2] for k, v in data.items()},
                               tiny_config(actor_hidden_dims=(32, 32), value_hidden_dims=(32, 32),
                                           alpha_actor=alpha_actor))

    def update(agent, key):
        rows = jax.random.randint(key, (128,), 0, len(best))
        return agent.update({k: v[rows] for k, v in data.items()})[0], None

    agent, _ = jax.jit(lambda a, keys: jax.lax.scan(update, a, keys))(agent, jax.random.split(jax.random.PRNGKey(1),
                                                                                            1500))
    error = float(jnp.mean(jnp.sum((agent.actor_actions(data['observations']) - best) ** 2, axis=-1)))
    bc_error = float(jnp.mean(jnp.sum(best ** 2, axis=-1)))  # the error of the BC optimum π = 0
    if alpha_actor == 1.0:  # the BC term still pulls π a little towards 0 (measured: error ≈ 0.11–0.12 × bc_error)
        assert error < 0.25 * bc_error, (error, bc_error)
    else:
        assert error > 0.7 * bc_error, (error, bc_error)


def test_critic_penalty_needs_next_actions():
    with pytest.raises(ValueError, match='needs batches with next_actions'):
        ReBRACAgent.create(jax.random.PRNGKey(0), toy_batch(), tiny_config(alpha_critic=0.1))
    with pytest.raises(ValueError, match=r'--agent.actor_freq=0 is not allowed: an integer >= 1'):  # CONFIG_RULES
        ReBRACAgent.create(jax.random.PRNGKey(0), toy_batch(), tiny_config(actor_freq=0))


def test_sample_actions_noise_temperature_and_bounds():
    agent = make_agent()
    observations = jax.random.normal(jax.random.PRNGKey(3), (64, OBS_DIM))
    mode = agent.actor_actions(observations)
    for key in (jax.random.PRNGKey(4), jax.random.PRNGKey(5)):  # temperature 0: π(s) for any key
        np.testing.assert_allclose(agent.sample_actions(observations, key, 0.0), mode, atol=1e-6)
    actions = agent.sample_actions(observations, jax.random.PRNGKey(6))
    epsilon = jax.random.normal(jax.random.PRNGKey(6), mode.shape)
    np.testing.assert_allclose(actions, jnp.clip(mode + jnp.clip(0.2 * epsilon, -0.5, 0.5), -1, 1), atol=1e-6)
    assert float(jnp.abs(actions - mode).max()) <= 0.5 + 1e-6 and float(jnp.abs(actions).max()) <= 1.0
    assert agent.sample_actions(observations[0], jax.random.PRNGKey(6)).shape == (ACTION_DIM,)


def test_fused_vmapped_training_validation_and_checkpoint(tmp_path):
    info = check_fused_training(ReBRACAgent, tiny_config(), tmp_path, num_updates=4)
    np.testing.assert_allclose(info['actor/updated'], [1.0, 1.0])  # the info is update 4's, which moves the actor


def test_default_config_matches_fql():
    config = get_config()
    assert (config.agent_name, config.lr, config.batch_size) == ('rebrac', 3e-4, 256)
    assert config.actor_hidden_dims == (512,) * 4 and config.value_hidden_dims == (512,) * 4
    assert config.layer_norm is True and config.actor_layer_norm is False
    assert (config.discount, config.tau, config.actor_fc_scale) == (0.99, 0.005, 0.01)
    assert (config.alpha_actor, config.alpha_critic, config.actor_freq) == (0.0, 0.0, 2)
    assert (config.actor_noise, config.actor_noise_clip) == (0.2, 0.5)
