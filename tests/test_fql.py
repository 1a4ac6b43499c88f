"""FQL agent: losses against hand-written NumPy maths, gradient routing, target update, vmap/scan."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.fql import FQLAgent, draw_loss_noise, get_config

OBS_DIM, ACTION_DIM, BATCH = 3, 2, 5


def tiny_config(**overrides):
    """Tiny networks; 3 Euler steps keep jit compiles short (tests of the 10-step teacher override it)."""
    config = get_config()
    config.flow_steps = 3
    config.actor_hidden_dims = (8, 8)
    config.value_hidden_dims = (8, 8)
    config.alpha = 3.0
    config.discount = 0.9
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def toy_batch(seed: int = 0, batch_size: int = BATCH) -> dict:
    keys = jax.random.split(jax.random.PRNGKey(seed), 5)
    return dict(
        observations=jax.random.normal(keys[0], (batch_size, OBS_DIM)),
        actions=jnp.clip(0.5 * jax.random.normal(keys[1], (batch_size, ACTION_DIM)), -1.0, 1.0),
        rewards=-jax.random.bernoulli(keys[2], 0.7, (batch_size,)).astype(jnp.float32),
        masks=jax.random.bernoulli(keys[3], 0.8, (batch_size,)).astype(jnp.float32),
        next_observations=jax.random.normal(keys[4], (batch_size, OBS_DIM)),
        terminals=jnp.zeros((batch_size,)),
    )


@functools.cache  # agents are immutable pytrees; caching saves the (slow, un-jitted) init per test
def make_agent(seed: int = 1, **overrides) -> FQLAgent:
    return FQLAgent.create(jax.random.PRNGKey(seed), toy_batch(), tiny_config(**overrides))


# ------------------------------------------------------------------ NumPy reference (float64)
def np_gelu(x):
    """Flax's default gelu (tanh approximation)."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def np_mlp(params, x, layer_norm=False):
    params = jax.tree_util.tree_map(lambda p: np.asarray(p, np.float64), params)
    num_dense = sum(name.startswith('Dense_') for name in params)
    for i in range(num_dense):
        x = x @ params[f'Dense_{i}']['kernel'] + params[f'Dense_{i}']['bias']
        if i + 1 < num_dense:
            x = np_gelu(x)
            if layer_norm:
                mean = x.mean(-1, keepdims=True)
                var = ((x - mean) ** 2).mean(-1, keepdims=True)
                norm = params[f'LayerNorm_{i}']
                x = (x - mean) / np.sqrt(var + 1e-6) * norm['scale'] + norm['bias']
    return x


def np_critic(critic_params, obs, act):
    """(2, B) ensemble output from the vmapped member params (leading axis 2)."""
    members = critic_params['VmapMLP_0']
    inputs = np.concatenate([obs, act], -1)
    return np.stack([np_mlp(jax.tree_util.tree_map(lambda p: p[m], members), inputs, layer_norm=True)[:, 0]
                     for m in range(2)])


def np_velocity(params, obs, x, t):
    return np_mlp(params['modules_actor_bc_flow'], np.concatenate([obs, x, t], -1))


def np_one_step(params, obs, z):
    return np_mlp(params['modules_actor_onestep_flow'], np.concatenate([obs, z], -1))


def np_teacher(params, obs, z, steps=10):
    x = z.copy()
    for i in range(steps):
        x = x + np_velocity(params, obs, x, np.full((len(x), 1), i / steps)) / steps
    return np.clip(x, -1, 1)


def as_np(batch):
    return {k: np.asarray(v, np.float64) for k, v in batch.items()}


# ---------------------------------------------------------------------------------- tests
def test_shapes_and_action_bounds():
    agent = make_agent()
    params = agent.network.params
    assert params['modules_actor_bc_flow']['Dense_0']['kernel'].shape == (OBS_DIM + ACTION_DIM + 1, 8)
    assert params['modules_actor_onestep_flow']['Dense_0']['kernel'].shape == (OBS_DIM + ACTION_DIM, 8)
    assert params['modules_actor_bc_flow']['Dense_2']['kernel'].shape == (8, ACTION_DIM)
    assert 'LayerNorm_0' not in params['modules_actor_bc_flow']  # FQL: no LN in the actors
    assert params['modules_critic']['VmapMLP_0']['LayerNorm_0']['scale'].shape == (2, 8)
    # Large observations push μ_ω far outside [-1, 1]; sampled actions must still be clipped.
    observations = 100.0 * jax.random.normal(jax.random.PRNGKey(3), (64, OBS_DIM))
    raw = agent.one_step_actions(observations, jax.random.normal(jax.random.PRNGKey(4), (64, ACTION_DIM)))
    assert float(jnp.abs(raw).max()) > 1.0
    actions = agent.sample_actions(observations, jax.random.PRNGKey(5))
    assert actions.shape == (64, ACTION_DIM)
    assert float(jnp.abs(actions).max()) <= 1.0
    single = agent.sample_actions(observations[0], jax.random.PRNGKey(5))
    assert single.shape == (ACTION_DIM,)
    # The temperature scales z: 0 gives μ_ω(s, 0) for any key, 0.5 the action of z/2.
    small = 0.01 * observations
    zero_noise = jnp.clip(agent.one_step_actions(small, jnp.zeros((64, ACTION_DIM))), -1.0, 1.0)
    for key in (jax.random.PRNGKey(5), jax.random.PRNGKey(6)):
        np.testing.assert_allclose(agent.sample_actions(small, key, 0.0), zero_noise, rtol=1e-5, atol=1e-6)
    half_noise = 0.5 * jax.random.normal(jax.random.PRNGKey(5), (64, ACTION_DIM))
    np.testing.assert_allclose(agent.sample_actions(small, jax.random.PRNGKey(5), 0.5),
                               jnp.clip(agent.one_step_actions(small, half_noise), -1.0, 1.0), rtol=1e-5, atol=1e-6)
    q = agent.network.select('critic')(observations, actions)
    assert q.shape == (2, 64)


def test_target_starts_equal_to_critic_and_is_not_in_optimiser():
    agent = make_agent()
    jax.tree_util.tree_map(np.testing.assert_array_equal, agent.target_critic_params,
                           agent.network.params['modules_critic'])
    num_param_leaves = len(jax.tree_util.tree_leaves(agent.network.params))
    adam_state = agent.network.opt_state[0]
    assert len(jax.tree_util.tree_leaves(adam_state.mu)) == num_param_leaves


def test_euler_teacher_matches_hand_loop():
    agent = make_agent(flow_steps=10)
    batch = toy_batch()
    z = jax.random.normal(jax.random.PRNGKey(7), (BATCH, ACTION_DIM)) * 3.0  # large z: exercises the clip
    got = np.asarray(agent.flow_teacher_actions(batch['observations'], z))
    want = np_teacher(agent.network.params, as_np(batch)['observations'], np.asarray(z, np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert np.abs(got).max() <= 1.0


@pytest.mark.parametrize('q_agg', ['mean', 'min'])
def test_critic_loss_matches_numpy(q_agg):
    agent = make_agent(q_agg=q_agg)
    # Make target and online critic differ so the test tells them apart.
    agent = agent.replace(target_critic_params=jax.tree_util.tree_map(lambda p: 0.7 * p + 0.01,
                                                                      agent.target_critic_params))
    batch, b = toy_batch(), as_np(toy_batch())
    next_noise = jax.random.normal(jax.random.PRNGKey(8), (BATCH, ACTION_DIM))
    loss, info = agent.critic_loss(batch, agent.network.params, next_noise)

    params = agent.network.params
    next_actions = np.clip(np_one_step(params, b['next_observations'], np.asarray(next_noise, np.float64)), -1, 1)
    next_q = np_critic(agent.target_critic_params, b['next_observations'], next_actions)
    next_q = next_q.min(0) if q_agg == 'min' else next_q.mean(0)
    target = b['rewards'] + 0.9 * b['masks'] * next_q
    q = np_critic(params['modules_critic'], b['observations'], b['actions'])
    np.testing.assert_allclose(float(loss), ((q - target[None]) ** 2).mean(), rtol=1e-4)
    np.testing.assert_allclose(float(info['target_q_mean']), target.mean(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([info['q_mean'], info['q_max'], info['q_min']], [q.mean(), q.max(), q.min()],
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('normalize_q_loss', [False, True])
def test_actor_loss_matches_numpy(normalize_q_loss):
    agent = make_agent(normalize_q_loss=normalize_q_loss, flow_steps=10)
    batch, b = toy_batch(), as_np(toy_batch())
    noise = draw_loss_noise(jax.random.PRNGKey(9), BATCH, ACTION_DIM)
    noise = noise._replace(policy_noise=2.0 * noise.policy_noise)  # some one-step actions land outside [-1, 1]
    loss, info = agent.actor_loss(batch, agent.network.params, noise)

    params = agent.network.params
    x0, t, z = (np.asarray(a, np.float64) for a in (noise.flow_noise, noise.flow_times, noise.policy_noise))
    x_t = (1 - t) * x0 + t * b['actions']
    flow = ((np_velocity(params, b['observations'], x_t, t) - (b['actions'] - x0)) ** 2).mean()
    one_step = np_one_step(params, b['observations'], z)
    distill = ((one_step - np_teacher(params, b['observations'], z)) ** 2).mean()
    q = np_critic(params['modules_critic'], b['observations'], np.clip(one_step, -1, 1)).mean(0)
    q_loss = -q.mean() / (np.abs(q).mean() if normalize_q_loss else 1.0)
    mse = ((np.clip(one_step, -1, 1) - b['actions']) ** 2).mean()
    for key, want in [('bc_flow_loss', flow), ('distill_loss', distill), ('q_loss', q_loss), ('q', q.mean()),
                      ('mse', mse), ('loss', flow + 3.0 * distill + q_loss)]:
        np.testing.assert_allclose(float(info[key]), want, rtol=1e-4, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(float(loss), flow + 3.0 * distill + q_loss, rtol=1e-4, atol=1e-6)


def test_total_loss_is_sum_of_parts_with_noise_from_rng():
    agent = make_agent()
    batch, rng = toy_batch(), jax.random.PRNGKey(10)
    loss, info = agent.total_loss(batch, agent.network.params, rng)
    noise = draw_loss_noise(rng, BATCH, ACTION_DIM)
    critic, _ = agent.critic_loss(batch, agent.network.params, noise.next_noise)
    actor, _ = agent.actor_loss(batch, agent.network.params, noise)
    np.testing.assert_allclose(float(loss), float(critic + actor), rtol=1e-6)
    expected_keys = {'critic/loss', 'critic/q_mean', 'critic/q_max', 'critic/q_min', 'critic/target_q_mean',
                     'actor/loss', 'actor/bc_flow_loss', 'actor/distill_loss', 'actor/q_loss', 'actor/q',
                     'actor/mse'}
    assert set(info) == expected_keys
    assert all(v.shape == () for v in info.values())


def _grads(agent, loss_fn):
    return jax.grad(lambda p: loss_fn(p)[0])(agent.network.params)


def _max_abs(tree):
    return max(float(jnp.abs(leaf).max()) for leaf in jax.tree_util.tree_leaves(tree))


def test_gradient_routing():
    agent = make_agent()
    batch = toy_batch()
    noise = draw_loss_noise(jax.random.PRNGKey(11), BATCH, ACTION_DIM)

    critic_grads = _grads(agent, lambda p: agent.critic_loss(batch, p, noise.next_noise))
    assert _max_abs(critic_grads['modules_critic']) > 0
    assert _max_abs(critic_grads['modules_actor_bc_flow']) == 0  # no gradient through the Bellman target
    assert _max_abs(critic_grads['modules_actor_onestep_flow']) == 0

    actor_grads = _grads(agent, lambda p: agent.actor_loss(batch, p, noise))
    assert _max_abs(actor_grads['modules_critic']) == 0  # the Q term does not move the critic
    assert _max_abs(actor_grads['modules_actor_onestep_flow']) > 0
    # The teacher is under stop-gradient: v_θ's gradient is that of the BC flow loss alone.
    flow_only = _grads(agent, lambda p: (agent.actor_loss(batch, p, noise)[1]['bc_flow_loss'], None))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                           actor_grads['modules_actor_bc_flow'], flow_only['modules_actor_bc_flow'])

    # The Q term alone reaches μ_ω (through clip(μ_ω)) and nothing else.
    q_only = _grads(agent, lambda p: (agent.actor_loss(batch, p, noise)[1]['q_loss'], None))
    assert _max_abs(q_only['modules_actor_onestep_flow']) > 0
    assert _max_abs(q_only['modules_critic']) == 0 and _max_abs(q_only['modules_actor_bc_flow']) == 0


def test_alpha_scales_only_distillation():
    batch = toy_batch()
    noise = draw_loss_noise(jax.random.PRNGKey(12), BATCH, ACTION_DIM)
    _, info_low = make_agent(alpha=1.0).actor_loss(batch, make_agent().network.params, noise)
    _, info_high = make_agent(alpha=100.0).actor_loss(batch, make_agent().network.params, noise)
    for key in ('bc_flow_loss', 'distill_loss', 'q_loss'):
        np.testing.assert_allclose(info_low[key], info_high[key], rtol=1e-6)
    np.testing.assert_allclose(info_high['loss'] - info_low['loss'], 99.0 * info_low['distill_loss'], rtol=1e-4)


def test_target_polyak_uses_pre_step_params():
    agent = make_agent()
    batch = toy_batch()
    params0 = agent.network.params['modules_critic']
    agent1, _ = agent.update(batch)
    params1 = agent1.network.params['modules_critic']
    assert _max_abs(jax.tree_util.tree_map(jnp.subtract, params1, params0)) > 0  # the critic moved
    # Target started equal to params0, so after one step it is τ·params0 + (1 − τ)·params0 = params0.
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                           agent1.target_critic_params, params0)
    agent2, _ = agent1.update(batch)
    want = jax.tree_util.tree_map(lambda p, t: 0.005 * p + 0.995 * t, params1, params0)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                           agent2.target_critic_params, want)
    assert not np.array_equal(agent1.rng, agent.rng)  # each update draws fresh noise


def test_update_equals_one_adam_step_on_total_loss():
    agent = make_agent()
    batch = toy_batch()
    new_agent, info = agent.update(batch)
    _, loss_rng = jax.random.split(agent.rng)
    loss, _ = agent.total_loss(batch, agent.network.params, loss_rng)
    np.testing.assert_allclose(float(info['critic/loss'] + info['actor/loss']), float(loss), rtol=1e-6)
    grads = jax.grad(lambda p: agent.total_loss(batch, p, loss_rng)[0])(agent.network.params)
    # First Adam step (bias-corrected m/√v = sign(g)): Δ = −lr·g / (|g| + eps).
    want = jax.tree_util.tree_map(lambda p, g: p - 3e-4 * g / (jnp.abs(g) + 1e-8), agent.network.params, grads)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                           new_agent.network.params, want)


def test_vmap_over_seeds_and_scan_match_sequential_updates():
    batch, config = toy_batch(), tiny_config()
    seeds = jax.random.split(jax.random.PRNGKey(13), 2)
    agents = jax.jit(jax.vmap(lambda key: FQLAgent.create(key, batch, config)))(seeds)

    def three_updates(agent):
        return jax.lax.scan(lambda a, _: a.update(batch), agent, None, length=3)

    final, infos = jax.vmap(three_updates)(agents)
    assert infos['critic/loss'].shape == (2, 3)
    assert not np.allclose(infos['critic/loss'][0], infos['critic/loss'][1])  # seeds differ
    single_create = jax.jit(lambda key: FQLAgent.create(key, batch, config))
    for s in range(2):
        agent = single_create(seeds[s])
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a[s], b, rtol=1e-6),
                               agents.network.params, agent.network.params)  # vmapped create == per-seed create
        for step in range(3):
            agent, info = agent.update(batch)
            np.testing.assert_allclose(infos['actor/loss'][s, step], info['actor/loss'], rtol=1e-4)
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a[s], b, rtol=1e-4, atol=1e-6),
                               final.network.params, agent.network.params)


def test_updates_decrease_bc_flow_loss():
    batch = toy_batch(seed=2, batch_size=64)
    # Actions a deterministic function of s, so the flow loss can fall well below its start (≈ E|a − x⁰|²).
    batch['actions'] = jnp.tanh(batch['observations'][:, :ACTION_DIM])
    agent = FQLAgent.create(jax.random.PRNGKey(14), batch, tiny_config(actor_hidden_dims=(32, 32)))
    eval_noise = draw_loss_noise(jax.random.PRNGKey(15), 64, ACTION_DIM)

    def flow_loss(a):
        return float(a.actor_loss(batch, a.network.params, eval_noise)[1]['bc_flow_loss'])

    before = flow_loss(agent)
    agent, _ = jax.lax.scan(lambda a, _: a.update(batch), agent, None, length=200)
    after = flow_loss(agent)
    assert after < 0.75 * before, (before, after)


def test_bad_config_and_batch_raise_clear_errors():
    batch = toy_batch()
    with pytest.raises(ValueError, match=r"--agent.q_agg='max' is not allowed: one of 'mean', 'min'"):  # CONFIG_RULES
        FQLAgent.create(jax.random.PRNGKey(0), batch, tiny_config(q_agg='max'))
    with pytest.raises(ValueError, match="agent_name"):
        FQLAgent.create(jax.random.PRNGKey(0), batch, tiny_config(agent_name='mfql'))
    with pytest.raises(ValueError, match='next_observations'):
        FQLAgent.create(jax.random.PRNGKey(0), {k: v for k, v in batch.items() if k != 'next_observations'},
                        tiny_config())
    config = tiny_config().to_dict()
    del config['alpha']
    with pytest.raises(ValueError, match='alpha'):
        FQLAgent.create(jax.random.PRNGKey(0), batch, config)


def test_default_config_matches_fql():
    config = get_config()
    assert config.agent_name == 'fql' and config.batch_size == 256 and config.lr == 3e-4
    assert config.actor_hidden_dims == (512,) * 4 and config.value_hidden_dims == (512,) * 4
    assert config.layer_norm is True and config.actor_layer_norm is False
    assert (config.discount, config.tau, config.q_agg) == (0.99, 0.005, 'mean')
    assert (config.alpha, config.flow_steps) == (10.0, 10)
    assert config.normalize_q_loss is False and 'offline_steps' not in config  # FQL has no schedule to size


def test_observation_normalisation_equals_training_on_z_scored_observations():
    """With `normalize_observations`, FQL behaves exactly like FQL without it fed (s − μ)/σ; statistics that
    do not fit the observations are refused."""
    mean = tuple(float(v) for v in np.linspace(-1.0, 2.0, OBS_DIM))
    std = tuple(float(v) for v in np.linspace(0.5, 2.5, OBS_DIM))
    raw = toy_batch(4)
    z_scored = raw | {key: (raw[key] - jnp.asarray(mean)) / jnp.asarray(std)
                      for key in ('observations', 'next_observations')}
    normalising = make_agent(2, normalize_observations=True, observation_mean=mean, observation_std=std)
    plain = make_agent(2)
    normalising, normalising_info = normalising.update(raw)
    plain, plain_info = plain.update(z_scored)
    np.testing.assert_allclose(normalising_info['critic/loss'], plain_info['critic/loss'], rtol=1e-6)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7),
                           normalising.network.params, plain.network.params)
    key = jax.random.PRNGKey(3)
    np.testing.assert_allclose(normalising.sample_actions(raw['observations'], key),
                               plain.sample_actions(z_scored['observations'], key), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=f'observation_mean has 1 entries but observations have {OBS_DIM}'):
        FQLAgent.create(jax.random.PRNGKey(0), toy_batch(), tiny_config(
            normalize_observations=True, observation_mean=(0.0,), observation_std=std))
