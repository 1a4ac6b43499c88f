"""`--launcher=debug`: the jobs run one after another inside sweep.py (submitit's DebugExecutor), their output on the
console; for debugging a job."""

import subprocess
from typing import Any

import submitit

from sweeps.launchers.base import Launcher, MainRun, Poll, record_launch


class DebugLauncher(Launcher):
    name = 'debug'
    blocking = True

    def submit(self, jobs: list[Any], manifest: dict[str, Any], save_manifest: Any, on_end: Any) -> None:
        executor = submitit.DebugExecutor(folder=self.logs_dir)
        for job in jobs:
            submitted = executor.submit(MainRun(job.command))
            entry = manifest['jobs'][job.name]
            record_launch(entry, self.name, submitted)
            entry['log'] = 'the console of the debug launch'
            save_manifest()
            print(f'[start] {job.name} (debug): {subprocess.list2cmdline(job.command)}', flush=True)
            state = on_end(job, submitted.exception())  # exception() runs the job, without pdb
            print(f'[{state}] {job.name}' + ('' if state == 'done' else f': {entry["error"]}'), flush=True)

    def poll(self, entries: dict[str, dict[str, Any]]) -> dict[str, Poll]:
        # A debug job runs inside sweep.py: one still recorded as running outlived the sweep.py that ran it.
        return {name: Poll('ended', 'sweep.py stopped while the job ran') for name in entries}


LAUNCHER = DebugLauncher
