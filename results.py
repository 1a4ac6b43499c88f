"""The reported numbers' shared rules: which metric a task reports and in which unit, the environment a task is
averaged in, the "last three evaluations", mean ± std over seeds and the environment average. NumPy, the standard
library and the pure-Python task-name grammar (`datasets.names`) only, so that a run's summary (`training/summary.py`)
and a sweep's report (`sweeps/report.py`) apply the same rules, and the sweep side needs no JAX.

Units, one everywhere: success is a fraction in [0, 1] (eval.csv, final.json, summary.{csv,md}, the report); the D4RL
normalised score is on D4RL's ×100 scale (0 = random, 100 = expert). Every table header names its unit.
"""

import dataclasses
from typing import Sequence

import numpy as np

from datasets.families import family_of


@dataclasses.dataclass(frozen=True)
class Metric:
    """One number of a seed's final.json, as the tables print it."""

    key: str  # final.json key
    eval_column: str  # the eval.csv column it is computed from
    column: str  # prefix of summary.csv's `<column>_mean` / `<column>_std`
    field: str  # the `training.summary.TaskResult` field holding it
    header: str  # table header, naming the unit and which evaluation
    unit: str  # the unit alone
    definition: str  # one sentence for captions
    best: float  # the best possible value: the optimality gap's target and the performance profile's range
    decimals: int


_SUCCESS, _SCORE = 'success rate, fraction', 'D4RL normalised score, ×100'
METRICS: tuple[Metric, ...] = (
    Metric('evaluation/success', 'evaluation/success', 'success_fraction', 'success',
           'success, fraction (final)', _SUCCESS, 'success rate (a fraction) at the final evaluation', 1.0, 2),
    Metric('evaluation/success_last3', 'evaluation/success', 'success_last3_fraction', 'success_last3',
           'success, fraction (mean of last 3 evals)', _SUCCESS,
           'success rate (a fraction), mean of the last three evaluations', 1.0, 2),
    Metric('evaluation/score', 'evaluation/score', 'score_x100', 'score',
           'D4RL normalised score, ×100 (final)', _SCORE, 'normalised score (×100) at the final evaluation',
           100.0, 1),
    Metric('evaluation/success_offline', 'evaluation/success', 'offline_success_fraction', 'offline_success',
           'success, fraction (end of offline training)', _SUCCESS,
           'success rate (a fraction) at the end of offline training', 1.0, 2),
    Metric('evaluation/score_offline', 'evaluation/score', 'offline_score_x100', 'offline_score',
           'D4RL normalised score, ×100 (end of offline training)', _SCORE,
           'normalised score (×100) at the end of offline training', 100.0, 1),
)
METRIC_BY_KEY = {metric.key: metric for metric in METRICS}


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """How a task is reported: its benchmark's table, the environment it is averaged in, the papers' metric for it,
    its name under its environment's heading ('task2'; a D4RL task is its own environment and keeps its name)."""

    benchmark: str  # the table a task goes in: 'OGBench' or 'D4RL'
    environment: str
    reported: Metric
    short_name: str


def task_info(task: str) -> TaskInfo:
    """How a task is reported, as its environment family says (`datasets.families`): OGBench, success as the mean of
    the last three evaluations; D4RL, the final normalised score."""
    family = family_of(task)
    return TaskInfo(family.benchmark, family.environment_of(task), METRIC_BY_KEY[family.metric_key],
                    family.short_name(task))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation over seeds (ddof = 0, NumPy's default, as the papers' tables)."""
    array = np.asarray(values, dtype=float)
    return float(np.mean(array)), float(np.std(array))


def seed_averages(per_task: Sequence[dict[int, float]]) -> dict[int, float] | None:
    """The environment average: each seed's mean over the tasks ({seed: value} per task), as FQL and MeanFlowQL
    average "over tasks and seeds" (then mean ± std over seeds, `mean_std`). None unless every task has the same
    seeds (a per-seed average needs them all)."""
    if not per_task:
        return None
    seeds = sorted(per_task[0])
    if not seeds or any(sorted(values) != seeds for values in per_task):
        return None
    return {seed: float(np.mean([values[seed] for values in per_task])) for seed in seeds}


def last_three(steps: Sequence[int]) -> list[int]:
    """The evaluation steps OGBench's number averages, from a run's evaluation steps (ascending): the last three after
    step 1 (the initial policy's evaluation never counts); fewer when there are fewer (a 1-step run: its only one)."""
    later = [step for step in steps if step > 1] or list(steps[-1:])
    return later[-3:]


def plus_minus(mean: float, std: float, decimals: int) -> str:
    """A table cell 'mean ± std' with `decimals` digits."""
    return f'{mean:.{decimals}f} ± {std:.{decimals}f}'
