"""FQL's command line: its flags work here under its names, those without a counterpart stop with one `error:` line
naming what to use instead, and `--wandb` logs one wandb run per seed, grouped by `--run_group`, as FQL does."""

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from absl import flags

import run_flags
from cli.plan import plan_run
from tests.test_main import REPO_DIR, in_repo_dir, parse  # noqa: F401  (in_repo_dir: an autouse fixture)
from training.tracking import WandbLogger, WandbSettings

# seohongpark/fql's main.py flags that are ours under the same name (docs/running.md lists every one of its flags).
FQL_FLAGS_KEPT = ('run_group', 'seed', 'env_name', 'save_dir', 'offline_steps', 'online_steps', 'log_interval',
                  'eval_interval', 'save_interval', 'eval_episodes', 'p_aug', 'frame_stack')
FQL_FLAGS_REFUSED = ('restore_path', 'restore_epoch', 'buffer_size', 'balanced_sampling', 'video_episodes',
                     'video_frame_skip')


def test_every_fql_flag_is_ours_or_refused():
    assert set(FQL_FLAGS_KEPT) <= set(run_flags.FLAG_NAMES)
    assert set(FQL_FLAGS_REFUSED) <= set(run_flags.REFUSED_FQL_FLAGS)
    assert not set(run_flags.REFUSED_FQL_FLAGS) & set(run_flags.FLAG_NAMES)
    assert 'agent' in flags.FLAGS  # --agent=agents/fql.py, FQL's config file flag


@pytest.mark.parametrize('name', sorted(run_flags.REFUSED_FQL_FLAGS))
def test_each_refused_fql_flag_is_one_line_with_its_remedy(name):
    expected = f'error: --{name} (an FQL flag) does not apply here: {run_flags.REFUSED_FQL_FLAGS[name]}'
    for spelling in ([f'--{name}=1'], [f'--{name}', '1'], [f'-{name}=1']):
        assert run_flags.refused_flag_error(['--seed=0', *spelling]) == expected
    assert '\n' not in expected


def test_refusal_spellings_and_what_is_not_refused():
    assert run_flags.refused_flag_error(['--nobalanced_sampling']).startswith('error: --balanced_sampling ')
    assert run_flags.refused_flag_error(['--seed=0', '--agent=agents/fql.py', '--run_group=g']) is None
    assert run_flags.refused_flag_error(['--', '--restore_path=x']) is None  # after `--`: not flags
    assert 'python -m evaluate' in run_flags.refused_flag_error(['--restore_path=exp/x'])
    assert '--video_episodes=V' in run_flags.refused_flag_error(['--video_episodes=2'])


def test_a_refused_flag_stops_main_with_one_line_and_no_traceback():
    result = subprocess.run([sys.executable, 'main.py', '--restore_path=exp/old', '--restore_epoch=1000000'],
                            cwd=REPO_DIR, env=dict(os.environ, JAX_PLATFORMS='cpu'), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [run_flags.refused_flag_error(['--restore_path=exp/old'])]
    assert 'Traceback' not in result.stderr


def plan_of(*args: str):
    parse(*args)
    return plan_run(flags.FLAGS, list(args))


def test_fql_command_line_sets_the_same_config_as_our_names(tmp_path):
    """FQL's visual command (its README's flags) and ours with the agent's config keys give one plan."""
    task = 'visual-cube-single-play-singletask-task1-v0'
    common = [f'--env_name={task}', '--agent=agents/fql.py', '--offline_steps=100', '--agent.alpha=300']
    fql = plan_of(*common, f'--save_dir={tmp_path}/fql', '--seed=3', '--frame_stack=1', '--p_aug=0.25',
                  '--run_group=ablation')
    assert flags.FLAGS.run_group == 'ablation'  # main.py's run_metadata records every run flag in flags.json
    ours = plan_of(*common, f'--save_dir={tmp_path}/ours', '--seeds=3', '--agent.frame_stack=1',
                   '--agent.p_aug=0.25')
    assert fql.task_configs[0][0].to_dict() == ours.task_configs[0][0].to_dict()
    assert fql.task_configs[0][0].frame_stack == 1 and fql.task_configs[0][0].p_aug == 0.25
    assert (fql.frames, fql.seeds, fql.options) == (ours.frames, ours.seeds, ours.options)


class FakeRun:
    """Records what mfql logs to one wandb run."""

    def __init__(self, **init_kwargs: Any):
        self.init_kwargs, self.logs, self.finished = init_kwargs, [], False

    def log(self, values: dict[str, Any], step: int) -> None:
        self.logs.append((step, values))

    def finish(self) -> None:
        self.finished = True


@pytest.fixture
def opened_wandb_runs(monkeypatch) -> list[FakeRun]:
    """A stand-in `wandb` module whose `init` opens a FakeRun; the runs opened so far, in order."""
    opened: list[FakeRun] = []

    class FakeWandb:
        @staticmethod
        def init(**kwargs: Any) -> FakeRun:
            opened.append(FakeRun(**kwargs))
            return opened[-1]

    monkeypatch.setitem(sys.modules, 'wandb', FakeWandb)
    return opened


def test_wandb_logs_one_run_per_seed_in_one_group(opened_wandb_runs):
    runs = opened_wandb_runs
    task = 'cube-single-play-singletask-task2-v0'
    logger = WandbLogger(WandbSettings(project='mfql', entity='lab', group='ablation'), task, [3, 4], {'flags': {}})
    logger.log(10, 0, {'evaluation/success': 0.5})
    logger.log(10, 1, {'evaluation/success': 0.25})
    logger.close()
    assert [run.init_kwargs['name'] for run in runs] == [f'ablation_{task}_sd003', f'ablation_{task}_sd004']
    assert {(run.init_kwargs['group'], run.init_kwargs['entity'], run.init_kwargs['project']) for run in runs} == {
        ('ablation', 'lab', 'mfql')}
    assert [run.init_kwargs['config']['seed'] for run in runs] == [3, 4]
    assert runs[0].logs == [(10, {'evaluation/success': 0.5})]
    assert runs[1].logs == [(10, {'evaluation/success': 0.25})]
    assert all(run.finished for run in runs)


def test_a_failing_wandb_init_finishes_the_runs_already_opened(monkeypatch):
    from training.tracking import WandbError
    opened: list[FakeRun] = []

    class FailingSecondInit:
        @staticmethod
        def init(**kwargs: Any) -> FakeRun:
            if opened:
                raise RuntimeError('no network')
            opened.append(FakeRun(**kwargs))
            return opened[-1]

    monkeypatch.setitem(sys.modules, 'wandb', FailingSecondInit)
    with pytest.raises(WandbError, match=r'^wandb.init failed \(RuntimeError: no network\): run `wandb login`'):
        WandbLogger(WandbSettings(project='mfql', entity=None, group='g'), 'task', [0, 1], {})
    assert opened[0].finished


def test_a_resumed_run_continues_each_seeds_wandb_run_without_sending_a_row_twice(tmp_path, opened_wandb_runs):
    """A run killed after its step-15 log (last checkpoint: step 10) and resumed logs into the wandb runs of the
    killed process (same ids, `resume='allow'`) and sends only the rows that process had not sent: step 20's."""
    import dataclasses

    from runs import csv_text, eval_csv_path, read_csv, train_csv_path, write_atomically
    from tests.test_training import toy_data, toy_inputs, toy_options
    from training import checkpoint
    from training.runner import train_task
    opened = opened_wandb_runs
    data, options = toy_data(), toy_options(eval_episodes=2)
    settings = WandbSettings(project='mfql', entity=None, group='g')
    inputs = lambda run_dir: dataclasses.replace(toy_inputs(run_dir, data, seeds=(0, 1)), wandb=settings)
    run_dir = str(tmp_path / 'run')
    train_task(inputs(run_dir), options)
    first = opened[:]
    assert len({run.init_kwargs['id'] for run in first}) == 2 and {run.init_kwargs['resume'] for run in first} == {
        'allow'}
    # Each wandb run's config holds the agent's config, as flags.json does (so runs compare by α, presets, ...).
    with open(os.path.join(run_dir, 'seed0', 'flags.json')) as f:
        recorded_agent_config = json.load(f)['agent_config']
    assert [run.init_kwargs['config']['agent_config'] for run in first] == [recorded_agent_config] * 2
    assert [run.init_kwargs['config']['seed'] for run in first] == [0, 1]
    train_steps = [step for step, values in first[0].logs if 'training/critic/loss' in values]
    eval_steps = [step for step, values in first[0].logs if 'evaluation/success' in values]
    assert train_steps == [5, 10, 15, 20] and eval_steps == [1, 10, 20]
    for seed in (0, 1):  # as if killed after the step-15 log: no step-20 checkpoint, rows, or final.json
        seed_dir = os.path.join(run_dir, f'seed{seed}')
        os.remove(checkpoint.checkpoint_path(seed_dir, 20))
        os.remove(os.path.join(seed_dir, 'final.json'))
        for path, last in ((train_csv_path(seed_dir), 15), (eval_csv_path(seed_dir), 10)):
            rows = [row for row in read_csv(path) if row['step'] <= last]
            write_atomically(path, csv_text(list(rows[0]), rows))
    train_task(inputs(run_dir), dataclasses.replace(options, resume=True))
    resumed = opened[len(first):]
    assert [run.init_kwargs['id'] for run in resumed] == [run.init_kwargs['id'] for run in first]
    for seed in (0, 1):
        assert [step for step, _ in resumed[seed].logs] == [20, 20]  # the training row, then the evaluation
        untimed = lambda logs: [{k: v for k, v in values.items() if not k.startswith('time/')}
                                for step, values in logs if step == 20]
        assert untimed(resumed[seed].logs) == untimed(first[seed].logs)  # the redone updates, bitwise
    # A new run in a new folder (no --resume) opens new wandb runs.
    train_task(inputs(str(tmp_path / 'other')), options)
    assert not {run.init_kwargs['id'] for run in opened[-2:]} & {run.init_kwargs['id'] for run in first}
