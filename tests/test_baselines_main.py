"""main.py smoke runs of FQL's baselines (ReBRAC, IQL, IFQL): tiny networks, 100 offline updates on the shared
2-episode dataset, one evaluation episode, two online steps, and the files every run writes."""

import json

import pytest

from tests.test_main import TASK, compile_cache, dataset_dir, in_repo_dir, run_main  # noqa: F401  (fixtures)
from runs import read_csv

TINY = {'rebrac': ['--agent.actor_freq=2', '--agent.alpha_actor=0.1', '--agent.alpha_critic=0.1'],
        'iql': ['--agent.const_std=False', '--agent.alpha=10'],
        'ifql': ['--agent.flow_steps=2', '--agent.num_samples=4']}
LOSS_KEYS = {'rebrac': {'critic/loss', 'critic/penalty', 'actor/loss', 'actor/updated'},  # penalty: next_actions
             'iql': {'value/loss', 'critic/loss', 'actor/loss'},
             'ifql': {'value/loss', 'critic/loss', 'actor/loss'}}


@pytest.mark.parametrize('agent', ['rebrac', 'iql', 'ifql'])
def test_smoke_run(agent, dataset_dir, compile_cache, tmp_path):  # noqa: F811
    args = [f'--env_name={TASK}', f'--dataset_dir={dataset_dir}', f'--save_dir={tmp_path}', f'--agent=agents/{agent}.py',
            '--agent.actor_hidden_dims=(8,8)', '--agent.value_hidden_dims=(8,8)', '--agent.batch_size=16',
            *TINY[agent], '--offline_steps=100', '--online_steps=2', '--eval_interval=100', '--eval_episodes=1',
            '--log_interval=50', '--save_interval=0', '--steps_per_call=50', '--progress_bar=false']
    result = run_main(args, compile_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    seed_dir = f'{tmp_path}/{agent}_{TASK}/{TASK}/seed0'
    assert [row['step'] for row in read_csv(f'{seed_dir}/eval.csv')] == [1, 100, 102]
    rows = read_csv(f'{seed_dir}/train.csv')
    assert [row['step'] for row in rows] == [50, 100]
    assert {f'training/{key}' for key in LOSS_KEYS[agent]} <= set(rows[0])
    assert {f'validation/{key}' for key in LOSS_KEYS[agent] if key != 'actor/updated'} <= set(rows[0])
    info = json.load(open(f'{seed_dir}/flags.json'))
    assert info['agent_config']['agent_name'] == agent and info['agent_config']['actor_hidden_dims'] == [8, 8]
    assert json.load(open(f'{seed_dir}/final.json'))['step'] == 102


@pytest.mark.parametrize('agent, flags, key', [('rebrac', ['--agent.alpha_critic=0.1'], 'alpha_actor'),
                                               ('iql', [], 'alpha')])
def test_a_baseline_without_a_published_alpha_refuses_to_run(agent, flags, key, tmp_path):
    """ReBRAC's α = 0 would be TD3 without behaviour regularisation: no fallback, one line with the published values,
    before any data is read (the --dataset_dir is empty)."""
    result = run_main([f'--env_name={TASK}', f'--agent=agents/{agent}.py', *flags, f'--dataset_dir={tmp_path}/none',
                       f'--save_dir={tmp_path}/exp'], str(tmp_path / 'cache'), timeout=120)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().startswith(f'error: {TASK}: {agent} has no published {key} for cube-single-play: give '
                                            f'--agent.{key}=VALUE (published values: humanoidmaze-medium-navigate ')
