"""Unit tests for the MeanFlowQL agent: MeanFlow maths, gradient routing, targets, α rule, vmap."""

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents.mfql import (MFQLAgent, actor_lr_schedule, adaptive_alpha, adaptive_l2_loss, draw_loss_noise,
                         draw_mfi_inputs, get_config, mean_flow_target, mfi_loss_from_draws, push_loss_window,
                         sample_times)
from networks.policy import DiTPolicy, MLPPolicy

OBS_DIM, ACTION_DIM, BATCH = 6, 3, 8


def _batch(seed: int = 0, batch_size: int = BATCH) -> dict:
    k = jax.random.split(jax.random.PRNGKey(seed), 5)
    return dict(observations=jax.random.normal(k[0], (batch_size, OBS_DIM)),
                actions=jax.random.uniform(k[1], (batch_size, ACTION_DIM), minval=-1, maxval=1),
                rewards=jax.random.normal(k[2], (batch_size,)),
                masks=(jax.random.uniform(k[3], (batch_size,)) > 0.3).astype(jnp.float32),
                next_observations=jax.random.normal(k[4], (batch_size, OBS_DIM)),
                terminals=jnp.zeros((batch_size,)))


def _config(**overrides):
    config = get_config()
    config.update(dict(value_hidden_dims=(16, 16), actor_arch='mlp', actor_hidden_dim=16, actor_depth=1,
                       actor_mlp_hidden_dims=(16, 16), offline_steps=100, batch_size=BATCH,
                       normalize_observations=False))
    config.update(overrides)
    return config


def _create(config, seed: int = 0, batch_size: int = BATCH) -> MFQLAgent:
    """`MFQLAgent.create` under one `jax.jit` (one compilation instead of one per eager op)."""
    return jax.jit(lambda key: MFQLAgent.create(key, _batch(0, batch_size), config))(jax.random.PRNGKey(seed))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _perturbed(tree, seed: int, scale: float = 0.3):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef, [x + scale * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)])


def _random_agent(seed: int = 0, scale: float = 0.3, **overrides) -> MFQLAgent:
    """An agent whose actor and (online and target) critic params are random, so g ≠ 0."""
    agent = _create(_config(**overrides), seed)
    params = _perturbed(agent.network.params, seed + 100, scale)
    target = {'modules_critic': _perturbed(params['modules_critic'], seed + 200, 0.1)}
    return agent.replace(network=agent.network.replace(params=params), target_critic_params=target)


def _norm(tree) -> float:
    return float(jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree_util.tree_leaves(tree))))


# ------------------------------------------------------------------------------------------------ maths

@pytest.mark.parametrize('module', [DiTPolicy(ACTION_DIM, hidden_dim=16, depth=2), MLPPolicy(ACTION_DIM, (32, 32))])
def test_mean_flow_target_matches_finite_difference(module):
    """g_tgt = a_t − (1−t)v − t·ġ with ġ = d/dt g(s, a_t(t), t), checked by central differences in float64."""
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.PRNGKey(1), 5)
        s = jax.random.normal(k[0], (BATCH, OBS_DIM), jnp.float64)
        a = jax.random.uniform(k[1], (BATCH, ACTION_DIM), jnp.float64, -1, 1)
        e = jax.random.normal(k[2], (BATCH, ACTION_DIM), jnp.float64)
        t = jax.random.uniform(k[3], (BATCH, 1), jnp.float64, 0.1, 0.9)
        params = jax.jit(module.init)(k[4], s, a, t)
        params = _perturbed(jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), params), 7, 0.5)

        def g_fn(z, tau):
            return module.apply(params, s, z, tau)

        def g_on_path(tau):
            return g_fn((1 - tau) * a + tau * e, tau)

        h = 1e-5

        @jax.jit
        def compute():
            g, target = mean_flow_target(g_fn, (1 - t) * a + t * e, t, e - a, target_clip=jnp.inf)
            return g, target, (g_on_path(t + h) - g_on_path(t - h)) / (2 * h), g_on_path(t)

        g, target, g_dot_fd, g_direct = compute()
        expected = (1 - t) * a + t * e - (1 - t) * (e - a) - t * g_dot_fd
        g_dot = ((1 - t) * a + t * e - (1 - t) * (e - a) - target) / t
        assert target.dtype == jnp.float64
        assert float(jnp.abs(g_dot_fd).mean()) > 1e-2  # the derivative is not trivially zero
        assert float(jnp.linalg.norm(g_dot - g_dot_fd) / jnp.linalg.norm(g_dot_fd)) < 1e-4
        assert float(jnp.linalg.norm(target - expected) / jnp.linalg.norm(expected)) < 1e-4
        np.testing.assert_allclose(g, g_direct, rtol=1e-12)
        # The target is clipped and carries no gradient.
        _, clipped = mean_flow_target(g_fn, (1 - t) * a + t * e, t, e - a, target_clip=0.01)
        assert float(jnp.abs(clipped).max()) == pytest.approx(0.01)


def _point_mass_actions(s):
    return 0.5 * jnp.tanh(s[:, :ACTION_DIM] - s[:, ACTION_DIM:])


def test_closed_form_mean_flow_has_zero_loss_and_generates_data():
    """Deterministic data a = c(s): the exact residual mean flow is g(z, t) = z − (z − c)/t (u = (z − c)/t)."""
    with jax.enable_x64(True):
        s = jax.random.normal(jax.random.PRNGKey(0), (64, OBS_DIM), jnp.float64)
        c = _point_mass_actions(s)

        def exact_g(z, t):
            return z - (z - c) / t

        kwargs = dict(target_clip=5.0, adaptive_gamma=0.8, adaptive_c=1e-4)
        times, noises = draw_mfi_inputs(jax.random.PRNGKey(1), *c.shape, 100, c.dtype)
        loss, info = mfi_loss_from_draws(exact_g, c, times, noises, **kwargs)
        assert float(info['mfi_mse']) == pytest.approx(1e-12, rel=1e-6)  # δ² is at its 1e-12 floor everywhere
        assert float(loss) < 1e-10
        e = jax.random.normal(jax.random.PRNGKey(2), c.shape, jnp.float64)
        np.testing.assert_allclose(exact_g(e, jnp.ones((64, 1))), c, atol=1e-12)
        # Wrong flows have clearly positive loss: an offset, and a t-independent flow with the wrong speed.
        for wrong_g in (lambda z, t: exact_g(z, t) + 0.1, lambda z, t: z - 0.5 * (z - c)):
            assert float(mfi_loss_from_draws(wrong_g, c, times, noises, **kwargs)[0]) > 1e-3
    with jax.enable_x64(True):
        t = jnp.full((64, 1), 0.5, jnp.float64)
        e = jax.random.normal(jax.random.PRNGKey(3), c.shape, jnp.float64)
        g, target = mean_flow_target(exact_g, (1 - t) * c + t * e, t, e - c, 5.0)
        np.testing.assert_allclose(g, target, atol=1e-12)
        np.testing.assert_allclose(g, c - (e - c) * (1 - t) + 0 * t, atol=1e-12)  # g = a_t − v on the path


def test_adaptive_l2_loss_values_and_stopped_weights():
    prediction = jnp.array([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]])
    target = jnp.array([[0.0, 0.0], [0.0, 0.0], [3.0, 1.0]])
    gamma, c = 0.8, 1e-4
    sq = np.array([2.5, 1e-12, 2.0])
    w = np.clip(1 / (sq + c) ** (1 - gamma), 1e-6, 1e6)
    loss, mse = adaptive_l2_loss(prediction, target, gamma, c)
    np.testing.assert_allclose(loss, np.mean(w * sq), rtol=1e-5)
    np.testing.assert_allclose(mse, np.mean(sq), rtol=1e-5)
    grad = jax.grad(lambda p: adaptive_l2_loss(p, target, gamma, c)[0])(prediction)
    expected = w[:, None] * 2 * (np.asarray(prediction) - np.asarray(target)) / 2 / 3
    np.testing.assert_allclose(grad, expected, rtol=1e-5)


def test_sample_times_discrete_and_continuous():
    discrete = np.asarray(sample_times(jax.random.PRNGKey(0), 5000, 10))
    assert discrete.shape == (5000, 1)
    np.testing.assert_allclose(np.unique(discrete), np.arange(1, 11) / 10, rtol=1e-6)
    continuous = np.asarray(sample_times(jax.random.PRNGKey(0), 5000, 10000))
    assert continuous.min() >= 0 and continuous.max() < 1 and len(np.unique(continuous)) > 4900
    assert abs(continuous.mean() - 0.5) < 0.02


# ------------------------------------------------------------------------------------------------ α rule

ALPHA_CONFIG = dict(alpha=10.0, alpha_update_interval=2, alpha_warmup_fraction=0.5, offline_steps=20,
                    alpha_threshold=5.0, alpha_increase=1.2, alpha_decrease=0.8, alpha_min_ratio=0.1,
                    alpha_max_ratio=10.0)


def _run_alpha(losses, window_size=3, config=ALPHA_CONFIG):
    """Replays the agent's bookkeeping for updates 1, 2, ...: α for this step, then push on check steps."""
    alpha, window, count = jnp.float32(config['alpha']), jnp.zeros(window_size), jnp.int32(0)
    alphas = []
    for step, loss in enumerate(losses, start=1):
        alpha = adaptive_alpha(alpha, window, count, jnp.int32(step), jnp.float32(loss), config)
        if step % config['alpha_update_interval'] == 0:
            window, count = push_loss_window(window, count, jnp.float32(loss))
        alphas.append(float(alpha))
    return np.array(alphas), np.asarray(window), int(count)


def test_push_loss_window_keeps_newest_last():
    window, count = push_loss_window(jnp.zeros(3), jnp.int32(0), jnp.float32(1.0))
    window, count = push_loss_window(window, count, jnp.float32(2.0))
    np.testing.assert_array_equal(window, [0.0, 1.0, 2.0]) and None
    assert int(count) == 2
    for value in (3.0, 4.0):
        window, count = push_loss_window(window, count, jnp.float32(value))
    np.testing.assert_array_equal(window, [2.0, 3.0, 4.0])
    assert int(count) == 3


def test_adaptive_alpha_warmup_increase_bounds_decrease():
    # Warm-up: α can change only from update 10 (= 0.5 · 20); the window still fills before that.
    alphas, window, count = _run_alpha([1.0] * 8 + [100.0])
    np.testing.assert_allclose(alphas, 10.0)
    assert count == 3 and window[-1] == 1.0  # steps 2,4,6,8 pushed 1.0; step 9 is not a check step
    # After warm-up, on check steps only: a loss 100x the mean raises α by 1.2, capped at 10 α₀ = 100.
    losses = [1.0] * 9 + [100.0] + [1.0] + list(10.0 ** np.arange(4, 34))  # keeps exceeding 5x the mean
    alphas, _, _ = _run_alpha(losses, window_size=20)
    assert alphas[8] == 10.0 and alphas[9] == pytest.approx(12.0) and alphas[10] == pytest.approx(12.0)
    assert alphas[11] == pytest.approx(14.4)  # step 12: 1e4 > 5 · mean(1,1,1,1,100)
    assert alphas.max() == pytest.approx(100.0) and alphas[-1] == pytest.approx(100.0)
    # A loss below mean/5 lowers α by 0.8, floored at 0.1 α₀ = 1.
    alphas, _, _ = _run_alpha([1.0] * 9 + [0.1] + [1.0] + list(10.0 ** -np.arange(2, 32)), window_size=20)
    assert alphas[9] == pytest.approx(8.0) and alphas[11] == pytest.approx(6.4)
    assert alphas.min() == pytest.approx(1.0) and alphas[-1] == pytest.approx(1.0)
    # Within the thresholds nothing changes.
    for inside in (4.9, 0.21):
        np.testing.assert_allclose(_run_alpha([1.0] * 9 + [inside], window_size=20)[0], 10.0)


def test_adaptive_alpha_averages_only_filled_slots():
    """Window [0, 1, 1] with 2 filled slots: H̄ = 1 (the authors' mask would average 0, 1 → 0.5 → increase)."""
    config = dict(ALPHA_CONFIG, alpha_warmup_fraction=0.0)
    window, count = jnp.array([0.0, 1.0, 1.0]), jnp.int32(2)
    assert float(adaptive_alpha(jnp.float32(10.0), window, count, jnp.int32(2), jnp.float32(4.9), config)) == 10.0
    assert float(adaptive_alpha(jnp.float32(10.0), window, count, jnp.int32(2), jnp.float32(5.1), config)) == \
        pytest.approx(12.0)
    # Fewer than two filled slots: never changes.
    one = jnp.int32(1)
    assert float(adaptive_alpha(jnp.float32(10.0), window, one, jnp.int32(2), jnp.float32(1e6), config)) == 10.0


UPDATE_CONFIG = dict(tau=0.1, alpha_update_interval=2, alpha_window=3, alpha_warmup_fraction=0.0)


def test_update_alpha_bookkeeping_polyak_target_and_lr():
    """One compiled `update`: α window pushes on check steps, Polyak-only target, optimiser partitions."""
    batch = _batch()
    agent = _random_agent(**UPDATE_CONFIG)
    mfi_losses, previous = [], agent
    for _ in range(4):
        agent, info = agent.update(batch)
        mfi_losses.append(float(info['actor/mfi_loss']))
        assert float(agent.alpha) == float(info['alpha'])
        online = agent.network.params['modules_critic']
        expected = jax.tree_util.tree_map(lambda o, t: 0.1 * o + 0.9 * t, online,
                                          previous.target_critic_params['modules_critic'])
        jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7),
                               agent.target_critic_params['modules_critic'], expected)
        assert _norm(jax.tree_util.tree_map(jnp.subtract, online, previous.network.params['modules_critic'])) > 0
        previous = agent
    assert int(agent.step) == 4 and int(agent.mfi_loss_window_count) == 2
    np.testing.assert_allclose(agent.mfi_loss_window, [0.0, mfi_losses[1], mfi_losses[3]], rtol=1e-6)
    assert set(agent.network.params) == {'modules_actor', 'modules_critic'}  # no target in the optimiser
    assert all(jnp.ndim(v) == 0 for v in info.values())
    assert {'critic/loss', 'critic/q_mean', 'actor/q_loss', 'actor/mfi_loss', 'alpha'} <= set(info)
    # offline_steps=100: 5 warm-up updates, so the LR of update 4 (optimiser count 3) is 3/5 of the peak.
    assert float(info['actor/lr']) == pytest.approx(0.6e-4)



@pytest.mark.parametrize('threshold, alpha_moves', [(5.0, False), (1.0, True)])
def test_adaptive_alpha_that_never_moves_equals_fixed_alpha(threshold, alpha_moves):
    """With α unchanged at every check, the adaptive rule is the fixed-α computation exactly (same keys, same
    parameters); benchmarks/reproduce.py relies on this to reuse an adaptive run as its fixed-α ablation.
    Threshold 1 makes every check move α (L_MFI is never exactly the window mean), and the runs differ."""
    batch = _batch()

    def train(mode: str) -> tuple[MFQLAgent, list[float]]:
        agent = _random_agent(**UPDATE_CONFIG, alpha_mode=mode, alpha_threshold=threshold)
        alphas = []
        for _ in range(8):  # checks at updates 2, 4, 6, 8; the window has ≥ 2 values from update 4 on
            agent, info = agent.update(batch)
            alphas.append(float(info['alpha']))
        return agent, alphas

    adaptive, adaptive_alphas = train('adaptive')
    fixed, fixed_alphas = train('fixed')
    assert fixed_alphas == [10.0] * 8
    assert (adaptive_alphas != fixed_alphas) == alpha_moves
    same = jax.tree_util.tree_all(jax.tree_util.tree_map(lambda x, y: bool(jnp.array_equal(x, y)),
                                                         adaptive.network.params, fixed.network.params))
    assert same != alpha_moves

def test_actor_lr_schedule_from_config():
    schedule = actor_lr_schedule(dict(actor_lr=1e-4, lr_min_ratio=0.1, lr_warmup_fraction=0.05,
                                      offline_steps=1000))
    assert float(schedule(0)) == 0.0
    assert float(schedule(50)) == pytest.approx(1e-4)
    assert float(schedule(1000)) == pytest.approx(1e-5) and float(schedule(5000)) == pytest.approx(1e-5)


def test_init_policy_is_zero_in_bounds_with_gradients():
    """Default (DiT) architecture: actions are exactly 0 at init and both partitions get gradients."""
    batch = _batch()
    agent = _create(_config(actor_arch='dit'))
    actions = agent.sample_actions(batch['observations'], jax.random.PRNGKey(1))
    assert actions.shape == (BATCH, ACTION_DIM)
    np.testing.assert_array_equal(actions, 0.0)
    assert agent.sample_actions(batch['observations'][0], jax.random.PRNGKey(1)).shape == (ACTION_DIM,)
    grads = jax.jit(jax.grad(lambda p: agent.total_loss(batch, p, jax.random.PRNGKey(2))[0]))(agent.network.params)
    assert _norm(grads['modules_actor']) > 1e-4 and _norm(grads['modules_critic']) > 1e-4


def test_gradient_routing_between_losses():
    batch, agent = _batch(), _random_agent()
    noise = draw_loss_noise(jax.random.PRNGKey(3), BATCH, ACTION_DIM, agent.config)
    losses = (lambda p: agent.actor_loss(batch, p, noise.actor_noise),
              lambda p: agent.critic_loss(batch, p, noise.target_candidate_noise),
              lambda p: agent.mfi_loss(batch, p, noise.mfi_times, noise.mfi_noise))

    @jax.jit
    def gradients(params):
        return [jax.grad(lambda p: loss(p)[0])(params) for loss in losses]

    actor_grads, critic_grads, mfi_grads = gradients(agent.network.params)
    assert _norm(actor_grads['modules_actor']) > 1e-4 and _norm(actor_grads['modules_critic']) == 0.0
    assert _norm(critic_grads['modules_critic']) > 1e-4 and _norm(critic_grads['modules_actor']) == 0.0
    assert _norm(mfi_grads['modules_actor']) > 1e-4 and _norm(mfi_grads['modules_critic']) == 0.0


def test_loss_noise_is_drawn_from_independent_keys():
    """`draw_loss_noise`: shapes from the config, the MFI times follow `time_steps`, and the noises differ."""
    config = _config(num_candidates_target=3, time_steps=10)
    noise = draw_loss_noise(jax.random.PRNGKey(0), 64, ACTION_DIM, config)
    assert noise.target_candidate_noise.shape == (3, 64, ACTION_DIM)
    assert noise.actor_noise.shape == noise.mfi_noise.shape == (64, ACTION_DIM)
    assert noise.mfi_times.shape == (64, 1)
    np.testing.assert_array_equal(np.round(np.asarray(noise.mfi_times) * 10), np.asarray(noise.mfi_times) * 10)
    assert float(noise.mfi_times.min()) >= 0.1 and float(noise.mfi_times.max()) <= 1.0
    flat = [noise.target_candidate_noise[0], noise.actor_noise, noise.mfi_noise]
    for i in range(3):
        for j in range(i):
            assert float(jnp.abs(flat[i] - flat[j]).min()) > 0.0


def test_losses_match_their_formulas():
    batch, rng = _batch(), jax.random.PRNGKey(4)
    agent = _random_agent(q_agg='min', num_candidates_target=3, alpha_mode='fixed', alpha=3.0)
    params = agent.network.params
    normalized = agent.replace(config=flax.core.FrozenDict(dict(agent.config, normalize_q_loss=True)))
    noise = draw_loss_noise(rng, BATCH, ACTION_DIM, agent.config)

    @jax.jit
    def losses():  # everything under one compilation
        return dict(critic=agent.critic_loss(batch, params, noise.target_candidate_noise),
                    actor=agent.actor_loss(batch, params, noise.actor_noise),
                    normalized=normalized.actor_loss(batch, params, noise.actor_noise),
                    mfi=agent.mfi_loss(batch, params, noise.mfi_times, noise.mfi_noise),
                    total=agent.total_loss(batch, params, rng),
                    next_actions=agent.best_of_n(batch['next_observations'], noise.target_candidate_noise)[0])

    out = losses()
    critic = agent.network.select('critic')
    # Critic: y = r + γ mask min_m Q̄_m(s', a'), a' = best of the same 3 noises as inside the loss.
    next_q = critic(batch['next_observations'], out['next_actions'], params=agent.target_critic_params).min(axis=0)
    y = batch['rewards'] + 0.99 * batch['masks'] * next_q
    q = critic(batch['observations'], batch['actions'])
    np.testing.assert_allclose(out['critic'][0], jnp.mean((q - y[None]) ** 2), rtol=1e-5)
    np.testing.assert_allclose(out['critic'][1]['target_q_mean'], y.mean(), rtol=1e-5)
    # Actor: −mean_B mean_m Q(s, clip(â)) + mean relu(â − 1) + mean relu(−1 − â).
    e = noise.actor_noise
    a_hat = agent.actor_fn()(batch['observations'], e, jnp.ones((BATCH, 1)))
    assert float(jnp.abs(a_hat).max()) > 1.0  # the random actor leaves the box, so the bound loss is active
    q_hat = critic(batch['observations'], jnp.clip(a_hat, -1, 1)).mean(axis=0)
    bound = jnp.mean(jax.nn.relu(a_hat - 1)) + jnp.mean(jax.nn.relu(-1 - a_hat))
    np.testing.assert_allclose(out['actor'][0], -q_hat.mean() + bound, rtol=1e-5)
    assert float(out['actor'][1]['bound_loss']) > 0
    np.testing.assert_allclose(out['normalized'][1]['q_loss'], -q_hat.mean() / jnp.abs(q_hat).mean(), rtol=1e-5)
    # Total: L_critic + L_actor + α L_MFI with the fixed α, the terms given the draws `total_loss` makes from rng.
    total, info = out['total']
    np.testing.assert_allclose(total, out['critic'][0] + out['actor'][0] + 3.0 * out['mfi'][0], rtol=1e-5)
    assert float(info['alpha']) == 3.0


@pytest.mark.parametrize('num, batch_size', [(4, 6), (2, 1)])
def test_best_of_n_matches_brute_force(num, batch_size):
    agent = _random_agent(scale=0.05)
    observations = _batch(5, batch_size)['observations']
    noises = jax.random.normal(jax.random.PRNGKey(9), (num, batch_size, ACTION_DIM))
    actions, q_best = jax.jit(agent.best_of_n)(observations, noises)

    @jax.jit
    def score(observation, noise):  # one candidate for one observation: (d,), (2,)
        a = jnp.clip(agent.actor_fn()(observation[None], noise[None], jnp.ones((1, 1))), -1, 1)
        return a[0], agent.network.select('critic')(observation[None], a, params=agent.target_critic_params)[:, 0]

    for b in range(batch_size):
        candidates, members = zip(*[score(observations[b], noises[n, b]) for n in range(num)])
        scores = [float(m.mean()) for m in members]
        assert float(np.max(np.abs(np.array(candidates)))) < 1.0  # unclipped, so candidates are distinct
        assert len(set(np.round(scores, 5))) == num
        best = int(np.argmax(scores))
        np.testing.assert_allclose(actions[b], candidates[best], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(q_best[:, b], members[best], rtol=1e-5, atol=1e-6)


def test_sample_actions_uses_eval_candidates():
    obs, rng = _batch()['observations'], jax.random.PRNGKey(11)
    single = _random_agent(num_candidates_eval=1)
    e = jax.random.normal(rng, (1, BATCH, ACTION_DIM))[0]
    expected = jnp.clip(jax.jit(single.actor_fn())(obs, e, jnp.ones((BATCH, 1))), -1, 1)
    np.testing.assert_allclose(single.sample_actions(obs, rng), expected, rtol=1e-5, atol=1e-5)
    best = _random_agent(num_candidates_eval=4)
    noises = jax.random.normal(rng, (4, BATCH, ACTION_DIM))
    np.testing.assert_allclose(best.sample_actions(obs, rng), jax.jit(best.best_of_n)(obs, noises)[0],
                               rtol=1e-5, atol=1e-5)
    assert float(jnp.abs(best.sample_actions(obs, rng)).max()) <= 1.0


def test_sample_actions_temperature_scales_the_noise():
    obs, rng = _batch()['observations'], jax.random.PRNGKey(11)
    best = _random_agent(num_candidates_eval=4)
    noises = jax.random.normal(rng, (4, BATCH, ACTION_DIM))
    np.testing.assert_array_equal(best.sample_actions(obs, rng, 1.0), best.sample_actions(obs, rng))
    np.testing.assert_allclose(best.sample_actions(obs, rng, 0.5), jax.jit(best.best_of_n)(obs, 0.5 * noises)[0],
                               rtol=1e-5, atol=1e-5)
    # Temperature 0: every candidate is g(s, 0, 1), so the action is that one, whatever N and the key.
    deterministic = jnp.clip(jax.jit(best.actor_fn())(obs, jnp.zeros((BATCH, ACTION_DIM)), jnp.ones((1, 1))), -1, 1)
    for key in (rng, jax.random.PRNGKey(12)):
        np.testing.assert_allclose(best.sample_actions(obs, key, 0.0), deterministic, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(best.sample_actions(obs, rng, 0.5) - best.sample_actions(obs, rng)).max()) > 1e-4


def test_vmap_over_seeds_and_scan_match_single_agents():
    """Seeds by `jax.vmap` of update equal the same agents run one by one with `jax.lax.scan`."""
    batch, config = _batch(), _config(**UPDATE_CONFIG)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    agents = jax.vmap(lambda k: MFQLAgent.create(k, batch, config))(keys)
    single = jax.tree_util.tree_map(lambda x: x[1], agents)  # seed 1 on its own
    update = jax.vmap(lambda a: a.update(batch))
    agents, _ = update(agents)
    agents, infos = update(agents)
    assert float(jnp.abs(infos['critic/loss'][0] - infos['critic/loss'][1])) > 0
    scanned, scanned_infos = jax.lax.scan(lambda a, _: a.update(batch), single, None, length=2)
    np.testing.assert_allclose(infos['total/loss'][1], scanned_infos['total/loss'][1], rtol=1e-5)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x[1], y, rtol=1e-4, atol=1e-6),
                           (agents.network.params, agents.target_critic_params),
                           (scanned.network.params, scanned.target_critic_params))
    assert int(scanned.step) == 2
    np.testing.assert_array_equal(agents.mfi_loss_window_count, 1)


def test_config_errors_name_the_problem():
    batch = _batch()
    # Values are checked by CONFIG_RULES' checker (agents/config_rules.py), the one main.py and sweep.py run.
    with pytest.raises(ValueError, match=r"--agent.actor_arch='transformer' is not allowed: one of 'dit', 'mlp'"):
        MFQLAgent.create(jax.random.PRNGKey(0), batch, _config(actor_arch='transformer'))
    with pytest.raises(ValueError, match=r"--agent.q_agg='max' is not allowed: one of 'mean', 'min'"):
        MFQLAgent.create(jax.random.PRNGKey(0), batch, _config(q_agg='max'))
    with pytest.raises(ValueError, match=r"--agent.alpha_mode='auto' is not allowed: one of 'adaptive', 'fixed'"):
        MFQLAgent.create(jax.random.PRNGKey(0), batch, _config(alpha_mode='auto'))
    with pytest.raises(ValueError, match=r'--agent.num_candidates_eval=0 is not allowed: an integer >= 1'):
        MFQLAgent.create(jax.random.PRNGKey(0), batch, _config(num_candidates_eval=0))
    with pytest.raises(ValueError, match=r'--agent.lr_warmup_fraction=1.0 is not allowed: a number in \[0, 1\)'):
        MFQLAgent.create(jax.random.PRNGKey(0), batch, _config(offline_steps=1, lr_warmup_fraction=1.0))
    config = _config().to_dict()
    del config['tau']
    with pytest.raises(ValueError, match=r"mfql config is missing keys \['tau'\]"):
        MFQLAgent.create(jax.random.PRNGKey(0), batch, config)


OBS_MEAN = tuple(float(v) for v in np.linspace(-2.0, 2.0, OBS_DIM))
OBS_STD = tuple(float(v) for v in np.linspace(0.1, 3.0, OBS_DIM))


def _z_scored(batch: dict) -> dict:
    mean, std = jnp.asarray(OBS_MEAN), jnp.asarray(OBS_STD)
    return batch | {key: (batch[key] - mean) / std for key in ('observations', 'next_observations')}


def test_observation_normalisation_equals_training_on_z_scored_observations():
    """An agent that z-scores inside `update` / `sample_actions` behaves exactly like an agent without
    normalisation fed (s − μ)/σ: same losses, parameters after two updates, and actions."""
    raw = _batch(3)
    raw = raw | {key: 2.0 + 3.0 * raw[key] for key in ('observations', 'next_observations')}
    normalising = _create(_config(**UPDATE_CONFIG, normalize_observations=True, observation_mean=OBS_MEAN,
                                  observation_std=OBS_STD), seed=5)
    plain = _create(_config(**UPDATE_CONFIG), seed=5)
    update = jax.jit(lambda agent, batch: agent.update(batch))
    for _ in range(2):
        normalising, normalising_info = update(normalising, raw)
        plain, plain_info = update(plain, _z_scored(raw))
    np.testing.assert_allclose(normalising_info['total/loss'], plain_info['total/loss'], rtol=1e-6)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7),
                           normalising.network.params, plain.network.params)
    key = jax.random.PRNGKey(8)
    np.testing.assert_allclose(normalising.sample_actions(raw['observations'], key),
                               plain.sample_actions(_z_scored(raw)['observations'], key), rtol=1e-5, atol=1e-6)
    # ...and the normalisation is not a no-op: the same agent fed raw observations acts differently.
    assert float(jnp.abs(plain.sample_actions(raw['observations'], key)
                         - normalising.sample_actions(raw['observations'], key)).max()) > 1e-3


def test_observation_statistics_errors_name_the_problem():
    batch = _batch()
    with pytest.raises(ValueError, match='normalize_observations=True needs observation_mean'):
        MFQLAgent.create(jax.random.PRNGKey(0), batch, _config(normalize_observations=True))
    with pytest.raises(ValueError, match=f'observation_std has 2 entries but observations have {OBS_DIM}'):
        MFQLAgent.create(jax.random.PRNGKey(0), batch, _config(
            normalize_observations=True, observation_mean=OBS_MEAN, observation_std=(1.0, 1.0)))
    with pytest.raises(ValueError, match='observation_std must be positive'):
        MFQLAgent.create(jax.random.PRNGKey(0), batch, _config(
            normalize_observations=True, observation_mean=OBS_MEAN, observation_std=(0.0,) * OBS_DIM))
    with pytest.raises(ValueError, match='observation_mean has non-finite entries'):
        MFQLAgent.create(jax.random.PRNGKey(0), batch, _config(
            normalize_observations=True, observation_mean=(float('nan'),) * OBS_DIM, observation_std=OBS_STD))
