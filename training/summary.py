"""The reported numbers: each seed's final evaluation (final.json), each task's `TaskResult`, and the results
table of a run over several tasks, in the papers' format.

Per seed (`final_evaluation`): evaluation success and return at the last step, the mean success of the
last three evaluations, the D4RL normalised score, and for offline-to-online runs the same at the end of
the offline phase.

Units: success is a fraction in [0, 1] everywhere (eval.csv, final.json, the console, summary.{csv,md});
the D4RL normalised score is D4RL's ×100 scale (0 = random, 100 = expert).

Per task: final evaluation success (fraction) as mean ± std over seeds (std with ddof = 0, NumPy's
default). Per environment (e.g. `cube-double-play`, the five tasks of a family): for each seed the
mean over the environment's tasks, then mean ± std of those over seeds, as FQL and MeanFlowQL
report "averaged over tasks and seeds". A second column gives the same for the mean of the last
three evaluations, the statistic the MeanFlowQL paper reports for OGBench.

D4RL tasks (`antmaze-umaze-v2`, `pen-cloned-v1`) are each their own environment (the papers report
them per task) and add the final normalised score ×100 (`score_x100_mean`, `score_x100_std`), the value the
papers report for D4RL. Their success column is the
env's `info['success']` at the final step, logged for reference only.

Offline-to-online runs add the evaluation at the end of the offline phase (`offline_success_fraction_*`, and
`offline_score_x100_*` for D4RL), the first number of the papers' "offline → online" tables.
"""

import dataclasses
import math
import os
from typing import Any

import numpy as np

from results import METRICS, Metric, last_three, mean_std, plus_minus, seed_averages, task_info
from runs import csv_text, read_final, seed_dir, summary_paths, write_atomically
from training.schedule import RunOptions


@dataclasses.dataclass
class TaskResult:
    """Final evaluation of one task: per-seed values, in the order of `seeds`."""

    task: str
    seeds: list[int]
    step: int
    success: list[float]
    episode_return: list[float]
    success_last3: list[float]  # mean of the last three evaluations (OGBench's reporting in the paper)
    score: list[float] | None = None  # final normalised score ×100 (D4RL tasks only; the paper's D4RL metric)
    # Offline-to-online runs only: the evaluation at the end of the offline phase (the paper's "1M" of "1M → 2M").
    offline_success: list[float] | None = None
    offline_score: list[float] | None = None  # D4RL tasks only


def mean_of_last_three_evaluations(rows: list[dict[str, Any]]) -> float:
    """OGBench's reported number: mean `evaluation/success` of the last three evaluations (rows in step order).
    The evaluation of the initial policy (step 1) is never one of them; with fewer than three later
    evaluations, those there are are averaged (a 1-step run: its only evaluation)."""
    steps = last_three([int(float(row['step'])) for row in rows])
    return float(np.mean([float(row['evaluation/success']) for row in rows if int(float(row['step'])) in steps]))


def final_evaluation(rows: list[dict[str, Any]], options: RunOptions, with_score: bool) -> dict[str, float]:
    """A seed's final.json numbers from its evaluation rows (step order): success, return (and D4RL score) at
    the last step, the mean success of the last three evaluations, and, for offline-to-online runs, success
    (and score) at the end of the offline phase. NaN where that evaluation is missing."""
    def at(step: int, key: str) -> float:
        row = next((r for r in rows if int(float(r['step'])) == step), None)
        return float(row[key]) if row is not None else float('nan')

    finished = any(int(float(r['step'])) == options.total_steps for r in rows)
    values = {'evaluation/success': at(options.total_steps, 'evaluation/success'),
              'evaluation/return': at(options.total_steps, 'evaluation/return'),
              'evaluation/success_last3': mean_of_last_three_evaluations(rows) if finished else float('nan')}
    if with_score:
        values['evaluation/score'] = at(options.total_steps, 'evaluation/score')
    if options.online_steps > 0:
        values['evaluation/success_offline'] = at(options.offline_steps, 'evaluation/success')
        if with_score:
            values['evaluation/score_offline'] = at(options.offline_steps, 'evaluation/score')
    return values


def task_result(task: str, seeds: list[int], step: int, finals: list[dict[str, Any]]) -> TaskResult:
    """A TaskResult from the seeds' final.json payloads (`final_evaluation`), in the order of `seeds`. A number that
    final.json holds as null (NaN: not evaluated) reads back as NaN."""
    def column(key: str) -> list[float] | None:
        if not all(key in final for final in finals):
            return None
        return [math.nan if final[key] is None else final[key] for final in finals]

    return TaskResult(task, seeds, step, column('evaluation/success'), column('evaluation/return'),
                      column('evaluation/success_last3'), column('evaluation/score'),
                      column('evaluation/success_offline'), column('evaluation/score_offline'))


def completed_result(run_dir: str, task: str, seeds: list[int], total_steps: int) -> TaskResult | None:
    """The result of a task already trained to `total_steps` (every seed has final.json), else None."""
    finals = []
    for seed in seeds:
        final = read_final(seed_dir(run_dir, seed))
        if final is None or final['step'] != total_steps:
            return None
        finals.append(final)
    return task_result(task, seeds, total_steps, finals)


def _metrics_present(results: list[TaskResult]) -> list[Metric]:
    """The metrics of `results.METRICS` some task has (success and its last-three mean always; scores and the
    offline phase's numbers where the runs have them)."""
    return [metric for metric in METRICS if any(getattr(r, metric.field) is not None for r in results)]


def summary_rows(results: list[TaskResult]) -> list[dict[str, object]]:
    """Rows: one per task, then one per environment (`task` = '<env> (average)'). Each metric gives
    `<prefix>_mean` and `<prefix>_std` (empty where a task lacks it; environment rows average a metric only
    where every task of the environment has it, so never D4RL scores: D4RL tasks are never grouped)."""
    metrics = _metrics_present(results)
    rows = []
    for result in results:
        row = {'environment': task_info(result.task).environment, 'task': result.task,
               'num_tasks': 1, 'num_seeds': len(result.seeds), 'step': result.step}
        for metric in metrics:
            values = getattr(result, metric.field)
            row[f'{metric.column}_mean'], row[f'{metric.column}_std'] = (
                mean_std(values) if values is not None else ('', ''))
        rows.append(row)
    environments = sorted({task_info(r.task).environment for r in results})
    for environment in environments:
        group = [r for r in results if task_info(r.task).environment == environment]
        if len(group) < 2:
            continue
        seeds = group[0].seeds
        if any(r.seeds != seeds for r in group):
            continue  # averaging per seed needs the same seeds on every task
        row = {'environment': environment, 'task': f'{environment} (average)', 'num_tasks': len(group),
               'num_seeds': len(seeds), 'step': min(r.step for r in group)}
        for metric in metrics:
            per_task = [getattr(r, metric.field) for r in group]
            averages = None if any(values is None for values in per_task) else seed_averages(
                [dict(zip(seeds, values)) for values in per_task])
            row[f'{metric.column}_mean'], row[f'{metric.column}_std'] = (
                mean_std(list(averages.values())) if averages is not None else ('', ''))
        rows.append(row)
    return rows


def write_summary(directory: str, results: list[TaskResult], agent_name: str) -> tuple[str, str]:
    """Writes `summary.csv` and `summary.md` into `directory`; returns their paths."""
    rows = summary_rows(results)
    metrics = _metrics_present(results)
    os.makedirs(directory, exist_ok=True)
    csv_path, md_path = summary_paths(directory)
    write_atomically(csv_path, csv_text(list(rows[0]), rows))
    lines = [f'# {agent_name}: final evaluation', '',
             'Success is a fraction (0–1); mean ± std over seeds; environment rows average each seed over its tasks '
             'first.', '',
             '| task | seeds | step | ' + ' | '.join(metric.header for metric in metrics) + ' |',
             '|---|---|---|' + '---|' * len(metrics)]
    for row in rows:
        name = f"**{row['task']}**" if row['num_tasks'] > 1 else row['task']
        cells = [plus_minus(row[f'{m.column}_mean'], row[f'{m.column}_std'], m.decimals)
                 if row[f'{m.column}_mean'] != '' else '' for m in metrics]
        lines.append(f"| {name} | {row['num_seeds']} | {row['step']} | " + ' | '.join(cells) + ' |')
    write_atomically(md_path, '\n'.join(lines) + '\n')
    return csv_path, md_path
