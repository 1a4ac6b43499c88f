"""evaluate.py: a kept checkpoint evaluated again equals the run's own evaluation, bit for bit on the same machine;
the checkpoints of every evaluation step are kept; bad input is one error line."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import runs
from tests.test_main import REPO_DIR, TASK, compile_cache, dataset_dir, run_main  # noqa: F401  (fixtures)

ARGS = ['--agent=agents/fql.py', '--agent.actor_hidden_dims=(8,8)', '--agent.value_hidden_dims=(8,8)',
        '--agent.batch_size=8', '--agent.flow_steps=2', '--offline_steps=30', '--eval_interval=20', '--eval_episodes=2',
        '--log_interval=10', '--save_interval=5', '--keep_checkpoints=1', '--steps_per_call=10', '--num_seeds=2',
        '--run_name=r', '--progress_bar=false']


def run_evaluate(args: list[str], cache_dir: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS='cpu', JAX_COMPILATION_CACHE_DIR=cache_dir)
    env.pop('MUJOCO_GL', None)  # evaluate.py chooses it, as main.py does
    return subprocess.run([sys.executable, '-m', 'evaluate', *args], cwd=REPO_DIR, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope='module')
def trained(dataset_dir, compile_cache, tmp_path_factory) -> str:  # noqa: F811
    save_dir = str(tmp_path_factory.mktemp('evaluate_runs'))
    result = run_main([f'--env_name={TASK}', f'--dataset_dir={dataset_dir}', f'--save_dir={save_dir}', *ARGS],
                      compile_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    return os.path.join(save_dir, 'r', TASK)


def test_every_evaluation_step_keeps_its_checkpoint_and_keep_checkpoints_prunes_the_others(trained):
    for seed in (0, 1):
        folder = runs.seed_dir(trained, seed)
        assert [row['step'] for row in runs.read_csv(runs.eval_csv_path(folder))] == [1, 20, 30]
        # save_interval=5: of 5, 10, 15, 25 (not evaluation steps) --keep_checkpoints=1 keeps the newest
        assert runs.checkpoint_steps(folder) == [1, 20, 25, 30]


def test_evaluate_reproduces_the_last_evaluation_bitwise(trained, compile_cache):  # noqa: F811
    result = run_evaluate([f'--run_dir={os.path.dirname(trained)}'], compile_cache)  # a run folder with one task
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('; equals eval.csv') == 2, result.stdout
    path = runs.evaluation_csv_path(trained, 30, 2)
    assert f'written to {path}' in result.stdout
    rows = runs.read_csv(path)
    for seed, row in zip((0, 1), rows):
        recorded = runs.read_csv(runs.eval_csv_path(runs.seed_dir(trained, seed)))[-1]
        assert row['seed'] == seed and row['step'] == 30 and row['equals_eval_csv'] == 1
        for key in ('evaluation/success', 'evaluation/return', 'evaluation/episode_length'):
            assert row[key] == recorded[key]


def test_an_earlier_evaluation_step_is_reproduced_too(trained):
    from evaluate import evaluate_run
    _, rows = evaluate_run(trained, step=1)
    assert [row['equals_eval_csv'] for row in rows] == [1, 1]


def test_a_run_saved_before_the_agent_gained_keys_evaluates_with_them_at_their_defaults(trained, tmp_path):
    """A flags.json without keys that the agent has since gained (here FQL's pixel keys) is read with those keys at
    their get_config defaults, and the checkpoint evaluates to the recorded numbers."""
    from evaluate import evaluate_run
    older = str(tmp_path / 'older')
    shutil.copytree(trained, older)
    for seed in (0, 1):
        path = runs.flags_path(runs.seed_dir(older, seed))
        with open(path) as f:
            recorded = json.load(f)
        recorded['agent_config'] = {key: value for key, value in recorded['agent_config'].items()
                                    if key not in ('encoder', 'frame_stack', 'p_aug')}
        runs.write_json(path, recorded)
    _, rows = evaluate_run(older, step=1)
    assert [row['equals_eval_csv'] for row in rows] == [1, 1]


def test_load_agent_needs_no_dataset_and_acts(trained):
    import jax
    from datasets import ogbench_data
    from evaluate import load_agent
    agent = load_agent(trained, seed=1, step=20)
    env = ogbench_data.make_env(TASK)
    observation, _ = env.reset(seed=0)
    actions = agent.sample_actions(np.asarray(observation, np.float32)[None], jax.random.PRNGKey(0), 0.0)
    assert agent.config['agent_name'] == 'fql' and actions.shape == (1, *env.action_space.shape)
    assert np.all(np.isfinite(actions))
    env.close()
    # The weights are on the device, as in training: acting at every env step copies nothing from the host.
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(agent))


@pytest.mark.parametrize('args, message', [
    ([], 'error: --run_dir is required'),
    (['--run_dir=/nonexistent'], 'error: --run_dir /nonexistent is not a folder'),
    (['--step=7'], 'error: no checkpoint at step 7'),
    (['--eval_episodes=0'], 'error: --eval_episodes must be >= 1'),
])
def test_bad_input_is_one_error_line(trained, compile_cache, args, message):  # noqa: F811
    if not any(arg.startswith('--run_dir') for arg in args) and message != 'error: --run_dir is required':
        args = [f'--run_dir={trained}', *args]
    result = run_evaluate(args, compile_cache)
    assert result.returncode == 1 and message in result.stderr and 'Traceback' not in result.stderr, result.stderr
