"""The paper's tables from a sweep folder (`python sweep.py --save_dir=DIR --report`): `write_report`.

Score of a run (one seed of one job), as the papers report it (`results.task_info`): OGBench tasks, the success rate
(a fraction) as the **mean of the last three evaluations** (`final.json`'s `evaluation/success_last3`; each caption
names their steps); D4RL tasks, the final normalised score (×100). OGBench and D4RL are tabulated separately.

Written to `<save_dir>/report/`:
- `report.md` and `tables.tex` (booktabs), per benchmark: the main table (one row per environment: each seed's mean
  over the environment's tasks, then mean ± std over seeds, as FQL and MeanFlowQL average "over tasks and seeds"; then
  the average over environments; a "paper" column per agent), the per-task appendix (short task names under
  environment headings), and rliable's aggregates across tasks (Agarwal et al., 2021: IQM over all runs, median of
  the per-task means, mean, optimality gap) with 95% stratified-bootstrap intervals on the tasks every setting
  finished (the dropped ones named). The best entry of each row, and those within its interval, are bold. Every table
  carries the protocol label (`sweeps.protocol`) and the commit. Then, for swept settings, the best value per agent
  and environment, selected on evaluation success as the papers do (an optimistic estimate of that setting).
- `per_task.csv`, `aggregates.csv`, `selection.csv`: the same numbers, one per row;
- `per_seed.csv`: the raw results, one row per setting × task × seed × evaluation step (every seed's eval.csv);
- `intervals.png` and `profile.png` (`_score` for D4RL): rliable's interval estimates and performance profile;
- with `--write_presets=FILE`: the selected values as a presets file for `main.py --presets_file=FILE`.
"""

import ast
import dataclasses
import json
import os
from typing import Any

import numpy as np

import configs
from runs import csv_text, write_atomically
from sweeps import plots
from sweeps.collect import Group, SweepResults, collect, raw_rows
from sweeps.protocol import Protocol, protocol
from sweeps.statistics import (AGGREGATES, Row, aggregate_estimates, environment_rows, mark_best, overall_row,
                               performance_profiles, score_matrices, selections, task_rows)
from sweeps.tables import (LATEX_PREAMBLE, Table, agent_label, aggregate_table, appendix_table, main_table,
                           markdown_rows, setting_label, to_latex_float, to_longtable, to_markdown)

SELECTION_NOTE = 'selected on evaluation success, as the papers do'
PROFILE_REPS = 2000  # the profile's bands at 101 thresholds: the cost grows with reps × thresholds


@dataclasses.dataclass
class Aggregates:
    matrices: dict[str, np.ndarray]  # setting -> (runs, tasks)
    tasks: list[str]  # the tasks every setting finished
    dropped: list[str]  # the group's other tasks
    points: dict[str, np.ndarray]
    intervals: dict[str, np.ndarray]


@dataclasses.dataclass
class GroupReport:
    """Everything computed for one benchmark's tables."""

    group: Group
    protocol: Protocol
    environments: list[Row]
    overall: Row | None  # with two environments or more
    tasks: list[Row]
    aggregates: Aggregates | None  # None when no task was finished by every setting
    selections: list[dict[str, Any]]

    @property
    def suffix(self) -> str:  # file names: intervals.png for OGBench success, intervals_score.png for D4RL
        return '' if self.group.metric.field == 'success_last3' else f'_{self.group.metric.field}'


def compute(results: SweepResults, group: Group, reps: int) -> GroupReport:
    """Every number of one benchmark's tables, bootstraps seeded (`sweeps.statistics`)."""
    settings = results.settings
    environments = mark_best(environment_rows(group.scores, settings, group.tasks))
    overall = mark_best([overall_row(environments, settings)])[0] if len(environments) > 1 else None
    matrices, common, _ = score_matrices(group.scores, settings, group.tasks)
    aggregates = None
    if matrices:
        points, intervals = aggregate_estimates(matrices, group.metric, reps)
        aggregates = Aggregates(matrices, common, [t for t in group.tasks if t not in common], points, intervals)
    return GroupReport(group, protocol(results, group), environments, overall,
                       mark_best(task_rows(group.scores, settings, group.tasks)), aggregates,
                       selections(group.scores, settings, group.tasks, results.entries))


# -------------------------------------------------------------------------------------------------------- tables
def _tables(report: GroupReport, results: SweepResults, labels: dict[str, str], reps: int
            ) -> list[tuple[str, Table, str]]:
    """The group's tables as (Markdown title, Table, kind), kind 'float' or 'long' for LaTeX."""
    group, metric, protocol_label = report.group, report.group.metric, report.protocol.label()
    name = group.benchmark.lower()
    agents = list(dict.fromkeys(results.entries[s]['agent'] for s in results.settings))
    cells = f'{metric.definition}; mean ± std over seeds (ddof 0).'
    bold = ('Bold: the best entry of each row and those whose mean lies within its 95% stratified-bootstrap interval '
            '(rliable, over seeds).')
    main_caption = (f"{group.benchmark}: {cells} Rows: environments (each seed's mean over the environment's tasks), "
                    f'then their average (environments weighted equally). {bold} Paper: published numbers where '
                    'verified ("not verified": the paper\'s number has not been checked in; "not published": no '
                    f'paper). {protocol_label}')
    tables = [('Main table: environments', main_table(report.environments, report.overall, results.settings, labels,
                                                      agents, metric, main_caption, f'tab:{name}-main'), 'float')]
    if any(row.label != row.environment for row in report.tasks):  # D4RL tasks are their own environments
        caption = f'{group.benchmark} per task: {cells} {bold} {protocol_label}'
        tables.append(('Per task (appendix)', appendix_table(report.tasks, results.settings, labels, metric, caption,
                                                             f'tab:{name}-tasks'), 'long'))
    if report.aggregates is not None:
        aggregates = report.aggregates
        runs = ', '.join(f'{labels[s]} {m.shape[0]}' for s, m in aggregates.matrices.items())
        dropped = (f' Dropped (not finished by every setting): {", ".join(aggregates.dropped)}.'
                   if aggregates.dropped else '')
        caption = (f'{group.benchmark}: aggregates over {len(aggregates.tasks)} task(s) (rliable) of the '
                   f'{metric.definition}, with 95% stratified-bootstrap intervals ({reps:,} replications, resampling '
                   f'the runs of each task); runs per task: {runs}. IQM: mean of the middle 50% of all runs; median: '
                   f'of the per-task means; optimality gap: the mean shortfall below {metric.best:g} (lower is '
                   f'better).{dropped} {protocol_label}')
        tables.append(('Aggregates (rliable)', aggregate_table(aggregates.points, aggregates.intervals, labels, metric,
                                                               caption, f'tab:{name}-aggregates'), 'float'))
    return tables


def _markdown(report: GroupReport, tables: list[tuple[str, Table, str]], results: SweepResults) -> list[str]:
    """The benchmark's section of report.md: its tables with their captions, then the figures."""
    md = [f'## {report.group.benchmark}: {report.group.metric.definition}', '']
    for title, table, _ in tables:
        md += [f'### {title}', '', *to_markdown(table)]
    if report.aggregates is None:
        md += ['No task was finished by every setting: no aggregates.', '']
    else:
        left_out = [s for s in results.settings if s not in report.aggregates.matrices]
        if left_out:
            md += ['Not in the aggregates (no finished task in common): ' + ', '.join(left_out) + '.', '']
        md += [f'![interval estimates](intervals{report.suffix}.png)', '',
               f'![performance profile](profile{report.suffix}.png)', '']
    return md


def _latex(all_tables: list[list[tuple[str, Table, str]]]) -> str:
    """tables.tex: every benchmark's tables, each its own float (the appendix a longtable)."""
    parts = [to_latex_float(table) if kind == 'float' else to_longtable(table)
             for tables in all_tables for _, table, kind in tables]
    return LATEX_PREAMBLE + '\n'.join(parts)


# ----------------------------------------------------------------------------------------------------------- CSV
def _task_csv_rows(report: GroupReport, results: SweepResults) -> list[dict[str, Any]]:
    """per_task.csv: environment rows (environments of several tasks), their tasks, the average over environments."""
    metric, environments = report.group.metric, {row.environment: row for row in report.environments}
    ordered = []
    for row in report.tasks:
        if not ordered or ordered[-1].environment != row.environment:
            env_row = environments[row.environment]
            ordered += [env_row] if sum(t.environment == row.environment for t in report.tasks) > 1 else []
        ordered.append(row)
    ordered += [report.overall] if report.overall is not None else []
    return [{'benchmark': report.group.benchmark, 'metric': metric.key, 'unit': metric.unit, 'row': row.kind,
             'environment': row.environment, 'task': row.name, 'setting': setting,
             'agent': results.entries[setting]['agent'],
             'overrides': json.dumps(results.entries[setting]['overrides'], sort_keys=True),
             'num_seeds': cell.num_seeds if cell else 0, 'mean': cell.mean_std[0] if cell else '',
             'std': cell.mean_std[1] if cell else '', 'bold': setting in row.bold,
             'protocol': report.protocol.label(), 'commit': report.protocol.commit}
            for row in ordered for setting, cell in row.cells.items()]


def _aggregate_csv_rows(report: GroupReport) -> list[dict[str, Any]]:
    """aggregates.csv: one row per setting and aggregate, with its interval and the tasks it dropped."""
    aggregates, metric = report.aggregates, report.group.metric
    if aggregates is None:
        return []
    return [{'benchmark': report.group.benchmark, 'metric': metric.key, 'unit': metric.unit, 'setting': setting,
             'aggregate': name, 'point': float(aggregates.points[setting][i]),
             'low': float(aggregates.intervals[setting][0, i]), 'high': float(aggregates.intervals[setting][1, i]),
             'num_tasks': len(aggregates.tasks), 'num_runs': aggregates.matrices[setting].shape[0],
             'dropped_tasks': ' '.join(aggregates.dropped), 'protocol': report.protocol.label(),
             'commit': report.protocol.commit}
            for setting in aggregates.matrices for i, name in enumerate(AGGREGATES)]


def _write_csv(path: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """Writes the rows (columns: the first row's keys unless given) atomically; nothing when there are none."""
    if rows:
        write_atomically(path, csv_text(columns or list(rows[0]), rows))


# --------------------------------------------------------------------------------------------------------- plots
def _plots(report: GroupReport, labels: dict[str, str], reps: int, out: str) -> None:
    """The benchmark's interval-estimate and performance-profile figures (none without aggregates)."""
    if report.aggregates is None:
        return
    metric, aggregates = report.group.metric, report.aggregates
    plots.plot_intervals(aggregates.points, aggregates.intervals, labels, metric.unit,
                         os.path.join(out, f'intervals{report.suffix}.png'))
    taus = np.linspace(0.0, metric.best, 101)
    profiles, bands = performance_profiles(aggregates.matrices, taus, min(reps, PROFILE_REPS))
    plots.plot_profile(profiles, bands, taus, labels, metric.unit, os.path.join(out, f'profile{report.suffix}.png'))


# ---------------------------------------------------------------------------------------------- selection, presets
def _selection(reports: list[GroupReport], labels: dict[str, str], out: str) -> list[str]:
    """The best swept value per agent and environment: Markdown lines, and selection.csv."""
    chosen = [(report, row) for report in reports for row in report.selections]
    if not chosen:
        return []
    md = ['## Best swept values per environment', '',
          "Score per setting: mean over seeds of each seed's mean over the environment's tasks; the best one in bold "
          f'is **{SELECTION_NOTE}**, so its score is an optimistic estimate.', '']
    for report in reports:
        if report.selections:
            decimals = report.group.metric.decimals
            body = [[agent_label(row['agent']), row['environment'], ', '.join(
                f'**{labels[s]}: {v:.{decimals}f}**' if s == row['best'] else f'{labels[s]}: {v:.{decimals}f}'
                for s, v in row['scores'].items())] for row in report.selections]
            md += [*markdown_rows(['agent', 'environment', f'score per setting ({report.group.metric.unit})'], body),
                   '', report.protocol.label(), '']
    _write_csv(os.path.join(out, 'selection.csv'), [
        {'agent': row['agent'], 'environment': row['environment'], 'setting': setting, 'unit': report.group.metric.unit,
         'score': value, 'selected': setting == row['best'], 'commit': report.protocol.commit}
        for report, row in chosen for setting, value in row['scores'].items()])
    return md


def _value(text: str) -> Any:
    """A swept value as the presets file stores it: '300' -> 300, '(32,32)' -> [32, 32], 'mlp' -> 'mlp'."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return list(value) if isinstance(value, tuple) else value


def _write_presets(reports: list[GroupReport], sweep_dir: str, presets_path: str) -> list[str]:
    """The selected values as a main.py presets file; its Markdown note. ValueError if nothing was swept."""
    presets: dict[str, dict[str, dict[str, Any]]] = {}
    for row in (row for report in reports for row in report.selections):
        presets.setdefault(row['agent'], {})[row['environment']] = {
            key: _value(value) for key, value in row['overrides'].items()}
    if not presets:
        raise ValueError('--write_presets: the sweep has no swept setting with a finished environment to choose from')
    configs.write_presets_file(presets_path, presets, f'best of a sweep in {sweep_dir}, {SELECTION_NOTE}')
    return [f'Presets file written: `{presets_path}` (use with `python main.py --presets_file={presets_path}`).', '']


# ----------------------------------------------------------------------------------------------------- the entry
def write_report(sweep_dir: str, manifest: dict[str, Any], states: dict[str, tuple[str, str]], reps: int,
                 presets_path: str = '') -> str:
    """Writes the report files (module docstring) into `<sweep_dir>/report`; returns the Markdown path. ValueError
    (one line) when no job has finished or presets were asked of a sweep without a swept setting."""
    results = collect(sweep_dir, manifest, states)
    if not results.groups:
        raise ValueError(f'no finished job in {sweep_dir} yet ({len(results.unfinished)} unfinished); '
                         'python sweep.py --status shows them')
    out = os.path.join(sweep_dir, 'report')
    os.makedirs(out, exist_ok=True)
    labels = {s: setting_label(results.entries[s]['agent'], results.entries[s]['overrides']) for s in results.settings}
    reports = [compute(results, group, reps) for group in results.groups]
    tables = [_tables(report, results, labels, reps) for report in reports]
    md = [f'# Sweep results: {sweep_dir}', '',
          'Per run (one seed): OGBench, success rate (a fraction) as the mean of the last three evaluations; D4RL, the '
          'final normalised score (×100). Cells: mean ± std over seeds (ddof 0). Columns are settings (agent and '
          'swept values). The raw results, every seed at every evaluation, are in per_seed.csv.', '']
    for report, group_tables in zip(reports, tables):
        md += _markdown(report, group_tables, results)
        _plots(report, labels, reps, out)
    md += _selection(reports, labels, out)
    md += _write_presets(reports, sweep_dir, presets_path) if presets_path else []
    if results.unfinished:
        md += [f'Not finished ({len(results.unfinished)} job(s); `python sweep.py --save_dir={sweep_dir} --status`): '
               + ', '.join(results.unfinished) + '.', '']

    _write_csv(os.path.join(out, 'per_task.csv'), [row for r in reports for row in _task_csv_rows(r, results)])
    _write_csv(os.path.join(out, 'aggregates.csv'), [row for r in reports for row in _aggregate_csv_rows(r)])
    raw_columns, raw = raw_rows(results)
    _write_csv(os.path.join(out, 'per_seed.csv'), raw, raw_columns)
    write_atomically(os.path.join(out, 'tables.tex'), _latex(tables))
    path = os.path.join(out, 'report.md')
    write_atomically(path, '\n'.join(md))
    print('\n'.join(md))
    print(f'report written to {out}/ (report.md, tables.tex, per_task.csv, aggregates.csv, per_seed.csv, '
          'intervals.png, profile.png)')
    return path
