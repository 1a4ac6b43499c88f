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
every job unchanged (path flags made absolute). A job's folder is named by its settings:
`<save_dir>/runs/<agent>[,KEY=V...]/<task>/<task>/seed<k>/` (main.py's own layout below `--save_dir=runs/<setting>
--run_name=<task>`).

Jobs are launched by a launcher (`sweeps/launchers/`, one module each; `--launcher=PATH.py` takes any file defining
one): `slurm` (one sbatch array; logs in `<save_dir>/logs`), `local` (at most `--max_parallel` jobs at once here,
each on its own GPU when there are GPUs) or `debug` (one after another inside this process). Every job runs
`main.py --resume`; on SLURM a job signalled before its time limit or a preemption checkpoints and is requeued, and
continues from there.

Rerunning the same command is safe. `<save_dir>/manifest.json` (written atomically) records every job: its
command, a hash of its result-defining flags (paths, `--resume` and logging switches excluded; a presets file by
its content), its launches and its last known state. A job is done when every seed's `final.json` reached the run's
last step and its `flags.json` records the same result-defining flags: done jobs are skipped; queued or running ones
are left alone; interrupted ones resume from their checkpoints; failed ones (main.py exited with an error) are
rerun only with `--retry_failed`. A job folder that holds a run made with other settings is never overwritten.
`--status` prints each job's state, with the log of every failure; `--relaunch` marks jobs for relaunch by hand
(where the scheduler cannot say whether they still run); `--dry_run` prints the jobs and their exact commands and
launches nothing; `--report` writes the paper's tables and rliable's aggregates (`sweeps/report.py`).
"""

import argparse
import os
import shlex
import sys

from sweeps import SweepError, grid, manifest
from sweeps.launchers import launcher_class, registered_launchers


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """sweep.py's options and the arguments it passes on to main.py. The launcher's own options are added once
    `--launcher` is known (a launcher file brings its own)."""
    first = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    first.add_argument('--launcher', default='local')
    launcher = launcher_class(first.parse_known_args(argv)[0].launcher)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=DefaultsHelpFormatter, allow_abbrev=False)
    parser.add_argument('--save_dir', required=True, help='the sweep folder (manifest, logs, runs, report)')
    what = parser.add_argument_group('the grid')
    what.add_argument('--grid', default='', help="'paper' (the 50 state-based OGBench tasks of configs.py), "
                                                 "'paper-visual' (its 5 visual tasks), 'paper-ogbench' (all 55) and/or "
                                                 "'paper-d4rl' (its 18 D4RL tasks), comma-separated")
    what.add_argument('--env_name', default='', help='tasks and families as main.py --env_name takes them')
    what.add_argument('--agents', default='mfql,fql', help='comma-separated agents (agents/<name>.py)')
    what.add_argument('--num_seeds', type=int, default=8, help='seeds per job, vmapped inside it')
    what.add_argument('--seed', type=int, default=0, help='first seed')
    what.add_argument('--seeds', default='', help='explicit comma-separated seeds (overrides --seed/--num_seeds)')
    what.add_argument('--sweep', action='append', default=[], metavar='agent.KEY=V1,V2',
                      help='swept agent config values (repeat for a cartesian product)')
    how = parser.add_argument_group('launching')
    how.add_argument('--launcher', default='local',
                     help=f'{", ".join(registered_launchers())}, or the path of a file defining LAUNCHER')
    how.add_argument('--retry_failed', action='store_true', help='also rerun failed jobs (they resume)')
    how.add_argument('--dry_run', action='store_true', help='print the jobs and their commands; launch nothing')
    how.add_argument('--time_min', type=int, default=0, help='time limit per job in minutes (0: SLURM 1440, local '
                                                             'none)')
    launcher.add_arguments(parser)
    other = parser.add_argument_group('other actions')
    other.add_argument('--status', action='store_true', help="print every job's state and exit")
    other.add_argument('--relaunch', default='', metavar='unknown|JOB[,JOB]',
                       help="mark jobs for relaunch by the next launch (cancelling them if they are queued): 'unknown' "
                            'marks every job whose scheduler cannot say whether it runs (e.g. SLURM without '
                            'accounting), or give job names as --status prints them')
    other.add_argument('--report', action='store_true', help='write the tables and plots of the finished jobs')
    other.add_argument('--write_presets', default='', metavar='FILE',
                       help='with --report: save the best swept values per environment as a main.py --presets_file')
    other.add_argument('--bootstrap_reps', type=int, default=50_000, help='rliable bootstrap replications')
    args, extra = parser.parse_known_args(argv)
    numbers = [getattr(args, name, 1) for name in ('max_parallel', 'time_min')]
    if min(numbers) < 0 or getattr(args, 'poll_seconds', 1) <= 0 or args.bootstrap_reps < 1:
        parser.error('--max_parallel and --time_min must be >= 0, --poll_seconds > 0 and --bootstrap_reps >= 1')
    if args.write_presets and not args.report:
        parser.error('--write_presets needs --report')
    args.passthrough = extra
    return args, extra


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the module docstring's layout and shows every option's default."""


def inspect(args: argparse.Namespace, extra: list[str], sweep_dir: str) -> int:
    """--status, --relaunch and --report: they read (and --relaunch updates) the sweep folder only."""
    if extra or args.grid or args.env_name or args.sweep:
        raise SweepError('--status, --relaunch and --report read the sweep folder only; give just --save_dir (and '
                         'their options)')
    recorded = manifest.read_manifest(sweep_dir)
    if not recorded['jobs']:
        raise SweepError(f'{sweep_dir} has no {manifest.MANIFEST}: no sweep was launched there')
    if args.relaunch:
        with manifest.SweepLock(sweep_dir):
            marked = manifest.mark_for_relaunch(recorded, sweep_dir, args.relaunch)
            manifest.write_manifest(sweep_dir, recorded)
        print(f'{len(marked)} job(s) marked for relaunch' + (f': {", ".join(marked)}' if marked else '') +
              '; the next launch with the sweep\'s command resumes them')
        return 0
    states = manifest.refresh_all(recorded, sweep_dir)
    if args.status:
        print('\n'.join(manifest.status_lines(states, sweep_dir)))
        return 0
    from sweeps import report
    try:
        report.write_report(sweep_dir, recorded, states, args.bootstrap_reps, args.write_presets)
    except ValueError as error:
        raise SweepError(str(error))
    except OSError as error:  # e.g. --write_presets in a folder that cannot be written
        raise SweepError(f'cannot write the report or the presets file: {error.strerror}: {error.filename}')
    return 0


def launch(jobs: list[grid.Job], args: argparse.Namespace, sweep_dir: str) -> int:
    """Records `jobs` in the sweep folder's manifest and launches those not done, queued or running (failed ones only
    with args.retry_failed) with args.launcher; 0 when none failed."""
    launcher = launcher_class(args.launcher)(sweep_dir, args)
    if args.dry_run:
        recorded = manifest.read_manifest(sweep_dir)
        to_launch, summary, states = manifest.plan(jobs, recorded, sweep_dir, args.retry_failed)
        for job in jobs:
            action = 'launch' if job in to_launch else states[job.name][0]
            print(f'[{action}] {job.name}\n    {shlex.join(job.command)}')
        print(summary)
        if hasattr(launcher, 'parameters') and to_launch:
            print(f'{launcher.name} parameters (submitit): {launcher.parameters(len(to_launch))}')
        return 0
    os.makedirs(sweep_dir, exist_ok=True)
    with manifest.SweepLock(sweep_dir):  # from reading the manifest to the last launch: no job is started twice
        recorded = manifest.read_manifest(sweep_dir)
        to_launch, summary, states = manifest.plan(jobs, recorded, sweep_dir, args.retry_failed)
        failed = sum(state == 'failed' for state, _ in states.values())
        if failed and not args.retry_failed:
            print(f'{failed} failed job(s) are not rerun (see --status; --retry_failed reruns them)')
        if not to_launch:
            print(f'nothing to launch: {summary}')
            return 0
        problem = grid.missing_data(to_launch)
        if problem is not None:
            raise SweepError(problem)
        for warning in launcher.check(len(to_launch)):
            print(warning, file=sys.stderr)
        manifest.write_manifest(sweep_dir, recorded)
        print(f'{sweep_dir}: {summary} ({launcher.name})', flush=True)
        launcher.submit(to_launch, recorded, lambda: manifest.write_manifest(sweep_dir, recorded),
                        lambda job, error: manifest.record_outcome(recorded['jobs'][job.name], error, job, sweep_dir))
        if not launcher.blocking:
            return 0
        states = manifest.refresh_all(recorded, sweep_dir)
        manifest.write_manifest(sweep_dir, recorded)
    failed_jobs = [name for name, (state, _) in states.items() if state == 'failed']
    done = sum(state == 'done' for state, _ in states.values())
    print(f'{done} of {len(states)} jobs done' + (f'; {len(failed_jobs)} failed (python sweep.py --save_dir={sweep_dir} '
                                                   '--status shows their logs)' if failed_jobs else ''))
    return 1 if failed_jobs else 0


def run(argv: list[str], caller_dir: str | None = None) -> int:
    args, extra = parse_args(argv)
    caller_dir = caller_dir or os.getcwd()
    sweep_dir = grid.absolute_path(args.save_dir, caller_dir)
    if args.status or args.report or args.relaunch:
        return inspect(args, extra, sweep_dir)
    return launch(grid.build_jobs(args, extra, sweep_dir, caller_dir), args, sweep_dir)


def main() -> None:
    try:
        sys.exit(run(sys.argv[1:]))
    except SweepError as error:
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
