"""What every launcher shares: the interface (`Launcher`), the submitit callable that runs one `main.py` job
(`MainRun`), and how a launch and its outcome are recorded in a job's manifest entry.

A launcher is one module of this package defining `LAUNCHER`, a `Launcher` subclass: it submits jobs, reports the
state of the jobs it launched (one call for all of them), and cancels them. The sweep knows launchers only through
this interface.
"""

import abc
import argparse
import dataclasses
import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any, ClassVar

import submitit

from training import preemption

REPO_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILLED_MARK = 'main.py was killed by signal'
INTERRUPTED_MARK = 'main.py stopped for a requeue'
# submitit's words when it saved a job at its time limit but did not requeue it (after --max_timeouts requeues).
NOT_REQUEUED_MARK = 'Job not requeued because'
SIGNAL_GRACE_SECONDS = 80  # SLURM signals 90 s before the limit (submitit's default): leave 10 s to requeue


class MainRunError(RuntimeError):
    """main.py exited with an error or was killed; the message is its last error line."""


class MainRun(submitit.helpers.Checkpointable):
    """The submitit callable of one job: runs main.py (with --resume) in the repository and raises MainRunError if it
    fails.

    Checkpointable: on a SLURM time limit or preemption submitit calls `checkpoint` (on SIGUSR2) and requeues the job.
    `checkpoint` first forwards the signal to main.py, which saves a checkpoint at its next call boundary and exits,
    so the requeued job resumes from there instead of from its last periodic checkpoint."""

    def __init__(self, command: list[str], environment: dict[str, str] | None = None):
        self.command = command
        self.environment = environment or {}
        self._process: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {'command': self.command, 'environment': self.environment}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state['command'], state['environment'])

    def __call__(self) -> str:
        environment = dict(os.environ, **self.environment)
        environment.setdefault('MUJOCO_GL', 'egl')  # headless rendering for OGBench's evaluation envs
        command = [sys.executable, *self.command[1:]] if self.command[0] == 'python' else self.command
        print(f'running: {subprocess.list2cmdline(command)}', flush=True)
        self._process = subprocess.Popen(command, cwd=REPO_DIR, env=environment, stderr=subprocess.PIPE, text=True)
        tail: list[str] = []

        def relay_stderr() -> None:  # stderr goes to the job's log as it comes; its last lines name an error
            for line in self._process.stderr:
                sys.stderr.write(line)
                sys.stderr.flush()
                tail[:] = (tail + [line.rstrip()])[-40:]

        relay = threading.Thread(target=relay_stderr, daemon=True)
        relay.start()
        code = self._process.wait()
        relay.join(timeout=10)
        if code == 0:
            return 'finished'
        if code < 0:
            raise MainRunError(f'{KILLED_MARK} {signal.Signals(-code).name}')
        if code == preemption.EXIT_STATUS:  # main.py checkpointed on SIGUSR2/SIGTERM and stopped
            raise MainRunError(f'{INTERRUPTED_MARK} (exit code {code}; its checkpoint is saved)')
        error_lines = [line for line in tail if 'error' in line.lower()]
        last = (error_lines or [line for line in tail if line.strip()] or ['no output on stderr'])[-1].strip()
        raise MainRunError(f'main.py exited with code {code}: {last}')

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Forwards the time-limit signal to main.py and waits for it to save and exit, then asks for a requeue."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGUSR2)
            try:
                process.wait(timeout=SIGNAL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass  # the requeued job resumes from the newest complete checkpoint either way
        return submitit.helpers.DelayedSubmission(MainRun(self.command, self.environment))


def now() -> str:
    return datetime.datetime.now().isoformat(timespec='seconds')


def record_launch(entry: dict[str, Any], launcher: str, job: Any, state: str = 'running') -> None:
    """Records a submitit launch in a job's manifest entry."""
    entry.update(state=state, launcher=launcher, launcher_id=str(job.job_id), host=socket.gethostname(),
                 submitted=now(), attempts=entry.get('attempts', 0) + 1, log=str(job.paths.stderr),
                 stdout=str(job.paths.stdout))
    entry.pop('error', None)
    entry.pop('ended', None)


def error_line(trace: str) -> str:
    """The last line of main.py's error (what the job function raised) from a submitit trace."""
    for line in reversed(trace.strip().splitlines()):
        if 'MainRunError: ' in line:  # the class's name, qualified by its module or not
            return line.split('MainRunError: ', 1)[1]
    lines = [line for line in trace.strip().splitlines() if line.strip()]
    return lines[-1] if lines else 'no error message'


def is_interruption(message: str) -> bool:
    """Whether a job's error is an interruption (killed, stopped for a requeue, or saved at a time limit without a
    requeue), which the next launch resumes."""
    return any(mark in message for mark in (KILLED_MARK, INTERRUPTED_MARK, NOT_REQUEUED_MARK))


def submitit_outcome(entry: dict[str, Any], logs_dir: str) -> tuple[str, str] | None:
    """('success' | 'error', text) from submitit's result file of the entry's last launch, or None if there is
    none yet."""
    from submitit.core import utils
    path = os.path.join(logs_dir, f'{entry["launcher_id"]}_0_result.pkl')
    if not os.path.exists(path):
        return None
    try:
        outcome, value = utils.pickle_load(path)
    except Exception as error:  # a truncated pickle of a job killed while writing it
        return 'error', f'unreadable result file {path}: {error}'
    return outcome, str(value)


@dataclasses.dataclass(frozen=True)
class Poll:
    """What a launcher knows of one launched job: 'running', 'queued' (waiting for resources), 'failed' (the
    scheduler says so: `detail` says why), 'ended' (no longer running; its outcome is in its result file, or it was
    interrupted), or 'unknown' (the scheduler cannot be asked: never submitted twice; see --relaunch)."""

    status: str
    detail: str = ''


class Launcher(abc.ABC):
    """One way of running a sweep's jobs. Subclasses set `name`, may add command-line options, and implement
    `submit`, `poll` and `cancel`. `blocking` launchers run the jobs before `submit` returns."""

    name: ClassVar[str]
    blocking: ClassVar[bool] = False

    def __init__(self, sweep_dir: str, args: argparse.Namespace):
        self.sweep_dir = sweep_dir
        self.args = args
        self.logs_dir = os.path.join(sweep_dir, 'logs')

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Adds this launcher's own options (an argument group) to sweep.py's parser."""

    def check(self, num_jobs: int) -> list[str]:
        """Warnings (one line each) about launching `num_jobs` jobs with the given options; SweepError for options
        that cannot work."""
        return []

    @abc.abstractmethod
    def submit(self, jobs: list[Any], manifest: dict[str, Any], save_manifest: Any, on_end: Any) -> None:
        """Launches `jobs` (grid.Job), recording each launch in `manifest['jobs'][job.name]` (`record_launch`) and
        calling `save_manifest()` after each record. A blocking launcher calls `on_end(job, error)` when a job ends
        (`error`: what its callable raised, or None), which records the outcome and returns the job's state."""

    @abc.abstractmethod
    def poll(self, entries: dict[str, dict[str, Any]]) -> dict[str, Poll]:
        """The state of every job in `entries` (manifest entries this launcher launched), asked in one go."""

    def cancel(self, entries: dict[str, dict[str, Any]]) -> None:
        """Stops the jobs in `entries` if they still run or wait (nothing to do for launchers whose jobs end with
        sweep.py)."""
