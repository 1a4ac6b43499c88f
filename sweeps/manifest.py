"""The sweep folder's manifest (`manifest.json`: every job, its command, config hash, launches and last known state),
its lock, and the state of each job, worked out from its run folder and its launcher.

Job states: `done` (every seed finished with the job's flags), `running`, `queued` (waiting on the scheduler, or the
scheduler cannot be asked: never submitted twice), `failed` (main.py exited with an error; rerun only with
--retry_failed), `to relaunch` (interrupted: killed, preempted, timed out or marked by hand; the next launch resumes
it from its checkpoints) and `pending` (never launched).
"""

import fcntl
import json
import os
import shlex
import socket
from typing import Any, Collection

import runs
from sweeps import SweepError
from sweeps.grid import Job, config_hash, earlier_config_hashes, presets_digest, recorded_config_hash, result_flags
from sweeps.launchers import launcher_class
from sweeps.launchers.base import Poll, error_line, is_interruption, now, submitit_outcome

MANIFEST = 'manifest.json'
MANIFEST_VERSION = 1
STATES = ('done', 'running', 'queued', 'failed', 'to relaunch', 'pending')
UNKNOWN_MARK = 'do not answer'  # in the detail of a job whose scheduler cannot be asked (`Poll('unknown')`)


def manifest_path(sweep_dir: str) -> str:
    return os.path.join(sweep_dir, MANIFEST)


def read_manifest(sweep_dir: str) -> dict[str, Any]:
    path = manifest_path(sweep_dir)
    if not os.path.exists(path):
        return {'version': MANIFEST_VERSION, 'jobs': {}}
    manifest = runs.read_json(path)
    if manifest is None:
        raise SweepError(f'cannot read {path}; it is written atomically, so it was edited by hand or the disk failed: '
                         'restore it from the job folders by moving it away and rerunning the sweep')
    if manifest.get('version') != MANIFEST_VERSION:
        raise SweepError(f'{path} has manifest version {manifest.get("version")!r}; this sweep.py reads version '
                         f'{MANIFEST_VERSION}')
    return manifest


def write_manifest(sweep_dir: str, manifest: dict[str, Any]) -> None:
    runs.write_atomically(manifest_path(sweep_dir), json.dumps(manifest, indent=1) + '\n')


def job_entry(job: Job) -> dict[str, Any]:
    """A job's manifest entry before any launch. `command` is the argument list (older manifests hold it as one
    shell-quoted string, which `job_from_entry` still reads)."""
    return {'setting': job.setting, 'agent': job.agent, 'task': job.task, 'seeds': list(job.seeds),
            'overrides': dict(job.overrides), 'run_dir': job.run_dir, 'command': job.command,
            'config_hash': job.config_hash, 'state': 'pending', 'attempts': 0}


def entry_command(entry: dict[str, Any]) -> list[str]:
    command = entry['command']
    return list(command) if isinstance(command, list) else shlex.split(command)


def job_from_entry(name: str, entry: dict[str, Any]) -> Job:
    command = entry_command(entry)
    return Job(name=name, setting=entry['setting'], agent=entry['agent'], task=entry['task'],
               seeds=tuple(entry['seeds']), overrides=tuple(entry['overrides'].items()), flags=tuple(command[2:]),
               run_dir=entry['run_dir'], config_hash=entry['config_hash'])


def merge_jobs(manifest: dict[str, Any], jobs: list[Job]) -> None:
    """Adds new jobs to the manifest; a known job whose settings changed is refused (its folder holds the old ones).
    An entry that an earlier sweep hashed its own way (`earlier_config_hashes`) is rehashed when that hash matches."""
    for job in jobs:
        entry = manifest['jobs'].get(job.name)
        if entry is None:
            manifest['jobs'][job.name] = job_entry(job)
            continue
        if entry['config_hash'] not in (job.config_hash,
                                        *earlier_config_hashes(job.flags, presets_digest(list(job.flags)))):
            raise SweepError(f'job {job.name} was recorded with `{shlex.join(entry_command(entry))}`; this sweep would '
                             f'run `{shlex.join(job.command)}`: the flags differ, so use another --save_dir for them')
        entry['command'] = job.command  # paths may differ (the folder was moved); what the job computes did not
        entry['config_hash'] = job.config_hash


class SweepLock:
    """An exclusive lock on the sweep folder while jobs are launched, so that two sweep.py processes never start
    the same job twice."""

    def __init__(self, sweep_dir: str):
        self.path = os.path.join(sweep_dir, '.launch.lock')

    def __enter__(self) -> 'SweepLock':
        self.file = open(self.path, 'a+')
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or 'another process'
            self.file.close()
            raise SweepError(f'another sweep.py ({holder}) is launching jobs from {os.path.dirname(self.path)}; '
                             'wait for it, or use --status to follow it')
        self.file.truncate(0)
        self.file.write(f'pid {os.getpid()} on {socket.gethostname()}')
        self.file.flush()
        return self

    def __exit__(self, *_: Any) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


# ------------------------------------------------------------------------------------------------- run folders
def same_run(job: Job, recorded: dict[str, Any]) -> bool:
    """Whether a seed's flags.json records the job's result-defining flags (presets files by content). Seeds
    recorded before presets files counted by content match on their path hash."""
    return recorded_config_hash(recorded) == job.config_hash or \
        config_hash(runs.recorded_arguments(recorded)) == job.config_hash


def folder_conflict(job: Job, sweep_dir: str) -> str | None:
    """A one-line description if a seed folder of `job` holds a run made with other result-defining flags."""
    for directory in job.seed_dirs(sweep_dir):
        recorded = runs.read_flags(directory)
        if recorded is not None and not same_run(job, recorded):
            return (f'{directory} was trained with `{shlex.join(result_flags(runs.recorded_arguments(recorded)))}`, '
                    f'not `{shlex.join(result_flags(job.flags))}`')
    return None


def finished_step(job: Job, sweep_dir: str) -> int | None:
    """The final step if every seed reached its last step (final.json) with the job's flags, else None."""
    steps = set()
    for directory in job.seed_dirs(sweep_dir):
        step = runs.finished_at(directory)
        if step is None or not same_run(job, runs.read_flags(directory)):
            return None
        steps.add(step)
    return steps.pop() if len(steps) == 1 else None


def last_checkpoint_step(job: Job, sweep_dir: str) -> int | None:
    """The newest step every seed has a complete checkpoint for (main.py resumes from it)."""
    return runs.common_checkpoint_step(job.seed_dirs(sweep_dir))


# ------------------------------------------------------------------------------------------------------ states
def record_outcome(entry: dict[str, Any], error: BaseException | None, job: Job, sweep_dir: str) -> str:
    """Records how a job of a blocking launcher ended (`error`: what its callable raised); returns its state."""
    entry['ended'] = now()
    if error is None:
        entry['state'] = 'done' if finished_step(job, sweep_dir) is not None else 'interrupted'
        if entry['state'] == 'interrupted':
            entry['error'] = 'main.py ended without a final result'
    else:
        entry['error'] = error_line(str(error))
        entry['state'] = 'interrupted' if is_interruption(entry['error']) else 'failed'
    return entry['state']


def poll_launched(manifest: dict[str, Any], sweep_dir: str) -> dict[str, Poll]:
    """The launchers' view of every job recorded as running or submitted: one poll per launcher."""
    by_launcher: dict[str, dict[str, dict[str, Any]]] = {}
    for name, entry in manifest['jobs'].items():
        if entry.get('state') in ('running', 'submitted'):
            by_launcher.setdefault(entry.get('launcher', 'debug'), {})[name] = entry
    polls: dict[str, Poll] = {}
    for launcher, entries in by_launcher.items():
        try:
            polls.update(launcher_class(launcher)(sweep_dir, None).poll(entries))
        except SweepError as error:  # a launcher file that is gone: its jobs cannot be asked about
            polls.update({name: Poll('unknown', str(error)) for name in entries})
    return polls


def refresh(job: Job, entry: dict[str, Any], sweep_dir: str, poll: Poll | None) -> tuple[str, str]:
    """(state, detail) of a job from its folder, its last launch's result file and its launcher's `poll`, updating
    `entry['state']` (and `entry['active']`: queued or running, never launched twice) in place."""
    entry['active'] = False
    step = finished_step(job, sweep_dir)
    if step is not None:
        entry['state'] = 'done'
        return 'done', f'step {step}'
    conflict = folder_conflict(job, sweep_dir)
    if conflict is not None:
        entry['state'] = 'failed'
        return 'failed', f'folder holds another run: {conflict}'
    resumes = last_checkpoint_step(job, sweep_dir)
    resume_note = f'; resumes from step {resumes}' if resumes else ''
    state = entry.get('state', 'pending')
    if state in ('running', 'submitted'):
        outcome = submitit_outcome(entry, os.path.join(sweep_dir, 'logs')) if 'launcher_id' in entry else None
        poll = poll or Poll('ended', 'no launcher knows this job')
        if outcome is not None:
            kind, text = outcome
            state = 'failed' if kind == 'error' and not is_interruption(text) else 'interrupted'
            entry['error'] = error_line(text) if kind == 'error' else 'main.py ended without a final result'
        elif poll.status in ('running', 'queued', 'unknown'):
            entry['active'] = True
            if poll.status == 'running':
                return 'running', poll.detail + resume_note.replace('resumes from', 'checkpoint at')
            return 'queued', poll.detail
        else:
            state, entry['error'] = ('failed' if poll.status == 'failed' else 'interrupted'), poll.detail
        entry['state'] = state
    if state == 'ended':  # a job whose outcome was not recorded (a blocking launcher stopped before it could)
        state, entry['state'], entry['error'] = 'interrupted', 'interrupted', 'main.py ended without a final result'
    if state == 'failed':
        return 'failed', f'{entry.get("error", "failed")}; log: {entry.get("log", "the console of the debug launch")}'
    if state == 'interrupted':
        return 'to relaunch', f'interrupted ({entry.get("error", "")}){resume_note}'
    entry['state'] = 'pending'
    return 'pending', 'not launched yet' + resume_note


def refresh_all(manifest: dict[str, Any], sweep_dir: str) -> dict[str, tuple[str, str]]:
    polls = poll_launched(manifest, sweep_dir)
    return {name: refresh(job_from_entry(name, entry), entry, sweep_dir, polls.get(name))
            for name, entry in manifest['jobs'].items()}


def counts_line(states: dict[str, tuple[str, str]]) -> str:
    counts = {state: sum(s == state for s, _ in states.values()) for state in STATES}
    return f'{len(states)} jobs: ' + ', '.join(f'{counts[s]} {s}' for s in STATES)


def status_lines(states: dict[str, tuple[str, str]], sweep_dir: str) -> list[str]:
    width = max((len(name) for name in states), default=3)
    return [f'{sweep_dir}: {counts_line(states)}'] + [f'{name:<{width}}  {state:<11}  {detail}'
                                                      for name, (state, detail) in states.items()]


def plan(jobs: list[Job], manifest: dict[str, Any], sweep_dir: str, retry_failed: bool
         ) -> tuple[list[Job], str, dict[str, tuple[str, str]]]:
    """Adds the jobs to the manifest and decides which to launch; returns them, a one-line summary and each job's
    (state, detail). SweepError if a job folder holds a run made with other settings."""
    merge_jobs(manifest, jobs)
    polls = poll_launched({'jobs': {job.name: manifest['jobs'][job.name] for job in jobs}}, sweep_dir)
    states = {job.name: refresh(job, manifest['jobs'][job.name], sweep_dir, polls.get(job.name)) for job in jobs}
    conflicts = [f'{name}: {detail}' for name, (state, detail) in states.items()
                 if detail.startswith('folder holds another run')]
    if conflicts:
        raise SweepError(f'{len(conflicts)} job folder(s) hold runs made with other settings (nothing is '
                         f'overwritten; use another --save_dir): {conflicts[0]}')
    to_launch = [job for job in jobs if states[job.name][0] in ('pending', 'to relaunch')
                 or states[job.name][0] == 'failed' and retry_failed]
    return to_launch, f'{counts_line(states)}; {len(to_launch)} to launch', states


def job_names(text: str, known: Collection[str]) -> list[str]:
    """The job names of a comma-separated list. A swept setting's name holds commas itself ('mfql,alpha=30/TASK'), so
    each name is the fewest pieces, joined by commas, that name a job; SweepError where no name can be formed."""
    pieces = [piece.strip() for piece in text.split(',')]
    names, start = [], 0
    while start < len(pieces):
        if not pieces[start]:
            start += 1
            continue
        end = next((end for end in range(start + 1, len(pieces) + 1) if ','.join(pieces[start:end]) in known), None)
        if end is None:
            raise SweepError(f'--relaunch: {",".join(pieces[start:])!r} does not start with the name of a job of this '
                             'sweep (see --status for the names)')
        names.append(','.join(pieces[start:end]))
        start = end
    return names


def mark_for_relaunch(manifest: dict[str, Any], sweep_dir: str, which: str) -> list[str]:
    """Marks jobs for relaunch by hand: `which` is 'unknown' (every job whose scheduler cannot say whether it still
    runs) or comma-separated job names. Jobs still queued or running are cancelled through their launcher first;
    finished jobs are left alone. Returns the marked names; SweepError for a name the sweep does not have."""
    states = refresh_all(manifest, sweep_dir)
    if which == 'unknown':
        names = [name for name, (state, detail) in states.items() if state == 'queued' and UNKNOWN_MARK in detail]
    else:
        names = job_names(which, manifest['jobs'])
    names = [name for name in names if states[name][0] != 'done']
    by_launcher: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names:
        entry = manifest['jobs'][name]
        if entry.get('active'):
            by_launcher.setdefault(entry['launcher'], {})[name] = entry
    for launcher, entries in by_launcher.items():
        launcher_class(launcher)(sweep_dir, None).cancel(entries)
    for name in names:
        manifest['jobs'][name].update(state='interrupted', error='marked for relaunch by hand', active=False)
    return names
