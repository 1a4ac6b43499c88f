"""The results table of a run over several tasks, in the papers' format.

Per task: final evaluation success (%) as mean ± std over seeds (std with ddof = 0, NumPy's
default). Per environment (e.g. `cube-double-play`, the five tasks of a family): for each seed the
mean over the environment's tasks, then mean ± std of those over seeds, as FQL and MeanFlowQL
report "averaged over tasks and seeds". A second column gives the same for the mean of the last
three evaluations, the statistic the MeanFlowQL paper reports for OGBench.

D4RL tasks (`antmaze-umaze-v2`, `pen-cloned-v1`) are each their own environment (the papers report
them per task) and add the final normalised score ×100 (`score_mean`, `score_std`; already a
percentage, so not rescaled), the value the papers report for D4RL. Their success column is the
env's `info['success']` at the final step, logged for reference only.

Offline-to-online runs add the evaluation at the end of the offline phase (`offline_success_*`, and
`offline_score_*` for D4RL), the first number of the papers' "offline → online" tables.
"""

import os

import numpy as np

from datasets import d4rl
from datasets.names import parse_env_name
from training.logger import csv_text, write_atomically
from training.runner import TaskResult


def environment_of(task: str) -> str:
    """`cube-double-play-singletask-task2-v0` -> `cube-double-play`; a D4RL name is its own environment."""
    if d4rl.is_d4rl_name(task):
        return task
    spec = parse_env_name(task)
    return f'{spec.suite}-{spec.dataset_kind}'


# (column prefix, TaskResult field, scale to %, Markdown header); the first two are always there, the others only
# when some task has them. D4RL scores are already percentages.
METRICS = (('success', 'success', 100.0, 'success (final)'),
           ('success_last3', 'success_last3', 100.0, 'success (mean of last 3 evals)'),
           ('score', 'score', 1.0, 'D4RL normalised score (final)'),
           ('offline_success', 'offline_success', 100.0, 'success at the end of offline training'),
           ('offline_score', 'offline_score', 1.0, 'D4RL score at the end of offline training'))


def _mean_std(values: list[float], scale: float) -> tuple[float, float]:
    array = scale * np.asarray(values, dtype=float)
    return float(np.mean(array)), float(np.std(array))


def _metrics_present(results: list[TaskResult]) -> list[tuple[str, str, float, str]]:
    return [metric for metric in METRICS if any(getattr(r, metric[1]) is not None for r in results)]


def summary_rows(results: list[TaskResult]) -> list[dict[str, object]]:
    """Rows: one per task, then one per environment (`task` = '<env> (average)'). Each metric gives
    `<prefix>_mean` and `<prefix>_std` (empty where a task lacks it; environment rows average a metric only
    where every task of the environment has it, so never D4RL scores: D4RL tasks are never grouped)."""
    metrics = _metrics_present(results)
    rows = []
    for result in results:
        row = {'environment': environment_of(result.task), 'task': result.task,
               'num_tasks': 1, 'num_seeds': len(result.seeds), 'step': result.step}
        for prefix, field, scale, _ in metrics:
            values = getattr(result, field)
            row[f'{prefix}_mean'], row[f'{prefix}_std'] = _mean_std(values, scale) if values is not None else ('', '')
        rows.append(row)
    environments = sorted({environment_of(r.task) for r in results})
    for environment in environments:
        group = [r for r in results if environment_of(r.task) == environment]
        if len(group) < 2:
            continue
        seeds = group[0].seeds
        if any(r.seeds != seeds for r in group):
            continue  # averaging per seed needs the same seeds on every task
        row = {'environment': environment, 'task': f'{environment} (average)', 'num_tasks': len(group),
               'num_seeds': len(seeds), 'step': min(r.step for r in group)}
        for prefix, field, scale, _ in metrics:
            per_task = [getattr(r, field) for r in group]
            if any(values is None for values in per_task):
                row[f'{prefix}_mean'], row[f'{prefix}_std'] = '', ''
            else:  # each seed's mean over the tasks, then mean ± std over seeds
                row[f'{prefix}_mean'], row[f'{prefix}_std'] = _mean_std(list(np.mean(per_task, axis=0)), scale)
        rows.append(row)
    return rows


def write_summary(directory: str, results: list[TaskResult], agent_name: str) -> tuple[str, str]:
    """Writes `summary.csv` and `summary.md` into `directory`; returns their paths."""
    rows = summary_rows(results)
    metrics = _metrics_present(results)
    os.makedirs(directory, exist_ok=True)
    csv_path = os.path.join(directory, 'summary.csv')
    write_atomically(csv_path, csv_text(list(rows[0]), rows))
    md_path = os.path.join(directory, 'summary.md')
    lines = [f'# {agent_name}: final evaluation success (%)', '',
             'mean ± std over seeds; environment rows average each seed over its tasks first.', '',
             '| task | seeds | step | ' + ' | '.join(header for *_, header in metrics) + ' |',
             '|---|---|---|' + '---|' * len(metrics)]
    for row in rows:
        name = f"**{row['task']}**" if row['num_tasks'] > 1 else row['task']
        cells = [f"{row[f'{prefix}_mean']:.1f} ± {row[f'{prefix}_std']:.1f}" if row[f'{prefix}_mean'] != '' else ''
                 for prefix, *_ in metrics]
        lines.append(f"| {name} | {row['num_seeds']} | {row['step']} | " + ' | '.join(cells) + ' |')
    write_atomically(md_path, '\n'.join(lines) + '\n')
    return csv_path, md_path
