"""What the report reads from a sweep folder, through `runs`: each finished job's per-seed score (final.json), every
seed's evaluations (eval.csv, for the raw results) and what each run recorded about itself (flags.json).

Only finished jobs (state 'done') are read; the others are listed as unfinished. A job folder made before flags.json
held the command as a list reads the same (`runs` reads both forms).
"""

import dataclasses
import json
import os
from typing import Any

from results import Metric, task_info
from runs import eval_csv_path, read_csv_if_any, read_final, read_flags, seed_dir

Scores = dict[str, dict[str, dict[int, float]]]  # setting -> task -> seed -> score in its metric's unit
RAW_COLUMNS = ['benchmark', 'setting', 'agent', 'overrides', 'environment', 'task', 'seed', 'commit', 'step']


@dataclasses.dataclass
class Group:
    """The finished results of one benchmark's tasks (one table each: OGBench success, D4RL score)."""

    benchmark: str
    metric: Metric
    tasks: list[str]  # every task of the benchmark in the sweep, finished or not, in the manifest's order
    scores: Scores


@dataclasses.dataclass
class SweepResults:
    sweep_dir: str
    groups: list[Group]  # in the order their first task appears in the manifest
    settings: list[str]  # every setting ('<agent>[,KEY=VALUE...]') in the manifest's order
    entries: dict[str, dict[str, Any]]  # setting -> one manifest entry of it (its agent and overrides)
    finished: list[dict[str, Any]]  # the manifest entries of the finished jobs
    unfinished: list[str]  # names of the other jobs


def seed_folders(sweep_dir: str, entry: dict[str, Any]) -> list[tuple[int, str]]:
    """(seed, folder) of every seed of a manifest entry."""
    return [(seed, seed_dir(os.path.join(sweep_dir, entry['run_dir']), seed)) for seed in entry['seeds']]


def seed_scores(sweep_dir: str, entry: dict[str, Any]) -> dict[int, float]:
    """{seed: the papers' number for the task} of a finished job, from each seed's final.json (null -> NaN)."""
    key = task_info(entry['task']).reported.key
    scores = {}
    for seed, folder in seed_folders(sweep_dir, entry):
        value = (read_final(folder) or {}).get(key)
        scores[seed] = float('nan') if value is None else float(value)
    return scores


def collect(sweep_dir: str, manifest: dict[str, Any], states: dict[str, tuple[str, str]]) -> SweepResults:
    """The finished jobs' scores grouped by benchmark, with the settings, tasks and unfinished jobs of the manifest."""
    groups: dict[str, Group] = {}
    settings, finished, unfinished, entries = [], [], [], {}
    for name, entry in manifest['jobs'].items():
        info = task_info(entry['task'])
        entries.setdefault(entry['setting'], entry)
        settings += [entry['setting']] if entry['setting'] not in settings else []
        group = groups.setdefault(info.benchmark, Group(info.benchmark, info.reported, [], {}))
        group.tasks += [entry['task']] if entry['task'] not in group.tasks else []
        if states[name][0] != 'done':
            unfinished.append(name)
            continue
        finished.append(entry)
        group.scores.setdefault(entry['setting'], {})[entry['task']] = seed_scores(sweep_dir, entry)
    return SweepResults(sweep_dir, [group for group in groups.values() if group.scores], settings, entries,
                        finished, unfinished)


def commit_of(flags_json: dict[str, Any] | None) -> str:
    """The commit a run recorded (`git_hash`, '+dirty' kept), or 'not recorded'."""
    return str((flags_json or {}).get('git_hash') or 'not recorded')


def raw_rows(results: SweepResults) -> tuple[list[str], list[dict[str, Any]]]:
    """The raw results: one row per setting × task × seed × evaluation step of the finished jobs, with every column
    of the seed's eval.csv as it holds it; returns the columns (`RAW_COLUMNS`, then eval.csv's in order) and rows."""
    columns, rows = list(RAW_COLUMNS), []
    for entry in results.finished:
        info = task_info(entry['task'])
        for seed, folder in seed_folders(results.sweep_dir, entry):
            commit = commit_of(read_flags(folder))
            for evaluation in read_csv_if_any(eval_csv_path(folder)):
                columns += [key for key in evaluation if key not in columns]
                rows.append({**evaluation, 'benchmark': info.benchmark, 'setting': entry['setting'],
                             'agent': entry['agent'], 'overrides': json.dumps(entry['overrides'], sort_keys=True),
                             'environment': info.environment, 'task': entry['task'], 'seed': seed, 'commit': commit,
                             'step': int(evaluation['step'])})
    return columns, rows


def recorded_flags(results: SweepResults, tasks: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(manifest entry, flags.json) of every seed of the finished jobs of `tasks` that recorded one."""
    pairs = []
    for entry in results.finished:
        if entry['task'] in tasks:
            pairs += [(entry, recorded) for _, folder in seed_folders(results.sweep_dir, entry)
                      if (recorded := read_flags(folder)) is not None]
    return pairs
