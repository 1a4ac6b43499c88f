"""The report's numbers, computed once for every output: table rows (environment averages, tasks, the average over
environments) with the best entries marked, rliable's aggregates across tasks with stratified-bootstrap intervals, the
performance profile with seeded bands, and the best swept value per agent and environment.

Every bootstrap is seeded (`_interval_estimates`), so a report rebuilt from the same runs prints the same intervals,
bold entries and bands.
"""

import dataclasses
import warnings
from typing import Any, Callable

import numpy as np

from results import Metric, mean_std, seed_averages, task_info
from sweeps.collect import Scores

AGGREGATES = ('IQM', 'Median', 'Mean', 'Optimality gap')
BOLD_REPS = 2000  # bootstrap replications of the interval that decides the bold entries of a row


@dataclasses.dataclass(frozen=True)
class Cell:
    """One setting's entry of a row: `runs` (seeds, columns) holds the values averaged into it (a task: one column;
    an environment: its tasks; the overall average: the environments' averages); a seed's score is its row mean."""

    seeds: tuple[int, ...]
    runs: np.ndarray

    @property
    def per_seed(self) -> list[float]:
        return [float(value) for value in self.runs.mean(axis=1)]

    @property
    def mean_std(self) -> tuple[float, float]:
        return mean_std(self.per_seed)

    @property
    def num_seeds(self) -> int:
        return self.runs.shape[0]


@dataclasses.dataclass
class Row:
    kind: str  # 'environment' | 'task' | 'overall'
    environment: str  # '' for the overall row
    name: str  # the CSV's task column: the task, '<environment> (average)' or 'average'
    label: str  # what a table prints: the environment, the short task name ('task2') or 'Average'
    cells: dict[str, Cell | None]
    bold: frozenset[str] = frozenset()


def environments_of(tasks: list[str]) -> dict[str, list[str]]:
    """{environment: its tasks}, both in the order of `tasks`."""
    grouped: dict[str, list[str]] = {}
    for task in tasks:
        grouped.setdefault(task_info(task).environment, []).append(task)
    return grouped


def _cell(per_task: list[dict[int, float] | None]) -> Cell | None:
    """The cell of the tasks' per-seed values, if every task finished with the same seeds."""
    if any(values is None for values in per_task) or seed_averages(per_task) is None:
        return None
    seeds = tuple(sorted(per_task[0]))
    return Cell(seeds, np.array([[values[seed] for values in per_task] for seed in seeds], dtype=float))


def task_rows(scores: Scores, settings: list[str], tasks: list[str]) -> list[Row]:
    """One row per task (mean ± std over its seeds), labelled with its short name."""
    return [Row('task', task_info(task).environment, task, task_info(task).short_name,
                {setting: _cell([scores.get(setting, {}).get(task)]) for setting in settings}) for task in tasks]


def environment_rows(scores: Scores, settings: list[str], tasks: list[str]) -> list[Row]:
    """One row per environment: each seed's mean over the environment's tasks (`results.seed_averages`)."""
    return [Row('environment', environment, f'{environment} (average)', environment,
                {setting: _cell([scores.get(setting, {}).get(task) for task in env_tasks]) for setting in settings})
            for environment, env_tasks in environments_of(tasks).items()]


def overall_row(environment_table: list[Row], settings: list[str]) -> Row:
    """The average over environments (each weighted equally), per seed, from the environment rows' per-seed values."""
    cells = {}
    for setting in settings:
        per_environment = [row.cells[setting] for row in environment_table]
        cells[setting] = None if any(cell is None for cell in per_environment) else _cell(
            [dict(zip(cell.seeds, cell.per_seed)) for cell in per_environment])
    return Row('overall', '', 'average', 'Average', cells)


def _interval_estimates(matrices: dict[str, np.ndarray], function: Callable[[np.ndarray], np.ndarray], reps: int,
                        seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """rliable's `get_interval_estimates`, seeded. rliable 1.2's StratifiedBootstrap draws its resamples with
    `np.random.choice` (NumPy's global generator) and ignores the `random_state` it is given, so the global generator
    is seeded for the call and restored afterwards; `random_state` is passed too, for a rliable that honours it."""
    from rliable import library
    global_state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # arch, under rliable, deprecates RandomState
            warnings.simplefilter('ignore', FutureWarning)
            return library.get_interval_estimates(matrices, function, reps=reps,
                                                  random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(global_state)


def mark_best(rows: list[Row], seed: int = 0) -> list[Row]:
    """Each row with its best entry (highest mean) and the entries whose mean lies within the best one's 95%
    stratified-bootstrap interval of the mean (rliable) marked bold; rows with fewer than two entries stay plain."""
    from rliable import metrics
    marked = []
    for row in rows:
        present = {setting: cell for setting, cell in row.cells.items() if cell is not None}
        bold: frozenset[str] = frozenset()
        if len(present) > 1:
            best = max(present, key=lambda setting: present[setting].mean_std[0])
            _, intervals = _interval_estimates({best: present[best].runs},
                                               lambda s: np.array([metrics.aggregate_mean(s)]), BOLD_REPS, seed)
            low = float(intervals[best][0, 0])
            bold = frozenset(s for s, cell in present.items() if s == best or cell.mean_std[0] >= low)
        marked.append(dataclasses.replace(row, bold=bold))
    return marked


def score_matrices(scores: Scores, settings: list[str], tasks: list[str]
                   ) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """rliable's input: {setting: (runs, tasks) scores} on the tasks every setting finished (runs = the seeds every
    one of those tasks has); returns it with the tasks used and the settings left out (no finished task)."""
    included = [setting for setting in settings if scores.get(setting)]
    common = [task for task in tasks if included and all(task in scores[setting] for setting in included)]
    matrices = {}
    for setting in included:
        seeds = sorted(set.intersection(*(set(scores[setting][task]) for task in common))) if common else []
        if seeds:
            matrices[setting] = np.array([[scores[setting][task][seed] for task in common] for seed in seeds])
    return matrices, common, [setting for setting in settings if setting not in matrices]


def aggregate_estimates(matrices: dict[str, np.ndarray], metric: Metric, reps: int, seed: int = 0
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """rliable's point estimates and 95% stratified-bootstrap intervals of (IQM, median, mean, optimality gap) per
    setting, in the metric's unit (the optimality gap is the mean shortfall below the metric's best value)."""
    from rliable import metrics

    def aggregates(scores: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_median(scores),
                         metrics.aggregate_mean(scores), metrics.aggregate_optimality_gap(scores, gamma=metric.best)])

    return _interval_estimates(matrices, aggregates, reps, seed)


def performance_profiles(matrices: dict[str, np.ndarray], taus: np.ndarray, reps: int, seed: int = 0
                         ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """rliable's performance profile (the fraction of runs scoring above each τ) with 95% bands, as
    `rliable.library.create_performance_profile` computes it, but with the bootstrap seeded like the intervals
    (that function takes no random state)."""
    from rliable import library
    return _interval_estimates(matrices, lambda scores: library.score_distributions(scores, taus), reps, seed)


def selections(scores: Scores, settings: list[str], tasks: list[str],
               entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per agent with several settings and per environment: each setting's score (each seed's mean over the
    environment's tasks, then the mean over seeds) and the best one (the first of ties)."""
    result = []
    for agent in dict.fromkeys(entries[setting]['agent'] for setting in settings):
        own = [setting for setting in settings if entries[setting]['agent'] == agent]
        if len(own) < 2:
            continue
        for environment, env_tasks in environments_of(tasks).items():
            values = {}
            for setting in own:
                per_task = [scores.get(setting, {}).get(task) for task in env_tasks]
                averages = None if any(v is None for v in per_task) else seed_averages(per_task)
                if averages is not None:
                    values[setting] = mean_std(list(averages.values()))[0]
            if values:
                best = max(values, key=values.get)
                result.append({'agent': agent, 'environment': environment, 'tasks': len(env_tasks),
                               'scores': values, 'best': best, 'overrides': entries[best]['overrides']})
    return result
