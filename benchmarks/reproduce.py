"""CPU-scale reproduction study: MeanFlowQL against FQL on two OGBench cube-single-play tasks.

    python -m benchmarks.reproduce                     # the whole study, resumable; report in exp/benchmarks/
    python -m benchmarks.reproduce --results_dir=benchmarks/results   # the committed report
    python -m benchmarks.reproduce --only=fql_task2    # just some runs (names as in the report)
    python -m benchmarks.reproduce --report_only       # rebuild the tables and figure from finished runs
    python sweep.py --save_dir=exp/reproduce --status  # where the runs stand (the work folder is a sweep folder)

The task2 pair again on seeds 3-5, in folders of its own (the report lists the runs it did not train; committed
in benchmarks/results/replication-seeds3-5/):

    python -m benchmarks.reproduce --seed=3 --work_dir=exp/replication
      --results_dir=benchmarks/results/replication-seeds3-5 --notes= --only=mfql_a120_task2,fql_task2 --allow_partial

Cost on our 2-core CPU, measured end to end in fresh folders (each run: 3 seeds x 40k updates + 5 evaluations
of 50 episodes per seed), measured with the study's former scheduler, which pinned each of two runs to its own core:
the dataset 4.9 min, then the two MFQL runs side by side 47 min, the two FQL runs 38 min, and MFQL with N = 1 alone
on both cores 17 min: 1 h 48 min in all, inside the 2-hour budget. The fixed-α ablation is usually not trained (`source_run`). Each extra `--mfql_alpha_sweep` value adds
~47 min of one core.

What it does, in order:
1. Generates the cube-single-play dataset locally (`datasets.generate`, `--num_episodes` train episodes of
   1001 steps plus a tenth as many validation episodes, fixed seed), unless the files are already there.
2. Trains every run of the study with `main.py` through the sweep machinery (`sweep.launch`: submitit's local
   launcher, `--workers` runs at once, `--num_seeds` vmapped seeds each, `--resume`, so an interrupted study
   continues from its last checkpoint; the work folder holds the sweep's manifest and logs). Finished runs are
   reused only if every seed's recorded command (flags.json) is the one the study runs now; otherwise it stops and
   names them. The fixed-α ablation goes in a second round, after its reference run, which usually makes its
   training unnecessary.
   The runs: FQL and MFQL on each task, an optional MFQL α sweep on the first task, and two MFQL ablations
   there (N = 1 candidate in the Bellman target and at evaluation; a fixed α instead of the adaptive rule).
3. Evaluates a uniform random policy on both tasks as the agents are evaluated (same seeds, env reset seeds
   and episode count; 1.5 min for both tasks here), cached in the work folder.
4. Writes `benchmarks/results/reproduce-cpu.{md,csv,png}` from the finished runs: the success table (per seed,
   the mean of the last two evaluations of `--eval_episodes` episodes; then mean ± std over seeds, a 95% t
   interval over seeds and a Wilson interval over the pooled episodes; the agents' gap with a Welch interval), the
   MFQL-variants table,
   training diagnostics (MFI fit, out-of-bound actions, α, Q values), wall times, the exact commands and
   the library versions.

Both agents get the same network size and kind (2-layer 256-wide GELU MLPs for the actor(s) and the twin
critic), batch size, number of updates and seeds. The authors' DiT actor runs ~4 updates/s on 2 CPU cores
and would not fit the 2-hour budget; it is what `main.py` uses by default and what GPU runs should use.
MFQL runs with a constant actor learning rate of 1e-3 (tuned here; FQL keeps its untuned 3e-4), FQL's discount
and the paper's cube-double time grid T = 50 (`MFQL_PROTOCOL`), and α₀ = 120 (`--mfql_alpha`, the same preset).
MFQL's observation z-scoring (its default, as the authors') is off, since FQL has none (`MFQL_PROTOCOL`).
Every other setting is the agent's own default (`get_config`, `configs.py`).
"""

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
from typing import Any

import numpy as np

from benchmarks.intervals import seed_t_interval, welch_interval, wilson_interval
from results import mean_std, plus_minus
from runs import (csv_text, eval_csv_path, read_csv_if_any, read_flags, recorded_arguments, save_figure, seed_dir,
                  train_csv_path, write_atomically, write_json)
from training import tracking

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DATASET = 'cube-single-play-v0'
SUCCESS = 'evaluation/success'
SMALL_NETS = {
    'fql': ["--agent.actor_hidden_dims=(256,256)", "--agent.value_hidden_dims=(256,256)"],
    'mfql': ["--agent.actor_arch=mlp", "--agent.actor_mlp_hidden_dims=(256,256)",
             "--agent.value_hidden_dims=(256,256)"],
}
# MFQL's settings that differ from its own defaults. A constant learning rate (the authors' actor schedule, 1e-4
# with a 5% warm-up and a cosine to 1e-5, is sized for 1M updates and integrates to ~2.2 learning-rate-updates in
# 40k) and FQL's discount (the critics then share one horizon). The time grid T = 50 of the only cube preset the
# paper gives (cube-double task2: α₀ = 120, N = 5, T = 50; `configs.py`, second-hand); with continuous time MFQL
# stayed at 0% here. An actor learning rate of 1e-3, the best of 3e-4, 1e-3 and 3e-3 in a screen
# (benchmarks/results/reproduce-notes.md); FQL keeps its published 3e-4, untuned. No observation z-scoring (MFQL's
# default, as the authors'): FQL has none, so both agents see the same inputs, and a screen with it scored the same.
MFQL_PROTOCOL = ['--agent.actor_lr=1e-3', '--agent.lr_min_ratio=1', '--agent.discount=0.99', '--agent.time_steps=50',
                 '--agent.normalize_observations=False']
# Logged training metrics shown in the diagnostics table (mean over seeds of the last logged row).
DIAGNOSTICS = {
    'fql': ('actor/mse', 'actor/distill_loss', 'critic/q_mean', 'critic/q_max', 'critic/loss'),
    'mfql': ('actor/mfi_mse', 'actor/out_of_bound_fraction', 'alpha', 'critic/q_mean', 'critic/q_max',
             'critic/loss'),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One main.py invocation of the study."""

    name: str  # run folder name, e.g. 'mfql_task2'
    agent: str  # 'fql' | 'mfql'
    task: str  # OGBench single-task name
    label: str  # how the tables name it
    extra_flags: tuple[str, ...] = ()  # agent overrides beyond SMALL_NETS (ablations)
    # Fixed-α ablation only: the adaptive-α run it would equal update for update if the rule never changed α.
    reference: 'Run | None' = None


def task_name(task: int) -> str:
    return f'cube-single-play-singletask-task{task}-v0'


def study_runs(args: argparse.Namespace) -> list[Run]:
    """The study's runs in the order they start.

    The two MFQL runs first, then the two FQL runs (runs of one agent take about as long, so each pair ends
    together), then any α-sweep runs (`--mfql_alpha_sweep`, not part of the default study), then the ablations
    on the first task: fixed α first, because it is usually not trained at all (`source_run`), so that the
    N = 1 run is last and can have the whole machine (`train_all`).
    """
    first, second = args.tasks
    alpha = args.mfql_alpha
    mfql_first = Run(f'mfql_a{alpha:g}_task{first}', 'mfql', task_name(first), 'MFQL')
    return [
        mfql_first,
        Run(f'mfql_a{alpha:g}_task{second}', 'mfql', task_name(second), 'MFQL'),
        Run(f'fql_task{first}', 'fql', task_name(first), 'FQL'),
        Run(f'fql_task{second}', 'fql', task_name(second), 'FQL'),
        *[dataclasses.replace(mfql_first, name=f'mfql_a{sweep:g}_task{first}', label=f'MFQL, α₀ = {sweep:g}',
                              extra_flags=(f'--agent.alpha={sweep:g}',))
          for sweep in args.mfql_alpha_sweep if sweep != alpha],
        dataclasses.replace(mfql_first, name=f'mfql_a{alpha:g}_task{first}_fixed_alpha', label='MFQL, fixed α',
                            extra_flags=('--agent.alpha_mode=fixed',), reference=mfql_first),
        dataclasses.replace(mfql_first, name=f'mfql_a{alpha:g}_task{first}_n1', label='MFQL, N = 1 (no best-of-N)',
                            extra_flags=('--agent.num_candidates_eval=1', '--agent.num_candidates_target=1')),
    ]


def run_command(run: Run, args: argparse.Namespace) -> list[str]:
    """The exact main.py command of a run (also printed in the report)."""
    command = [
        'python', 'main.py', f'--agent=agents/{run.agent}.py', f'--env_name={run.task}',
        f'--dataset_dir={args.data_dir}', f'--save_dir={args.work_dir}', f'--run_name={run.name}',
        *([f'--seed={args.seed}'] if args.seed else []),  # the default study's commands predate the flag
        f'--num_seeds={args.num_seeds}', f'--offline_steps={args.steps}', f'--eval_interval={args.eval_interval}',
        f'--eval_episodes={args.eval_episodes}', f'--log_interval={args.log_interval}',
        f'--save_interval={args.eval_interval}', '--progress_bar=false', '--resume',
    ]
    command += SMALL_NETS[run.agent]
    if run.agent == 'mfql':
        command += MFQL_PROTOCOL
    if run.agent == 'mfql' and not any(flag.startswith('--agent.alpha=') for flag in run.extra_flags):
        command.append(f'--agent.alpha={args.mfql_alpha:g}')
    command += list(run.extra_flags)
    return command


def with_this_interpreter(command: list[str]) -> list[str]:
    """`command` as launched: the printed `python` is the interpreter running this study (a bare `python` on PATH
    may be another installation, without the project's requirements)."""
    return [sys.executable, *command[1:]] if command[0] == 'python' else command


def generate_command(args: argparse.Namespace) -> list[str]:
    return ['python', '-m', 'datasets.generate', f'--env_name={DATASET}', f'--num_episodes={args.num_episodes}',
            '--seed=0', f'--dataset_dir={args.data_dir}', f'--workers={args.workers}']


def seed_dirs(run: Run, args: argparse.Namespace) -> list[str]:
    return [seed_dir(os.path.join(args.work_path, run.name, run.task), seed) for seed in seeds(args)]


def seeds(args: argparse.Namespace) -> range:
    """The study's seeds: --seed, ..., --seed + --num_seeds − 1 (main.py's rule)."""
    return range(args.seed, args.seed + args.num_seeds)




def is_trained(run: Run, args: argparse.Namespace) -> bool:
    """True when every seed has its final evaluation (main.py writes it after the last update)."""
    for directory in seed_dirs(run, args):
        rows = read_csv_if_any(eval_csv_path(directory))
        if not rows or int(rows[-1]['step']) != args.steps:
            return False
    return True


def alpha_never_moved(run: Run, args: argparse.Namespace) -> bool:
    """True if every logged α of every seed of a trained adaptive-α run equals its α₀ (each logged value is a
    mean over its logging window, so any change of α would show; one ×1.2 or ×0.8 step moves it by ≥ 1e-4·α₀)."""
    for directory in seed_dirs(run, args):
        config = read_flags(directory)['agent_config']
        rows = read_csv_if_any(train_csv_path(directory))
        if config['alpha_mode'] != 'adaptive' or not rows:
            return False
        logged = np.array([row[key] for row in rows for key in ('training/alpha', 'validation/alpha') if key in row])
        if not np.allclose(logged, config['alpha'], rtol=1e-6, atol=0.0):
            return False
    return True


def source_run(run: Run, args: argparse.Namespace) -> Run:
    """The run whose folders hold `run`'s results: itself, except for the fixed-α ablation when the adaptive rule
    never changed α in its reference run. Then the two are the same computation (same keys, same α at every
    update; tests/test_mfql.py checks they give identical parameters), so the reference stands in for it."""
    if run.reference is not None and is_trained(run.reference, args) and alpha_never_moved(run.reference, args):
        return run.reference
    return run


def result_dirs(run: Run, args: argparse.Namespace) -> list[str]:
    return seed_dirs(source_run(run, args), args)


def is_finished(run: Run, args: argparse.Namespace) -> bool:
    """True when the run's results exist: its own (or its stand-in's, `source_run`) final evaluations."""
    return is_trained(source_run(run, args), args)


def stale_runs(runs: list[Run], args: argparse.Namespace) -> list[str]:
    """Finished runs whose seeds were trained with another main.py command than the study would run now (each
    seed's flags.json records its command). Their folders are skipped by `train_all` and read by the report, so
    after a protocol change they would silently stand for the new protocol; returns one line per such seed."""
    problems = []
    sources = {source.name: source for source in (source_run(run, args) for run in runs) if is_trained(source, args)}
    for source in sources.values():  # a stand-in (`source_run`) is checked once, under its own command
        expected = run_command(source, args)[2:]
        for directory in seed_dirs(source, args):
            recorded = recorded_arguments(read_flags(directory) or {})
            if recorded != expected:
                problems.append(f'{directory}: trained with `{shlex.join(recorded)}`; the study now runs '
                                f'`{shlex.join(expected)}`')
    return problems


# ----------------------------------------------------------------------------------------------- running
def run_minutes(run: Run, args: argparse.Namespace) -> float:
    """Minutes from main.py's start of training to its final evaluation (its own clock, all seeds together)."""
    return read_csv_if_any(eval_csv_path(result_dirs(run, args)[0]))[-1]['time/total'] / 60


def sweep_job(run: Run, args: argparse.Namespace):
    """The run as a job of the sweep machinery (`sweeps.grid.Job`): its exact command, its folder under --work_dir."""
    from sweeps import grid
    flags = tuple(run_command(run, args)[2:])
    return grid.Job(name=run.name, setting=run.name, agent=run.agent, task=run.task, seeds=tuple(seeds(args)),
                    overrides=(), flags=flags, run_dir=os.path.join(run.name, run.task), config_hash=grid.config_hash(flags))


def train_all(runs: list[Run], args: argparse.Namespace) -> None:
    """Trains every unfinished run through sweep.py's local launcher (submitit), `args.workers` at a time, with the
    work folder as the sweep folder (manifest, logs); resumable. Runs with a stand-in (`source_run`) go in a second
    round, after their reference, which usually makes their training unnecessary."""
    import sweep
    from sweeps import SweepError
    first_round = [run for run in runs if run.reference is None]
    for round_runs in (first_round, [run for run in runs if run not in first_round]):
        pending = []
        for run in round_runs:
            if is_finished(run, args):
                if source_run(run, args) != run:
                    print(f'[skip] {run.name}: same computation as {source_run(run, args).name} (α never moved there)',
                          flush=True)
            else:
                pending.append(run)
        if not pending:
            continue
        options, _ = sweep.parse_args([f'--save_dir={args.work_path}', '--launcher=local',
                                       f'--max_parallel={args.workers}', f'--poll_seconds={args.poll_seconds}'])
        try:
            failed = sweep.launch([sweep_job(run, args) for run in pending], options, args.work_path)
        except SweepError as error:
            raise SystemExit(f'error: {error}')
        if failed:
            raise SystemExit(f'error: a run failed; python sweep.py --save_dir={args.work_path} --status shows its log '
                             '(fix it, then rerun this command with the same flags: finished runs are kept)')


# ----------------------------------------------------------------------------------------------- report
def seed_scores(run: Run, args: argparse.Namespace) -> dict[str, list[float] | list[int]]:
    """Per seed: the mean success of the last two evaluations ('final'), the first evaluation ('initial'), and
    the successful and total episodes of those last two evaluations ('successes', 'episodes')."""
    final, initial, successes, episodes = [], [], [], []
    for directory in result_dirs(run, args):
        rows = read_csv_if_any(eval_csv_path(directory))
        scored = rows[-2:]
        final.append(float(np.mean([row[SUCCESS] for row in scored])))
        initial.append(rows[0][SUCCESS])
        successes.append(int(sum(round(row[SUCCESS] * args.eval_episodes) for row in scored)))
        episodes.append(len(scored) * args.eval_episodes)
    return {'final': final, 'initial': initial, 'successes': successes, 'episodes': episodes}


def random_policy_path(task: int, args: argparse.Namespace) -> str:
    return os.path.join(args.work_path, f'random_policy_task{task}.json')


def cached_random_policy(task: int, args: argparse.Namespace) -> dict[str, Any] | None:
    """The random-policy result `measure_random_policy` cached for this study's seeds and episode count, or None."""
    path = random_policy_path(task, args)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        cached = json.load(f)
    return cached if cached['seeds'] == list(seeds(args)) and cached['episodes'] == args.eval_episodes else None


def measure_random_policy(task: int, args: argparse.Namespace) -> dict[str, Any]:
    """Evaluates a uniform random policy (actions ~ U[−1, 1]^d) on `task` as the study evaluates its agents
    (main.py's evaluation: the study's seeds, their env reset seeds, `--eval_episodes` episodes per seed), and
    caches {'seeds', 'episodes', 'successes'} (per seed) in the work folder (`cached_random_policy`)."""
    cached = cached_random_policy(task, args)
    if cached is not None:
        return cached
    from benchmarks.random_policy import random_policy_successes

    successes = random_policy_successes(task_name(task), list(seeds(args)), args.eval_episodes, key=task)
    result = {'seeds': list(seeds(args)), 'episodes': args.eval_episodes, 'successes': successes}
    write_json(random_policy_path(task, args), result)
    return result


def curves(run: Run, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """(steps (E,), success (S, E)) from the seeds' eval.csv files."""
    per_seed = [read_csv_if_any(eval_csv_path(d)) for d in result_dirs(run, args)]
    steps = np.array([row['step'] for row in per_seed[0]])
    return steps, np.array([[row[SUCCESS] for row in rows] for rows in per_seed])


def diagnostics(run: Run, args: argparse.Namespace) -> dict[str, float]:
    """Mean over seeds of the last logged training metrics (DIAGNOSTICS) and of the updates/s."""
    last_rows = [read_csv_if_any(train_csv_path(d))[-1] for d in result_dirs(run, args)]
    values = {key: float(np.mean([row[f'training/{key}'] for row in last_rows])) for key in DIAGNOSTICS[run.agent]}
    values['updates/s'] = float(np.mean([row['time/updates_per_sec'] for row in last_rows]))
    return values


def _cell(values: list[float]) -> str:
    """Mean ± std over seeds (success fraction, two digits) by the rule every table of the project uses."""
    return plus_minus(*mean_std(values), 2)


def dataset_size(args: argparse.Namespace) -> str:
    sizes = []
    for suffix in ('', '-val'):
        with np.load(os.path.join(args.data_path, f'{DATASET}{suffix}.npz')) as data:
            sizes.append(len(data['terminals']))
    return f'{sizes[0]:,} train + {sizes[1]:,} val transitions'


def plot(runs: list[Run], args: argparse.Namespace, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [(f'task{task}', [run for run in runs if run.task == task_name(task) and not run.extra_flags])
              for task in args.tasks]
    panels.append((f'task{args.tasks[0]}: MFQL variants', [run for run in runs if run.task == task_name(args.tasks[0])
                                                      and run.agent == 'mfql' and source_run(run, args) == run]))
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), sharey=True, squeeze=False)
    axes = axes[0]
    labels = list(dict.fromkeys(['FQL', 'MFQL', *(run.label for run in runs)]))
    colors = {label: f'C{i}' for i, label in enumerate(labels)}  # one colour per variant in every panel
    for axis, (title, panel_runs) in zip(axes, panels):
        for run in panel_runs:
            steps, success = curves(run, args)
            mean, std = success.mean(0), success.std(0)
            axis.plot(steps, mean, marker='o', label=run.label, color=colors[run.label])
            axis.fill_between(steps, mean - std, mean + std, alpha=0.2, color=colors[run.label])
        axis.set_title(f'cube-single-play {title}')
        axis.set_xlabel('updates')
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    axes[0].set_ylabel(f'success (mean ± std over {args.num_seeds} seeds)')
    figure.tight_layout()
    save_figure(figure, path, dpi=110)
    plt.close(figure)


def study_command(args: argparse.Namespace) -> str:
    """The command that trains and reports this study: this script's flags, less --report_only (a rebuilt
    report stands for the command that trained its runs)."""
    return shlex.join(['python', '-m', 'benchmarks.reproduce', *(a for a in args.argv if a != '--report_only')])


def write_report(runs: list[Run], args: argparse.Namespace) -> None:
    """Tables, figure and CSV from the finished runs; unfinished runs are listed as such."""
    finished = [run for run in runs if is_finished(run, args)]
    unfinished = [run for run in runs if run not in finished]
    runs = finished
    os.makedirs(args.results_path, exist_ok=True)
    stem = os.path.join(args.results_path, 'reproduce-cpu')
    scores = {run.name: seed_scores(run, args) for run in runs}
    rows = []
    for run in runs:
        for seed, final, initial in zip(seeds(args), scores[run.name]['final'], scores[run.name]['initial']):
            rows.append(dict(run=run.name, results_from=source_run(run, args).name, agent=run.agent, task=run.task,
                             seed=seed, initial_success=initial, final_success=final,
                             minutes=round(run_minutes(run, args), 1)))
    write_atomically(stem + '.csv', csv_text(list(rows[0]), rows))
    plot(runs, args, stem + '.png')

    last_two = f'{args.steps - args.eval_interval} and {args.steps}'
    lines = [
        '# Reproduction study at CPU scale: MFQL vs FQL on cube-single-play',
        '',
        f'Generated by `{study_command(args)}` ({tracking.cpu_description()}, no GPU).',
        f'Dataset: `{DATASET}` generated locally with OGBench\'s oracles, {args.num_episodes} train episodes '
        f'({dataset_size(args)}), seed 0.',
        f'Budget per run: {args.steps:,} updates, batch 256, {args.num_seeds} seeds ({args.seed}–{seeds(args)[-1]}) '
        'trained together (vmapped); '
        f'evaluation every {args.eval_interval:,} updates with {args.eval_episodes} episodes per seed.',
        f'Score per seed: mean success of the last two evaluations (updates {last_two}); tables: mean ± std over '
        'seeds (success as a fraction). With 50 episodes × 3 seeds, differences under ~0.1 are noise.',
        'Networks (both agents): 2×256 GELU MLP actor(s) and a 2×256 twin critic with LayerNorm. '
        f'FQL: α = 300, γ = 0.99 (FQL\'s cube presets), lr 3e-4. MFQL: α₀ = {args.mfql_alpha:g} unless stated '
        '(adaptive rule), time grid T = 50, best-of-5 target and evaluation (the paper\'s cube-double task2 preset, '
        'quoted second-hand; none is published for cube-single), γ = 0.99 (FQL\'s) and a constant actor lr 1e-3 '
        'after a 2k-update warm-up, tuned on a screen of 3e-4 / 1e-3 / 3e-3 (FQL\'s 3e-4 was not tuned; the '
        'authors\' γ = 0.995 and 1e-4 → 1e-5 cosine schedule are not used; see `MFQL_PROTOCOL`). Neither agent '
        'z-scores observations (MFQL\'s default, off here because FQL has none).',
        'Published figures (GPU, 1M updates, official data): the per-task cube-single numbers of both papers were '
        'not available to us (docs/reproducing.md); none are quoted.',
        'Wall time: main.py\'s own clock from the start of training to the final evaluation, 3 seeds on one '
        'CPU core (two runs side by side; a run that shared the cores with a third process took longer).',
        '',
        '## Main result',
        '',
        '| task | agent | success (initial) | success (final) | per-seed | 95% interval over seeds (t) '
        '| scored episodes won (95% Wilson interval) | wall time |',
        '|---|---|---|---|---|---|---|---|',
    ]
    main_runs = sorted((run for run in runs if not run.extra_flags),
                       key=lambda run: (run.task != task_name(args.tasks[0]), run.agent))
    best = {task: max(np.mean(scores[run.name]['final']) for run in main_runs if run.task == task)
            for task in {run.task for run in main_runs}}
    for run in main_runs:
        final = scores[run.name]['final']
        score = _cell(final)
        if np.mean(final) == best[run.task]:  # the task's leader in bold
            score = f'**{score}**'
        won, episodes = sum(scores[run.name]['successes']), sum(scores[run.name]['episodes'])
        low, high = wilson_interval(won, episodes)
        seed_interval = '–'.join(f'{x:.2f}' for x in seed_t_interval(final)) if args.num_seeds > 1 else 'n/a (1 seed)'
        lines.append(f'| {run.task} | {run.label} | {_cell(scores[run.name]["initial"])} | {score} | '
                     f'{", ".join(f"{x:.2f}" for x in final)} | {seed_interval} | '
                     f'{won} / {episodes} ({low:.2f}–{high:.2f}) | {run_minutes(run, args):.0f} min |')
    lines += ['', f'Two intervals for each score. Over seeds (t): mean ± t · sd / √S over the {args.num_seeds} '
              f'per-seed scores, Student t with {args.num_seeds - 1} degrees of freedom; it counts the seed-to-seed '
              'variation but assumes roughly normal seed scores. Scored episodes won: successes in the last two '
              'evaluations of all seeds, pooled, with the Wilson interval, which treats the episodes as independent '
              'and ignores the seed-to-seed variation. The baselines are the initial policy (the "success (initial)" '
              'column) and a uniform random policy evaluated the same way (below): an agent whose intervals lie above '
              'both does better than chance.', '']
    random_lines = []
    for task in args.tasks:
        measured = cached_random_policy(task, args)
        if measured is not None:
            won, episodes = sum(measured['successes']), measured['episodes'] * len(measured['successes'])
            low, high = wilson_interval(won, episodes)
            random_lines.append(f'{task_name(task)} {won} / {episodes} '
                                f'({won / episodes:.2f}; Wilson {low:.2f}–{high:.2f})')
        else:
            random_lines.append(f'{task_name(task)} not measured (run without --report_only)')
    lines += ['Uniform random policy (actions ~ U[−1, 1]^5), evaluated as the agents are (the same seeds and env '
              f'reset seeds, {args.eval_episodes} episodes per seed), episodes won: ' + '; '.join(random_lines)
              + '.', '']
    for task in sorted(best):
        ranked = sorted((run for run in main_runs if run.task == task),
                        key=lambda run: -np.mean(scores[run.name]['final']))
        if len(ranked) == 2:
            leader, other = scores[ranked[0].name]['final'], scores[ranked[1].name]['final']
            gap = np.mean(leader) - np.mean(other)
            interval = ''
            if args.num_seeds > 1:
                interval = ' (95% interval over seeds, Welch t: {:.2f}–{:.2f})'.format(*welch_interval(leader, other))
            lines.append(f'- {task}: {ranked[0].label} ahead of {ranked[1].label} by {gap:.2f} in success{interval}.')
    lines += [
        '',
        f'## MFQL variants on task{args.tasks[0]} (same budget and seeds)',
        '',
        '| variant | success (final) | per-seed | wall time |',
        '|---|---|---|---|',
    ]
    for run in runs:
        if run.agent == 'mfql' and run.task == task_name(args.tasks[0]):
            final = scores[run.name]['final']
            source = source_run(run, args)
            if source == run:
                lines.append(f'| {run.label} | {_cell(final)} | {", ".join(f"{x:.2f}" for x in final)} | '
                             f'{run_minutes(run, args):.0f} min |')
            else:
                lines.append(f'| {run.label}: the adaptive rule never changed α in `{source.name}` (every logged α '
                             f'of every seed = α₀), so a fixed α is the same computation; its results stand in | '
                             f'{_cell(final)} | {", ".join(f"{x:.2f}" for x in final)} | not retrained |')
    keys = sorted({k for r in runs for k in (*DIAGNOSTICS[r.agent], 'updates/s')})
    lines += [
        '',
        '## Training diagnostics (last logged values, mean over seeds)',
        '',
        '| run | ' + ' | '.join(keys) + ' |',
        '|---' * (len(keys) + 1) + '|',
    ]
    for run in runs:
        if source_run(run, args) != run:
            continue
        values = diagnostics(run, args)
        lines.append(f'| {run.name} | ' + ' | '.join(f'{values[k]:.3g}' if k in values else '' for k in keys) + ' |')
    if unfinished:
        lines += ['', 'Not run yet (the command trains them): ' + ', '.join(f'`{run.name}`' for run in unfinished)
                  + '.']
    lines += [
        '',
        '![learning curves](reproduce-cpu.png)',
        '',
        '## Commands',
        '',
        '```',
        study_command(args),
        '# which runs (dataset generation is skipped when the files exist):',
        shlex.join(generate_command(args)),
        *[shlex.join(run_command(run, args)) for run in runs + unfinished],
        '```',
        '',
        'Versions: ' + ', '.join(f'{k} {v}' for k, v in tracking.library_versions().items()) + '.',
    ]
    if args.notes and os.path.exists(args.notes_path):
        with open(args.notes_path) as f:
            lines += ['', f.read().strip()]
    write_atomically(stem + '.md', '\n'.join(lines) + '\n')
    print('\n'.join(lines))
    print(f'\nwrote {stem}.md, {stem}.csv and {stem}.png')


# ----------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--tasks', default='2,1', help='two cube-single-play task numbers; the first gets the ablations')
    parser.add_argument('--steps', type=int, default=40_000, help='updates per run')
    parser.add_argument('--num_seeds', type=int, default=3, help='seeds per run (vmapped)')
    parser.add_argument('--seed', type=int, default=0, help='first seed (replications on other seeds)')
    parser.add_argument('--eval_interval', type=int, default=10_000, help='updates between evaluations')
    parser.add_argument('--eval_episodes', type=int, default=50, help='evaluation episodes per seed')
    parser.add_argument('--log_interval', type=int, default=2_500, help='updates between training-metric rows')
    parser.add_argument('--num_episodes', type=int, default=300, help='train episodes of the generated dataset')
    parser.add_argument('--mfql_alpha', type=float, default=120.0, help="MFQL's α₀ for the main runs and ablations")
    parser.add_argument('--mfql_alpha_sweep', default='', help='extra MFQL α₀ values tried on the first task')
    parser.add_argument('--only', default='', help='comma-separated run names to train (default: all)')
    parser.add_argument('--workers', type=int, default=2, help='runs trained side by side')
    parser.add_argument('--data_dir', default='exp/reproduce/data', help='dataset folder')
    parser.add_argument('--work_dir', default='exp/reproduce', help='run folders, logs and the study state')
    parser.add_argument('--results_dir', default='exp/benchmarks',
                        help='where the report is written (the committed one: --results_dir=benchmarks/results)')
    parser.add_argument('--notes', default='benchmarks/results/reproduce-notes.md',
                        help="hand-written analysis appended to the report when the file exists ('': none)")
    parser.add_argument('--poll_seconds', type=float, default=5, help='seconds between checks of the running runs')
    parser.add_argument('--report_only', action='store_true', help='only rebuild the report from finished runs')
    parser.add_argument('--allow_partial', action='store_true', help='write the report even if runs are unfinished')
    args = parser.parse_args(argv)
    args.argv = argv
    args.tasks = [int(task) for task in args.tasks.split(',')]
    args.mfql_alpha_sweep = [float(alpha) for alpha in args.mfql_alpha_sweep.split(',') if alpha]
    if len(args.tasks) != 2 or len(set(args.tasks)) != 2 or any(task not in range(1, 6) for task in args.tasks):
        parser.error(f'--tasks must be two different task numbers in 1..5, got {args.tasks}')
    if args.workers < 1 or args.poll_seconds <= 0:
        parser.error(f'--workers must be >= 1 and --poll_seconds > 0, got {args.workers} and {args.poll_seconds}')
    if args.seed < 0 or args.num_seeds < 1:
        parser.error(f'--seed must be >= 0 and --num_seeds >= 1, got {args.seed} and {args.num_seeds}')
    if args.steps % args.eval_interval or args.steps < 2 * args.eval_interval:
        parser.error('--steps must be a multiple of --eval_interval and at least two intervals, got '
                     f'{args.steps} and {args.eval_interval}')
    # The commands keep the folders as given (main.py runs from the repository root); file reads use the
    # absolute *_path versions.
    for name in ('data_dir', 'work_dir', 'results_dir', 'notes'):
        setattr(args, name.replace('_dir', '') + '_path', os.path.abspath(os.path.join(REPO_DIR, getattr(args, name))))
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    runs = study_runs(args)
    if args.only:
        names = args.only.split(',')
        unknown = sorted(set(names) - {run.name for run in runs})
        if unknown:
            raise SystemExit(f'error: --only names unknown runs {unknown}; runs: {[run.name for run in runs]}')
        to_train = [run for run in runs if run.name in names]
    else:
        to_train = runs
    os.makedirs(args.work_path, exist_ok=True)
    stale = stale_runs(runs, args)
    if stale:
        raise SystemExit('error: finished runs were trained with another command than the study\'s (move their '
                         'folders out of --work_dir to retrain them):\n  ' + '\n  '.join(stale))
    if not args.report_only:
        if not all(os.path.exists(os.path.join(args.data_path, f'{DATASET}{s}.npz')) for s in ('', '-val')):
            print(f'[data] {shlex.join(generate_command(args))}', flush=True)
            subprocess.run(with_this_interpreter(generate_command(args)), cwd=REPO_DIR, check=True,
                           env=dict(os.environ, MUJOCO_GL=os.environ.get('MUJOCO_GL', 'egl')))
        train_all(to_train, args)
        for task in args.tasks:
            print(f'[random policy] task{task}: {measure_random_policy(task, args)}', flush=True)
    missing = [run.name for run in runs if not is_finished(run, args)]
    if missing and not args.allow_partial:
        raise SystemExit(f'error: runs not finished: {missing}; run without --report_only to train them, or pass '
                         '--allow_partial')
    write_report(runs, args)


if __name__ == '__main__':
    main(sys.argv[1:])
