"""Run a grid of `main.py` jobs on SLURM or on this machine, track them, and tabulate the results.

    python sweep.py --save_dir=exp/sweeps/paper --grid=paper --agents=mfql,fql --num_seeds=8 --launcher=slurm \\
        --partition=gpu --time_min=720 --save_interval=100000
    python sweep.py --save_dir=exp/sweeps/alpha --env_name=cube-single-play-singletask --agents=mfql \\
        --sweep=agent.alpha=30,100,300 --num_seeds=4 --launcher=local
    python sweep.py --save_dir=exp/sweeps/alpha --status
    python sweep.py --save_dir=exp/sweeps/alpha --report --write_presets=exp/alpha-presets.json

One job is one `main.py` run: one agent on one task, its seeds vmapped inside the process, with the swept agent
keys of one grid point. The grid is tasks (`--grid` and/or `--env_name`) × agents × the cartesian product of every
`--sweep=agent.KEY=V1,V2,...`; every other `main.py` flag (`--offline_steps=...`, `--agent.KEY=...`) is passed to
every job unchanged. A job's folder is named by its settings:
`<save_dir>/runs/<agent>[,KEY=V...]/<task>/<task>/seed<k>/` (main.py's own layout below `--save_dir=runs/<setting>
--run_name=<task>`).

Jobs are launched through submitit: `--launcher=slurm` (one sbatch array; logs in `<save_dir>/logs`),
`--launcher=local` (at most `--max_parallel` jobs at once on this machine, each on its own GPU when there are GPUs)
or `--launcher=debug` (one after another inside this process, for debugging). Every job runs `main.py --resume`,
and its submitit callable is checkpointable, so a SLURM job that is preempted or reaches its time limit is
requeued and continues from its last checkpoint (pass `--save_interval` to bound what a requeue recomputes).

Rerunning the same command is safe. `<save_dir>/manifest.json` (written atomically) records every job: its
command, a hash of its result-defining flags, its launcher id and log files, and its last known state. A job is
done when every seed's `final.json` reached the run's last step and its `flags.json` records the same
result-defining flags (paths, `--resume` and progress/logging switches excluded): done jobs are skipped; queued or
running ones are left alone; interrupted ones (killed, preempted, timed out) resume from their checkpoints;
failed ones (main.py exited with an error) are rerun only with `--retry_failed`. A job folder that holds a run made
with other settings is never overwritten: the sweep stops and names it. `--status` prints each job's state, with
the log of every failure; `--dry_run` prints the jobs and their exact commands and launches nothing. `--report`
writes the paper's tables and rliable's aggregates (`report.py`).
"""

import argparse
import ast
import dataclasses
import datetime
import difflib
import fcntl
import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import submitit

import runs

REPO_DIR = os.path.dirname(os.path.abspath(__file__))
MANIFEST = 'manifest.json'
MANIFEST_VERSION = 1
# main.py flags that name places or switch logging, not what is computed: they are left out of a job's config hash,
# so a sweep folder moved to another machine (or its data to another path) still recognises its finished runs.
NOT_RESULT_DEFINING = ('save_dir', 'run_name', 'dataset_dir', 'resume', 'progress_bar', 'wandb', 'wandb_project',
                       'eval_parallel_envs', 'generate_missing_data')
# main.py flags the sweep sets itself for every job.
SWEEP_OWNED = ('env_name', 'seed', 'num_seeds', 'seeds', 'save_dir', 'run_name', 'resume', 'progress_bar', 'agent')
STATES = ('done', 'running', 'failed', 'pending')
# SLURM job states (sacct) after which a job that did not finish is resumed by the next launch, not retried.
SLURM_INTERRUPTED = {'TIMEOUT', 'PREEMPTED', 'NODE_FAIL', 'CANCELLED', 'BOOT_FAIL', 'DEADLINE', 'COMPLETED'}
SLURM_FAILED = {'FAILED', 'OUT_OF_MEMORY'}
KILLED_MARK = 'main.py was killed by signal'


class SweepError(Exception):
    """Bad input or an unsafe sweep folder; the message is one line naming the problem and the remedy."""


# ------------------------------------------------------------------------------------------------------ jobs
@dataclasses.dataclass(frozen=True)
class Job:
    """One main.py run of the sweep.

    `flags` are main.py's flags in order (without the interpreter and script); `run_dir` is main.py's task folder
    (holding `seed<k>/`), relative to the sweep folder; `overrides` are the swept agent keys of this grid point as
    given on the command line."""

    name: str  # '<setting>/<task>', unique within the sweep
    setting: str  # '<agent>[,KEY=VALUE...]': the report's column
    agent: str
    task: str
    seeds: tuple[int, ...]
    overrides: tuple[tuple[str, str], ...]
    flags: tuple[str, ...]
    run_dir: str

    @property
    def command(self) -> list[str]:
        return ['python', 'main.py', *self.flags]

    @property
    def config_hash(self) -> str:
        return config_hash(self.flags)

    def seed_dirs(self, sweep_dir: str) -> list[str]:
        return runs.seed_dirs(os.path.join(sweep_dir, self.run_dir), self.seeds)


def flag_name(token: str) -> str:
    """'--agent.alpha=3' -> 'agent.alpha'; '--resume' -> 'resume'; '--noresume' stays 'noresume'."""
    return token[2:].split('=', 1)[0] if token.startswith('--') else token


def result_flags(flags: list[str] | tuple[str, ...]) -> list[str]:
    """The flags that define what a run computes (`NOT_RESULT_DEFINING` left out), in order."""
    return [token for token in flags if flag_name(token).removeprefix('no') not in NOT_RESULT_DEFINING
            and flag_name(token) not in NOT_RESULT_DEFINING]


def config_hash(flags: list[str] | tuple[str, ...]) -> str:
    return hashlib.sha256(json.dumps(result_flags(flags)).encode()).hexdigest()[:16]


def split_values(text: str) -> list[str]:
    """'30,100' -> ['30', '100']; commas inside brackets stay: '(256,256),(512,512)' -> ['(256,256)', '(512,512)']."""
    values, depth, current = [], 0, ''
    for char in text:
        depth += char in '([{'
        depth -= char in ')]}'
        if char == ',' and depth == 0:
            values.append(current)
            current = ''
        else:
            current += char
    values.append(current)
    return [value.strip() for value in values]


def parse_sweeps(specs: list[str]) -> list[tuple[str, list[str]]]:
    """['agent.alpha=30,100'] -> [('alpha', ['30', '100'])]; SweepError on a malformed or repeated spec."""
    sweeps: list[tuple[str, list[str]]] = []
    for spec in specs:
        match = re.match(r'^agent\.([A-Za-z0-9_.]+)=(.+)$', spec)
        if match is None:
            raise SweepError(f'--sweep={spec}: expected agent.KEY=V1,V2,... (e.g. --sweep=agent.alpha=30,100,300)')
        key, values = match.group(1), split_values(match.group(2))
        if any(not value for value in values):
            raise SweepError(f'--sweep={spec}: empty value in the list')
        if len(set(values)) != len(values):
            raise SweepError(f'--sweep={spec}: repeated value')
        if key in (k for k, _ in sweeps):
            raise SweepError(f'--sweep: agent.{key} is swept twice; give all its values in one --sweep')
        sweeps.append((key, values))
    return sweeps


def folder_safe(text: str) -> str:
    """A setting as a folder name: characters outside [A-Za-z0-9._=,()+-] become '_'."""
    return re.sub(r'[^A-Za-z0-9._=,()+\-]', '_', text)


def setting_name(agent: str, overrides: tuple[tuple[str, str], ...]) -> str:
    return ','.join([agent, *(f'{key}={value.replace(" ", "")}' for key, value in overrides)])


def seed_flags(args: argparse.Namespace) -> tuple[list[str], tuple[int, ...]]:
    """main.py's seed flags for every job and the seeds they give (main.py's rule)."""
    if args.seeds:
        try:
            seeds = tuple(int(seed) for seed in args.seeds.split(','))
        except ValueError:
            raise SweepError(f'--seeds must be comma-separated integers, got {args.seeds}')
        if len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
            raise SweepError(f'--seeds must be distinct non-negative integers, got {args.seeds}')
        return [f'--seeds={",".join(map(str, seeds))}'], seeds
    if args.num_seeds < 1 or args.seed < 0:
        raise SweepError(f'--num_seeds must be >= 1 and --seed >= 0, got {args.num_seeds} and {args.seed}')
    flags = ([f'--seed={args.seed}'] if args.seed else []) + [f'--num_seeds={args.num_seeds}']
    return flags, tuple(range(args.seed, args.seed + args.num_seeds))


def grid_tasks(args: argparse.Namespace) -> list[str]:
    """The grid's tasks: `--grid` names (configs.paper_tasks) then `--env_name` entries, without duplicates."""
    import configs
    from datasets import names
    tasks: list[str] = []
    for grid in [g.strip() for g in args.grid.split(',') if g.strip()]:
        try:
            tasks += configs.paper_tasks(grid)
        except ValueError as error:
            raise SweepError(f'--grid: {error}')
    if args.env_name:
        try:
            tasks += names.expand_env_names(args.env_name)
        except ValueError as error:
            raise SweepError(f'--env_name: {error}')
    if not tasks:
        raise SweepError('no tasks: give --grid=paper (or paper-d4rl) and/or --env_name=TASK,FAMILY,...')
    return list(dict.fromkeys(tasks))


def agent_config_keys(agent: str) -> set[str]:
    """Top-level keys of agents/<agent>.py's get_config() (SweepError if there is no such registered agent)."""
    from agents import agent_file, get_agent_config
    try:
        agent_file(agent)
    except ValueError as error:
        raise SweepError(f'--agents: {error}')
    return set(get_agent_config(agent).keys())


def main_flag_names() -> list[str]:
    """main.py's own flags (its `_OWN_FLAGS`), read from its source: importing main.py would define its absl flags in
    this process and make ml_collections parse this command line's --agent.* flags against MFQL's config."""
    with open(os.path.join(REPO_DIR, 'main.py')) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '_OWN_FLAGS' for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise RuntimeError('main.py defines no _OWN_FLAGS tuple')  # a broken checkout, not a user error


def passthrough_flags(extra: list[str]) -> tuple[list[str], list[str]]:
    """Splits the unknown command-line arguments into main.py flags and --agent.KEY flags, checking each name
    against main.py's flags (SweepError with close matches otherwise)."""
    allowed = [name for name in main_flag_names() if name not in SWEEP_OWNED]
    main_flags, agent_flags = [], []
    for token in extra:
        if token.startswith('--agent.') and '=' in token:
            agent_flags.append(token)
            continue
        name = flag_name(token)
        bare = name[2:] if name.startswith('no') and name[2:] in allowed else name
        if not token.startswith('--') or bare not in allowed:
            if bare in SWEEP_OWNED:
                raise SweepError(f'{token}: sweep.py sets --{bare} for every job itself; see python sweep.py --help')
            close = difflib.get_close_matches(bare, allowed + list(SWEEP_OWNED), n=3)
            hint = f'; did you mean {", ".join("--" + c for c in close)}?' if close else ''
            raise SweepError(f'unknown argument {token!r}: not a sweep.py or main.py flag{hint}')
        main_flags.append(token)
    return main_flags, agent_flags


def build_jobs(args: argparse.Namespace, extra: list[str], sweep_dir: str) -> list[Job]:
    """The grid: tasks × agents × the cartesian product of the swept values, every flag checked first.

    A `--agent.KEY` flag or a `--sweep=agent.KEY=...` goes to the agents whose config has KEY (sweeping MFQL's
    time_steps with --agents=mfql,fql sweeps MFQL only); a key that no agent has is an error."""
    tasks = grid_tasks(args)
    agents = [a.strip() for a in args.agents.split(',') if a.strip()]
    if not agents or len(set(agents)) != len(agents):
        raise SweepError(f'--agents must be distinct agent names, e.g. mfql,fql; got {args.agents!r}')
    sweeps = parse_sweeps(args.sweep)
    main_flags, agent_flags = passthrough_flags(extra)
    fixed_keys = [flag_name(token)[len('agent.'):] for token in agent_flags]
    for key, _ in sweeps:
        if key in fixed_keys:
            raise SweepError(f'agent.{key} is both swept (--sweep) and fixed (--agent.{key}); keep one')
    agent_keys = {agent: agent_config_keys(agent) for agent in agents}
    for key in [*fixed_keys, *(k for k, _ in sweeps)]:
        if not any(key.split('.')[0] in keys for keys in agent_keys.values()):
            every_key = sorted(set().union(*agent_keys.values()))
            close = difflib.get_close_matches(key, every_key, n=3)
            hint = f'; did you mean {", ".join(close)}?' if close else ''
            raise SweepError(f"agent config key '{key}' is not a key of {', '.join(f'agents/{a}.py' for a in agents)}"
                             f'{hint}')
    seed_args, seeds = seed_flags(args)
    jobs = []
    for agent in agents:
        # --agent.KEY flags and sweeps go to the agents that have KEY (e.g. actor_arch: MFQL's only).
        has = lambda key: key.split('.')[0] in agent_keys[agent]  # noqa: E731
        own_flags = [token for token, key in zip(agent_flags, fixed_keys) if has(key)]
        own_sweeps = [(key, values) for key, values in sweeps if has(key)]
        for values in itertools.product(*(values for _, values in own_sweeps)):
            overrides = tuple((key, value) for (key, _), value in zip(own_sweeps, values))
            setting = setting_name(agent, overrides)
            for task in tasks:
                save_dir = os.path.join(sweep_dir, 'runs', folder_safe(setting))
                flags = (f'--agent=agents/{agent}.py', f'--env_name={task}', *seed_args, f'--save_dir={save_dir}',
                         f'--run_name={task}', *main_flags, *own_flags,
                         *(f'--agent.{key}={value.replace(" ", "")}' for key, value in overrides),
                         '--resume', '--progress_bar=false')
                jobs.append(Job(name=f'{setting}/{task}', setting=setting, agent=agent, task=task, seeds=seeds,
                                overrides=overrides, flags=flags,
                                run_dir=os.path.join('runs', folder_safe(setting), task, task)))
    folders = [job.run_dir for job in jobs]
    clash = next((folder for folder in folders if folders.count(folder) > 1), None)
    if clash is not None:
        raise SweepError(f'two grid points share the folder {clash} (values that differ only in characters that are '
                         'not allowed in folder names); rename the values')
    return jobs


# -------------------------------------------------------------------------------------------------- manifest
def now() -> str:
    return datetime.datetime.now().isoformat(timespec='seconds')


def manifest_path(sweep_dir: str) -> str:
    return os.path.join(sweep_dir, MANIFEST)


def read_manifest(sweep_dir: str) -> dict[str, Any]:
    path = manifest_path(sweep_dir)
    if not os.path.exists(path):
        return {'version': MANIFEST_VERSION, 'jobs': {}}
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise SweepError(f'cannot read {path} ({error}); it is written atomically, so it was edited by hand or the '
                         'disk failed: restore it from the job folders by moving it away and rerunning the sweep')
    if manifest.get('version') != MANIFEST_VERSION:
        raise SweepError(f'{path} has manifest version {manifest.get("version")!r}; this sweep.py reads version '
                         f'{MANIFEST_VERSION}')
    return manifest


def write_manifest(sweep_dir: str, manifest: dict[str, Any]) -> None:
    runs.write_atomically(manifest_path(sweep_dir), json.dumps(manifest, indent=1) + '\n')


def job_entry(job: Job) -> dict[str, Any]:
    """A job's manifest entry before any launch."""
    return {'setting': job.setting, 'agent': job.agent, 'task': job.task, 'seeds': list(job.seeds),
            'overrides': dict(job.overrides), 'run_dir': job.run_dir, 'command': shlex.join(job.command),
            'config_hash': job.config_hash, 'state': 'pending', 'attempts': 0}


def job_from_entry(name: str, entry: dict[str, Any]) -> Job:
    command = shlex.split(entry['command'])
    return Job(name=name, setting=entry['setting'], agent=entry['agent'], task=entry['task'],
               seeds=tuple(entry['seeds']), overrides=tuple(entry['overrides'].items()), flags=tuple(command[2:]),
               run_dir=entry['run_dir'])


def merge_jobs(manifest: dict[str, Any], jobs: list[Job]) -> None:
    """Adds new jobs to the manifest; a known job whose settings changed is refused (its folder holds the old ones)."""
    for job in jobs:
        entry = manifest['jobs'].get(job.name)
        if entry is None:
            manifest['jobs'][job.name] = job_entry(job)
        elif entry['config_hash'] != job.config_hash:
            raise SweepError(f'job {job.name} was recorded with `{entry["command"]}`; this sweep would run '
                             f'`{shlex.join(job.command)}`: the flags differ, so use another --save_dir for them')
        else:
            entry['command'] = shlex.join(job.command)  # paths may differ (the folder was moved); the hash did not


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


# ---------------------------------------------------------------------------------------------------- states
def folder_conflict(job: Job, sweep_dir: str) -> str | None:
    """A one-line description if a seed folder of `job` holds a run made with other result-defining flags."""
    for directory in job.seed_dirs(sweep_dir):
        recorded = runs.read_flags(directory)
        if recorded is not None and config_hash(runs.recorded_arguments(recorded)) != job.config_hash:
            return (f'{directory} was trained with `{shlex.join(result_flags(runs.recorded_arguments(recorded)))}`, '
                    f'not `{shlex.join(result_flags(job.flags))}`')
    return None


def finished_step(job: Job, sweep_dir: str) -> int | None:
    """The final step if every seed reached its last step (final.json) with the job's flags, else None."""
    steps = set()
    for directory in job.seed_dirs(sweep_dir):
        recorded = runs.read_flags(directory)
        step = runs.finished_at(directory)
        if step is None or config_hash(runs.recorded_arguments(recorded)) != job.config_hash:
            return None
        steps.add(step)
    return steps.pop() if len(steps) == 1 else None


def last_checkpoint_step(job: Job, sweep_dir: str) -> int | None:
    """The newest step every seed has a checkpoint for (main.py resumes from it), without importing training/."""
    return runs.common_checkpoint_step(job.seed_dirs(sweep_dir))


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


def outcome_of(entry: dict[str, Any], logs_dir: str) -> tuple[str, str] | None:
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


def error_line(trace: str) -> str:
    """The last line of main.py's error (what the job function raised) from a submitit trace."""
    for line in reversed(trace.strip().splitlines()):
        if line.startswith('MainRunError: '):
            return line[len('MainRunError: '):]
    lines = [line for line in trace.strip().splitlines() if line.strip()]
    return lines[-1] if lines else 'no error message'


def refresh(job: Job, entry: dict[str, Any], sweep_dir: str) -> tuple[str, str]:
    """(state, detail) of a job from its folder and its last launch, updating `entry['state']` in place.

    States: done; running (queued jobs count as pending but are never launched twice: `entry['active']`);
    failed (main.py exited with an error; rerun with --retry_failed); pending (never launched, or interrupted:
    the next launch resumes it)."""
    logs_dir = os.path.join(sweep_dir, 'logs')
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
        launcher, launcher_id = entry.get('launcher'), entry.get('launcher_id')
        outcome = outcome_of(entry, logs_dir) if launcher in ('local', 'slurm') else None
        if outcome is not None:
            kind, text = outcome
            if kind == 'error' and KILLED_MARK not in text:
                state, entry['error'] = 'failed', error_line(text)
            else:
                state = 'interrupted'
                entry['error'] = error_line(text) if kind == 'error' else 'main.py ended without a final result'
        elif launcher == 'local':
            alive = entry.get('host') == socket.gethostname() and process_alive(int(launcher_id))
            if alive:
                entry['active'] = True
                return 'running', f'local job {launcher_id}{resume_note.replace("resumes from", "checkpoint at")}'
            state, entry['error'] = 'interrupted', 'the local job stopped without a result (its machine or sweep.py ' \
                                                   'was killed)'
        elif launcher == 'slurm':
            slurm_state = submitit.SlurmJob(folder=logs_dir, job_id=launcher_id).state.split(' ')[0].upper()
            if slurm_state in ('RUNNING', 'COMPLETING', 'CONFIGURING'):
                entry['active'] = True
                return 'running', f'SLURM job {launcher_id}'
            if slurm_state in SLURM_FAILED:
                state, entry['error'] = 'failed', f'SLURM state {slurm_state}'
            elif slurm_state in SLURM_INTERRUPTED:
                state, entry['error'] = 'interrupted', f'SLURM state {slurm_state}'
            else:  # PENDING, REQUEUED, ... or UNKNOWN when sacct cannot be asked: never submit it twice
                entry['active'] = True
                return 'pending', f'queued on SLURM as {launcher_id} (state {slurm_state})'
        else:  # a debug launch runs inside sweep.py: if it is recorded as running, that process died
            state, entry['error'] = 'interrupted', 'sweep.py stopped while the job ran'
        entry['state'] = state
    if state == 'failed':
        return 'failed', f'{entry.get("error", "failed")}; log: {entry.get("log", "the console of the debug launch")}'
    if state == 'interrupted':
        return 'pending', f'interrupted ({entry.get("error", "")}){resume_note}'
    entry['state'] = 'pending'
    return 'pending', f'not launched yet{resume_note}' if not entry.get('attempts') else f'pending{resume_note}'


def refresh_all(manifest: dict[str, Any], sweep_dir: str) -> dict[str, tuple[str, str]]:
    return {name: refresh(job_from_entry(name, entry), entry, sweep_dir) for name, entry in manifest['jobs'].items()}


def print_status(manifest: dict[str, Any], states: dict[str, tuple[str, str]], sweep_dir: str) -> None:
    counts = {state: sum(s == state for s, _ in states.values()) for state in STATES}
    print(f'{sweep_dir}: {len(states)} jobs: ' + ', '.join(f'{counts[s]} {s}' for s in STATES))
    width = max((len(name) for name in states), default=3)
    for name, (state, detail) in states.items():
        print(f'{name:<{width}}  {state:<7}  {detail}')


# -------------------------------------------------------------------------------------------------- launching
class MainRunError(RuntimeError):
    """main.py exited with an error or was killed; the message is its last error line."""


class MainRun(submitit.helpers.Checkpointable):
    """The submitit callable of one job: runs main.py (with --resume) in the repository and raises MainRunError if it
    fails. Checkpointable: on a SLURM preemption or time limit submitit requeues it, and main.py resumes."""

    def __init__(self, command: list[str], environment: dict[str, str] | None = None):
        self.command = command
        self.environment = environment or {}

    def __call__(self) -> str:
        environment = dict(os.environ, **self.environment)
        environment.setdefault('MUJOCO_GL', 'egl')  # headless rendering for OGBench's evaluation envs
        command = [sys.executable, *self.command[1:]] if self.command[0] == 'python' else self.command
        try:
            submitit.helpers.CommandFunction(command, cwd=REPO_DIR, env=environment, verbose=True)()
        except submitit.core.utils.FailedJobError as error:
            cause = error.__cause__
            code = cause.returncode if isinstance(cause, subprocess.CalledProcessError) else None
            if code is not None and code < 0:
                raise MainRunError(f'{KILLED_MARK} {signal.Signals(-code).name}') from None
            lines = [line for line in str(error).splitlines() if line.strip()]
            error_lines = [line for line in lines if 'error' in line.lower()]
            last = (error_lines or lines or ['no output on stderr'])[-1].strip()
            raise MainRunError(f'main.py exited with code {code}: {last}') from None
        return 'finished'


def local_gpus() -> list[int]:
    """GPU indices visible here: CUDA_VISIBLE_DEVICES if set, else `nvidia-smi -L`; [] without GPUs."""
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        return [int(x) for x in visible.split(',') if x.strip().isdigit()]
    if shutil.which('nvidia-smi') is None:
        return []
    try:
        listing = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return list(range(sum(line.startswith('GPU ') for line in listing.splitlines())))


def record_launch(entry: dict[str, Any], launcher: str, job: Any) -> None:
    entry.update(state='running' if launcher != 'slurm' else 'submitted', launcher=launcher,
                 launcher_id=str(job.job_id), host=socket.gethostname(), submitted=now(),
                 attempts=entry.get('attempts', 0) + 1, log=str(job.paths.stderr), stdout=str(job.paths.stdout))
    entry.pop('error', None)
    entry.pop('ended', None)


def record_outcome(entry: dict[str, Any], error: BaseException | None, job: Job, sweep_dir: str) -> str:
    """Records how a local or debug job ended; returns its state."""
    entry['ended'] = now()
    if error is None:
        entry['state'] = 'done' if finished_step(job, sweep_dir) is not None else 'interrupted'
        if entry['state'] == 'interrupted':
            entry['error'] = 'main.py ended without a final result'
    else:
        message = error_line(str(error))
        entry['state'] = 'interrupted' if KILLED_MARK in message else 'failed'
        entry['error'] = message
    return entry['state']


def launch_local(jobs: list[Job], manifest: dict[str, Any], sweep_dir: str, args: argparse.Namespace) -> None:
    """Runs the jobs here through submitit's LocalExecutor, at most --max_parallel at once (LocalExecutor has no
    cap of its own); each job gets its own GPU when there are GPUs (round robin when there are more slots)."""
    gpus = local_gpus()
    slots = args.max_parallel or max(1, len(gpus))
    executor = submitit.LocalExecutor(folder=os.path.join(sweep_dir, 'logs'))
    executor.update_parameters(timeout_min=args.time_min or 60 * 24 * 365)
    queue, active = list(jobs), {}
    free = list(range(slots))
    while queue or active:
        while queue and free:
            job, slot = queue.pop(0), free.pop(0)
            environment = {}
            if gpus:
                executor.update_parameters(gpus_per_node=1, visible_gpus=(gpus[slot % len(gpus)],))
                if slots > len(gpus):  # jobs share a GPU: JAX must not take most of its memory up front
                    environment['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'false'
            submitted = executor.submit(MainRun(job.command, environment))
            record_launch(manifest['jobs'][job.name], 'local', submitted)
            write_manifest(sweep_dir, manifest)
            print(f'[start] {job.name} (local job {submitted.job_id}): {shlex.join(job.command)}', flush=True)
            active[job.name] = (job, submitted, slot)
        time.sleep(args.poll_seconds)
        for name in [name for name, (_, submitted, _) in active.items() if submitted.done()]:
            job, submitted, slot = active.pop(name)
            free.append(slot)
            state = record_outcome(manifest['jobs'][name], submitted.exception(), job, sweep_dir)
            write_manifest(sweep_dir, manifest)
            detail = '' if state == 'done' else f': {manifest["jobs"][name]["error"]}; log: {submitted.paths.stderr}'
            print(f'[{state}] {name}{detail}', flush=True)


def launch_debug(jobs: list[Job], manifest: dict[str, Any], sweep_dir: str) -> None:
    """Runs the jobs one after another inside this process (submitit's DebugExecutor); their output goes to the
    console."""
    executor = submitit.DebugExecutor(folder=os.path.join(sweep_dir, 'logs'))
    for job in jobs:
        submitted = executor.submit(MainRun(job.command))
        entry = manifest['jobs'][job.name]
        record_launch(entry, 'debug', submitted)
        entry['log'] = 'the console of the debug launch'
        write_manifest(sweep_dir, manifest)
        print(f'[start] {job.name} (debug): {shlex.join(job.command)}', flush=True)
        state = record_outcome(entry, submitted.exception(), job, sweep_dir)  # exception() runs it, without pdb
        write_manifest(sweep_dir, manifest)
        print(f'[{state}] {job.name}' + ('' if state == 'done' else f': {entry["error"]}'), flush=True)


def slurm_parameters(args: argparse.Namespace, num_jobs: int) -> dict[str, Any]:
    """submitit AutoExecutor parameters of the sbatch array (one job per array task)."""
    additional = {}
    for option in args.slurm_option:
        key, separator, value = option.partition('=')
        if not key or not separator:
            raise SweepError(f'--slurm_option={option}: expected KEY=VALUE (an sbatch option without its dashes, e.g. '
                             'constraint=a100)')
        additional[key] = value
    parameters = dict(name=args.job_name, timeout_min=args.time_min or 24 * 60, gpus_per_node=args.gpus_per_job,
                      cpus_per_task=args.cpus_per_job, slurm_array_parallelism=min(args.array_parallelism, num_jobs),
                      slurm_setup=list(args.slurm_setup))
    optional = dict(slurm_partition=args.partition, mem_gb=args.mem_gb, slurm_account=args.account,
                    slurm_qos=args.qos, slurm_additional_parameters=additional or None)
    parameters.update({key: value for key, value in optional.items() if value})
    return parameters


def launch_slurm(jobs: list[Job], manifest: dict[str, Any], sweep_dir: str, args: argparse.Namespace) -> None:
    """Submits the jobs as one sbatch array (submitit) and returns; --status follows them."""
    try:
        executor = submitit.AutoExecutor(folder=os.path.join(sweep_dir, 'logs'), cluster='slurm')
    except RuntimeError as error:
        raise SweepError(f'--launcher=slurm: {error} (run sweep.py on a login node of the cluster)')
    executor.update_parameters(**slurm_parameters(args, len(jobs)))
    with executor.batch():
        submitted = [executor.submit(MainRun(job.command)) for job in jobs]
    for job, slurm_job in zip(jobs, submitted):
        record_launch(manifest['jobs'][job.name], 'slurm', slurm_job)
    write_manifest(sweep_dir, manifest)
    first = submitted[0].job_id.split('_')[0]
    print(f'submitted {len(jobs)} job(s) as SLURM array {first}; follow with: python sweep.py '
          f'--save_dir={sweep_dir} --status')


# ------------------------------------------------------------------------------------------------ the command
def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument('--save_dir', required=True, help='the sweep folder (manifest, logs, runs, report)')
    what = parser.add_argument_group('the grid')
    what.add_argument('--grid', default='', help="'paper' (the 50 OGBench tasks of configs.py) and/or 'paper-d4rl' "
                                                 '(its 18 D4RL tasks), comma-separated')
    what.add_argument('--env_name', default='', help='tasks and families as main.py --env_name takes them')
    from agents import registered_agents
    what.add_argument('--agents', default='mfql,fql', help=f'comma-separated agents (agents/<name>.py), of '
                                                         f'{",".join(registered_agents())}')
    what.add_argument('--num_seeds', type=int, default=8, help='seeds per job, vmapped inside it')
    what.add_argument('--seed', type=int, default=0, help='first seed')
    what.add_argument('--seeds', default='', help='explicit comma-separated seeds (overrides --seed/--num_seeds)')
    what.add_argument('--sweep', action='append', default=[], metavar='agent.KEY=V1,V2',
                      help='swept agent config values (repeat for a cartesian product)')
    how = parser.add_argument_group('launching')
    how.add_argument('--launcher', choices=('local', 'slurm', 'debug'), default='local')
    how.add_argument('--max_parallel', type=int, default=0, help='local: jobs at once (default: one per GPU, else 1)')
    how.add_argument('--retry_failed', action='store_true', help='also rerun failed jobs (they resume)')
    how.add_argument('--dry_run', action='store_true', help='print the jobs and their commands; launch nothing')
    how.add_argument('--time_min', type=int, default=0, help='time limit per job in minutes (SLURM default 1440; '
                                                             'local default none)')
    how.add_argument('--poll_seconds', type=float, default=5.0, help='local: seconds between checks of running jobs')
    slurm = parser.add_argument_group('SLURM (--launcher=slurm)')
    slurm.add_argument('--partition', default='')
    slurm.add_argument('--gpus_per_job', type=int, default=1)
    slurm.add_argument('--cpus_per_job', type=int, default=8, help='CPUs per job (evaluation envs run on them)')
    slurm.add_argument('--mem_gb', type=float, default=0, help='memory per job in GB (default: the partition\'s)')
    slurm.add_argument('--array_parallelism', type=int, default=256, help='array tasks running at once')
    slurm.add_argument('--account', default='')
    slurm.add_argument('--qos', default='')
    slurm.add_argument('--job_name', default='mfql')
    slurm.add_argument('--slurm_option', action='append', default=[], metavar='KEY=VALUE',
                       help='any other sbatch option, e.g. constraint=a100 (repeatable)')
    slurm.add_argument('--slurm_setup', action='append', default=[], metavar='COMMAND',
                       help='shell line run before each job, e.g. "source venv/bin/activate" (repeatable)')
    other = parser.add_argument_group('other actions')
    other.add_argument('--status', action='store_true', help="print every job's state and exit")
    other.add_argument('--report', action='store_true', help='write the tables and plots of the finished jobs')
    other.add_argument('--write_presets', default='', metavar='FILE',
                       help='with --report: save the best swept values per environment as a main.py --presets_file')
    other.add_argument('--bootstrap_reps', type=int, default=50_000, help='rliable bootstrap replications')
    args, extra = parser.parse_known_args(argv)
    if args.max_parallel < 0 or args.time_min < 0 or args.poll_seconds <= 0 or args.bootstrap_reps < 1:
        parser.error('--max_parallel and --time_min must be >= 0, --poll_seconds > 0 and --bootstrap_reps >= 1')
    if args.write_presets and not args.report:
        parser.error('--write_presets needs --report')
    return args, extra


def run(argv: list[str]) -> int:
    args, extra = parse_args(argv)
    sweep_dir = os.path.abspath(os.path.expanduser(args.save_dir))
    if args.status or args.report:
        if extra or args.grid or args.env_name or args.sweep:
            raise SweepError('--status and --report read the sweep folder only; give just --save_dir (and the '
                             'report options)')
        manifest = read_manifest(sweep_dir)
        if not manifest['jobs']:
            raise SweepError(f'{sweep_dir} has no {MANIFEST}: no sweep was launched there')
        states = refresh_all(manifest, sweep_dir)
        if args.status:
            print_status(manifest, states, sweep_dir)
            return 0
        import report
        try:
            report.write_report(sweep_dir, manifest, states, args.bootstrap_reps, args.write_presets)
        except ValueError as error:
            raise SweepError(str(error))
        return 0
    return launch(build_jobs(args, extra, sweep_dir), args, sweep_dir)


def launch(jobs: list[Job], args: argparse.Namespace, sweep_dir: str) -> int:
    """Records `jobs` in the sweep folder's manifest and launches those not done, queued or running (failed ones only
    with args.retry_failed) with args.launcher; 0 when none failed. `args` are sweep.py's options (`parse_args`)."""
    if args.dry_run:
        manifest = read_manifest(sweep_dir)
        to_launch, summary, states = plan(jobs, manifest, sweep_dir, args)
        for job in jobs:
            action = 'launch' if job in to_launch else states[job.name][0]
            print(f'[{action}] {job.name}\n    {shlex.join(job.command)}')
        print(summary)
        if args.launcher == 'slurm' and to_launch:
            print('sbatch parameters (submitit): ' + json.dumps(slurm_parameters(args, len(to_launch))))
        return 0
    os.makedirs(sweep_dir, exist_ok=True)
    with SweepLock(sweep_dir):  # from reading the manifest to the last launch: no job is started twice
        manifest = read_manifest(sweep_dir)
        to_launch, summary, _ = plan(jobs, manifest, sweep_dir, args)
        if not to_launch:
            print(f'nothing to launch: {summary}')
            return 0
        write_manifest(sweep_dir, manifest)
        print(f'{sweep_dir}: {summary} ({args.launcher})', flush=True)
        if args.launcher == 'local':
            launch_local(to_launch, manifest, sweep_dir, args)
        elif args.launcher == 'debug':
            launch_debug(to_launch, manifest, sweep_dir)
        else:
            launch_slurm(to_launch, manifest, sweep_dir, args)
            return 0
        states = refresh_all(manifest, sweep_dir)
        write_manifest(sweep_dir, manifest)
    failed = [name for name, (state, _) in states.items() if state == 'failed']
    done = sum(state == 'done' for state, _ in states.values())
    print(f'{done} of {len(states)} jobs done' + (f'; {len(failed)} failed (python sweep.py --save_dir={sweep_dir} '
                                                   '--status shows their logs)' if failed else ''))
    return 1 if failed else 0


def plan(jobs: list[Job], manifest: dict[str, Any], sweep_dir: str, args: argparse.Namespace
         ) -> tuple[list[Job], str, dict[str, tuple[str, str]]]:
    """Adds the jobs to the manifest and decides which to launch; returns them, a one-line summary and each job's
    (state, detail). SweepError if a job folder holds a run made with other settings."""
    merge_jobs(manifest, jobs)
    states = {job.name: refresh(job, manifest['jobs'][job.name], sweep_dir) for job in jobs}
    conflicts = [f'{name}: {detail}' for name, (state, detail) in states.items()
                 if detail.startswith('folder holds another run')]
    if conflicts:
        raise SweepError(f'{len(conflicts)} job folder(s) hold runs made with other settings (nothing is '
                         f'overwritten; use another --save_dir): {conflicts[0]}')
    to_launch = [job for job in jobs if states[job.name][0] == 'pending' and not manifest['jobs'][job.name]['active']
                 or states[job.name][0] == 'failed' and args.retry_failed]
    counts = {state: sum(states[job.name][0] == state for job in jobs) for state in STATES}
    if counts['failed'] and not args.retry_failed and not args.dry_run:
        print(f'{counts["failed"]} failed job(s) are not rerun (see --status; --retry_failed reruns them)')
    summary = f'{len(jobs)} jobs: ' + ', '.join(f'{counts[s]} {s}' for s in STATES) + f'; {len(to_launch)} to launch'
    return to_launch, summary, states


def main() -> None:
    try:
        sys.exit(run(sys.argv[1:]))
    except SweepError as error:
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
