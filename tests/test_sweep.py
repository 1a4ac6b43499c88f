"""sweep.py: a real sweep through submitit's local launcher on a tiny generated dataset (`--report`'s tables checked
against the runs' CSVs, rliable intervals, an idempotent rerun, a killed job resumed, a failing job), the SLURM
path against a stand-in `sbatch`, presets files, and bad input. The report on made-up runs: tests/test_report.py.

The sweeps run main.py with tiny networks, 2 seeds, 200 updates and 1 evaluation episode; they share the 2-episode
cube-single-play dataset of tests/test_generate.py and a JAX compilation cache.
"""

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from absl import flags

import configs
import sweep
from sweeps import SweepError, grid, manifest
from tests.test_generate import cube_single_play_files  # noqa: F401  (session fixture: the shared dataset)
from tests.test_main import plan as plan_main
from training import checkpoint
from runs import read_csv

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ['cube-single-play-singletask-task1-v0', 'cube-single-play-singletask-task2-v0']
TINY = ['--agent.batch_size=32', '--agent.value_hidden_dims=(32,32)', '--agent.actor_arch=mlp',
        '--agent.actor_mlp_hidden_dims=(32,32)', '--agent.actor_hidden_dims=(32,32)', '--agent.flow_steps=2']
BUDGET = ['--offline_steps=200', '--eval_interval=100', '--eval_episodes=1', '--save_interval=100',
          '--log_interval=100', '--steps_per_call=1', '--poll_seconds=0.2']


@pytest.fixture(scope='session')
def dataset_dir(cube_single_play_files) -> str:  # noqa: F811
    return os.path.dirname(cube_single_play_files[0])


@pytest.fixture(scope='session')
def environment(tmp_path_factory) -> dict[str, str]:
    cache = str(tmp_path_factory.mktemp('jax_cache'))
    return dict(os.environ, JAX_PLATFORMS='cpu', MUJOCO_GL='egl', JAX_COMPILATION_CACHE_DIR=cache,
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0.5')


def grid_args(sweep_dir: str, dataset_dir: str, tasks: list[str] = TASKS, alphas: str = '3,30',
              agents: str = 'mfql,fql') -> list[str]:
    return [f'--save_dir={sweep_dir}', f'--env_name={",".join(tasks)}', f'--agents={agents}', '--num_seeds=2',
            f'--sweep=agent.alpha={alphas}', f'--dataset_dir={dataset_dir}', '--max_parallel=2', *BUDGET, *TINY]


def run_sweep(args: list[str], environment: dict[str, str], timeout: float = 600, **popen) -> subprocess.CompletedProcess:
    command = [sys.executable, 'sweep.py', *args]
    if popen.get('background'):
        return subprocess.Popen(command, cwd=REPO_DIR, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return subprocess.run(command, cwd=REPO_DIR, env=environment, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope='module')
def finished_sweep(tmp_path_factory, dataset_dir, environment) -> tuple[str, subprocess.CompletedProcess]:
    """The sweep of issue 23: 2 tasks x 2 agents x 2 seeds x 2 alpha values (8 jobs), two at a time."""
    sweep_dir = str(tmp_path_factory.mktemp('sweep'))
    result = run_sweep(grid_args(sweep_dir, dataset_dir), environment)
    return sweep_dir, result


def last_three_success(seed_dir: str) -> float:
    """The paper's OGBench number straight from eval.csv: mean success of the last three evaluations after step 1."""
    rows = [row for row in read_csv(os.path.join(seed_dir, 'eval.csv')) if row['step'] > 1]
    return float(np.mean([row['evaluation/success'] for row in rows[-3:]]))


def test_sweep_runs_the_grid_and_its_tables_match_the_runs(finished_sweep, environment):
    sweep_dir, result = finished_sweep
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert '8 jobs: 0 done, 0 running, 0 queued, 0 failed, 0 to relaunch, 8 pending; 8 to launch (local)' in result.stdout
    assert result.stdout.count('[done] ') == 8 and '8 of 8 jobs done' in result.stdout
    manifest = json.load(open(os.path.join(sweep_dir, 'manifest.json')))
    settings = ['mfql,alpha=3', 'mfql,alpha=30', 'fql,alpha=3', 'fql,alpha=30']
    assert sorted(manifest['jobs']) == sorted(f'{s}/{t}' for s in settings for t in TASKS)
    for name, entry in manifest['jobs'].items():
        assert entry['state'] == 'done' and entry['attempts'] == 1 and entry['launcher'] == 'local'
        assert entry['config_hash'] == grid.config_hash(entry['command'][2:])
        assert os.path.exists(entry['log'])
        recorded = json.load(open(os.path.join(sweep_dir, entry['run_dir'], 'seed1', 'flags.json')))
        assert recorded['agent_config']['alpha'] == float(entry['overrides']['alpha'])
        # Keys reach only the agents that have them: MFQL's actor_arch, FQL's flow_steps.
        assert ('actor_arch' in recorded['agent_config']) == (entry['agent'] == 'mfql')
        assert ('--agent.flow_steps=2' in entry['command']) == (entry['agent'] == 'fql')

    report = run_sweep([f'--save_dir={sweep_dir}', '--report', '--bootstrap_reps=1000'], environment, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    rows = list(csv.DictReader(open(os.path.join(sweep_dir, 'report', 'per_task.csv'))))
    assert len(rows) == 3 * len(settings)  # the environment row and its two tasks, per setting
    for row in rows:
        entries = {name: e for name, e in manifest['jobs'].items() if e['setting'] == row['setting']}
        per_seed = {task: [last_three_success(os.path.join(sweep_dir, e['run_dir'], f'seed{seed}'))
                           for seed in (0, 1)] for e in entries.values() for task in [e['task']]}
        expected = np.mean([per_seed[t] for t in TASKS], axis=0) if row['row'] == 'environment' else per_seed[row['task']]
        assert float(row['mean']) == pytest.approx(np.mean(expected), abs=1e-9)
        assert float(row['std']) == pytest.approx(np.std(expected), abs=1e-9)
        assert row['unit'] == 'success rate, fraction' and int(row['num_seeds']) == 2
    markdown = open(os.path.join(sweep_dir, 'report', 'report.md')).read()
    assert '| environment (success rate, fraction) | MeanFlowQL (α=3) | MeanFlowQL (α=30) |' in markdown
    assert '(steps 100 and 200)' in markdown and 'selected on evaluation success' in markdown
    raw = list(csv.DictReader(open(os.path.join(sweep_dir, 'report', 'per_seed.csv'))))
    assert len(raw) == len(settings) * len(TASKS) * 2 * 3  # 2 seeds, evaluations at steps 1, 100 and 200
    for row in raw:  # the raw results are the runs' own eval.csv rows
        recorded = read_csv(os.path.join(sweep_dir, manifest['jobs'][f'{row["setting"]}/{row["task"]}']['run_dir'],
                                         f'seed{row["seed"]}', 'eval.csv'))
        assert float(row['evaluation/success']) == next(r for r in recorded if r['step'] == float(row['step']))[
            'evaluation/success']
    aggregates = list(csv.DictReader(open(os.path.join(sweep_dir, 'report', 'aggregates.csv'))))
    assert len(aggregates) == 4 * len(settings)
    for row in aggregates:
        assert float(row['low']) <= float(row['point']) <= float(row['high'])
        assert int(row['num_tasks']) == 2 and int(row['num_runs']) == 2
    for image in ('intervals.png', 'profile.png'):
        assert os.path.getsize(os.path.join(sweep_dir, 'report', image)) > 10_000
    assert '\\begin{tabular}' in open(os.path.join(sweep_dir, 'report', 'tables.tex')).read()

    # A rerun of the same command starts nothing; --status reports every job done.
    logs_before = sorted(os.listdir(os.path.join(sweep_dir, 'logs')))
    again = run_sweep(grid_args(sweep_dir, '/elsewhere/data'), environment, timeout=120)  # data moved: same jobs
    assert again.returncode == 0 and 'nothing to launch: 8 jobs: 8 done' in again.stdout, again.stderr
    assert sorted(os.listdir(os.path.join(sweep_dir, 'logs'))) == logs_before
    status = run_sweep([f'--save_dir={sweep_dir}', '--status'], environment, timeout=60)
    assert '8 jobs: 8 done, 0 running, 0 queued, 0 failed, 0 to relaunch, 0 pending' in status.stdout
    # Another budget in the same folder would mix settings under one name: refused, nothing launched.
    other = run_sweep(grid_args(sweep_dir, '/elsewhere/data') + ['--offline_steps=400'], environment, timeout=60)
    assert other.returncode == 1 and 'the flags differ, so use another --save_dir' in other.stderr
    assert 'Traceback' not in other.stderr


def test_a_killed_job_resumes_to_the_uninterrupted_result(finished_sweep, tmp_path, dataset_dir, environment):
    reference_dir, reference = finished_sweep
    assert reference.returncode == 0
    mfql_only = [flag for flag in grid_args(str(tmp_path), dataset_dir, tasks=TASKS[1:], alphas='3', agents='mfql')
                 if not flag.startswith(('--agent.actor_hidden_dims', '--agent.flow_steps'))]  # FQL's keys
    process = run_sweep(mfql_only, environment, background=True)
    job_dir = tmp_path / 'runs' / 'mfql,alpha=3' / TASKS[1] / TASKS[1]
    deadline = time.time() + 300
    while not all(checkpoint.checkpoint_steps(str(job_dir / f'seed{s}')) for s in (0, 1)) \
            and time.time() < deadline and process.poll() is None:  # complete checkpoints, not a `.tmp` being written
        time.sleep(0.05)
    assert process.poll() is None, process.stdout.read()
    os.killpg(process.pid, signal.SIGKILL)  # sweep.py, submitit's controller and main.py: a lost machine
    process.wait()
    assert not (job_dir / 'seed0' / 'final.json').exists(), 'the job finished before it could be killed'
    status = run_sweep([f'--save_dir={tmp_path}', '--status'], environment, timeout=60)
    assert '1 jobs: 0 done, 0 running, 0 queued, 0 failed, 1 to relaunch, 0 pending' in status.stdout
    assert 'interrupted (the local job stopped without a result' in status.stdout and 'resumes from step' in status.stdout
    resumed = run_sweep(mfql_only, environment)
    assert resumed.returncode == 0 and '[done] mfql,alpha=3/' in resumed.stdout, resumed.stdout[-3000:]
    log = json.load(open(tmp_path / 'manifest.json'))['jobs'][f'mfql,alpha=3/{TASKS[1]}']['stdout']
    assert 'resumed 2 seed(s) from step' in open(log).read()
    reference_job = os.path.join(reference_dir, 'runs', 'mfql,alpha=3', TASKS[1], TASKS[1])
    for seed in (0, 1):
        expected = json.load(open(os.path.join(reference_job, f'seed{seed}', 'final.json')))
        assert json.load(open(job_dir / f'seed{seed}' / 'final.json')) == expected
        untimed = lambda rows: [{k: v for k, v in row.items() if not k.startswith('time/')} for row in rows]  # noqa
        assert untimed(read_csv(str(job_dir / f'seed{seed}' / 'eval.csv'))) == untimed(
            read_csv(os.path.join(reference_job, f'seed{seed}', 'eval.csv')))
        final = f'seed{seed}/checkpoints/' + sorted(os.listdir(job_dir / f'seed{seed}' / 'checkpoints'))[-1]
        assert (job_dir / final).read_bytes() == open(os.path.join(reference_job, final), 'rb').read()


def test_a_failing_job_is_reported_with_its_log_and_the_others_run(tmp_path, dataset_dir, environment):
    # α = 1e39 passes every check before launching (α >= 0) but overflows float32: the job fails at its first update.
    args = [f'--save_dir={tmp_path}', f'--env_name={TASKS[1]}', '--agents=fql', '--num_seeds=1',
            '--sweep=agent.alpha=1e39,3', f'--dataset_dir={dataset_dir}', '--offline_steps=1', '--eval_episodes=0',
            '--max_parallel=1', '--poll_seconds=0.2', *TINY[:2], '--agent.actor_hidden_dims=(32,32)']
    result = run_sweep(args, environment)
    assert result.returncode == 1
    assert f"[failed] fql,alpha=1e39/{TASKS[1]}: main.py exited with code 1: error: non-finite training metric " \
           "'actor/loss' (inf) for seed 0 at step 1" in result.stdout, result.stdout[-2000:]
    assert f'[done] fql,alpha=3/{TASKS[1]}' in result.stdout  # launched after the failure, on the only slot
    assert '1 of 2 jobs done; 1 failed' in result.stdout
    status = run_sweep([f'--save_dir={tmp_path}', '--status'], environment, timeout=60).stdout
    failed_line = next(line for line in status.splitlines() if line.startswith('fql,alpha=1e39'))
    log = failed_line.split('; log: ')[1]
    assert ' failed ' in failed_line and "non-finite training metric 'actor/loss'" in open(log).read()
    # Failed jobs are rerun only on request.
    rerun = run_sweep(args, environment, timeout=120)
    assert 'nothing to launch' in rerun.stdout and '1 failed job(s) are not rerun' in rerun.stdout
    retried = run_sweep(args + ['--retry_failed'], environment, timeout=120)
    assert '1 to launch' in retried.stdout and f'[failed] fql,alpha=1e39/{TASKS[1]}' in retried.stdout
    assert json.load(open(tmp_path / 'manifest.json'))['jobs'][f'fql,alpha=1e39/{TASKS[1]}']['attempts'] == 2


FAKE_SBATCH = '''#!/bin/sh
n=$(cat "{counter}" 2>/dev/null || echo 4241); n=$((n + 1)); echo $n > "{counter}"
echo "Submitted batch job $n"
'''


def test_slurm_array_has_the_requested_sbatch_parameters(tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for name, text in (('sbatch', FAKE_SBATCH.format(counter=tmp_path / 'counter')), ('srun', '#!/bin/sh\n'),
                       ('sacct', '#!/bin/sh\n')):  # sacct knows no job: the state is unknown
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv('PATH', f'{bin_dir}:{os.environ["PATH"]}')
    sweep_dir = tmp_path / 'sweep'
    args = [f'--save_dir={sweep_dir}', f'--env_name={TASKS[0]},{TASKS[1]}', '--agents=mfql', '--num_seeds=8',
            '--launcher=slurm', '--partition=gpu', '--gpus_per_job=1', '--cpus_per_job=6', '--mem_gb=40',
            '--time_min=600', '--array_parallelism=10', '--account=rl', '--qos=high', '--slurm_option=constraint=h100',
            '--slurm_setup=source venv/bin/activate', '--save_interval=100000', '--generate_missing_data=10',
            '--max_timeouts=25']
    assert sweep.run(args) == 0
    assert 'submitted 2 job(s) as SLURM array 4242' in capsys.readouterr().out
    from submitit.core import utils
    for task in (0, 1):  # submitit's count of the requeues left after a time limit
        assert utils.pickle_load(sweep_dir / 'logs' / f'4242_{task}_submitted.pkl')._timeout_countdown == 25
    script = (sweep_dir / 'logs' / '4242_submission.sh').read_text()
    for line in ('#SBATCH --partition=gpu', '#SBATCH --gpus-per-node=1', '#SBATCH --cpus-per-task=6',
                 '#SBATCH --mem=40GB', '#SBATCH --time=600', '#SBATCH --array=0-1%2', '#SBATCH --account=rl',
                 '#SBATCH --qos=high', '#SBATCH --constraint=h100', '#SBATCH --job-name=mfql',
                 f'#SBATCH --output={sweep_dir}/logs/%A_%a_0_log.out', 'source venv/bin/activate'):
        assert line in script.splitlines(), line
    manifest = json.load(open(sweep_dir / 'manifest.json'))
    assert sorted(e['launcher_id'] for e in manifest['jobs'].values()) == ['4242_0', '4242_1']
    assert all(e['state'] == 'submitted' and '--save_interval=100000' in e['command']
               for e in manifest['jobs'].values())
    # Queued jobs are never submitted twice.
    assert sweep.run(args) == 0
    assert 'nothing to launch' in capsys.readouterr().out and not (sweep_dir / 'logs' / '4243_submission.sh').exists()
    assert sweep.run([f'--save_dir={sweep_dir}', '--status']) == 0
    assert 'queued       SLURM job 4242_0 (state UNKNOWN' in capsys.readouterr().out


def write_fake_sweep(sweep_dir: str, scores: dict[tuple[str, str], list[float]]) -> list[grid.Job]:
    """A launched sweep whose runs finished with the given success_last3 per (alpha, task) and seed (2 tasks of
    cube-single-play and 1 of cube-double-play; MFQL; seeds 0-2)."""
    tasks = [*TASKS, 'cube-double-play-singletask-task2-v0']
    args, extra = sweep.parse_args([f'--save_dir={sweep_dir}', f'--env_name={",".join(tasks)}', '--agents=mfql',
                                    '--num_seeds=3', '--sweep=agent.alpha=10,30.0', '--offline_steps=10'])
    jobs = grid.build_jobs(args, extra, sweep_dir)
    recorded = {'version': manifest.MANIFEST_VERSION, 'jobs': {job.name: manifest.job_entry(job) for job in jobs}}
    for job in jobs:
        for seed, directory in zip(job.seeds, job.seed_dirs(sweep_dir)):
            os.makedirs(directory)
            json.dump({'command': 'main.py ' + ' '.join(job.flags), 'flags': {'offline_steps': 10, 'online_steps': 0}},
                      open(os.path.join(directory, 'flags.json'), 'w'))
            success = scores[(dict(job.overrides)['alpha'], job.task)][seed]
            json.dump({'step': 10, 'evaluation/success_last3': success}, open(os.path.join(directory, 'final.json'), 'w'))
    manifest.write_manifest(sweep_dir, recorded)
    return jobs


def test_presets_file_applies_per_environment_and_explicit_flags_win(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_DIR)
    path = str(tmp_path / 'presets.json')
    configs.write_presets_file(path, {'mfql': {'cube-single-play': {'alpha': 77, 'time_steps': 20}}}, 'a test sweep')
    plan = plan_main(f'--save_dir={tmp_path}', f'--env_name={TASKS[0]},cube-double-play-singletask-task1-v0',
                     '--agent=agents/mfql.py', f'--presets_file={path}')
    (single, single_sources), (double, double_sources) = plan.task_configs
    assert (single.alpha, single.time_steps) == (77, 20)
    assert single_sources['alpha'] == f'presets file {path} (a test sweep)'
    assert double.alpha == 120 and 'Table 7' in double_sources['alpha']  # not in the file: configs.py's preset
    explicit = plan_main(f'--save_dir={tmp_path}', f'--env_name={TASKS[0]}', '--agent=agents/mfql.py',
                         f'--presets_file={path}', '--agent.alpha=5')
    config, sources = explicit.task_configs[0]
    assert config.alpha == 5 and config.time_steps == 20
    assert sources['alpha'].startswith('command line (value 77 from presets file')
    configs.write_presets_file(path, {'mfql': {'cube-single-play': {'alphaa': 1}}}, 'typo')
    with pytest.raises(SystemExit, match="sets 'alphaa', which agent 'mfql' does not have"):
        plan_main(f'--save_dir={tmp_path}', f'--env_name={TASKS[0]}', '--agent=agents/mfql.py', f'--presets_file={path}')
    (tmp_path / 'bad.json').write_text('{"presets": 3}')
    with pytest.raises(SystemExit, match='is not a presets file'):
        plan_main(f'--save_dir={tmp_path}', '--agent=agents/mfql.py', f'--presets_file={tmp_path}/bad.json')
    with pytest.raises(SystemExit, match='not found'):
        plan_main(f'--save_dir={tmp_path}', '--agent=agents/mfql.py', f'--presets_file={tmp_path}/none.json')
    flags.FLAGS.unparse_flags()


def test_paper_grid_dry_run_lists_100_jobs_with_their_commands(tmp_path, capsys):
    assert sweep.run([f'--save_dir={tmp_path}/paper', '--grid=paper', '--num_seeds=8', '--launcher=slurm',
                      '--dry_run']) == 0
    out = capsys.readouterr().out
    assert '100 jobs: 0 done, 0 running, 0 queued, 0 failed, 0 to relaunch, 100 pending; 100 to launch' in out
    assert out.count('[launch] ') == 100 and not os.path.exists(f'{tmp_path}/paper')  # a dry run writes nothing
    assert (f'python main.py --agent=agents/fql.py --env_name=puzzle-4x4-play-singletask-task5-v0 --num_seeds=8 '
            f'--save_dir={tmp_path}/paper/runs/fql --run_name=puzzle-4x4-play-singletask-task5-v0 --resume '
            '--progress_bar=false') in out
    assert configs.paper_tasks('paper-d4rl')[:1] == ['antmaze-umaze-v2'] and len(configs.paper_tasks('paper-d4rl')) == 18


@pytest.mark.parametrize('argv, message', [
    (['--agents=mfql,nope'], "unknown agent 'nope'; registered agents: fql, ifql, iql, mfql, rebrac"),
    (['--sweep=agent.alpah=1,2'], "agent config key 'alpah' is not a key of agents/mfql.py; did you mean alpha?"),
    (['--sweep=alpha=1,2'], 'expected agent.KEY=V1,V2,...'),
    (['--sweep=agent.alpha=1,1'], 'repeated value'),
    (['--sweep=agent.alpha=1', '--agent.alpha=3'], 'both swept (--sweep) and fixed'),
    (['--ofline_steps=3'], "unknown argument '--ofline_steps=3': not a sweep.py or main.py flag; did you mean "
                           '--offline_steps'),
    (['--run_name=x'], 'sweep.py sets --run_name for every job itself'),
    (['--grid=papers'], "unknown grid 'papers'; known grids: paper, paper-visual, paper-ogbench, paper-d4rl"),
    (['--env_name=cube-single-play-singletask-task9-v0'], '--env_name:'),
    (['--seeds=1,1'], '--seeds must be distinct'),
    (['--generate_missing_data=1e3'], '--generate_missing_data=1e3: --generate_missing_data takes an integer'),
    (['--download_missing_data=maybe'], '--download_missing_data=maybe: --download_missing_data takes true or false'),
    (['--p_aug=half'], '--p_aug=half: --p_aug takes a number'),
    (['--slurm_option=constraint', '--launcher=slurm'], 'expected KEY=VALUE'),
])
def test_bad_input_is_one_clear_error(argv, message, tmp_path):
    with pytest.raises(SweepError) as error:
        sweep.run([f'--save_dir={tmp_path}', f'--env_name={TASKS[0]}', '--agents=mfql', '--dry_run', *argv])
    assert message in str(error.value) and '\n' not in str(error.value)


def test_cli_errors_have_no_traceback(tmp_path, environment):
    result = run_sweep([f'--save_dir={tmp_path}', '--status'], environment, timeout=60)
    assert result.returncode == 1 and result.stderr.strip() == f'error: {tmp_path} has no manifest.json: no sweep was ' \
                                                               'launched there'
    write_fake_sweep(str(tmp_path), {(a, t): [0.5] * 3 for a in ('10', '30.0')
                                     for t in [*TASKS, 'cube-double-play-singletask-task2-v0']})
    changed = run_sweep([f'--save_dir={tmp_path}', f'--env_name={TASKS[0]}', '--agents=mfql', '--num_seeds=3',
                         '--sweep=agent.alpha=10', '--offline_steps=20', '--dry_run'], environment, timeout=60)
    assert changed.returncode == 1 and 'the flags differ, so use another --save_dir' in changed.stderr
    assert 'Traceback' not in changed.stderr


def test_status_counts_only_complete_checkpoints(tmp_path):
    job = grid.Job(name='fql/task', setting='fql', agent='fql', task='task', seeds=(0, 1), overrides=(), flags=(),
                   run_dir='runs/fql/task')
    seed0, seed1 = job.seed_dirs(str(tmp_path))
    for directory, names in ((seed0, ['step_000000010.msgpack', 'step_000000020.msgpack']),
                             (seed1, ['step_000000010.msgpack', 'step_000000020.msgpack.tmp'])):
        os.makedirs(os.path.join(directory, 'checkpoints'))
        for name in names:
            open(os.path.join(directory, 'checkpoints', name), 'wb').close()
    assert manifest.last_checkpoint_step(job, str(tmp_path)) == 10  # seed 1's step 20 was still being written
    os.remove(os.path.join(seed0, 'checkpoints', 'step_000000010.msgpack'))
    assert manifest.last_checkpoint_step(job, str(tmp_path)) is None
