"""Tests of the training machinery (fused scan, seed vmap/sharding, evaluation, NaN guard, resume).

A tiny regression agent (`ToyAgent`) with the real agent interface keeps these fast; main.py smoke
tests (tests/test_main.py) run the real agents.
"""

import csv
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from agents import fql, mfql
from agents.train_state import TrainState, nonpytree_field
from datasets.buffer import Dataset, ReplayBuffer
from datasets.families import Family
from training import checkpoint, evaluation, preemption, schedule
from training.fused import (FusedUpdater, SeedPlacement, TrainingState, create_training_states, fused_updates,
                            seed_streams, stacked_streams)
import runs
from runs import CsvLogger, csv_text, read_csv, write_atomically
from training.runner import NonFiniteLossError, TaskInputs, train_task, with_observation_statistics
from training.schedule import RunOptions, next_call_size, offline_call_size
from training.summary import (TaskResult, completed_result, final_evaluation, mean_of_last_three_evaluations,
                              summary_rows, write_summary)

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBS_DIM, ACT_DIM = 3, 2


class ToyAgent(flax.struct.PyTreeNode):
    """Linear regression of the reward on the observation, with the agent interface (create, update, sample_actions)."""

    rng: jax.Array
    network: TrainState
    config: Any = nonpytree_field()

    def total_loss(self, batch, grad_params, rng):
        noise = 0.01 * jax.random.normal(rng, batch['rewards'].shape)
        prediction = self.network(batch['observations'], params=grad_params)[:, 0]
        loss = jnp.mean((prediction - batch['rewards'] - noise) ** 2)
        return loss, {'critic/loss': loss}

    def validation_metrics(self, batch, rng):
        return self.total_loss(batch, self.network.params, rng)[1]

    @jax.jit
    def update(self, batch):
        rng, loss_rng = jax.random.split(self.rng)
        network, info = self.network.apply_loss_fn(lambda p: self.total_loss(batch, p, loss_rng))
        return self.replace(rng=rng, network=network), info

    @jax.jit
    def sample_actions(self, observations, rng, temperature=1.0):
        out = self.network(observations)[..., 1:1 + ACT_DIM]
        return jnp.tanh(out + temperature * 0.1 * jax.random.normal(rng, out.shape))

    @classmethod
    def create(cls, rng, example_batch, config):
        rng, init_rng = jax.random.split(rng)
        module = nn.Dense(1 + ACT_DIM)
        params = module.init(init_rng, example_batch['observations'])['params']
        network = TrainState.create(module, params, optax.adam(config['lr']))
        return cls(rng=rng, network=network, config=flax.core.FrozenDict(config.to_dict()))


def toy_config(lr: float = 1e-2, batch_size: int = 8) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(agent_name='toy', lr=lr, batch_size=batch_size))


def toy_data(num_rows: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    observations = rng.normal(size=(num_rows, OBS_DIM)).astype(np.float32)
    return dict(observations=observations, actions=rng.uniform(-1, 1, (num_rows, ACT_DIM)).astype(np.float32),
                rewards=observations @ np.array([1.0, -2.0, 0.5], np.float32),
                masks=np.ones(num_rows, np.float32), next_observations=observations[::-1].copy(),
                terminals=np.zeros(num_rows, np.float32))


def toy_states(seeds: list[int], data: Dataset, placement: SeedPlacement | None = None):
    example = {k: v[:1] for k, v in data.data.items()}
    state = create_training_states(ToyAgent, example, toy_config(), stacked_streams(seeds))
    return placement.place_seeds(state) if placement else state


def sample8(data, key):
    return data.sample(key, 8)


def max_abs_diff(a, b) -> float:
    return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), a, b)))


# ------------------------------------------------------------------------------------ schedule
def test_next_call_size_lands_on_every_boundary_with_few_sizes():
    step, ends, sizes = 0, [], set()
    while step < 250:
        k = next_call_size(step, 250, (50, 100, 0), 30, extra_boundaries=(1,))
        step += k
        ends.append(step)
        sizes.add(k)
    assert ends[0] == 1
    for boundary in (1, 50, 100, 150, 200, 250):
        assert boundary in ends
    assert sizes == {1, 30, 19, 20}
    assert all(1 <= k <= 30 for k in sizes)
    with pytest.raises(ValueError, match='no updates left'):
        next_call_size(250, 250, (50,), 30)


def test_offline_calls_end_on_every_log_eval_and_save_step():
    def call_ends(options):
        step, ends = 0, []
        while step < options.offline_steps:
            step += offline_call_size(step, options)
            ends.append(step)
        return ends

    options = RunOptions(offline_steps=70, online_steps=5, steps_per_call=30, log_interval=20, eval_interval=25,
                         save_interval=60)
    assert call_ends(options) == [1, 20, 25, 40, 50, 60, 70]  # step-1 evaluation, logs, evaluations, save, end
    assert [k for k in range(1, 76) if schedule.is_eval_step(k, options)] == [1, 25, 50, 70, 75]  # + end of offline
    # every save_interval, the end, and every evaluation step (whose checkpoints are kept)
    assert [k for k in range(1, 76) if schedule.is_save_step(k, options)] == [1, 25, 50, 60, 70, 75]
    quiet = dataclasses.replace(options, eval_episodes=0, save_interval=0)
    assert call_ends(quiet) == [20, 40, 60, 70]  # no evaluation: no step-1 or eval boundaries
    assert not any(schedule.is_eval_step(k, quiet) for k in range(1, 76))


# ------------------------------------------------------------------------------- fused updates
def test_fused_k_updates_equal_k_single_updates():
    data = Dataset(data={k: jnp.asarray(v) for k, v in toy_data().items()})
    start = toy_states([0], data)
    updater = FusedUpdater(sample8, donate_state=False)  # `start` is read again below
    fused, info, first_bad = updater(start, data, 5)
    single = start
    infos = []
    for _ in range(5):
        single, step_info, _ = updater(single, data, 1)
        infos.append(step_info['critic/loss'])
    assert updater.compiled_sizes == [1, 5]
    # Same compiled update body, same keys: bitwise equal on CPU.
    assert max_abs_diff(fused, single) == 0.0
    # The metrics are those of the last update only (FQL logs the info of the update at the log step).
    np.testing.assert_allclose(info['critic/loss'], infos[-1], rtol=1e-6)
    assert not np.allclose(info['critic/loss'], np.mean(infos, axis=0), rtol=1e-6)
    assert int(first_bad[0]) == -1
    # A plain Python loop over agent.update with the same key splitting (no scan, no vmap).
    agent, key = jax.tree.map(lambda x: x[0], start.agent), start.sample_key[0]
    for _ in range(5):
        key, batch_key = jax.random.split(key)
        agent, _ = agent.update(data.sample(batch_key, 8))
    assert max_abs_diff(agent.network.params, jax.tree.map(lambda x: x[0], fused.agent.network.params)) < 1e-6
    np.testing.assert_array_equal(key, fused.sample_key[0])
    assert int(fused.agent.network.step[0]) == 5


def test_the_default_updater_consumes_its_state_and_computes_the_same():
    data = Dataset(data={k: jnp.asarray(v) for k, v in toy_data().items()})
    kept, _, _ = FusedUpdater(sample8, donate_state=False)(toy_states([0, 1], data), data, 4)
    start = toy_states([0, 1], data)
    donated, _, _ = FusedUpdater(sample8)(start, data, 4)
    assert start.agent.network.params['kernel'].is_deleted()  # its buffers now hold `donated`
    assert not donated.agent.network.params['kernel'].is_deleted()
    assert max_abs_diff(kept.agent.network.params, donated.agent.network.params) == 0.0
    np.testing.assert_array_equal(kept.sample_key, donated.sample_key)


def test_a_state_holding_one_array_twice_can_be_donated():
    # As an agent whose target network is created as its online network's parameters.
    data = Dataset(data={k: jnp.asarray(v) for k, v in toy_data().items()})
    state = toy_states([0], data)
    aliased = state.replace(sample_key=state.agent.rng)
    assert aliased.sample_key is aliased.agent.rng
    new_state, _, _ = FusedUpdater(sample8)(aliased, data, 2)
    assert int(new_state.agent.network.step[0]) == 2


class ScriptedAgent(flax.struct.PyTreeNode):
    """Counts its updates; update n reports a NaN loss when n == nan_loss_at and an inf statistic when n == inf_at."""

    updates: jax.Array
    nan_loss_at: int = flax.struct.field(pytree_node=False)
    inf_at: int = flax.struct.field(pytree_node=False)

    def update(self, batch):
        n = self.updates + 1
        info = {'critic/loss': jnp.where(n == self.nan_loss_at, jnp.nan, 1.0 * n),
                'critic/q_max': jnp.where(n == self.inf_at, jnp.inf, 10.0 * n)}
        return self.replace(updates=n), info


@pytest.mark.parametrize('num_updates, nan_loss_at, inf_at, first_bad, last_info', [
    (5, 0, 0, -1, (5.0, 50.0)),  # all finite: the info is that of the 5th (last) update
    (5, 3, 2, 2, (5.0, 50.0)),  # update 2's inf statistic is not checked; update 3's NaN loss is (index 2)
    (5, 0, 2, -1, (5.0, 50.0)),  # a statistic that recovers before the last update goes unseen
    (2, 0, 2, 1, (2.0, np.inf)),  # the last update checks every metric
])
def test_fused_updates_check_losses_at_every_update_and_return_the_last_info(num_updates, nan_loss_at, inf_at,
                                                                             first_bad, last_info):
    state = TrainingState(agent=ScriptedAgent(jnp.int32(0), nan_loss_at, inf_at), sample_key=jax.random.PRNGKey(0))
    state, info, first_nonfinite = jax.jit(fused_updates, static_argnums=(2, 3))(
        state, None, num_updates, lambda data, key: data)
    assert int(state.agent.updates) == num_updates and int(first_nonfinite) == first_bad
    np.testing.assert_array_equal([info['critic/loss'], info['critic/q_max']], last_info)


def test_seed_inside_a_group_reproduces_the_seed_alone():
    data = Dataset(data={k: jnp.asarray(v) for k, v in toy_data().items()})
    updater = FusedUpdater(sample8)
    group, _, _ = updater(toy_states([4, 5, 6], data), data, 7)
    alone, _, _ = updater(toy_states([5], data), data, 7)
    np.testing.assert_array_equal(group.sample_key[1], alone.sample_key[0])
    np.testing.assert_array_equal(group.agent.rng[1], alone.agent.rng[0])
    # vmapped matmuls over 3 vs 1 seeds may differ in the last bits; tolerance 1e-6 absolute.
    assert max_abs_diff(jax.tree.map(lambda x: x[1], group.agent.network.params),
                        jax.tree.map(lambda x: x[0], alone.agent.network.params)) < 1e-6
    # Different seeds really differ.
    assert max_abs_diff(group.agent.network.params['kernel'][0], group.agent.network.params['kernel'][1]) > 1e-3
    np.testing.assert_array_equal(toy_states([5], data).sample_key[0], seed_streams(5).sample)


def test_seed_axis_is_sharded_over_two_forced_cpu_devices(tmp_path):
    script = textwrap.dedent('''
        import jax, jax.numpy as jnp, numpy as np
        from datasets.buffer import Dataset
        from training.fused import FusedUpdater, SeedPlacement
        from tests.test_training import toy_data, toy_states, sample8, max_abs_diff
        assert len(jax.devices()) == 2, jax.devices()
        data = Dataset(data={k: jnp.asarray(v) for k, v in toy_data().items()})
        sharded = SeedPlacement(4)
        assert sharded.num_devices == 2 and sharded.note == ''
        one = SeedPlacement(4, devices=jax.devices()[:1])
        updater = FusedUpdater(sample8)
        a, info, _ = updater(toy_states([0, 1, 2, 3], data, sharded), sharded.replicate(data), 6)
        b, _, _ = updater(toy_states([0, 1, 2, 3], data, one), one.replicate(data), 6)
        kernel = a.agent.network.params['kernel']
        assert len(kernel.sharding.device_set) == 2, kernel.sharding
        assert kernel.addressable_shards[0].data.shape[0] == 2
        assert max_abs_diff(jax.device_get(a.agent.network.params), jax.device_get(b.agent.network.params)) < 1e-6
        odd = SeedPlacement(3)
        assert odd.num_devices == 1 and 'sharded over 1 device' in odd.note
        print('OK', info['critic/loss'].shape)
    ''')
    env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2', JAX_PLATFORMS='cpu',
               PYTHONPATH=REPO_DIR)
    result = subprocess.run([sys.executable, '-c', script], cwd=REPO_DIR, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'OK (4,)' in result.stdout


# --------------------------------------------------------------------------------- evaluation
class FakeEnv:
    """Episode length 3 + (reset seed mod 4); success iff the seed is even; reward = action[0] per step."""

    def reset(self, seed=None):
        self.seed, self.t = seed, 0
        self.length = 3 + seed % 4
        return np.full(OBS_DIM, seed % 7, np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        return (np.full(OBS_DIM, self.t, np.float32), float(action[0]), False, done,
                {'success': float(self.seed % 2 == 0)})

    def close(self):
        pass


class FakeFamily(Family):
    """A stand-in environment family whose every env is a `FakeEnv` (the runner asks the family for envs and its
    metric; it never looks at the task's name)."""

    name, benchmark, metric, metric_key, unit = 'fake', 'Fake', 'success', 'evaluation/success_last3', 'fraction'
    default_offline_steps = 20

    def claims(self, name):
        return name.startswith('fake-')

    def expand(self, entry):
        return [entry]

    def environment_of(self, task):
        return task

    def ensure_data(self, task, dataset_dir, generate_missing_episodes=None, generate_workers=1, show_progress=True,
                    download=False):
        pass

    def load(self, task, dataset_dir):
        return toy_data(), toy_data(16, seed=1)

    def make_env(self, task, frame_stack=1, online=False):
        return FakeEnv()


def test_batched_evaluation_matches_per_episode_bookkeeping():
    data = Dataset(data={k: jnp.asarray(v) for k, v in toy_data().items()})
    state = toy_states([0, 1], data)
    seeds, episodes = [0, 1], 5
    pool = evaluation.EvalEnvPool(FakeEnv, num_seeds=2, envs_per_seed=2)  # 3 rounds: 2 + 2 + 1 episodes
    policy = evaluation.policy_actions
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    results, stats = evaluation.evaluate(state.agent, pool, policy, keys, seeds, episodes)
    for s, seed in enumerate(seeds):
        env_seeds = [evaluation.episode_env_seed(seed, e) for e in range(episodes)]
        assert results[s]['success'] == pytest.approx(np.mean([es % 2 == 0 for es in env_seeds]))
        assert results[s]['episode_length'] == pytest.approx(np.mean([3 + es % 4 for es in env_seeds]))
        assert abs(results[s]['return']) <= results[s]['episode_length']  # |tanh| < 1 per step
    assert stats['env_steps'] == sum(3 + evaluation.episode_env_seed(s, e) % 4 for s in seeds for e in range(episodes))
    again, _ = evaluation.evaluate(state.agent, pool, policy, keys, seeds, episodes)
    assert again == results  # deterministic env seeds and policy keys
    assert evaluation.episode_env_seed(0, 1) != evaluation.episode_env_seed(1, 0)


def test_seeded_reset_fixes_the_start_state_of_a_maze_env():
    from datasets.ogbench_data import make_env
    env = make_env('antmaze-large-navigate-singletask-task1-v0')  # start noise comes from np.random
    try:
        first, _ = evaluation.seeded_reset(env, 123)
        np.random.seed(7)  # anything else moving numpy's global generator in between
        np.random.uniform(size=10)
        second, _ = evaluation.seeded_reset(env, 123)
        other, _ = evaluation.seeded_reset(env, 124)
    finally:
        env.close()
    np.testing.assert_array_equal(first, second)
    assert np.abs(first[:2] - other[:2]).max() > 1e-3  # the seed does choose the start position


def test_temperature_one_reproduces_the_runs_own_evaluation_of_a_checkpoint(tmp_path):
    """benchmarks/temperature.py re-evaluates saved agents as the runner did (pool size, env seeds, policy keys):
    FakeEnv's return is the sum of the actions taken, so any difference in keys or episodes would show."""
    from benchmarks import temperature
    run_dir, seeds = str(tmp_path / 'run'), [0, 3]
    options = toy_options(eval_episodes=5, eval_interval=10, save_interval=10, eval_parallel_envs=4)
    train_task(toy_inputs(run_dir, toy_data(), seeds=seeds), options)
    data = Dataset(data={k: jnp.asarray(v) for k, v in toy_data().items()})

    def load(seed):  # a template per seed, as the script rebuilds each seed's agent
        template = jax.tree.map(lambda x: np.asarray(x)[0], toy_states([0], data))
        return checkpoint.load_checkpoint(os.path.join(run_dir, f'seed{seed}'), 20, template)[0].agent

    stacked = temperature.stack_agents([load(seed) for seed in seeds])
    results = temperature.evaluate_at_temperatures(stacked, seeds, 20, options.eval_episodes,
                                                   options.eval_parallel_envs, FakeEnv, [1.0, 0.0])
    for s, seed in enumerate(seeds):
        logged = [row for row in read_csv(os.path.join(run_dir, f'seed{seed}', 'eval.csv')) if row['step'] == 20]
        assert results[1.0][s]['return'] == pytest.approx(logged[0]['evaluation/return'], rel=1e-6, abs=1e-6)
        assert results[0.0][s]['return'] != pytest.approx(logged[0]['evaluation/return'], rel=1e-6, abs=1e-6)


# ---------------------------------------------------------------------------- runner + outputs
def toy_inputs(run_dir: str, data: dict, seeds=(0,), lr: float = 1e-2, batch_size: int = 8) -> TaskInputs:
    return TaskInputs(task='fake-task', family=FakeFamily(), agent_class=ToyAgent, config=toy_config(lr, batch_size),
                      train_data=data, val_data=toy_data(16, seed=1), seeds=list(seeds), run_dir=run_dir,
                      metadata={'test': True})


def toy_options(**overrides) -> RunOptions:
    values = dict(offline_steps=20, steps_per_call=5, log_interval=5, eval_interval=10, eval_episodes=0,
                  save_interval=10, progress_bar=False)
    values.update(overrides)
    return RunOptions(**values)


def test_nan_in_the_data_stops_training_with_key_and_step_and_keeps_good_checkpoints(tmp_path):
    data = toy_data(64)
    data['rewards'][17] = np.nan  # sampled at some update: the loss of that update is NaN
    run_dir = str(tmp_path / 'run')
    with pytest.raises(NonFiniteLossError) as error:
        train_task(toy_inputs(run_dir, data, batch_size=1), toy_options(offline_steps=500, save_interval=10,
                                                                        steps_per_call=10))
    message = str(error.value)
    assert "'critic/loss'" in message and 'seed 0' in message
    bad_step = int(message.split(' at step ')[1].split(' ')[0])
    seed_dir = os.path.join(run_dir, 'seed0')
    steps = checkpoint.checkpoint_steps(seed_dir)
    assert steps and max(steps) < bad_step and max(steps) >= bad_step - 10
    assert f'step_{max(steps):09d}' in message
    template = toy_states([0], Dataset(data={k: jnp.asarray(v) for k, v in toy_data().items()}))
    restored, _ = checkpoint.load_checkpoint(seed_dir, max(steps), jax.tree.map(lambda x: np.asarray(x)[0], template))
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(restored.agent.network.params))
    # The exact update: the NaN row is drawn at update `bad_step` and at no earlier one.
    key = seed_streams(0).sample
    draws = []
    for _ in range(bad_step):
        key, batch_key = jax.random.split(key)
        draws.append(int(jax.random.randint(batch_key, (1,), 0, 64)[0]))
    assert draws[-1] == 17 and 17 not in draws[:-1]


def test_nan_learning_rate_is_caught_at_the_second_update(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"'critic/loss' \(nan\) for seed 3 at step 2 .*covered steps 1..5"):
        train_task(toy_inputs(str(tmp_path / 'run'), toy_data(), seeds=(3,), lr=float('nan')),
                   toy_options(steps_per_call=5, log_interval=5))


def test_extending_a_finished_run_trains_on_from_its_last_checkpoint_like_the_longer_run(tmp_path):
    """A finished 20-step run resumed with a 40-step budget continues from its step-20 checkpoint; for an agent
    without schedules that is the computation of an uninterrupted 40-step run, bitwise."""
    data = toy_data()
    longer = train_task(toy_inputs(str(tmp_path / 'longer'), data), toy_options(offline_steps=40))
    short_dir = str(tmp_path / 'short')
    train_task(toy_inputs(short_dir, data), toy_options(offline_steps=20))
    extended = train_task(toy_inputs(short_dir, data), toy_options(offline_steps=40, resume=True))
    assert extended.step == longer.step == 40 and max(checkpoint.checkpoint_steps(f'{short_dir}/seed0')) == 40
    untimed = lambda path: [{k: v for k, v in row.items() if not k.startswith('time/')} for row in read_csv(path)]
    assert [row['step'] for row in untimed(f'{short_dir}/seed0/train.csv')] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert untimed(f'{short_dir}/seed0/train.csv') == untimed(f'{tmp_path}/longer/seed0/train.csv')
    with open(checkpoint.checkpoint_path(f'{short_dir}/seed0', 40), 'rb') as extended_file, \
            open(checkpoint.checkpoint_path(f'{tmp_path}/longer/seed0', 40), 'rb') as longer_file:
        assert extended_file.read() == longer_file.read()


def test_a_stop_request_checkpoints_at_the_next_boundary_and_resume_finishes_bitwise(tmp_path):
    """A signal recorded during a call stops the run at that call's end (here the first call's, step 1, whose
    evaluation runs first), with a checkpoint there although the schedule saves only at the end, and no final.json;
    the resumed run ends bitwise as the uninterrupted one: checkpoints, train.csv and eval.csv; its time/total goes
    on from the stopped launch's."""
    data, options = toy_data(), toy_options(offline_steps=20, eval_episodes=2, eval_interval=20, save_interval=0)
    reference = train_task(toy_inputs(str(tmp_path / 'reference'), data, seeds=(0, 1)), options)
    stopped_dir = str(tmp_path / 'stopped')
    stop = preemption.StopHandler()
    stop.requested = 'SIGUSR2'  # as the handler records a signal that arrived during the first call
    with pytest.raises(preemption.StopRequested, match=r'^fake-task: stopped at step 1 on SIGUSR2, checkpoint .*'
                                                       r'seed0.*; rerun the same command with --resume'):
        train_task(dataclasses.replace(toy_inputs(stopped_dir, data, seeds=(0, 1)), stop=stop), options)
    for seed in (0, 1):
        assert checkpoint.checkpoint_steps(f'{stopped_dir}/seed{seed}') == [1]  # the step-1 evaluation's boundary
        assert not os.path.exists(f'{stopped_dir}/seed{seed}/final.json')
        assert read_csv(f'{stopped_dir}/seed{seed}/train.csv') == []  # its one row: the step-1 evaluation
        eval_path = f'{stopped_dir}/seed{seed}/eval.csv'
        [row] = read_csv(eval_path)
        row['time/total'] += 86400.0  # as if the stopped launch had taken a day
        write_atomically(eval_path, csv_text(list(row), [row]))
    resumed = train_task(toy_inputs(stopped_dir, data, seeds=(0, 1)), dataclasses.replace(options, resume=True))
    assert resumed.step == reference.step == 20 and resumed.episode_return == reference.episode_return
    untimed = lambda path: [{k: v for k, v in row.items() if not k.startswith('time/')} for row in read_csv(path)]
    for seed in (0, 1):
        for name in ('train.csv', 'eval.csv'):
            assert untimed(f'{stopped_dir}/seed{seed}/{name}') == untimed(f'{tmp_path}/reference/seed{seed}/{name}')
            totals = [row['time/total'] for row in read_csv(f'{stopped_dir}/seed{seed}/{name}')]
            assert totals == sorted(totals) and totals[0] > 86400.0
        with open(checkpoint.checkpoint_path(f'{stopped_dir}/seed{seed}', 20), 'rb') as stopped_file, \
                open(checkpoint.checkpoint_path(f'{tmp_path}/reference/seed{seed}', 20), 'rb') as reference_file:
            assert stopped_file.read() == reference_file.read()


def test_an_online_phase_resumed_after_a_stop_cuts_the_interrupted_episode(tmp_path, monkeypatch):
    """A stop after 3 online env steps checkpoints the replay buffer there; the resumed run starts new episodes, so
    the buffer's newest row from before the stop ends its episode (terminals 1), and the run finishes."""
    import types

    import flax.serialization
    data, options = toy_data(), toy_options(offline_steps=20, online_steps=8, save_interval=0)
    stop = types.SimpleNamespace(requested=None)
    env_steps = []
    original_step = FakeEnv.step

    def counted_step(env, action):
        env_steps.append(1)
        if len(env_steps) == 3:
            stop.requested = 'SIGUSR2'
        return original_step(env, action)

    monkeypatch.setattr(FakeEnv, 'step', counted_step)
    run_dir = str(tmp_path / 'run')
    with pytest.raises(preemption.StopRequested, match='stopped at step 23 on SIGUSR2'):
        train_task(dataclasses.replace(toy_inputs(run_dir, data), stop=stop), options)

    def buffer_at(step):
        with open(checkpoint.checkpoint_path(f'{run_dir}/seed0', step), 'rb') as f:
            return flax.serialization.msgpack_restore(f.read())['buffer']

    stopped = buffer_at(23)
    assert int(stopped['size']) == 3 and stopped['data']['terminals'][2] == 0  # FakeEnv episodes last 3+ steps
    stop.requested = None
    result = train_task(dataclasses.replace(toy_inputs(run_dir, data), stop=stop),
                        dataclasses.replace(options, resume=True))
    assert result.step == 28
    finished = buffer_at(28)
    assert int(finished['size']) == 8 and finished['data']['terminals'][2] == 1
    np.testing.assert_array_equal(finished['data']['observations'][:3], stopped['data']['observations'][:3])


def test_an_online_phase_does_not_resume_from_an_evaluation_checkpoint_without_its_buffer(tmp_path):
    run_dir = str(tmp_path / 'run')
    options = toy_options(offline_steps=20, online_steps=6, eval_interval=22, eval_episodes=1, save_interval=2,
                          keep_checkpoints=1)
    train_task(toy_inputs(run_dir, toy_data()), options)
    seed_dir = f'{run_dir}/seed0'
    assert checkpoint.checkpoint_steps(seed_dir) == [1, 20, 22, 24, 26]  # evaluations at 1, 20 (offline end), 22, 26
    for step in (24, 26):  # as if the newer checkpoints were lost
        os.remove(checkpoint.checkpoint_path(seed_dir, step))
    os.remove(f'{seed_dir}/final.json')
    with pytest.raises(checkpoint.ResumeError, match=r'^cannot resume the online phase from step 22: its checkpoint '
                                                     r'has no replay buffer'):
        train_task(toy_inputs(run_dir, toy_data()), dataclasses.replace(options, resume=True))


def test_an_online_step_consumes_its_state_and_buffer_instead_of_copying_them():
    """Appending a row to a donated buffer writes in place; a non-donated one would be copied whole at every step."""
    from training import online
    data = Dataset(data={k: jnp.asarray(v) for k, v in toy_data().items()})
    state = toy_states([0, 1], data)
    empty = ReplayBuffer.create({k: v[0] for k, v in data.data.items()}, capacity=5)
    buffer = jax.tree.map(lambda x: jnp.broadcast_to(x, (2, *x.shape)) + 0, empty)
    transition = {k: np.stack([np.asarray(v[0])] * 2) for k, v in data.data.items()}
    observations = np.zeros((2, OBS_DIM), np.float32)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    new_state, new_buffer, _, _, actions = online.online_step(state, buffer, data, transition, observations, keys,
                                                              online.UnionSampler(8))
    assert buffer.data['observations'].is_deleted() and buffer.size.is_deleted()
    assert jax.tree.leaves(state)[0].is_deleted()
    np.testing.assert_array_equal(new_buffer.size, [1, 1])
    np.testing.assert_array_equal(new_buffer.data['observations'][:, 0], np.stack([data.data['observations'][0]] * 2))
    assert actions.shape == (2, ACT_DIM) and int(new_state.agent.network.step[0]) == 1


def test_the_stop_handler_records_usr2_and_term_and_gives_the_old_handlers_back():
    import signal
    before = signal.getsignal(signal.SIGTERM)
    for signal_number, name in ((signal.SIGUSR2, 'SIGUSR2'), (signal.SIGTERM, 'SIGTERM')):
        with preemption.StopHandler() as stop:
            os.kill(os.getpid(), signal_number)
            os.kill(os.getpid(), signal.SIGUSR2)  # a second signal changes nothing
            assert stop.requested == name
    assert signal.getsignal(signal.SIGTERM) is before


def test_csv_logger_adds_columns_and_truncates_on_resume(tmp_path):
    path = str(tmp_path / 'log.csv')
    log = CsvLogger(path)
    log.log(1, {'a': 1.0})
    log.log(2, {'a': 2.0, 'b': np.float32(5.0)})
    log.log(3, {'a': 3.0})
    assert read_csv(path) == [{'step': 1, 'a': 1.0}, {'step': 2, 'a': 2.0, 'b': 5.0}, {'step': 3, 'a': 3.0}]
    resumed = CsvLogger(path, resume_step=2)
    resumed.log(3, {'a': 30.0, 'c': 1.0})
    assert read_csv(path) == [{'step': 1, 'a': 1.0}, {'step': 2, 'a': 2.0, 'b': 5.0},
                              {'step': 3, 'a': 30.0, 'c': 1.0}]
    with open(path, 'a') as f:
        f.write('4,40.0')  # a kill in the middle of appending row 4: no line end
    CsvLogger(path, resume_step=10)
    assert [row['step'] for row in read_csv(path)] == [1, 2, 3]
    assert not os.path.exists(path + '.tmp')
    CsvLogger(path)  # a fresh (non-resumed) logger starts an empty file
    assert read_csv(path) == []


def test_mean_of_last_three_evaluations_skips_the_initial_policy():
    rows = lambda *points: [{'step': str(step), 'evaluation/success': str(value)} for step, value in points]
    mean = mean_of_last_three_evaluations
    assert mean(rows((1, 0.0), (10, 0.2), (20, 0.4), (30, 0.6), (40, 0.9))) == pytest.approx((0.4 + 0.6 + 0.9) / 3)
    assert mean(rows((1, 0.0), (10, 0.2), (20, 0.4))) == pytest.approx(0.3)  # not (0 + 0.2 + 0.4) / 3
    assert mean(rows((1, 0.5))) == pytest.approx(0.5)  # a 1-step run: its only evaluation


def test_summary_averages_each_seed_over_the_tasks_of_an_environment():
    make = lambda task, success: TaskResult(task, [0, 1], 100, success, [0.0, 0.0], success)
    results = [make(f'cube-double-play-singletask-task{i}-v0', [0.1 * i, 0.3]) for i in (1, 2)]
    results.append(make('puzzle-3x3-play-singletask-task4-v0', [1.0, 0.5]))
    rows = summary_rows(results)
    assert [row['task'] for row in rows] == [r.task for r in results] + ['cube-double-play (average)']
    # Success is a fraction, as in eval.csv (not a percentage), and the column names its unit.
    assert rows[0]['success_fraction_mean'] == pytest.approx(0.2)
    assert rows[0]['success_fraction_std'] == pytest.approx(0.1)
    average = rows[-1]  # per seed: (0.1 + 0.2) / 2 = 0.15 and 0.3 -> 0.225 ± 0.075
    assert average['success_fraction_mean'] == pytest.approx(0.225)
    assert average['success_fraction_std'] == pytest.approx(0.075)
    assert average['num_tasks'] == 2
    assert 'offline_success_fraction_mean' not in average  # offline-only runs have no offline → online column


def test_summary_of_offline_to_online_runs_adds_the_end_of_offline_evaluation(tmp_path):
    make = lambda task, offline: TaskResult(task, [0, 1], 200, [0.5, 0.7], [0.0, 0.0], [0.5, 0.7],
                                            offline_success=offline)
    results = [make(f'cube-double-play-singletask-task{i}-v0', [0.1 * i, 0.3]) for i in (1, 2)]
    results.append(make('puzzle-3x3-play-singletask-task4-v0', None))  # an offline-only task in the same run
    rows = summary_rows(results)
    assert rows[0]['offline_success_fraction_mean'] == pytest.approx(0.2)
    assert rows[0]['offline_success_fraction_std'] == pytest.approx(0.1)
    assert rows[2]['offline_success_fraction_mean'] == ''
    assert rows[-1]['offline_success_fraction_mean'] == pytest.approx(0.225)  # per seed (0.1 + 0.2) / 2 and 0.3
    csv_path, md_path = write_summary(str(tmp_path), results, 'fql')
    with open(csv_path) as f:
        assert float(next(csv.DictReader(f))['success_fraction_mean']) == pytest.approx(0.6)
    lines = open(md_path).read().splitlines()
    assert lines[2].startswith('Success is a fraction (0–1); mean ± std over seeds')
    assert lines[4] == ('| task | seeds | step | success, fraction (final) | success, fraction (mean of last 3 evals) | '
                        'success, fraction (end of offline training) |')
    assert lines[6] == '| cube-double-play-singletask-task1-v0 | 2 | 200 | 0.60 ± 0.10 | 0.60 ± 0.10 | 0.20 ± 0.10 |'
    assert lines[8] == '| puzzle-3x3-play-singletask-task4-v0 | 2 | 200 | 0.60 ± 0.10 | 0.60 ± 0.10 |  |'


def test_a_resumed_family_run_without_evaluation_writes_its_summary(tmp_path):
    """final.json holds unevaluated numbers as null; a resumed run reads its finished tasks back from final.json, and
    their summary (the environment's average row included) has no number where there was no evaluation."""
    tasks = [f'cube-single-play-singletask-task{k}-v0' for k in (1, 2)]
    for task in tasks:
        folder = str(tmp_path / task / 'seed0')
        os.makedirs(folder)
        runs.write_json(runs.final_path(folder), {'task': task, 'seed': 0, 'step': 10,
                                                  'evaluation/success': float('nan'), 'evaluation/return': float('nan'),
                                                  'evaluation/success_last3': float('nan')})
    results = [completed_result(str(tmp_path / task), task, [0], 10) for task in tasks]
    assert np.isnan(results[0].success[0])
    rows = summary_rows(results)
    assert rows[-1]['task'] == 'cube-single-play (average)' and np.isnan(rows[-1]['success_fraction_mean'])
    write_summary(str(tmp_path), results, 'fql')


def test_final_evaluation_reads_the_last_and_end_of_offline_evaluations():
    rows = [{'step': str(step), 'evaluation/success': str(success), 'evaluation/return': str(-step)}
            for step, success in ((1, 0.0), (40, 0.25), (80, 0.5), (100, 0.75))]
    o2o = RunOptions(offline_steps=80, online_steps=20)
    assert final_evaluation(rows, o2o, with_score=False) == {
        'evaluation/success': 0.75, 'evaluation/return': -100.0, 'evaluation/success_last3': pytest.approx(0.5),
        'evaluation/success_offline': 0.5}
    unfinished = final_evaluation(rows[:3], o2o, with_score=False)
    assert np.isnan(unfinished['evaluation/success']) and np.isnan(unfinished['evaluation/success_last3'])
    assert 'evaluation/success_offline' not in final_evaluation(rows, RunOptions(offline_steps=100), with_score=False)


def test_with_observation_statistics_fills_a_copy_only_when_the_agent_normalises():
    observations = np.array([[0.0, 1.0], [2.0, 1.0]], np.float32)
    config = mfql.get_config()
    filled = with_observation_statistics(config, observations)
    assert filled.observation_mean == (1.0, 1.0) and filled.observation_std == (1.0, 1.0)  # dim 1 constant -> 1
    assert config.observation_mean is None  # the caller's config is left alone
    config.observation_mean, config.observation_std = (5.0, 5.0), (2.0, 2.0)
    assert with_observation_statistics(config, observations) is config  # statistics given by the user are kept
    config.normalize_observations = False
    assert with_observation_statistics(config, observations) is config
    fql_config = fql.get_config()  # FQL's default: off
    assert with_observation_statistics(fql_config, observations) is fql_config
    assert with_observation_statistics(ml_collections.ConfigDict({'lr': 1e-3}), observations).lr == 1e-3  # no keys


@pytest.mark.parametrize('agent_name, temperature', [('mfql', 1.0), ('fql', 1.0), ('ifql', 1.0), ('iql', 0.0),
                                                     ('rebrac', 0.0)])
def test_evaluation_temperature_follows_fqls_evaluation_of_each_agent(agent_name, temperature):
    """IQL and ReBRAC are evaluated with their deterministic action (FQL's eval_temperature = 0); agents whose
    policy is a sampler are evaluated at temperature 1, MFQL and FQL through the default (their configs lack the key)."""
    import importlib

    from training.evaluation import evaluation_temperature
    config = importlib.import_module(f'agents.{agent_name}').get_config()
    assert evaluation_temperature(config) == temperature
    assert ('evaluation_temperature' in config) == (agent_name not in ('mfql', 'fql'))


def test_progress_rate_and_eta_leave_out_the_compiling_call(monkeypatch):
    """A first call that compiles for 100 s and runs 1 update, a first evaluation of 20 s, then 100 updates per
    second: the bar shows 100 updates/s and the time the remaining updates take, never the ~1000 h ETA of a rate
    of 1 update per 100 s, and no negative or made-up rate in between."""
    import io
    import tqdm.std
    from training.runner import Progress

    clock = [0.0]
    monkeypatch.setattr(tqdm.std, 'time', lambda: clock[0])  # the clock every tqdm bar reads
    output = io.StringIO()
    progress = Progress(0, total=2001, file=output, mininterval=0, smoothing=0.1)
    clock[0] = 100.0
    progress.advance(1, compiled=True)
    clock[0] += 20.0  # the first evaluation, which also compiles
    progress.restart()
    assert progress.bar.format_dict['n'] == 1 and progress.bar.format_dict['rate'] is None  # nothing measured yet
    for _ in range(10):
        clock[0] += 1.0
        progress.advance(100)
    meter = progress.bar.format_dict
    assert meter['n'] == 1001 and meter['elapsed'] == pytest.approx(10.0)
    assert meter['rate'] == pytest.approx(100.0)
    assert (meter['total'] - meter['n']) / meter['rate'] == pytest.approx(10.0)  # the ETA: 1000 updates
    progress.close()
    shown = output.getvalue().replace('\r', '\n')
    assert '100.00s/it' not in shown and '-' not in shown.replace('--', '')  # no compile rate, no negative rate



def test_curves_show_success_and_return_at_the_evaluations_then_alpha_and_q_with_labelled_axes():
    from training.tracking import curves_figure
    evals = [[{'step': step, 'evaluation/success': 0.1 * i, 'evaluation/return': -50.0 + i}
              for i, step in enumerate((1, 100, 200))] for _ in range(2)]
    train = [[{'step': step, 'training/alpha': 10.0 * 1.2 ** i, 'training/critic/q_mean': -float(i),
               'training/critic/loss': 1.0} for i, step in enumerate(range(10, 210, 10))] for _ in range(2)]
    figure = curves_figure(evals, train, 'task (mfql)', [0, 5])
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ['evaluation/success', 'evaluation/return', 'training/alpha',
                                               'training/critic/q_mean']
    assert [ax.get_ylabel() for ax in axes] == ['success (fraction)', 'episode return', 'α (weight of the BC loss)',
                                                'Q (batch mean, critic)']
    assert all(ax.get_xlabel() == 'updates' for ax in axes)
    success_line = axes[0].get_lines()[1]
    assert list(success_line.get_xdata()) == [1, 100, 200] and success_line.get_marker() == 'o'  # each evaluation
    assert success_line.get_label() == 'seed 5' and axes[2].get_yscale() == 'log'
    assert len(axes[3].get_lines()[0].get_xdata()) == 20 and axes[3].get_lines()[0].get_marker() == 'None'
    fql_like = curves_figure(evals, [[{k: v for k, v in row.items() if k != 'training/alpha'} for row in rows]
                                     for rows in train], 'task (fql)', [0, 5])
    assert [ax.get_title() for ax in fql_like.axes] == ['evaluation/success', 'evaluation/return',
                                                        'training/critic/q_mean']


def test_curves_of_a_run_without_evaluation_show_its_training_panels():
    from training.tracking import curves_figure
    train = [[{'step': step, 'training/alpha': 2.0, 'training/critic/q_mean': -1.0} for step in (10, 20)]]
    figure = curves_figure([[]], train, 'task (mfql)', [0])
    assert [ax.get_title() for ax in figure.axes] == ['training/alpha', 'training/critic/q_mean']
    assert curves_figure([[]], [[{'step': 10}]], 'task (toy)', [0]) is None  # nothing to draw: no file


def test_final_json_of_a_run_without_evaluation_is_strict_json(tmp_path):
    """A bare NaN is not JSON (strict parsers reject it): the unevaluated numbers of final.json are null."""
    def refuse(constant: str) -> None:
        raise ValueError(f'{constant} in final.json')

    run_dir = str(tmp_path / 'run')
    train_task(toy_inputs(run_dir, toy_data()), toy_options(eval_episodes=0))
    with open(os.path.join(run_dir, 'seed0', 'final.json')) as f:
        final = json.loads(f.read(), parse_constant=refuse)
    assert final['step'] == 20 and None in final.values()
