"""`--launcher=slurm`: the jobs go to SLURM as one sbatch array (submitit); sweep.py returns at once and
`--status` follows them.

States come from one `sacct` call for all of a sweep's arrays; where accounting is disabled (common on small
clusters) or sacct fails, from one `squeue` call instead, in which a job that is no longer listed has ended. A job
that ended without a result file was interrupted and is resumed by the next launch; `--relaunch` marks jobs for
relaunch by hand where the scheduler cannot be asked at all.

SLURM signals a job 90 s before its time limit (submitit's `--signal=USR2@90`); the job's `MainRun` forwards the
signal to main.py, which checkpoints and exits, and submitit requeues the job, which resumes from that checkpoint.
"""

import argparse
import re
import subprocess
from typing import Any

import submitit

from sweeps import SweepError
from sweeps.launchers.base import Launcher, MainRun, Poll, record_launch

# SLURM job states (sacct, squeue) and what they mean here.
RUNNING = {'RUNNING', 'COMPLETING', 'CONFIGURING', 'STAGE_OUT', 'SIGNALING'}
QUEUED = {'PENDING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'RESIZING', 'SUSPENDED', 'STOPPED'}
FAILED = {'FAILED', 'OUT_OF_MEMORY'}
ENDED = {'TIMEOUT', 'PREEMPTED', 'NODE_FAIL', 'CANCELLED', 'BOOT_FAIL', 'DEADLINE', 'COMPLETED', 'REVOKED'}


def run_command(command: list[str]) -> str | None:
    """A command's stdout, or None if it cannot run or fails (a scheduler command missing or refusing)."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0 or 'accounting storage is disabled' in (result.stdout + result.stderr).lower():
        return None
    return result.stdout


def array_task_ids(job_id: str) -> list[str]:
    """The array tasks a scheduler's job id names: '4242_3' -> ['4242_3']; a pending array's compressed form
    '4242_[0-2,5%4]' -> ['4242_0', '4242_1', '4242_2', '4242_5'] (the '%4' is its parallelism limit)."""
    match = re.fullmatch(r'(\d+)_\[([0-9,\-]+)(?:%\d+)?\]', job_id)
    if match is None:
        return [job_id]
    tasks = []
    for part in match.group(2).split(','):
        first, _, last = part.partition('-')
        tasks += [f'{match.group(1)}_{i}' for i in range(int(first), int(last or first) + 1)]
    return tasks


def sacct_states(array_ids: list[str]) -> dict[str, str] | None:
    """{job id ('4242_0'): state} of the arrays' tasks from one sacct call; None when sacct cannot answer."""
    output = run_command(['sacct', '-X', '-n', '-P', '-o', 'JobID,State', '-j', ','.join(array_ids)])
    if output is None:
        return None
    states = {}
    for line in output.splitlines():
        job_id, _, state = line.strip().partition('|')
        for task_id in array_task_ids(job_id) if job_id and state else []:
            states[task_id] = state.split(' ')[0].upper()  # 'CANCELLED by 123' -> 'CANCELLED'
    return states


def squeue_states(array_ids: list[str]) -> dict[str, str] | None:
    """{job id: state} of the arrays' tasks still in the queue, from one squeue call (`-r`: one line per array
    task); None when squeue cannot answer. A task not listed is no longer queued or running."""
    output = run_command(['squeue', '-h', '-r', '-o', '%i|%T', '-j', ','.join(array_ids)])
    if output is None:
        return None
    return {job_id: state.upper() for job_id, _, state in (line.strip().partition('|')
                                                           for line in output.splitlines()) if job_id and state}


def sbatch_message(error: BaseException) -> str:
    """SLURM's own words from a refused sbatch (submitit's error text holds sbatch's stderr)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    slurm_lines = [line for line in lines if 'sbatch:' in line or 'error' in line.lower()]
    return (slurm_lines or lines or [type(error).__name__])[-1]


class SlurmLauncher(Launcher):
    name = 'slurm'

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group('SLURM (--launcher=slurm)')
        group.add_argument('--partition', default='', help='partition (default: the cluster\'s)')
        group.add_argument('--gpus_per_job', type=int, default=1,
                           help='GPUs per job (--gpus-per-node; on SLURM versions without GRES typing use '
                                '--slurm_option=gres=gpu:1 with --gpus_per_job=0)')
        group.add_argument('--cpus_per_job', type=int, default=8, help='CPUs per job (evaluation envs run on them)')
        group.add_argument('--mem_gb', type=float, default=0, help='memory per job in GB (0: the partition\'s)')
        group.add_argument('--array_parallelism', type=int, default=256, help='array tasks running at once')
        group.add_argument('--account', default='', help='account to charge')
        group.add_argument('--qos', default='', help='quality of service')
        group.add_argument('--job_name', default='mfql', help='the array\'s name in squeue')
        group.add_argument('--max_timeouts', type=int, default=10,
                           help='times a job that reaches --time_min is requeued (it resumes from the checkpoint it '
                                'saved at the time-limit signal); past them it waits to be relaunched by the next run '
                                'of the sweep\'s command. Preemptions do not count.')
        group.add_argument('--slurm_option', action='append', default=[], metavar='KEY=VALUE',
                           help='any other sbatch option, e.g. constraint=a100 (repeatable)')
        group.add_argument('--slurm_setup', action='append', default=[], metavar='COMMAND',
                           help='shell line run before each job, e.g. "source venv/bin/activate" (repeatable)')

    def parameters(self, num_jobs: int) -> dict[str, Any]:
        """submitit AutoExecutor parameters of the sbatch array (one job per array task)."""
        args = self.args
        if args.max_timeouts < 0:
            raise SweepError(f'--max_timeouts={args.max_timeouts}: give 0 or more requeues after a time limit')
        additional = {}
        for option in args.slurm_option:
            key, separator, value = option.partition('=')
            if not key or not separator:
                raise SweepError(f'--slurm_option={option}: expected KEY=VALUE (an sbatch option without its dashes, '
                                 'e.g. constraint=a100)')
            additional[key] = value
        parameters = dict(name=args.job_name, timeout_min=args.time_min or 24 * 60, gpus_per_node=args.gpus_per_job,
                          cpus_per_task=args.cpus_per_job, slurm_array_parallelism=min(args.array_parallelism, num_jobs),
                          slurm_setup=list(args.slurm_setup))
        optional = dict(slurm_partition=args.partition, mem_gb=args.mem_gb, slurm_account=args.account,
                        slurm_qos=args.qos, slurm_additional_parameters=additional or None)
        parameters.update({key: value for key, value in optional.items() if value})
        return parameters

    def check(self, num_jobs: int) -> list[str]:
        self.parameters(num_jobs)  # malformed --slurm_option values stop here, before anything is queued
        if not any(token.startswith('--save_interval=') for token in self.args.passthrough):
            return ['warning: no --save_interval: main.py checkpoints only at its evaluation steps (every '
                    '--eval_interval, 100k updates by default), at the end and when SLURM signals a time limit or a '
                    'preemption, so a job that dies otherwise redoes up to an evaluation interval; pass e.g. '
                    '--save_interval=25000']
        return []

    def submit(self, jobs: list[Any], manifest: dict[str, Any], save_manifest: Any, on_end: Any) -> None:
        try:
            executor = submitit.AutoExecutor(folder=self.logs_dir, cluster='slurm',
                                             slurm_max_num_timeout=self.args.max_timeouts)
        except RuntimeError as error:
            raise SweepError(f'--launcher=slurm: {error} (run sweep.py on a login node of the cluster)')
        executor.update_parameters(**self.parameters(len(jobs)))
        try:
            with executor.batch():
                submitted = [executor.submit(MainRun(job.command)) for job in jobs]
        except Exception as error:  # submitit's FailedJobError / CalledProcessError around sbatch's refusal
            raise SweepError(f'sbatch refused the array: {sbatch_message(error)} (check --partition, --account, '
                             '--qos, --time_min and --slurm_option)')
        for job, slurm_job in zip(jobs, submitted):
            record_launch(manifest['jobs'][job.name], self.name, slurm_job, state='submitted')
        save_manifest()
        first = submitted[0].job_id.split('_')[0]
        print(f'submitted {len(jobs)} job(s) as SLURM array {first}; follow with: python sweep.py '
              f'--save_dir={self.sweep_dir} --status')

    def poll(self, entries: dict[str, dict[str, Any]]) -> dict[str, Poll]:
        ids = {name: str(entry['launcher_id']) for name, entry in entries.items()}
        arrays = sorted({job_id.split('_')[0] for job_id in ids.values()})
        if not arrays:
            return {}
        states = sacct_states(arrays)
        source = 'sacct'
        if states is None or not any(job_id in states for job_id in ids.values()):
            queued = squeue_states(arrays)
            if queued is not None:
                states, source = queued, 'squeue'
        polls = {}
        for name, job_id in ids.items():
            state = (states or {}).get(job_id)
            if state in RUNNING:
                polls[name] = Poll('running', f'SLURM job {job_id}')
            elif state in QUEUED:
                polls[name] = Poll('queued', f'queued on SLURM as {job_id} (state {state})')
            elif state in FAILED:
                polls[name] = Poll('failed', f'SLURM state {state}')
            elif state in ENDED or (source == 'squeue' and state is None):
                polls[name] = Poll('ended', f'SLURM state {state}' if state else 'no longer in the queue (squeue)')
            else:  # neither sacct nor squeue knows it: never submit it twice
                polls[name] = Poll('unknown', f'SLURM job {job_id} (state {state or "UNKNOWN"}: sacct and squeue '
                                              'do not answer; --relaunch marks it for relaunch)')
        return polls

    def cancel(self, entries: dict[str, dict[str, Any]]) -> None:
        ids = [str(entry['launcher_id']) for entry in entries.values()]
        if ids:
            run_command(['scancel', *ids])


LAUNCHER = SlurmLauncher
