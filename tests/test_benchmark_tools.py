"""benchmarks/ as a package: reproduce.py (run list, commands, scoring, training through the sweep machinery),
intervals.py, policy_diagnostics.py (checkpoint metrics), temperature.py and profile_update.py."""

import csv
import json
import shlex
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

import sweep
from sweeps import manifest
from agents import fql, mfql
from benchmarks import policy_diagnostics, reproduce, temperature
from benchmarks.intervals import seed_t_interval, welch_interval, wilson_interval
from datasets.buffer import observation_statistics
from training import checkpoint, evaluation
from training.fused import TrainingState


def test_study_runs_order_names_and_flags():
    args = reproduce.parse_args(['--tasks=2,1', '--mfql_alpha=30', '--mfql_alpha_sweep=30,100'])
    runs = reproduce.study_runs(args)
    assert [run.name for run in runs] == ['mfql_a30_task2', 'mfql_a30_task1', 'fql_task2', 'fql_task1',
                                          'mfql_a100_task2', 'mfql_a30_task2_fixed_alpha', 'mfql_a30_task2_n1']
    commands = {run.name: reproduce.run_command(run, args) for run in runs}
    # One α flag per MFQL command: the sweep value replaces the default; FQL gets none (its preset applies).
    assert [flag for flag in commands['mfql_a100_task2'] if flag.startswith('--agent.alpha=')] == ['--agent.alpha=100']
    assert [flag for flag in commands['mfql_a30_task2'] if flag.startswith('--agent.alpha=')] == ['--agent.alpha=30']
    assert not any(flag.startswith('--agent.alpha') for flag in commands['fql_task1'])
    assert '--agent.num_candidates_target=1' in commands['mfql_a30_task2_n1']
    assert '--agent.alpha_mode=fixed' in commands['mfql_a30_task2_fixed_alpha']
    assert runs[-2].reference == runs[0]
    for name, command in commands.items():  # same budget, seeds, network size and resumability for every run
        assert {'--num_seeds=3', '--offline_steps=40000', '--eval_episodes=50', '--resume'} <= set(command)
        assert '--agent.value_hidden_dims=(256,256)' in command
        # MFQL shares FQL's learning rate and discount (FQL's own defaults) and uses the T = 50 time grid.
        assert (set(reproduce.MFQL_PROTOCOL) <= set(command)) == name.startswith('mfql')
        assert ('--agent.time_steps=50' in command) == name.startswith('mfql')
    default_args = reproduce.parse_args([])
    assert [run.name for run in reproduce.study_runs(default_args)] == [  # no α sweep by default; α₀ = 120
        'mfql_a120_task2', 'mfql_a120_task1', 'fql_task2', 'fql_task1', 'mfql_a120_task2_fixed_alpha',
        'mfql_a120_task2_n1']
    default_command = reproduce.run_command(reproduce.study_runs(default_args)[0], default_args)
    assert [flag for flag in default_command if flag.startswith('--agent.alpha=')] == ['--agent.alpha=120']
    # Seeds 0-2 by default, with no --seed flag (the committed runs' recorded commands have none); a replication
    # on other seeds passes --seed to main.py and reads those seeds' folders.
    assert not any(flag.startswith('--seed=') for flag in default_command)
    assert [os.path.basename(d) for d in reproduce.seed_dirs(runs[0], default_args)] == ['seed0', 'seed1', 'seed2']
    replication = reproduce.parse_args(['--seed=3'])
    assert '--seed=3' in reproduce.run_command(reproduce.study_runs(replication)[0], replication)
    assert [os.path.basename(d) for d in reproduce.seed_dirs(runs[0], replication)] == ['seed3', 'seed4', 'seed5']


@pytest.mark.parametrize('argv, message', [
    (['--tasks=2'], 'two different task numbers'),
    (['--tasks=2,2'], 'two different task numbers'),
    (['--tasks=2,7'], 'two different task numbers'),
    (['--steps=35000'], 'multiple of --eval_interval'),
    (['--seed=-1'], '--seed must be >= 0'),
    (['--num_seeds=0'], '--num_seeds >= 1'),
    (['--workers=0'], '--workers must be >= 1'),
])
def test_reproduce_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        reproduce.parse_args(argv)
    assert message in capsys.readouterr().err


def test_seed_score_is_mean_of_last_two_evaluations(tmp_path):
    args = reproduce.parse_args([f'--work_dir={tmp_path}', '--num_seeds=2', '--steps=30', '--eval_interval=10'])
    run = reproduce.study_runs(args)[0]
    successes = {0: [0.0, 0.1, 0.2, 0.4], 1: [0.0, 0.0, 0.5, 0.7]}
    for seed, directory in enumerate(reproduce.seed_dirs(run, args)):
        os.makedirs(directory)
        with open(os.path.join(directory, 'eval.csv'), 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['step', 'evaluation/success', 'time/total'])
            for step, success in zip([1, 10, 20, 30], successes[seed]):
                writer.writerow([step, success, 60.0 * step])
    assert reproduce.is_finished(run, args)
    scores = reproduce.seed_scores(run, args)
    np.testing.assert_allclose(scores['final'], [0.3, 0.6])
    assert scores['initial'] == [0.0, 0.0]
    assert scores['successes'] == [10 + 20, 25 + 35]  # of 2 × 50 episodes (the default --eval_episodes)
    assert scores['episodes'] == [100, 100]
    assert reproduce.run_minutes(run, args) == 30.0
    unfinished_args = reproduce.parse_args([f'--work_dir={tmp_path}', '--num_seeds=2', '--steps=40',
                                            '--eval_interval=10'])
    assert not reproduce.is_finished(run, unfinished_args)


def test_wilson_interval_values_and_errors():
    # 0 of n: the interval is [0, z²/(n + z²)], the closed form at k = 0.
    low, high = wilson_interval(0, 300)
    assert low == 0.0 and high == pytest.approx(1.96 ** 2 / (300 + 1.96 ** 2))
    # Mirror symmetry k <-> n − k, and the point estimate lies inside.
    low, high = wilson_interval(24, 300)
    assert (low, high) == pytest.approx((0.0543, 0.1163), abs=1e-4)
    mirror_low, mirror_high = wilson_interval(276, 300)
    assert (mirror_low, mirror_high) == pytest.approx((1 - high, 1 - low))
    assert low < 24 / 300 < high
    # More episodes at the same rate give a narrower interval.
    wide, narrow = wilson_interval(5, 50), wilson_interval(50, 500)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    with pytest.raises(ValueError, match='successes <= trials'):
        wilson_interval(301, 300)
    with pytest.raises(ValueError, match='trials >= 1'):
        wilson_interval(0, 0)


def test_seed_t_interval_values_and_errors():
    # mean 0.08, sample sd 0.02 over 3 seeds: half width t_(0.975, 2) · 0.02 / √3 = 4.3027 · 0.011547.
    low, high = seed_t_interval([0.10, 0.08, 0.06])
    assert (low, high) == pytest.approx((0.08 - 0.049683, 0.08 + 0.049683), abs=1e-6)
    # Many seeds: t approaches the normal quantile 1.96.
    values = np.tile([0.0, 1.0], 5000)
    low, high = seed_t_interval(values)
    assert high - 0.5 == pytest.approx(1.96 * values.std(ddof=1) / np.sqrt(values.size), rel=1e-3)
    assert seed_t_interval([0.0, 0.0, 0.0]) == (0.0, 0.0)
    with pytest.raises(ValueError, match='at least 2 seeds, got 1'):
        seed_t_interval([0.3])


def test_welch_interval_values_and_errors():
    # Equal sizes and spreads: Welch's degrees of freedom are 2(n − 1) = 4, t_(0.975, 4) = 2.7764.
    first, second = [0.3, 0.4, 0.5], [0.0, 0.1, 0.2]
    low, high = welch_interval(first, second)
    half_width = 2.776445 * np.sqrt(2 * 0.01 / 3)
    assert (low, high) == pytest.approx((0.3 - half_width, 0.3 + half_width), abs=1e-6)
    # Unequal spreads: dof between min(n) − 1 and n1 + n2 − 2; here ≈ 2.08, so t ≈ 4.2, wider than pooled.
    low, high = welch_interval([0.24, 0.44, 0.36], [0.10, 0.08, 0.06])
    variances = np.var([0.24, 0.44, 0.36], ddof=1) / 3, np.var([0.10, 0.08, 0.06], ddof=1) / 3
    dof = sum(variances) ** 2 / (variances[0] ** 2 / 2 + variances[1] ** 2 / 2)
    assert 2 < dof < 2.2
    assert (high - low) / 2 == pytest.approx(stats.t.ppf(0.975, dof) * np.sqrt(sum(variances)))
    assert (low + high) / 2 == pytest.approx(1.04 / 3 - 0.08)
    # Swapping the groups negates the interval; no spread at all gives the point difference.
    assert welch_interval(second, first) == pytest.approx((-0.3 - half_width, -0.3 + half_width))
    assert welch_interval([0.5, 0.5], [0.25, 0.25]) == (0.25, 0.25)
    with pytest.raises(ValueError, match='at least 2 seeds per group, got 3 and 1'):
        welch_interval(first, [0.1])


def _write_seed(directory: str, successes: list[float], alphas: list[float], alpha_mode: str = 'adaptive',
                alpha0: float = 30.0, command: str | None = None, metrics: tuple[str, ...] = ()) -> None:
    """A finished seed folder: evaluations at steps 1, 10, 20, 30 (`successes`), training rows at 10, 20, 30 with
    the logged α (`alphas`) and any further `metrics` (value 0.5), and flags.json with α₀ and, if given, the
    recorded command."""
    os.makedirs(directory)
    with open(os.path.join(directory, 'eval.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['step', 'evaluation/success', 'time/total'])
        writer.writerows([step, success, 60.0 * step] for step, success in zip([1, 10, 20, 30], successes))
    with open(os.path.join(directory, 'train.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['step', 'time/updates_per_sec', 'training/alpha', 'validation/alpha',
                         *(f'training/{key}' for key in metrics)])
        writer.writerows([step, 10.0, alpha, alpha, *(0.5 for _ in metrics)]
                         for step, alpha in zip([10, 20, 30], alphas))
    flags = {'agent_config': {'alpha': alpha0, 'alpha_mode': alpha_mode}}
    if command is not None:
        flags['command'] = command
    with open(os.path.join(directory, 'flags.json'), 'w') as f:
        json.dump(flags, f)


@pytest.mark.parametrize('alphas, stands_in', [([30.0, 30.0, 30.0], True), ([30.0, 30.0, 30.0024], False)])
def test_fixed_alpha_ablation_reuses_reference_only_if_alpha_never_moved(tmp_path, alphas, stands_in):
    args = reproduce.parse_args([f'--work_dir={tmp_path}', '--num_seeds=2', '--steps=30', '--eval_interval=10'])
    runs = reproduce.study_runs(args)
    reference, fixed = runs[0], runs[-2]
    assert fixed.reference == reference
    assert not reproduce.is_finished(fixed, args)  # nothing trained yet
    for seed, directory in enumerate(reproduce.seed_dirs(reference, args)):
        _write_seed(directory, [0.0, 0.1, 0.2, 0.4 + seed / 10], alphas if seed == 1 else [30.0] * 3)
    assert reproduce.is_finished(reference, args)
    assert reproduce.is_finished(fixed, args) == stands_in
    assert (reproduce.source_run(fixed, args) == reference) == stands_in
    if stands_in:
        np.testing.assert_allclose(reproduce.seed_scores(fixed, args)['final'], [0.3, 0.35])


def test_finished_runs_trained_with_another_command_are_refused(tmp_path):
    """After a protocol change, run folders trained with the old command must not stand for the new one."""
    args = reproduce.parse_args([f'--work_dir={tmp_path}', '--num_seeds=2', '--steps=30', '--eval_interval=10',
                                 '--report_only'])
    runs = reproduce.study_runs(args)
    reference = runs[0]
    expected = reproduce.run_command(reference, args)[2:]
    directories = reproduce.seed_dirs(reference, args)
    for directory in directories:
        _write_seed(directory, [0.0, 0.1, 0.2, 0.3], [30.0] * 3)
        with open(os.path.join(directory, 'flags.json'), 'w') as f:
            json.dump({'agent_config': {'alpha': 30.0, 'alpha_mode': 'adaptive'}, 'command': ['main.py', *expected]}, f)
    assert reproduce.stale_runs(runs, args) == []
    old_command = [token for token in expected if token != '--agent.normalize_observations=False']
    assert old_command != expected
    with open(os.path.join(directories[1], 'flags.json'), 'w') as f:  # the joined form runs recorded before lists
        json.dump({'agent_config': {'alpha': 30.0, 'alpha_mode': 'adaptive'},
                   'command': ' '.join(['main.py', *old_command])}, f)
    assert reproduce.stale_runs(runs, args) == [
        f'{directories[1]}: trained with `{shlex.join(old_command)}`; the study now runs `{shlex.join(expected)}`']
    with pytest.raises(SystemExit, match='trained with another command than the study'):
        reproduce.main([f'--work_dir={tmp_path}', '--num_seeds=2', '--steps=30', '--eval_interval=10',
                        '--report_only'])


def _write_finished_study(args, last_two: dict[str, list[tuple[float, float]]]) -> None:
    """Made-up finished runs of the whole study, recorded with the study's own commands: per agent and seed, the
    last two evaluations' success (50 episodes each); the initial and 10-step evaluations score 0."""
    os.makedirs(args.data_path, exist_ok=True)
    for suffix, length in (('', 3003), ('-val', 303)):
        np.savez(os.path.join(args.data_path, f'{reproduce.DATASET}{suffix}.npz'), terminals=np.zeros(length))
    for run in reproduce.study_runs(args):
        if run.reference is not None:  # the fixed-α ablation: its reference's α never moves, so nothing to write
            continue
        command = ' '.join(reproduce.run_command(run, args)[1:])
        metrics = tuple(key for key in reproduce.DIAGNOSTICS[run.agent] if key != 'alpha')
        for directory, successes in zip(reproduce.seed_dirs(run, args), last_two[run.agent]):
            _write_seed(directory, [0.0, 0.0, *successes], [120.0] * 3, alpha0=120.0, command=command,
                        metrics=metrics)


@pytest.mark.parametrize('first_seed', [0, 3])
def test_report_tables_from_finished_runs(tmp_path, first_seed):
    """The whole report path (`--report_only`) on made-up finished runs: scores, both intervals and the gap line,
    for the default seeds and for a replication on seeds 3-5."""
    # The default study appends its hand-written notes; a replication passes --notes= for none.
    notes = tmp_path / 'notes.md'
    notes.write_text('## Hand-written reading\n')
    argv = [f'--work_dir={tmp_path}/runs', f'--data_dir={tmp_path}/data', f'--results_dir={tmp_path}/results',
            f'--notes={notes if first_seed == 0 else ""}', f'--seed={first_seed}', '--num_seeds=3', '--steps=30',
            '--eval_interval=10', '--report_only']
    args = reproduce.parse_args(argv)
    _write_finished_study(args, {'fql': [(0.2, 0.4), (0.4, 0.4), (0.5, 0.5)],
                                 'mfql': [(0.1, 0.1), (0.0, 0.2), (0.1, 0.1)]})
    # A measured random policy for task2 (as `measure_random_policy` caches it); task1's is for other seeds.
    for task, measured_seeds in ((2, list(reproduce.seeds(args))), (1, [7, 8, 9])):
        with open(reproduce.random_policy_path(task, args), 'w') as f:
            json.dump({'seeds': measured_seeds, 'episodes': 50, 'successes': [0, 0, 1]}, f)
    reproduce.main(argv)
    with open(os.path.join(args.results_path, 'reproduce-cpu.md')) as f:
        report = f.read()
    fql_scores, mfql_scores = [0.3, 0.4, 0.5], [0.1, 0.1, 0.1]
    low, high = seed_t_interval(fql_scores)
    assert (low, high) == pytest.approx((0.4 - 0.24841, 0.4 + 0.24841), abs=1e-5)
    assert (f'| cube-single-play-singletask-task2-v0 | FQL | 0.00 ± 0.00 | **0.40 ± 0.08** | 0.30, 0.40, 0.50 | '
            f'{low:.2f}–{high:.2f} | 120 / 300 (0.35–0.46) | 30 min |') in report
    # MFQL's seeds agree exactly, so its seed interval has zero width.
    assert '| MFQL | 0.00 ± 0.00 | 0.10 ± 0.00 | 0.10, 0.10, 0.10 | 0.10–0.10 | 30 / 300 (0.07–0.14) |' in report
    gap_low, gap_high = welch_interval(fql_scores, mfql_scores)
    assert (f'- cube-single-play-singletask-task2-v0: FQL ahead of MFQL by 0.30 in success (95% interval over seeds, '
            f'Welch t: {gap_low:.2f}–{gap_high:.2f}).') in report
    assert ('50 episodes per seed), episodes won: cube-single-play-singletask-task2-v0 1 / 150 (0.01; Wilson 0.00–0.04); '
            'cube-single-play-singletask-task1-v0 not measured (run without --report_only).') in report
    assert f'3 seeds ({first_seed}–{first_seed + 2})' in report
    assert report.rstrip().endswith('## Hand-written reading') == (first_seed == 0)
    study_command = 'python -m benchmarks.reproduce ' + ' '.join(argv[:-1])  # less --report_only
    assert report.count(study_command) == 2  # the header and the command list
    assert 'Not run yet' not in report and '3,003 train + 303 val transitions' in report
    with open(os.path.join(args.results_path, 'reproduce-cpu.csv')) as f:
        rows = [row for row in csv.DictReader(f) if row['run'] == 'fql_task2']
    assert [int(row['seed']) for row in rows] == [first_seed, first_seed + 1, first_seed + 2]


def test_report_of_a_one_seed_study_has_no_seed_intervals(tmp_path):
    argv = [f'--work_dir={tmp_path}/runs', f'--data_dir={tmp_path}/data', f'--results_dir={tmp_path}/results',
            f'--notes={tmp_path}/no-notes.md', '--num_seeds=1', '--steps=30', '--eval_interval=10', '--report_only']
    args = reproduce.parse_args(argv)
    _write_finished_study(args, {'fql': [(0.2, 0.4)], 'mfql': [(0.0, 0.2)]})
    reproduce.main(argv)
    with open(os.path.join(args.results_path, 'reproduce-cpu.md')) as f:
        report = f.read()
    assert '| FQL | 0.00 ± 0.00 | **0.30 ± 0.00** | 0.30 | n/a (1 seed) | 30 / 100 (0.22–0.40) |' in report
    assert '- cube-single-play-singletask-task2-v0: FQL ahead of MFQL by 0.20 in success.' in report


def test_random_policy_is_measured_like_the_agents_and_cached(tmp_path, monkeypatch):
    args = reproduce.parse_args([f'--work_dir={tmp_path}', '--num_seeds=2', '--eval_episodes=1'])
    measured = reproduce.measure_random_policy(2, args)  # 2 seeds x 1 episode of cube-single task2
    assert measured == {'seeds': [0, 1], 'episodes': 1, 'successes': [0, 0]}
    with open(reproduce.random_policy_path(2, args)) as f:
        assert json.load(f) == measured
    calls = []

    def fake_evaluate(agents, pool, policy_fn, keys, seeds, num_episodes):
        calls.append((seeds, num_episodes))
        actions = policy_fn(None, jnp.zeros((2, 1, 28)), keys, jnp.int32(0))
        assert actions.shape == (2, 1, 5) and float(jnp.abs(actions).max()) <= 1.0
        return [{'success': 0.5}, {'success': 1.0}], {}

    monkeypatch.setattr(evaluation, 'evaluate', fake_evaluate)
    assert reproduce.measure_random_policy(2, args) == measured and calls == []  # served from the cache
    more_episodes = reproduce.parse_args([f'--work_dir={tmp_path}', '--num_seeds=2', '--eval_episodes=2'])
    assert reproduce.measure_random_policy(2, more_episodes)['successes'] == [1, 2]  # measured again
    assert calls == [([0, 1], 2)]


def _save_fresh_agent(agent_module, seed_dir: str, val: dict, config: ml_collections.ConfigDict) -> None:
    example = {key: jnp.asarray(val[key][:1]) for key in policy_diagnostics.BATCH_KEYS}
    agent_class = mfql.MFQLAgent if agent_module is mfql else fql.FQLAgent
    state = TrainingState(agent=agent_class.create(jax.random.PRNGKey(3), example, config),
                          sample_key=jax.random.PRNGKey(4))
    os.makedirs(seed_dir)
    checkpoint.save_checkpoint(seed_dir, 7, state)
    with open(os.path.join(seed_dir, 'flags.json'), 'w') as f:
        json.dump({'agent_config': config.to_dict()}, f)


def _fake_val(num: int = 64, obs_dim: int = 6, action_dim: int = 3) -> dict:
    rng = np.random.default_rng(0)
    return {'observations': rng.normal(size=(num, obs_dim)).astype(np.float32),
            'actions': rng.uniform(-1, 1, size=(num, action_dim)).astype(np.float32),
            'rewards': np.zeros(num, np.float32), 'masks': np.ones(num, np.float32),
            'next_observations': rng.normal(size=(num, obs_dim)).astype(np.float32),
            'terminals': np.zeros(num, np.float32)}


def test_policy_diagnostics_of_fresh_mfql_agent_is_zero_action(tmp_path):
    """The residual MFQL actor outputs exactly 0 at initialisation, so the fit to the data is E[a²]."""
    val = _fake_val()
    config = mfql.get_config()
    config.update(actor_arch='mlp', actor_mlp_hidden_dims=(8, 8), value_hidden_dims=(8, 8), offline_steps=100)
    config.observation_mean, config.observation_std = observation_statistics(val['observations'])
    _save_fresh_agent(mfql, str(tmp_path / 'seed0'), val, config)
    metrics = policy_diagnostics.seed_metrics(str(tmp_path / 'seed0'), None, val, num_samples=32)
    index = np.random.default_rng(0).choice(64, 32, replace=False)
    assert metrics['step'] == 7
    np.testing.assert_allclose(metrics['mse_to_data'], np.mean(val['actions'][index] ** 2), rtol=1e-5)
    assert metrics['out_of_bounds'] == 0.0
    assert metrics['action_spread'] == 0.0  # the same zero action for every noise draw
    assert all(np.isfinite(metrics[key]) for key in ('q_data', 'q_one_step', 'q_policy'))


def test_action_spread_is_the_std_over_noise_draws(tmp_path):
    val = _fake_val()
    config = fql.get_config()
    config.update(actor_hidden_dims=(8, 8), value_hidden_dims=(8, 8))
    _save_fresh_agent(fql, str(tmp_path / 'seed0'), val, config)
    example = {key: jnp.asarray(value[:1]) for key, value in val.items()}
    template = TrainingState(agent=fql.FQLAgent.create(jax.random.PRNGKey(3), example, config),
                             sample_key=jax.random.PRNGKey(4))
    agent = checkpoint.load_checkpoint(str(tmp_path / 'seed0'), 7, template)[0].agent
    observations = jnp.asarray(val['observations'][:16])
    noises = jax.random.normal(jax.random.PRNGKey(0), (5, 16, 3))
    draws = np.stack([np.asarray(agent.one_step_actions(observations, noise)) for noise in noises])
    spread = policy_diagnostics.action_spread(agent, observations, noises)
    np.testing.assert_allclose(spread, draws.std(axis=0).mean(), rtol=1e-5)
    assert spread > 0.0


def test_neighbour_action_spread_pairs_each_state_with_its_duplicate():
    val = _fake_val(num=40)
    offsets = np.where(np.arange(3) % 2 == 0, 0.3, -0.3).astype(np.float32)
    train = {'observations': np.concatenate([val['observations'], val['observations'] + 50.0]),  # far copies
             'actions': np.concatenate([val['actions'] + offsets, val['actions'] - 0.9])}
    # Every val state's nearest neighbour is its own copy (distance 0), whose action differs by ±0.3 per dim.
    spread = policy_diagnostics.neighbour_action_spread(train, val, num_samples=40)
    np.testing.assert_allclose(spread, 0.3 / np.sqrt(2.0), rtol=1e-5)


def test_policy_diagnostics_fql_and_missing_checkpoint(tmp_path):
    val = _fake_val()
    config = fql.get_config()
    config.update(actor_hidden_dims=(8, 8), value_hidden_dims=(8, 8))
    _save_fresh_agent(fql, str(tmp_path / 'seed0'), val, config)
    metrics = policy_diagnostics.seed_metrics(str(tmp_path / 'seed0'), 7, val, num_samples=16)
    assert 0.0 <= metrics['out_of_bounds'] <= 1.0 and metrics['mse_to_data'] > 0.0
    with pytest.raises(SystemExit, match='no checkpoint at step 8'):
        policy_diagnostics.seed_metrics(str(tmp_path / 'seed0'), 8, val, num_samples=16)


HLO_SNIPPET = '''HloModule jit_update

%fused_computation.16 (param_0.23: f32[2,1280,256], param_1.24: f32[2,256,256]) -> f32[2,1280,256] {
  %param_0.23 = f32[2,1280,256]{2,1,0} parameter(0)
  %param_1.24 = f32[2,256,256]{2,1,0} parameter(1)
  ROOT %dot.401 = f32[2,1280,256]{2,1,0} dot(%param_0.23, %param_1.24), lhs_contracting_dims={2}
}

%fused_computation (param_0: f32[2,256,256]) -> f32[2,256] {
  %param_0 = f32[2,256,256]{2,1,0} parameter(0)
  %constant.1 = f32[] constant(0)
  ROOT %reduce.3 = f32[2,256]{1,0} reduce(%param_0, %constant.1), dimensions={1}
}

ENTRY %main.7 (p0: f32[2,1280,256], p1: f32[2,256,256]) -> f32[2,256] {
  %p0 = f32[2,1280,256]{2,1,0} parameter(0)
  %p1 = f32[2,256,256]{2,1,0} parameter(1)
  %ynn_fusion.16 = f32[2,1280,256]{2,1,0} fusion(%p0, %p1), kind=kCustom, calls=%fused_computation.16
  %dot.7 = f32[2,256,256]{2,1,0} dot(%p1, %p1), metadata={op_name="jit(update)/modules_actor/Dense_0/dot_general"}
  ROOT %ynn_fusion = f32[2,256]{1,0} fusion(%dot.7), kind=kCustom, calls=%fused_computation, metadata={op_name="jit(update)/transpose(jvp(ModuleDict))/modules_critic/LayerNorm_1/reduce_sum"}
}
'''


def test_profile_classifies_matmul_fusions_and_names_sources():
    from benchmarks import profile_update
    # The fusion holding a dot and the dots themselves (also the one inside the fusion), not the reduce fusion.
    assert profile_update.matmul_ops(HLO_SNIPPET) == {'ynn_fusion.16', 'dot.401', 'dot.7'}
    assert {'ynn_fusion.16', 'dot.7', 'ynn_fusion', 'p0'} <= profile_update.instruction_names(HLO_SNIPPET)
    assert not {'fused_computation', 'main.7', 'ThunkExecutor::Execute'} & profile_update.instruction_names(HLO_SNIPPET)
    sources = profile_update.op_sources(HLO_SNIPPET)
    assert sources['ynn_fusion'] == 'modules_critic/LayerNorm_1/reduce_sum'
    assert sources['dot.7'] == 'modules_actor/Dense_0/dot_general'
    assert [profile_update.op_group(sources[name]) for name in ('ynn_fusion', 'dot.7')] == [
        'normalisation layers', 'other network ops']
    assert profile_update.op_group('body/add') == 'optimiser, losses, sampling'


def test_profile_exclusive_times_subtract_nested_events():
    from benchmarks import profile_update
    # (start, duration, name): an executor event holding two ops, one of which holds a third; then a lone op.
    events = [(0, 100, 'ThunkExecutor::Execute'), (10, 30, 'fusion.1'), (15, 10, 'dot.2'), (50, 20, 'fusion.1'),
              (200, 5, 'copy.3')]
    times = profile_update.exclusive_times(events)
    assert times == {'ThunkExecutor::Execute': 50, 'fusion.1': 40, 'dot.2': 10, 'copy.3': 5}


def test_temperature_scores_several_steps_as_the_study_does():
    # per seed: τ = 1 (0.1 + 0.3) / 2 = 0.2 and (0.2 + 0.2) / 2 = 0.2; τ = 0 0 and 0.05; 10 episodes per evaluation
    success_by_step = {30: {1.0: [0.1, 0.2], 0.0: [0.0, 0.0]}, 40: {1.0: [0.3, 0.2], 0.0: [0.0, 0.1]}}
    header, one, zero = temperature.score_lines(success_by_step, eval_episodes=10)
    assert 'steps 30, 40' in header
    low, high = wilson_interval(8, 40)
    assert one.split() == ['temperature', '1', 'score', '0.200', '±', '0.000', 'per', 'seed:', '0.20,', '0.20',
                           'won', '8', '/', '40', f'({low:.2f}–{high:.2f})', 'seeds', 't', '0.20–0.20']
    # τ = 0: seeds 0 and 0.05, sample sd 0.0354, half width t_(0.975, 1) · 0.0354 / √2 = 12.706 · 0.025 = 0.318
    assert 'score 0.025 ± 0.025' in zero and 'won 1 / 40' in zero and zero.endswith('seeds t -0.29–0.34')
    _, one_seed = temperature.score_lines({30: {1.0: [0.1]}, 40: {1.0: [0.3]}}, eval_episodes=10)
    assert one_seed.endswith('won 4 / 20 (0.08–0.42)')  # no seed interval from one seed


@pytest.mark.parametrize('argv, message', [
    (['--temperatures=1,-0.5'], '--temperatures must be finite values >= 0'),
    (['--steps=30000,4e4'], '--steps must be comma-separated integers'),
    (['--steps=40000,40000'], '--steps has repeated values'),
])
def test_temperature_rejects_bad_arguments(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        temperature.main([f'--run_dir={tmp_path}', *argv])
    assert message in capsys.readouterr().err


def fake_launch(args, written: dict[str, list[float]], launched: list[list[str]]):
    """A stand-in for sweep.launch that records the jobs of each round and writes their runs as finished, with each
    seed's logged α from `written` (per run name; default constant at α₀ = 30)."""
    def launch(jobs, options, sweep_dir):
        assert sweep_dir == args.work_path and options.launcher == 'local' and options.max_parallel == args.workers
        launched.append([job.name for job in jobs])
        runs = {run.name: run for run in reproduce.study_runs(args)}
        for job in jobs:
            run = runs[job.name]
            assert job.command == reproduce.run_command(run, args)
            assert [os.path.join(sweep_dir, d) for d in [job.run_dir]] == [os.path.dirname(reproduce.seed_dirs(run, args)[0])]
            for directory in reproduce.seed_dirs(run, args):
                _write_seed(directory, [0.0, 0.1, 0.2, 0.3], written.get(job.name, [30.0] * 3),
                            alpha_mode='fixed' if 'fixed' in job.name else 'adaptive')
        return 0
    return launch


@pytest.mark.parametrize('alphas, fixed_trained', [([30.0] * 3, False), ([30.0, 30.0, 36.0], True)])
def test_train_all_runs_the_study_through_the_sweep_and_the_fixed_alpha_run_after_its_reference(
        tmp_path, monkeypatch, capsys, alphas, fixed_trained):
    args = reproduce.parse_args([f'--work_dir={tmp_path}', '--num_seeds=1', '--steps=30', '--eval_interval=10',
                                 '--mfql_alpha=30', '--workers=2'])
    runs = reproduce.study_runs(args)
    launched = []
    monkeypatch.setattr(sweep, 'launch', fake_launch(args, {'mfql_a30_task2': alphas}, launched))
    reproduce.train_all(runs, args)
    first_round = ['mfql_a30_task2', 'mfql_a30_task1', 'fql_task2', 'fql_task1', 'mfql_a30_task2_n1']
    assert launched == [first_round] + ([['mfql_a30_task2_fixed_alpha']] if fixed_trained else [])
    assert ('[skip] mfql_a30_task2_fixed_alpha: same computation as mfql_a30_task2' in capsys.readouterr().out) \
        != fixed_trained
    assert all(reproduce.is_finished(run, args) for run in runs)
    launched.clear()
    reproduce.train_all(runs, args)  # everything finished: nothing is launched again
    assert launched == []


def test_train_all_stops_with_the_sweeps_error_when_a_run_fails(tmp_path, monkeypatch):
    args = reproduce.parse_args([f'--work_dir={tmp_path}', '--num_seeds=1', '--steps=30', '--eval_interval=10'])
    monkeypatch.setattr(sweep, 'launch', lambda jobs, options, sweep_dir: 1)
    with pytest.raises(SystemExit, match=f'a run failed; python sweep.py --save_dir={tmp_path} --status shows'):
        reproduce.train_all(reproduce.study_runs(args), args)


def test_the_study_jobs_are_recognised_as_finished_by_the_sweep(tmp_path):
    """A run folder trained by the study's command is done for the sweep machinery too (same config hash)."""
    args = reproduce.parse_args([f'--work_dir={tmp_path}', '--num_seeds=2', '--steps=30', '--eval_interval=10'])
    run = reproduce.study_runs(args)[0]
    job = reproduce.sweep_job(run, args)
    assert manifest.finished_step(job, args.work_path) is None
    for directory in reproduce.seed_dirs(run, args):
        os.makedirs(directory)
        with open(os.path.join(directory, 'flags.json'), 'w') as f:
            json.dump({'command': ' '.join(reproduce.run_command(run, args)[1:]),
                       'flags': {'offline_steps': 30, 'online_steps': 0}}, f)
        with open(os.path.join(directory, 'final.json'), 'w') as f:
            json.dump({'step': 30}, f)
    assert manifest.finished_step(job, args.work_path) == 30


def test_random_policy_command_prints_the_episodes_won(capsys, monkeypatch):
    from benchmarks import random_policy

    def fake_evaluate(agents, pool, policy_fn, keys, seeds, num_episodes):
        actions = policy_fn(None, jnp.zeros((2, 1, 28)), keys, jnp.int32(3))
        assert actions.shape == (2, 1, 5) and float(jnp.abs(actions).max()) <= 1.0
        assert seeds == [4, 7] and num_episodes == 2
        return [{'success': 0.5}, {'success': 1.0}], {}

    monkeypatch.setattr(evaluation, 'evaluate', fake_evaluate)
    random_policy.main(['--env_name=cube-single-play-singletask-task2-v0', '--seeds=4,7', '--eval_episodes=2'])
    assert capsys.readouterr().out.startswith('cube-single-play-singletask-task2-v0, uniform random policy: '
                                              'seed 4: 1 / 2, seed 7: 2 / 2; pooled 3 / 4 (0.75; 95% Wilson ')
    with pytest.raises(SystemExit):
        random_policy.main(['--env_name=cube-single-play-singletask-task2-v0', '--seeds=4,x'])
    assert "--seeds must be comma-separated integers, got '4,x'" in capsys.readouterr().err
