"""`--launcher=local`: the jobs run on this machine through submitit's LocalExecutor, at most `--max_parallel` at
once, each on its own GPU when there are GPUs (round robin when there are more slots than GPUs). sweep.py waits for
them; a killed sweep.py leaves its jobs to be found interrupted and resumed by the next launch."""

import argparse
import math
import os
import shutil
import socket
import subprocess
import time
from typing import Any

import submitit

from sweeps.launchers.base import Launcher, MainRun, Poll, record_launch


def local_gpus(environ: dict[str, str] | None = None) -> list[str]:
    """The GPUs visible here as CUDA_VISIBLE_DEVICES names them (indices, or `GPU-…`/`MIG-…` UUIDs), else from
    `nvidia-smi -L` as indices; [] without GPUs."""
    visible = (os.environ if environ is None else environ).get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        return [name.strip() for name in visible.split(',') if name.strip() and name.strip() != '-1']
    if shutil.which('nvidia-smi') is None:
        return []
    try:
        listing = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i in range(sum(line.startswith('GPU ') for line in listing.splitlines()))]


def process_alive(pid: int) -> bool:
    """Whether the submitit controller of a local job still runs: a zombie (a dead child whose parent, sweep.py, was
    killed, in a container whose init does not reap it) or a pid reused by another program does not count."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            command = f.read().replace(b'\0', b' ').decode(errors='replace')
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): ask the kernel only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ('Z', 'X') and 'submitit' in command


MEM_FRACTION_VARIABLES = ('XLA_CLIENT_MEM_FRACTION', 'XLA_PYTHON_CLIENT_MEM_FRACTION')  # the new name, the old


def job_environment(gpus: list[str], slots: int, slot: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables of the job in `slot`: its GPU by name (an index or a UUID, as CUDA_VISIBLE_DEVICES
    gave it), and, when k jobs share a GPU, no preallocation and a memory limit of 0.9/k of the GPU each, so that
    each job's free-memory check (`datasets.frames.check_fits`) sees its own share, not what others use. A memory
    fraction set by the user is kept (JAX refuses both names at once)."""
    if not gpus:
        return {}
    environment = {'CUDA_VISIBLE_DEVICES': gpus[slot % len(gpus)]}
    if slots > len(gpus):
        environment['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'false'
        if not any(name in (os.environ if environ is None else environ) for name in MEM_FRACTION_VARIABLES):
            environment['XLA_CLIENT_MEM_FRACTION'] = f'{0.9 / math.ceil(slots / len(gpus)):.3f}'
    return environment


def remove_stale_result(path: Any, submitted_at: float) -> None:
    """Deletes a result file older than the job just submitted: a local job's id is its controller's process id, which
    an earlier job of the sweep may have had (ids start again after a restart), and its result file would read as this
    job's outcome. The earlier job's outcome was recorded before anything was launched (`manifest.refresh_all`)."""
    try:
        if os.path.getmtime(path) < submitted_at:
            os.remove(path)
    except FileNotFoundError:
        pass


class LocalLauncher(Launcher):
    name = 'local'
    blocking = True

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group('local (--launcher=local)')
        group.add_argument('--max_parallel', type=int, default=0,
                           help='jobs at once (0: one per GPU, else 1)')
        group.add_argument('--poll_seconds', type=float, default=5.0, help='seconds between checks of running jobs')

    def submit(self, jobs: list[Any], manifest: dict[str, Any], save_manifest: Any, on_end: Any) -> None:
        gpus = local_gpus()
        slots = self.args.max_parallel or max(1, len(gpus))
        executor = submitit.LocalExecutor(folder=self.logs_dir)
        executor.update_parameters(timeout_min=self.args.time_min or 60 * 24 * 365)
        queue, active, free = list(jobs), {}, list(range(slots))
        while queue or active:
            while queue and free:
                job, slot = queue.pop(0), free.pop(0)
                environment = job_environment(gpus, slots, slot)
                submitted_at = time.time()
                submitted = executor.submit(MainRun(job.command, environment))
                remove_stale_result(submitted.paths.result_pickle, submitted_at)
                record_launch(manifest['jobs'][job.name], self.name, submitted)
                save_manifest()
                print(f'[start] {job.name} (local job {submitted.job_id}): {subprocess.list2cmdline(job.command)}',
                      flush=True)
                active[job.name] = (job, submitted, slot)
            time.sleep(self.args.poll_seconds)
            for name in [name for name, (_, submitted, _) in active.items() if submitted.done()]:
                job, submitted, slot = active.pop(name)
                free.append(slot)
                error = submitted.exception()
                state = on_end(job, error)
                detail = '' if state == 'done' else f': {manifest["jobs"][name]["error"]}; log: {submitted.paths.stderr}'
                print(f'[{state}] {name}{detail}', flush=True)

    def poll(self, entries: dict[str, dict[str, Any]]) -> dict[str, Poll]:
        here = socket.gethostname()
        return {name: Poll('running', f'local job {entry["launcher_id"]}')
                if entry.get('host') == here and process_alive(int(entry['launcher_id']))
                else Poll('ended', 'the local job stopped without a result (its machine or sweep.py was killed)')
                for name, entry in entries.items()}


LAUNCHER = LocalLauncher
