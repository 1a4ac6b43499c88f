"""benchmarks/reproduce.py (run list, commands, scoring) and benchmarks/policy_diagnostics.py (checkpoint metrics)."""

import csv
import json
import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_DIR, 'benchmarks'))

import policy_diagnostics  # noqa: E402
import reproduce  # noqa: E402
from agents import fql, mfql  # noqa: E402
from training import checkpoint  # noqa: E402
from training.fused import TrainingState  # noqa: E402


def test_study_runs_order_names_and_flags():
    args = reproduce.parse_args(['--tasks=2,1', '--mfql_alpha=300', '--mfql_alpha_sweep=30,100'])
    runs = reproduce.study_runs(args)
    assert [run.name for run in runs] == ['mfql_task2', 'fql_task1', 'fql_task2', 'mfql_task1', 'mfql_task2_alpha30',
                                          'mfql_task2_alpha100', 'mfql_task2_n1', 'mfql_task2_fixed_alpha']
    commands = {run.name: reproduce.run_command(run, args) for run in runs}
    # One α flag per MFQL command: the sweep value replaces the default; FQL gets none (its preset applies).
    assert [flag for flag in commands['mfql_task2_alpha30'] if flag.startswith('--agent.alpha=')] == ['--agent.alpha=30']
    assert [flag for flag in commands['mfql_task2'] if flag.startswith('--agent.alpha=')] == ['--agent.alpha=300']
    assert not any(flag.startswith('--agent.alpha') for flag in commands['fql_task1'])
    assert '--agent.num_candidates_target=1' in commands['mfql_task2_n1']
    assert '--agent.alpha_mode=fixed' in commands['mfql_task2_fixed_alpha']
    for command in commands.values():  # same budget, seeds, network size and resumability for every run
        assert {'--num_seeds=3', '--offline_steps=40000', '--eval_episodes=50', '--resume'} <= set(command)
        assert '--agent.value_hidden_dims=(256,256)' in command


@pytest.mark.parametrize('argv, message', [
    (['--tasks=2'], 'two different task numbers'),
    (['--tasks=2,2'], 'two different task numbers'),
    (['--tasks=2,7'], 'two different task numbers'),
    (['--steps=35000'], 'multiple of --eval_interval'),
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
    assert reproduce.run_minutes(run, args) == 30.0
    unfinished_args = reproduce.parse_args([f'--work_dir={tmp_path}', '--num_seeds=2', '--steps=40',
                                            '--eval_interval=10'])
    assert not reproduce.is_finished(run, unfinished_args)


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
    _save_fresh_agent(mfql, str(tmp_path / 'seed0'), val, config)
    metrics = policy_diagnostics.seed_metrics(str(tmp_path / 'seed0'), None, val, num_samples=32)
    index = np.random.default_rng(0).choice(64, 32, replace=False)
    assert metrics['step'] == 7
    np.testing.assert_allclose(metrics['mse_to_data'], np.mean(val['actions'][index] ** 2), rtol=1e-5)
    assert metrics['out_of_bounds'] == 0.0
    assert all(np.isfinite(metrics[key]) for key in ('q_data', 'q_one_step', 'q_policy'))


def test_policy_diagnostics_fql_and_missing_checkpoint(tmp_path):
    val = _fake_val()
    config = fql.get_config()
    config.update(actor_hidden_dims=(8, 8), value_hidden_dims=(8, 8))
    _save_fresh_agent(fql, str(tmp_path / 'seed0'), val, config)
    metrics = policy_diagnostics.seed_metrics(str(tmp_path / 'seed0'), 7, val, num_samples=16)
    assert 0.0 <= metrics['out_of_bounds'] <= 1.0 and metrics['mse_to_data'] > 0.0
    with pytest.raises(SystemExit, match='no checkpoint at step 8'):
        policy_diagnostics.seed_metrics(str(tmp_path / 'seed0'), 8, val, num_samples=16)
