"""The sweep's launchers and what a cluster user trips on, with stand-in `sbatch`/`sacct`/`squeue`/`scancel` scripts:
one scheduler call per --status, SLURM without accounting, marking jobs for relaunch, a refused sbatch, data checked
before submission, presets files hashed by content, relative paths, GPU UUIDs, the time-limit signal forwarded to
main.py, a stand-in launcher added as one file, and the space bug (a sweep folder or a value with a space is seen as
done on the rerun)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

import configs
import runs
import sweep
from sweeps import SweepError, grid, manifest
from sweeps.launchers import base, launcher_class, local, registered_launchers
from training import preemption
from tests.test_generate import cube_single_play_files  # noqa: F401  (session fixture: the shared dataset)

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = ['cube-single-play-singletask-task1-v0', 'cube-single-play-singletask-task2-v0']


def stand_in(bin_dir, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text('#!/bin/sh\n' + script)
    path.chmod(0o755)


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """A folder of stand-in SLURM commands on PATH; every call is appended to calls.log."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    log = tmp_path / 'calls.log'
    stand_in(bin_dir, 'sbatch', f'echo "sbatch $*" >> {log}\n'
                                f'n=$(cat "{tmp_path}/counter" 2>/dev/null || echo 4241); n=$((n + 1)); '
                                f'echo $n > "{tmp_path}/counter"\necho "Submitted batch job $n"\n')
    stand_in(bin_dir, 'srun', '')
    stand_in(bin_dir, 'scancel', f'echo "scancel $*" >> {log}\n')
    monkeypatch.setenv('PATH', f'{bin_dir}:{os.environ["PATH"]}')
    return bin_dir, log


def fake_data(tmp_path) -> str:
    data = tmp_path / 'data'
    data.mkdir(exist_ok=True)
    for name in ('cube-single-play-v0.npz', 'cube-single-play-v0-val.npz'):
        (data / name).write_bytes(b'')
    return str(data)


def submit_two(tmp_path, extra=()) -> str:
    sweep_dir = str(tmp_path / 'sweep')
    assert sweep.run([f'--save_dir={sweep_dir}', f'--env_name={",".join(TASKS)}', '--agents=fql', '--num_seeds=2',
                      '--launcher=slurm', f'--dataset_dir={fake_data(tmp_path)}', '--save_interval=1000',
                      *extra]) == 0
    return sweep_dir


def test_status_asks_sacct_once_for_the_whole_array(tmp_path, cluster, capsys):
    bin_dir, log = cluster
    sweep_dir = submit_two(tmp_path)
    stand_in(bin_dir, 'sacct', f'echo "sacct $*" >> {log}\necho "4242_0|RUNNING"\necho "4242_[1-1%2]|PENDING"\n')
    capsys.readouterr()
    assert sweep.run([f'--save_dir={sweep_dir}', '--status']) == 0
    out = capsys.readouterr().out
    assert '2 jobs: 0 done, 1 running, 1 queued, 0 failed, 0 to relaunch, 0 pending' in out
    assert 'queued on SLURM as 4242_1 (state PENDING)' in out
    assert open(log).read().count('sacct ') == 1


def test_without_accounting_squeue_decides_and_a_dead_job_is_relaunched(tmp_path, cluster, capsys):
    bin_dir, log = cluster
    sweep_dir = submit_two(tmp_path)
    stand_in(bin_dir, 'sacct', 'echo "sacct: error: Slurm accounting storage is disabled" >&2\nexit 1\n')
    stand_in(bin_dir, 'squeue', f'echo "squeue $*" >> {log}\necho "4242_0|RUNNING"\n')
    capsys.readouterr()
    assert sweep.run([f'--save_dir={sweep_dir}', '--status']) == 0
    out = capsys.readouterr().out
    assert '2 jobs: 0 done, 1 running, 0 queued, 0 failed, 1 to relaunch, 0 pending' in out
    assert f'fql/{TASKS[1]}  to relaunch  interrupted (no longer in the queue (squeue))' in out
    assert open(log).read().count('squeue ') == 1
    submit_two(tmp_path)  # the rerun submits the dead job only
    entries = json.load(open(os.path.join(sweep_dir, 'manifest.json')))['jobs']
    assert entries[f'fql/{TASKS[1]}']['launcher_id'] == '4243' and entries[f'fql/{TASKS[0]}']['launcher_id'] == '4242_0'


def test_a_job_past_its_requeues_after_time_limits_is_to_relaunch_not_failed(tmp_path, cluster, capsys):
    """After --max_timeouts requeues submitit saves the job at its time limit but ends it with an error; the job's
    checkpoint is on disk, so the next run of the sweep resumes it (without --retry_failed)."""
    from submitit.core import utils
    bin_dir, log = cluster
    sweep_dir = submit_two(tmp_path)
    stand_in(bin_dir, 'sacct', 'echo "4242_0|TIMEOUT"\necho "4242_1|RUNNING"\n')
    utils.cloudpickle_dump(('error', 'Traceback (most recent call last):\n  File "submitit/core/job_environment.py"\n'
                                     'submitit.core.utils.UncompletedJobError: Job not requeued because: timed-out too '
                                     'many times.\n'), os.path.join(sweep_dir, 'logs', '4242_0_0_result.pkl'))
    capsys.readouterr()
    assert sweep.run([f'--save_dir={sweep_dir}', '--status']) == 0
    out = capsys.readouterr().out
    assert '2 jobs: 0 done, 1 running, 0 queued, 0 failed, 1 to relaunch, 0 pending' in out
    assert 'to relaunch  interrupted (submitit.core.utils.UncompletedJobError: Job not requeued because: timed-out ' \
           'too many times.)' in out


def test_jobs_no_scheduler_can_report_are_marked_for_relaunch_by_hand(tmp_path, cluster, capsys):
    bin_dir, log = cluster
    sweep_dir = submit_two(tmp_path)
    for name in ('sacct', 'squeue'):
        stand_in(bin_dir, name, 'exit 1\n')
    capsys.readouterr()
    assert sweep.run([f'--save_dir={sweep_dir}', '--status']) == 0
    assert '0 to relaunch' in capsys.readouterr().out  # unknown: queued, never submitted twice
    assert sweep.run([f'--save_dir={sweep_dir}', '--relaunch=unknown']) == 0
    assert '2 job(s) marked for relaunch' in capsys.readouterr().out
    assert 'scancel 4242_0 4242_1' in open(log).read()
    assert sweep.run([f'--save_dir={sweep_dir}', '--status']) == 0
    assert '2 to relaunch' in capsys.readouterr().out
    with pytest.raises(SweepError, match="--relaunch: 'nope' does not start with the name of a job of this sweep"):
        sweep.run([f'--save_dir={sweep_dir}', '--relaunch=nope'])


def test_relaunch_reads_names_of_swept_settings_which_hold_commas():
    known = ['mfql,alpha=30,time_steps=50/task1', 'mfql,alpha=30,time_steps=50/task2', 'fql/task1']
    assert manifest.job_names('mfql,alpha=30,time_steps=50/task2,fql/task1', known) == [known[1], known[2]]
    assert manifest.job_names(' fql/task1 , mfql,alpha=30,time_steps=50/task1,', known) == [known[2], known[0]]
    with pytest.raises(SweepError, match=r"'mfql,alpha=31,time_steps=50/task1' does not start with the name of a job"):
        manifest.job_names('fql/task1,mfql,alpha=31,time_steps=50/task1', known)


def test_a_local_job_does_not_read_the_result_of_an_earlier_job_with_its_process_id(tmp_path):
    """Local job ids are process ids, which start again after a restart: the result file of an earlier job with the
    new job's id is deleted at submission, and a result written after it is kept."""
    stale, fresh = tmp_path / '1234_0_result.pkl', tmp_path / '1235_0_result.pkl'
    stale.write_bytes(b'old outcome')
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    submitted_at = time.time() - 1
    fresh.write_bytes(b'new outcome')
    for path in (stale, fresh, tmp_path / 'none_0_result.pkl'):
        local.remove_stale_result(str(path), submitted_at)
    assert not stale.exists() and fresh.read_bytes() == b'new outcome'


def test_a_refused_sbatch_is_one_error_line(tmp_path, cluster):
    bin_dir, log = cluster
    stand_in(bin_dir, 'sbatch', 'echo "sbatch: error: Batch job submission failed: Invalid account or '
                                'account/partition combination specified" >&2\nexit 1\n')
    result = subprocess.run([sys.executable, 'sweep.py', f'--save_dir={tmp_path}/sweep', f'--env_name={TASKS[0]}',
                             '--agents=fql', '--launcher=slurm', '--account=nope', f'--dataset_dir={fake_data(tmp_path)}'],
                            cwd=REPO_DIR, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: sbatch refused the array: sbatch: error: Batch job submission failed: Invalid '
                           'account or account/partition combination specified')


def test_missing_data_stops_the_sweep_before_anything_is_queued(tmp_path, cluster):
    _, log = cluster
    with pytest.raises(SweepError, match=r'2 dataset file\(s\) are missing, e.g. .*/nowhere/cube-single-play-v0.npz'):
        sweep.run([f'--save_dir={tmp_path}/sweep', f'--env_name={TASKS[0]}', '--agents=fql', '--launcher=slurm',
                   f'--dataset_dir={tmp_path}/nowhere'])
    assert not log.exists()  # sbatch never ran
    assert sweep.run([f'--save_dir={tmp_path}/sweep', f'--env_name={TASKS[0]}', '--agents=fql', '--launcher=slurm',
                      f'--dataset_dir={tmp_path}/nowhere', '--generate_missing_data=10']) == 0
    # main.py reads the last of --nodownload_missing_data and --download_missing_data: the jobs download.
    [job] = jobs_for(tmp_path, f'--dataset_dir={tmp_path}/nowhere', '--nodownload_missing_data',
                     '--download_missing_data')
    assert grid.missing_data([job]) is None
    [job] = jobs_for(tmp_path, f'--dataset_dir={tmp_path}/nowhere', '--download_missing_data',
                     '--download_missing_data=false')
    assert grid.missing_data([job]).startswith('2 dataset file(s) are missing')


def test_slurm_without_save_interval_warns(tmp_path, cluster, capsys):
    sweep.run([f'--save_dir={tmp_path}/sweep', f'--env_name={TASKS[0]}', '--agents=fql', '--launcher=slurm',
               f'--dataset_dir={fake_data(tmp_path)}'])
    assert 'warning: no --save_interval' in capsys.readouterr().err


def jobs_for(tmp_path, *extra: str, caller_dir: str | None = None) -> list[grid.Job]:
    args, rest = sweep.parse_args([f'--save_dir={tmp_path}/sweep', f'--env_name={TASKS[0]}', '--agents=mfql', *extra])
    return grid.build_jobs(args, rest, str(tmp_path / 'sweep'), caller_dir)


def test_presets_files_count_by_content_not_by_path(tmp_path):
    first, second = tmp_path / 'a.json', tmp_path / 'moved' / 'b.json'
    configs.write_presets_file(str(first), {'mfql': {'cube-single-play': {'alpha': 30.0}}}, 'test')
    second.parent.mkdir()
    shutil.copy(first, second)
    [at_first] = jobs_for(tmp_path, f'--presets_file={first}')
    [at_second] = jobs_for(tmp_path, f'--presets_file={second}')
    assert at_first.config_hash == at_second.config_hash
    configs.write_presets_file(str(second), {'mfql': {'cube-single-play': {'alpha': 300.0}}}, 'test')
    [edited] = jobs_for(tmp_path, f'--presets_file={second}')
    assert edited.config_hash != at_first.config_hash
    # A seed trained with the first file is done for the job that names the moved copy of it.
    for directory in at_first.seed_dirs(str(tmp_path / 'sweep')):
        os.makedirs(directory)
        runs.write_json(runs.flags_path(directory), {
            'command': ['main.py', *at_first.flags], 'flags': {'offline_steps': 10, 'online_steps': 0},
            'presets_file': {'path': str(first), 'sha256': grid.file_digest(str(first))}})
        runs.write_json(runs.final_path(directory), {'step': 10})
    assert manifest.finished_step(at_second, str(tmp_path / 'sweep')) == 10
    assert manifest.finished_step(edited, str(tmp_path / 'sweep')) is None
    with pytest.raises(SweepError, match='--presets_file: cannot read'):
        jobs_for(tmp_path, f'--presets_file={tmp_path}/none.json')


def test_flags_hash_as_main_py_reads_them_and_checkpointing_flags_do_not_count(tmp_path):
    """Reordered flags, a flag given twice (the last wins), --save_interval and --generate_workers leave a job's hash
    alone, so that a rerun may add --save_interval, as the SLURM launcher advises; a changed budget does not."""
    [job] = jobs_for(tmp_path, '--offline_steps=20', '--eval_interval=10')
    for extra in (('--eval_interval=10', '--offline_steps=20'), ('--offline_steps=30', '--eval_interval=10',
                                                                 '--offline_steps=20'),
                  ('--offline_steps=20', '--eval_interval=10', '--save_interval=5', '--generate_workers=2')):
        assert jobs_for(tmp_path, *extra)[0].config_hash == job.config_hash, extra
    [longer] = jobs_for(tmp_path, '--offline_steps=30', '--eval_interval=10')
    assert longer.config_hash != job.config_hash
    # A manifest written before (flags hashed in the order given, --save_interval counted) keeps its job.
    [with_saves] = jobs_for(tmp_path, '--offline_steps=20', '--eval_interval=10', '--save_interval=5')
    earlier, _ = grid.earlier_config_hashes(with_saves.flags, None)
    assert earlier != with_saves.config_hash
    recorded = {'jobs': {job.name: dict(manifest.job_entry(with_saves), config_hash=earlier)}}
    manifest.merge_jobs(recorded, [with_saves])
    assert recorded['jobs'][job.name]['config_hash'] == job.config_hash
    with pytest.raises(SweepError, match=f'job {job.name} was recorded with .*the flags differ'):
        manifest.merge_jobs(recorded, [longer])


def test_path_flags_are_made_absolute_against_the_callers_folder(tmp_path):
    [job] = jobs_for(tmp_path, '--dataset_dir=data/ogbench', caller_dir=str(tmp_path))
    assert f'--dataset_dir={tmp_path}/data/ogbench' in job.flags
    args, rest = sweep.parse_args(['--save_dir=rel/sweep', '--status'])
    assert grid.absolute_path(args.save_dir, str(tmp_path)) == f'{tmp_path}/rel/sweep'


def test_fql_flags_that_do_not_apply_are_refused_with_their_remedy(tmp_path):
    with pytest.raises(SweepError, match=r'^--restore_path \(an FQL flag\) does not apply here: use --resume'):
        jobs_for(tmp_path, '--restore_path=exp/old')


def test_jobs_sharing_a_gpu_each_get_a_share_of_its_memory():
    assert local.job_environment([], 2, 1) == {}
    assert local.job_environment(['0', '1'], 2, 1, {}) == {'CUDA_VISIBLE_DEVICES': '1'}  # a GPU each: JAX's defaults
    shared = local.job_environment(['GPU-8a1f', '1'], 5, 2, {})  # 5 jobs on 2 GPUs: up to 3 on one
    assert shared == {'CUDA_VISIBLE_DEVICES': 'GPU-8a1f', 'XLA_PYTHON_CLIENT_PREALLOCATE': 'false',
                      'XLA_CLIENT_MEM_FRACTION': '0.300'}
    assert 'XLA_CLIENT_MEM_FRACTION' not in local.job_environment(['0'], 2, 0, {'XLA_PYTHON_CLIENT_MEM_FRACTION': '.4'})


def test_gpus_named_by_uuid_are_gpus():
    assert local.local_gpus({'CUDA_VISIBLE_DEVICES': 'GPU-8a1f,MIG-3c2e/1/0'}) == ['GPU-8a1f', 'MIG-3c2e/1/0']
    assert local.local_gpus({'CUDA_VISIBLE_DEVICES': '0,2'}) == ['0', '2']
    assert local.local_gpus({'CUDA_VISIBLE_DEVICES': ''}) == [] and local.local_gpus({'CUDA_VISIBLE_DEVICES': '-1'}) == []


def test_the_paper_grids():
    assert len(configs.paper_tasks('paper')) == 50 and len(configs.paper_tasks('paper-visual')) == 5
    assert configs.paper_tasks('paper-ogbench') == configs.paper_tasks('paper') + configs.paper_tasks('paper-visual')
    assert all(task.startswith('visual-') for task in configs.paper_tasks('paper-visual'))


def test_the_time_limit_signal_reaches_main_py_which_is_requeued(tmp_path):
    """MainRun forwards SLURM's USR2 to its main.py and asks submitit for a requeue of the same command."""
    child = tmp_path / 'child.py'
    child.write_text(f'''import pathlib, signal, sys, time
def stop(*_):
    pathlib.Path({str(tmp_path / "signalled")!r}).write_text("USR2")
    sys.exit({preemption.EXIT_STATUS})
signal.signal(signal.SIGUSR2, stop)
pathlib.Path({str(tmp_path / "started")!r}).write_text("")
time.sleep(60)
''')
    job = base.MainRun([sys.executable, str(child)])
    raised = []
    thread = threading.Thread(target=lambda: raised.append(pytest.raises(base.MainRunError, job)))
    thread.start()
    for _ in range(200):
        if (tmp_path / 'started').exists():
            break
        time.sleep(0.05)
    requeue = job.checkpoint()
    thread.join(timeout=30)
    assert (tmp_path / 'signalled').read_text() == 'USR2'
    assert base.is_interruption(str(raised[0].value)) and 'its checkpoint is saved' in str(raised[0].value)
    assert isinstance(requeue.function, base.MainRun) and requeue.function.command == job.command


STAND_IN_LAUNCHER = '''
import json, os
from sweeps.launchers.base import Launcher, Poll


class Recorded:
    def __init__(self, job_id):
        self.job_id = job_id
        self.paths = type('Paths', (), {'stderr': 'none', 'stdout': 'none'})()


class StandIn(Launcher):
    """Records what it is asked to do in calls.json beside the sweep folder; its jobs wait in a queue forever."""
    name = 'standin'

    def log(self, *call):
        path = os.path.join(os.path.dirname(self.sweep_dir), 'calls.json')
        calls = json.load(open(path)) if os.path.exists(path) else []
        json.dump(calls + [list(call)], open(path, 'w'))

    def submit(self, jobs, manifest, save_manifest, on_end):
        from sweeps.launchers.base import record_launch
        for job in jobs:
            record_launch(manifest['jobs'][job.name], self.args.launcher, Recorded(job.name), state='submitted')
            save_manifest()
        self.log('submit', [job.name for job in jobs])

    def poll(self, entries):
        self.log('poll', sorted(entries))
        return {name: Poll('queued', 'in the stand-in queue') for name in entries}

    def cancel(self, entries):
        self.log('cancel', sorted(entries))


LAUNCHER = StandIn
'''


def test_a_new_launcher_is_one_file(tmp_path, capsys):
    path = tmp_path / 'standin.py'
    path.write_text(STAND_IN_LAUNCHER)
    assert 'standin' not in registered_launchers() and launcher_class(str(path)).name == 'standin'
    sweep_dir = str(tmp_path / 'sweep')
    command = [f'--save_dir={sweep_dir}', f'--env_name={",".join(TASKS)}', '--agents=fql', f'--launcher={path}',
               f'--dataset_dir={fake_data(tmp_path)}']
    assert sweep.run(command) == 0
    assert sweep.run(command) == 0  # queued jobs are never submitted twice
    assert 'nothing to launch' in capsys.readouterr().out
    assert sweep.run([f'--save_dir={sweep_dir}', '--status']) == 0
    assert '2 jobs: 0 done, 0 running, 2 queued' in capsys.readouterr().out
    assert sweep.run([f'--save_dir={sweep_dir}', f'--relaunch=fql/{TASKS[0]}']) == 0
    assert sweep.run(command) == 0
    calls = json.load(open(tmp_path / 'calls.json'))
    assert [call for call in calls if call[0] != 'poll'] == [
        ['submit', [f'fql/{TASKS[0]}', f'fql/{TASKS[1]}']], ['cancel', [f'fql/{TASKS[0]}']],
        ['submit', [f'fql/{TASKS[0]}']]]
    with pytest.raises(SweepError, match="unknown launcher 'nope'; launchers: debug, local, slurm"):
        sweep.run(['--save_dir=x', '--launcher=nope'])


def test_the_joined_command_of_former_runs_loses_spaces_which_the_list_keeps():
    """The space bug: flags.json used to record ' '.join(sys.argv), split on spaces when read back."""
    flags = ('--agent=agents/fql.py', '--save_dir=/a folder/runs/fql', '--agent.value_hidden_dims=(32, 32)')
    job_hash = grid.config_hash(flags)
    assert grid.recorded_config_hash({'command': ' '.join(['main.py', *flags])}) != job_hash
    assert grid.recorded_config_hash({'command': ['main.py', *flags]}) == job_hash


@pytest.fixture(scope='module')
def environment(tmp_path_factory) -> dict[str, str]:
    cache = str(tmp_path_factory.mktemp('jax_cache'))
    return dict(os.environ, JAX_PLATFORMS='cpu', MUJOCO_GL='egl', JAX_COMPILATION_CACHE_DIR=cache,
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0.5')


def test_a_sweep_with_spaces_in_its_folder_and_values_is_done_on_the_rerun(tmp_path, cube_single_play_files,  # noqa: F811
                                                                          environment):
    sweep_dir = str(tmp_path / 'my sweeps' / 'space test')
    command = [sys.executable, 'sweep.py', f'--save_dir={sweep_dir}', f'--env_name={TASKS[0]}', '--agents=fql',
               '--num_seeds=1', '--launcher=debug', f'--dataset_dir={os.path.dirname(cube_single_play_files[0])}',
               '--offline_steps=4', '--eval_interval=4', '--eval_episodes=1', '--log_interval=2', '--steps_per_call=2',
               '--agent.batch_size=8', '--agent.actor_hidden_dims=(16, 16)', '--agent.value_hidden_dims=(16, 16)',
               '--agent.flow_steps=2']
    first = subprocess.run(command, cwd=REPO_DIR, env=environment, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0 and '1 of 1 jobs done' in first.stdout, first.stdout[-2000:] + first.stderr[-2000:]
    [seed_dir] = [os.path.join(root, d) for root, dirs, _ in os.walk(sweep_dir) for d in dirs if d == 'seed0']
    assert '--agent.value_hidden_dims=(16, 16)' in runs.read_flags(seed_dir)['command']
    rerun = subprocess.run(command, cwd=REPO_DIR, env=environment, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and 'nothing to launch: 1 jobs: 1 done' in rerun.stdout, rerun.stdout + rerun.stderr
