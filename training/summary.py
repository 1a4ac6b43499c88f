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


def _mean_std(values: list[float], scale: float = 100.0) -> tuple[float, float]:
    array = scale * np.asarray(values, dtype=float)
    return float(np.mean(array)), float(np.std(array))


def summary_rows(results: list[TaskResult]) -> list[dict[str, object]]:
    """Rows: one per task, then one per environment (`task` = '<env> (average)')."""
    rows = []
    for result in results:
        mean, std = _mean_std(result.success)
        mean3, std3 = _mean_std(result.success_last3)
        row = {'environment': environment_of(result.task), 'task': result.task,
               'num_tasks': 1, 'num_seeds': len(result.seeds), 'step': result.step,
               'success_mean': mean, 'success_std': std, 'success_last3_mean': mean3,
               'success_last3_std': std3}
        if any(r.score is not None for r in results):
            score_mean, score_std = _mean_std(result.score, scale=1.0) if result.score is not None else ('', '')
            row.update(score_mean=score_mean, score_std=score_std)
        rows.append(row)
    environments = sorted({environment_of(r.task) for r in results})
    for environment in environments:
        group = [r for r in results if environment_of(r.task) == environment]
        if len(group) < 2:
            continue
        seeds = group[0].seeds
        if any(r.seeds != seeds for r in group):
            continue  # averaging per seed needs the same seeds on every task
        per_seed = np.mean([r.success for r in group], axis=0)
        per_seed_last3 = np.mean([r.success_last3 for r in group], axis=0)
        mean, std = _mean_std(list(per_seed))
        mean3, std3 = _mean_std(list(per_seed_last3))
        row = {'environment': environment, 'task': f'{environment} (average)', 'num_tasks': len(group),
               'num_seeds': len(seeds), 'step': min(r.step for r in group), 'success_mean': mean,
               'success_std': std, 'success_last3_mean': mean3, 'success_last3_std': std3}
        if any(r.score is not None for r in results):
            row.update(score_mean='', score_std='')  # D4RL tasks are never grouped, so OGBench rows only
        rows.append(row)
    return rows


def write_summary(directory: str, results: list[TaskResult], agent_name: str) -> tuple[str, str]:
    """Writes `summary.csv` and `summary.md` into `directory`; returns their paths."""
    rows = summary_rows(results)
    os.makedirs(directory, exist_ok=True)
    csv_path = os.path.join(directory, 'summary.csv')
    write_atomically(csv_path, csv_text(list(rows[0]), rows))
    md_path = os.path.join(directory, 'summary.md')
    with_score = 'score_mean' in rows[0]
    lines = [f'# {agent_name}: final evaluation success (%)', '',
             'mean ± std over seeds; environment rows average each seed over its tasks first.', '',
             '| task | seeds | step | success (final) | success (mean of last 3 evals) |'
             + (' D4RL normalised score (final) |' if with_score else ''),
             '|---|---|---|---|---|' + ('---|' if with_score else '')]
    for row in rows:
        name = f"**{row['task']}**" if row['num_tasks'] > 1 else row['task']
        line = (f"| {name} | {row['num_seeds']} | {row['step']} | "
                f"{row['success_mean']:.1f} ± {row['success_std']:.1f} | "
                f"{row['success_last3_mean']:.1f} ± {row['success_last3_std']:.1f} |")
        if with_score:
            line += (f" {row['score_mean']:.1f} ± {row['score_std']:.1f} |" if row['score_mean'] != '' else ' |')
        lines.append(line)
    write_atomically(md_path, '\n'.join(lines) + '\n')
    return csv_path, md_path
