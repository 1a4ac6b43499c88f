"""main.py: flag checks (in-process, before any compute), family expansion, and CPU smoke runs.

Smoke runs use a 2-episode cube-single-play dataset generated once per session, tiny networks, and
a shared JAX compilation cache so repeated runs (kill / resume) do not recompile.
"""

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from absl import flags

from agents import config_key_comments
from cli.plan import plan_run
from datasets import ogbench_data
from datasets.buffer import observation_statistics
from training import checkpoint
from runs import read_csv

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK = 'cube-single-play-singletask-task2-v0'

import main  # noqa: E402  (defines the absl flags once for the in-process tests)


@pytest.fixture(autouse=True)
def in_repo_dir(monkeypatch):
    monkeypatch.chdir(REPO_DIR)  # agent config paths (agents/fql.py) are relative to the working directory


@pytest.fixture(scope='session')
def dataset_dir(tmp_path_factory) -> str:
    from datasets.generate import generate_dataset
    directory = str(tmp_path_factory.mktemp('ogbench_data'))
    generate_dataset('cube-single-play-v0', 2, seed=0, dataset_dir=directory, show_progress=False)
    return directory


@pytest.fixture(scope='session')
def compile_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp('jax_cache'))


def parse(*args: str) -> None:
    """Parses main.py's flags in-process (fresh each time).

    ml_collections defines the --agent.KEY override flags only for keys present in sys.argv when
    main.py is imported, so in-process the overrides are applied to FLAGS.agent here, as it would.
    """
    overrides = [a for a in args if a.startswith('--agent.')]
    flags.FLAGS.unparse_flags()
    flags.FLAGS(['main.py', *[a for a in args if a not in overrides]])
    for override in overrides:
        key, value = override[len('--agent.'):].split('=', 1)
        flags.FLAGS.agent[key] = type(flags.FLAGS.agent[key])(ast.literal_eval(value))


def plan(*args: str):
    parse(*args)
    return plan_run(flags.FLAGS, list(args))


# ----------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize('args, message', [
    (['--offline_steps=-5'], 'offline_steps must be >= 0, got -5'),
    (['--online_steps=-1'], 'online_steps must be >= 0, got -1'),
    (['--offline_steps=0'], 'nothing to train'),
    (['--eval_interval=0'], 'eval_interval must be >= 1 when evaluating'),
    (['--eval_episodes=-2'], 'eval_episodes must be >= 0'),
    (['--steps_per_call=0'], 'steps_per_call must be >= 1'),
    (['--log_interval=0'], 'log_interval must be >= 1'),
    (['--num_seeds=0'], 'num_seeds must be >= 1'),
    (['--seeds=1,1'], 'seeds must be distinct'),
    (['--seeds=a,b'], 'comma-separated integers'),
    (['--env_name=cube-single-play-singletask-task9-v0'], '--env_name'),
    (['--env_name=cube-sngle-play-singletask'], '--env_name'),
    (['--generate_missing_data=-1'], 'generate_missing_data must be >= 0'),
    (['--generate_missing_data=5', '--download_missing_data'], 'are two different sources of a missing dataset'),
    (['--generate_workers=-1'], 'generate_workers must be >= 0 (0 = one per available core)'),
    (['--agent.offline_steps=10'], 'set the budget with --offline_steps'),
])
def test_bad_flags_stop_before_any_compute(args, message, tmp_path):
    with pytest.raises(SystemExit) as error:
        plan(f'--save_dir={tmp_path}', *args)
    assert message in str(error.value)


def test_wandb_without_login_stops_before_any_data_with_the_remedy(tmp_path, monkeypatch):
    from training.tracking import wandb_problem
    home = tmp_path / 'home'
    home.mkdir()
    message = wandb_problem({'HOME': str(home)}, installed=True)
    assert message == (f'--wandb was given but wandb has no login (no WANDB_API_KEY, no api.wandb.ai entry in '
                       f'{home}/.netrc): run `wandb login` (or set WANDB_API_KEY), or set WANDB_MODE=offline to log '
                       'locally and `wandb sync` later, or drop --wandb')
    assert wandb_problem({'HOME': str(home), 'WANDB_MODE': 'offline'}, installed=True) is None
    assert wandb_problem({'HOME': str(home), 'WANDB_API_KEY': 'k'}, installed=True) is None
    (home / '.netrc').write_text('machine api.wandb.ai\n  login user\n  password secret\n')
    assert wandb_problem({'HOME': str(home)}, installed=True) is None
    assert 'no wandb.example.org entry' in wandb_problem({'HOME': str(home),
                                                          'WANDB_BASE_URL': 'https://wandb.example.org'}, installed=True)
    assert 'wandb package is not installed' in wandb_problem({'HOME': str(home)}, installed=False)
    # main.py asks before loading any data (plan_run runs first), with the environment above.
    monkeypatch.setenv('HOME', str(home / 'elsewhere'))
    for name in ('WANDB_MODE', 'WANDB_API_KEY', 'NETRC', 'WANDB_BASE_URL'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match='^error: --wandb was given but'):  # no wandb login, or no wandb here
        plan(f'--save_dir={tmp_path}', '--wandb')


def test_eval_interval_zero_is_fine_without_evaluation(tmp_path):
    run = plan(f'--save_dir={tmp_path}', '--eval_interval=0', '--eval_episodes=0')
    assert run.options.eval_episodes == 0


def test_existing_run_folder_needs_resume(tmp_path):
    run = plan(f'--save_dir={tmp_path}', f'--env_name={TASK}')
    os.makedirs(run.run_dirs[0])
    open(os.path.join(run.run_dirs[0], 'x'), 'w').close()
    with pytest.raises(SystemExit, match='already exists; pass --resume'):
        plan(f'--save_dir={tmp_path}', f'--env_name={TASK}')
    assert plan(f'--save_dir={tmp_path}', f'--env_name={TASK}', '--resume').run_dirs == run.run_dirs


def saved_run(run_dir: str, offline_steps: int, online_steps: int = 0, schedule_length: int | None = None) -> None:
    """A run folder as a started run leaves it: seed0/flags.json with its flags and agent config."""
    os.makedirs(f'{run_dir}/seed0')
    with open(f'{run_dir}/seed0/flags.json', 'w') as f:
        json.dump({'flags': {'offline_steps': offline_steps, 'online_steps': online_steps},
                   'agent_config': {'offline_steps': schedule_length or offline_steps}}, f)


def test_resume_with_a_larger_offline_budget_extends_the_run_with_its_schedules(tmp_path, capsys):
    args = (f'--save_dir={tmp_path}', f'--env_name={TASK}', '--agent=agents/mfql.py', '--resume')
    run_dir = plan(*args, '--offline_steps=40').run_dirs[0]
    saved_run(run_dir, offline_steps=40)
    extended = plan(*args, '--offline_steps=100')
    assert extended.options.offline_steps == 100  # the budget grows ...
    assert extended.task_configs[0][0].offline_steps == 40  # ... the schedules keep the length the run started with
    assert f'{TASK}: training on to step 100 with the agent\'s schedules of the run\'s first 40 steps' in \
        capsys.readouterr().out
    assert plan(*args, '--offline_steps=40').task_configs[0][0].offline_steps == 40
    # A run extended before (budget 100, schedules of 40) resumes with the same schedules.
    shutil.rmtree(run_dir)
    saved_run(run_dir, offline_steps=100, schedule_length=40)
    assert plan(*args, '--offline_steps=100').task_configs[0][0].offline_steps == 40
    with pytest.raises(SystemExit, match=r'^error: .* was trained with --offline_steps=100; a run cannot be '
                                         r'shortened: pass --offline_steps=100 or more, or use a new --run_name'):
        plan(*args, '--offline_steps=60')


def test_resume_refuses_to_change_or_outgrow_an_online_phase(tmp_path):
    args = (f'--save_dir={tmp_path}', f'--env_name={TASK}', '--agent=agents/fql.py', '--resume')
    saved_run(plan(*args).run_dirs[0], offline_steps=40, online_steps=5)
    with pytest.raises(SystemExit, match=r'was trained with --online_steps=5, not 9; an online phase cannot be '
                                         r'changed on --resume: use a new --run_name'):
        plan(*args, '--offline_steps=40', '--online_steps=9')
    with pytest.raises(SystemExit, match=r'has an online phase after its 40 offline steps, so its offline phase '
                                         r'cannot be extended'):
        plan(*args, '--offline_steps=80', '--online_steps=5')
    assert plan(*args, '--offline_steps=40', '--online_steps=5').options.total_steps == 45


def test_family_expands_to_five_tasks_with_presets_and_explicit_flags_winning(tmp_path):
    run = plan(f'--save_dir={tmp_path}', '--env_name=cube-double-play-singletask', '--agent=agents/fql.py',
               '--agent.alpha=7', '--num_seeds=3', '--offline_steps=1234')
    assert run.tasks == [f'cube-double-play-singletask-task{i}-v0' for i in range(1, 6)]
    assert [os.path.basename(d) for d in run.run_dirs] == run.tasks
    assert run.run_root == os.path.join(str(tmp_path), 'fql_cube-double-play-singletask')
    assert run.seeds == [0, 1, 2] and run.explicit_keys == ['alpha']
    for config, sources in run.task_configs:
        assert config.alpha == 7 and 'command line' in sources['alpha']
        assert 'offline_steps' not in config and config.batch_size == 256  # FQL has no schedule to size
    assert run.options.offline_steps == 1234 and run.agent_class.__name__ == 'FQLAgent'
    mfql = plan(f'--save_dir={tmp_path}', f'--env_name={TASK}', '--agent=agents/mfql.py', '--offline_steps=1234')
    assert mfql.task_configs[0][0].offline_steps == 1234  # MFQL's schedules: the budget's one source is the flag
    # Without the explicit flag the per-environment preset applies (FQL README: 300 for cube-double).
    preset = plan(f'--save_dir={tmp_path}', '--env_name=cube-double-play-singletask-task2-v0',
                  '--agent=agents/fql.py')
    assert preset.task_configs[0][0].alpha == 300 and preset.explicit_keys == []
    assert plan(f'--save_dir={tmp_path}', f'--env_name={TASK},{TASK.replace("task2", "task3")}',
                '--seeds=4,9').seeds == [4, 9]


def run_main(args: list[str], cache_dir: str, timeout: float = 300, **popen_kwargs):
    env = dict(os.environ, JAX_PLATFORMS='cpu', MUJOCO_GL='egl', JAX_COMPILATION_CACHE_DIR=cache_dir,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0.5')
    command = [sys.executable, 'main.py', *args]
    if popen_kwargs.get('background'):
        return subprocess.Popen(command, cwd=REPO_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
    return subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize('args, message', [
    (['--agent.nonexistent=1'], "unknown agent config key 'nonexistent'"),
    (['--agent=agents/fql.py', '--agent.alphaa=3'], 'did you mean alpha'),
    (['--agent=agents/nope.py'], "agent config file 'agents/nope.py' not found"),
    (['--agent.value_hidden_dims=(8,8)', '--agent.alpha=3', '--agent.value_hidden_dims=(4,4)'],
     'given more than once: --agent.value_hidden_dims'),
])
def test_command_line_agent_errors_are_clear(args, message, compile_cache):
    result = run_main(args, compile_cache, timeout=60)
    assert result.returncode != 0
    assert message in result.stderr
    assert 'Traceback' not in result.stderr


def test_help_lists_main_pys_own_flags(compile_cache):
    import run_flags
    result = run_main(['--help'], compile_cache, timeout=60)  # absl's --help exits with status 1
    for name in run_flags.FLAG_NAMES:
        assert f'--{name}:' in result.stdout or f'--[no]{name}:' in result.stdout, name


@pytest.mark.parametrize('agent', ['fql', 'mfql'])
def test_helpagent_lists_every_key_with_its_default_and_comment(agent, compile_cache):
    import importlib
    result = run_main([f'--agent=agents/{agent}.py', '--helpagent'], compile_cache, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    config = importlib.import_module(f'agents.{agent}').get_config()
    assert len(lines) == 1 + len(config)
    with open(f'{REPO_DIR}/agents/{agent}.py') as f:
        comments = config_key_comments(f.read())
    for key in config:
        line = next(line for line in lines if line.startswith(f'  --agent.{key}='))
        assert line.split('  # ')[0].strip() == f'--agent.{key}={config[key]!r}'
        assert comments[key] and line.endswith(f'  # {comments[key]}')
    assert lines[1].startswith(f"  --agent.agent_name='{agent}'  ")  # in the order of get_config's source


def test_config_key_comments_reads_any_get_config_style():
    source = (
        'import ml_collections\n'
        'def get_config():\n'
        '    config = ml_collections.ConfigDict()\n'
        '    # learning rate of the\n'
        '    # only network\n'
        '    config.lr = 1e-3\n'
        '    config.dims = (\n'
        '        64, 64)  # hidden sizes\n'
        "    config.extra = ml_collections.ConfigDict({'depth': 2,  # blocks\n"
        "                                              'width': 8})\n"
        '    config.bare = 1\n'
        '    return config\n'
        'def other(lr=5):  # not a config key\n'
        '    pass\n')
    assert config_key_comments(source) == {
        'lr': 'learning rate of the only network', 'dims': 'hidden sizes', 'extra': '', 'depth': 'blocks',
        'width': '', 'bare': ''}


def test_a_run_folder_that_cannot_be_written_is_one_error_line_before_the_data_is_read(tmp_path, compile_cache):
    (tmp_path / 'a_file').write_text('')
    result = run_main([f'--env_name={TASK}', f'--dataset_dir={tmp_path}/empty', f'--save_dir={tmp_path}/a_file',
                       '--generate_missing_data=5'], compile_cache, timeout=120)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: cannot write the run folder {tmp_path}/a_file/mfql_{TASK} (Not a directory); choose another '
        '--save_dir')
    assert not os.path.exists(f'{tmp_path}/empty')  # nothing was generated


def test_sigterm_while_generating_data_ends_main_at_once(tmp_path, compile_cache):
    """Before training there is nothing to checkpoint: a stop signal during data generation is not held back until
    training would start (200 episodes take minutes here)."""
    process = run_main([f'--env_name={TASK}', f'--dataset_dir={tmp_path}/data', f'--save_dir={tmp_path}/exp',
                        '--generate_missing_data=200', '--generate_workers=1', '--progress_bar=false'], compile_cache,
                       background=True)
    try:
        time.sleep(12)  # past the imports, into the generation
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == -signal.SIGTERM
    finally:
        process.kill()  # a process that held the signal back would generate on for minutes
    assert not os.path.exists(f'{tmp_path}/data/cube-single-play-v0.npz')


def test_missing_dataset_without_generation_is_a_clear_error(tmp_path, compile_cache):
    result = run_main([f'--env_name={TASK}', f'--dataset_dir={tmp_path}/empty', f'--save_dir={tmp_path}/exp'],
                      compile_cache, timeout=120)
    assert result.returncode != 0 and 'cube-single-play-v0.npz' in result.stderr
    assert 'Rerun main.py with --download_missing_data' in result.stderr  # no download tried unasked
    assert 'generate it locally with --generate_missing_data=N' in result.stderr
    assert 'Traceback' not in result.stderr
    assert not os.path.exists(f'{tmp_path}/exp')


def test_a_truncated_dataset_file_is_one_error_line_naming_the_file_and_the_remedy(dataset_dir, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(dataset_dir, data)
    train = data / 'cube-single-play-v0.npz'
    train.write_bytes(train.read_bytes()[:train.stat().st_size // 2])  # a download cut off half-way
    parse(f'--env_name={TASK}', f'--dataset_dir={data}', f'--save_dir={tmp_path}/exp', '--progress_bar=false')
    with pytest.raises(SystemExit) as error:
        main.main([])
    message = str(error.value)
    assert message.startswith(f'error: {train}: not a readable .npz file (') and '\n' not in message
    assert message.endswith(f'Delete {train} and {data}/cube-single-play-v0-val.npz and rerun to fetch them again '
                            "(OGBench's file with --download_missing_data, or local generation with "
                            '--generate_missing_data=N).')


# ------------------------------------------------------------------------------------ smoke runs
FQL_TINY = ['--agent=agents/fql.py', '--agent.actor_hidden_dims=(8,8)', '--agent.value_hidden_dims=(8,8)',
            '--agent.batch_size=16', '--agent.flow_steps=2']


def fql_args(dataset_dir: str, save_dir: str) -> list[str]:
    return [f'--env_name={TASK}', f'--dataset_dir={dataset_dir}', f'--save_dir={save_dir}', '--run_name=r',
            '--num_seeds=2', '--offline_steps=40', '--online_steps=3', '--eval_interval=40', '--eval_episodes=1',
            '--log_interval=5', '--save_interval=5', '--steps_per_call=1', '--progress_bar=false', *FQL_TINY]


def test_fql_smoke_with_eval_online_and_kill_then_resume_is_bitwise_identical(dataset_dir, compile_cache, tmp_path):
    reference = run_main(fql_args(dataset_dir, f'{tmp_path}/reference'), compile_cache)
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert '| cube-single-play-singletask-task2-v0 | 2 | 43 |' in reference.stdout
    assert '| success, fraction (end of offline training) |' in reference.stdout
    run_dir = f'{tmp_path}/reference/r/{TASK}'
    for seed in (0, 1):
        seed_dir = f'{run_dir}/seed{seed}'
        assert [row['step'] for row in read_csv(f'{seed_dir}/eval.csv')] == [1, 40, 43]  # step 1, interval, end
        rows = read_csv(f'{seed_dir}/train.csv')
        assert [row['step'] for row in rows] == list(range(5, 45, 5))
        assert {'training/critic/loss', 'training/actor/loss', 'validation/critic/loss',
                'time/updates_per_sec'} <= set(rows[0])
        assert 'online/episode_return' not in rows[-1]  # cube-single episodes last 200 steps > 3 online steps
        info = json.load(open(f'{seed_dir}/flags.json'))
        assert info['seed'] == seed and info['agent_config']['actor_hidden_dims'] == [8, 8]
        assert info['flags']['online_steps'] == 3 and info['git_hash'] != '' and info['devices']
        final = json.load(open(f'{seed_dir}/final.json'))
        assert final['step'] == 43  # and the offline phase's last evaluation, at step 40:
        assert final['evaluation/success_offline'] == read_csv(f'{seed_dir}/eval.csv')[1]['evaluation/success']
    assert os.path.getsize(f'{run_dir}/curves.png') > 1000
    assert os.path.exists(f'{tmp_path}/reference/r/summary.csv')

    # Kill a second run (SIGKILL) once it has written a checkpoint, then resume it.
    killed_dir = f'{tmp_path}/killed/r/{TASK}'
    process = run_main(fql_args(dataset_dir, f'{tmp_path}/killed'), compile_cache, background=True)
    deadline = time.time() + 240
    while not checkpoint.checkpoint_steps(f'{killed_dir}/seed1') and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, 'the run finished before it could be killed'
    killed_at = checkpoint.latest_common_step([f'{killed_dir}/seed0', f'{killed_dir}/seed1'])
    assert killed_at is not None and killed_at < 43
    resumed = run_main(fql_args(dataset_dir, f'{tmp_path}/killed') + ['--resume'], compile_cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'resumed 2 seed(s) from step {killed_at}' in resumed.stdout
    for seed in (0, 1):
        with open(checkpoint.checkpoint_path(f'{run_dir}/seed{seed}', 43), 'rb') as f:
            expected = f.read()
        with open(checkpoint.checkpoint_path(f'{killed_dir}/seed{seed}', 43), 'rb') as f:
            assert f.read() == expected  # params, optimiser, target, rngs, sampling key and replay buffer
        assert [row['step'] for row in read_csv(f'{killed_dir}/seed{seed}/eval.csv')] == [1, 40, 43]
        assert [row['step'] for row in read_csv(f'{killed_dir}/seed{seed}/train.csv')] == list(range(5, 45, 5))
        assert (read_csv(f'{killed_dir}/seed{seed}/eval.csv')[-1]['evaluation/return']
                == read_csv(f'{run_dir}/seed{seed}/eval.csv')[-1]['evaluation/return'])


def test_mfql_smoke_with_eval_and_online(dataset_dir, compile_cache, tmp_path):
    args = [f'--env_name={TASK}', f'--dataset_dir={dataset_dir}', f'--save_dir={tmp_path}', '--agent=agents/mfql.py',
            '--agent.actor_arch=mlp', '--agent.actor_mlp_hidden_dims=(8,8)', '--agent.value_hidden_dims=(8,8)',
            '--agent.batch_size=16', '--offline_steps=20', '--online_steps=2', '--eval_interval=20',
            '--eval_episodes=1', '--log_interval=20', '--save_interval=0', '--steps_per_call=50',
            '--progress_bar=false']
    result = run_main(args, compile_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    # Harmless library lines are silenced at their source: absl INFO lines (dm_control, MuJoCo, JAX backends)
    # and gymnasium's Box precision warning about OGBench's action space.
    assert not re.search(r'^I\d{4} ', result.stderr, re.M) and 'precision lowered' not in result.stderr
    seed_dir = f'{tmp_path}/mfql_{TASK}/{TASK}/seed0'
    assert [row['step'] for row in read_csv(f'{seed_dir}/eval.csv')] == [1, 20, 22]
    rows = read_csv(f'{seed_dir}/train.csv')
    assert [row['step'] for row in rows] == [20]  # calls of 1 and 19 updates (K=50 capped by the boundaries)
    assert any(key.startswith('training/') and 'mfi' in key for key in rows[0])
    info = json.load(open(f'{seed_dir}/flags.json'))
    assert info['agent_config']['offline_steps'] == 20 and info['agent_config']['agent_name'] == 'mfql'
    # The dataset: its name, where it came from (the fixture generated it) and its files' sizes and md5.
    assert info['dataset']['name'] == 'cube-single-play-v0' and info['dataset']['origin']['source'] == 'generated'
    assert [len(entry['md5']) for entry in info['dataset']['files']] == [32, 32]
    # MFQL z-scores observations by default, with the training set's statistics recorded in flags.json.
    train, _ = ogbench_data.load_datasets(TASK, dataset_dir)
    expected_mean, expected_std = observation_statistics(train['observations'])
    assert info['agent_config']['normalize_observations'] is True
    assert info['agent_config']['observation_mean'] == list(expected_mean)
    assert info['agent_config']['observation_std'] == list(expected_std)
    assert checkpoint.checkpoint_steps(seed_dir) == [1, 20, 22]  # save_interval=0: the end and the evaluation steps


def test_usr2_checkpoints_at_the_next_call_boundary_exits_3_and_resume_ends_like_an_uninterrupted_run(
        dataset_dir, compile_cache, tmp_path):
    """SLURM's warning before a time limit (--signal=USR2@90): main.py checkpoints at the next call boundary, writes
    no final result, exits with status 3 (training.preemption.EXIT_STATUS); the requeued command with --resume ends
    with the uninterrupted run's checkpoint and logs."""
    from training.preemption import EXIT_STATUS
    def args(save_dir: str) -> list[str]:
        return [f'--env_name={TASK}', f'--dataset_dir={dataset_dir}', f'--save_dir={save_dir}', '--run_name=r',
                '--num_seeds=2', '--offline_steps=3000', '--eval_interval=3000', '--eval_episodes=1',
                '--log_interval=50', '--save_interval=0', '--steps_per_call=5', '--progress_bar=false', *FQL_TINY]

    reference = run_main(args(f'{tmp_path}/reference'), compile_cache)
    assert reference.returncode == 0, reference.stderr[-3000:]
    stopped_dir = f'{tmp_path}/stopped/r/{TASK}'
    process = run_main(args(f'{tmp_path}/stopped'), compile_cache, background=True)
    deadline = time.time() + 240
    while not (os.path.exists(f'{stopped_dir}/seed1/train.csv') and read_csv(f'{stopped_dir}/seed1/train.csv')) \
            and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGUSR2)
    stderr = process.communicate(timeout=240)[1]
    assert process.returncode == EXIT_STATUS == 3, stderr[-3000:]
    match = re.search(rf'{TASK}: stopped at step (\d+) on SIGUSR2, checkpoint \S+; rerun the same command with '
                      r'--resume to continue', stderr)
    assert match, stderr[-3000:]
    step = int(match.group(1))
    assert 50 <= step < 3000, 'the run finished before it could be stopped'
    for seed in (0, 1):
        # that boundary's, and the step-1 evaluation's (kept so that it can be evaluated again)
        assert checkpoint.checkpoint_steps(f'{stopped_dir}/seed{seed}') == [1, step]
        assert not os.path.exists(f'{stopped_dir}/seed{seed}/final.json')
    assert not os.path.exists(f'{tmp_path}/stopped/r/summary.csv') and 'Traceback' not in stderr

    resumed = run_main(args(f'{tmp_path}/stopped') + ['--resume'], compile_cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'resumed 2 seed(s) from step {step}' in resumed.stdout
    untimed = lambda path: [{k: v for k, v in row.items() if not k.startswith('time/')} for row in read_csv(path)]
    reference_dir = f'{tmp_path}/reference/r/{TASK}'
    for seed in (0, 1):
        with open(checkpoint.checkpoint_path(f'{reference_dir}/seed{seed}', 3000), 'rb') as f:
            expected = f.read()
        with open(checkpoint.checkpoint_path(f'{stopped_dir}/seed{seed}', 3000), 'rb') as f:
            assert f.read() == expected
        for name in ('train.csv', 'eval.csv'):
            assert untimed(f'{stopped_dir}/seed{seed}/{name}') == untimed(f'{reference_dir}/seed{seed}/{name}')
        final = json.load(open(f'{stopped_dir}/seed{seed}/final.json'))
        assert final == json.load(open(f'{reference_dir}/seed{seed}/final.json'))
