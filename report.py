"""The paper's tables from a sweep folder (`python sweep.py --save_dir=DIR --report`).

Score of a run (one seed of one job), as the papers report it: OGBench tasks, the success rate of the **mean of the
last three evaluations** (`final.json`'s `evaluation/success_last3`, in %); D4RL tasks, the final normalised
score (`evaluation/score`, already ×100). OGBench and D4RL are tabulated separately.

Written to `<save_dir>/report/`:
- `report.md`: per environment (each seed's mean over the environment's tasks, then mean ± std over seeds, as
  FQL and MeanFlowQL average "over tasks and seeds") and per task (mean ± std over seeds; std with ddof = 0),
  columns = settings (agent and swept values); then rliable's aggregates across tasks (Agarwal et al., 2021):
  IQM (over all runs), median (of the per-task means), mean and optimality gap (the mean shortfall below 100)
  with 95% stratified-bootstrap intervals over
  the runs of each task, on the tasks every setting finished; then, for swept settings, the best value per agent and
  environment, selected on evaluation success as the papers do (so it is an optimistic estimate of that setting).
- `per_task.csv` and `aggregates.csv` (long format, one number per row) and `tables.tex` (booktabs): the same numbers;
- `intervals.png` (rliable interval estimates) and `profile.png` (rliable performance profile: the fraction of runs
  scoring above τ, with 95% bands);
- with `--write_presets=FILE`: the selected values as a presets file for `main.py --presets_file=FILE`.
"""

import ast
import io
import json
import os
import warnings
from typing import Any

import numpy as np

import configs
from datasets import names
from runs import csv_text, read_final, seed_dir, write_atomically

# metric -> (final.json key, scale to the reported unit, unit as the column headers name it)
METRICS = {'success': ('evaluation/success_last3', 100.0, 'success %'),
           'score': ('evaluation/score', 1.0, 'D4RL score')}
DEFINITIONS = {'success': 'OGBench success rate (%), mean of the last three evaluations',
               'score': 'D4RL normalised score (×100), final evaluation'}
AGGREGATES = ('IQM', 'Median', 'Mean', 'Optimality gap')
SELECTION_NOTE = 'selected on evaluation success, as the papers do'


def metric_of(task: str) -> str:
    return 'score' if names.is_d4rl_name(task) else 'success'


def seed_scores(sweep_dir: str, entry: dict[str, Any]) -> dict[int, float]:
    """{seed: score in the metric's unit} of a finished job, from each seed's final.json."""
    key, scale, _ = METRICS[metric_of(entry['task'])]
    scores = {}
    for seed in entry['seeds']:
        final = read_final(seed_dir(os.path.join(sweep_dir, entry['run_dir']), seed))
        scores[seed] = scale * float(final[key])
    return scores


def collect(sweep_dir: str, manifest: dict[str, Any], states: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Scores of the finished jobs: {metric: {setting: {task: {seed: score}}}}, plus the settings and tasks in the
    manifest's order and the unfinished job names."""
    scores: dict[str, dict[str, dict[str, dict[int, float]]]] = {}
    settings, tasks, unfinished = [], [], []
    for name, entry in manifest['jobs'].items():
        settings += [entry['setting']] if entry['setting'] not in settings else []
        tasks += [entry['task']] if entry['task'] not in tasks else []
        if states[name][0] != 'done':
            unfinished.append(name)
            continue
        metric = metric_of(entry['task'])
        scores.setdefault(metric, {}).setdefault(entry['setting'], {})[entry['task']] = seed_scores(sweep_dir, entry)
    return {'scores': scores, 'settings': settings, 'tasks': tasks, 'unfinished': unfinished,
            'entries': {entry['setting']: entry for entry in manifest['jobs'].values()}}


def mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def environment_scores(per_task: dict[str, dict[int, float]], tasks: list[str]) -> list[float] | None:
    """Each seed's mean over `tasks` (every task finished, with the same seeds), else None."""
    if any(task not in per_task for task in tasks):
        return None
    seeds = sorted(per_task[tasks[0]])
    if any(sorted(per_task[task]) != seeds for task in tasks):
        return None
    return [float(np.mean([per_task[task][seed] for task in tasks])) for seed in seeds]


def table_rows(metric_scores: dict[str, dict[str, dict[int, float]]], settings: list[str],
               tasks: list[str]) -> list[dict[str, Any]]:
    """Rows per environment (its average, when it has several tasks) then per task: {'kind', 'environment', 'task',
    'cells': {setting: (mean, std, num_seeds) or None}}."""
    rows = []
    environments = list(dict.fromkeys(names.environment_of(task) for task in tasks))
    for environment in environments:
        env_tasks = [task for task in tasks if names.environment_of(task) == environment]
        if len(env_tasks) > 1:
            cells = {}
            for setting in settings:
                values = environment_scores(metric_scores.get(setting, {}), env_tasks)
                cells[setting] = (*mean_std(values), len(values)) if values is not None else None
            rows.append({'kind': 'environment', 'environment': environment, 'task': f'{environment} (average)',
                         'cells': cells})
        for task in env_tasks:
            cells = {}
            for setting in settings:
                per_seed = metric_scores.get(setting, {}).get(task)
                cells[setting] = (*mean_std(list(per_seed.values())), len(per_seed)) if per_seed else None
            rows.append({'kind': 'task', 'environment': environment, 'task': task, 'cells': cells})
    return rows


def score_matrices(metric_scores: dict[str, dict[str, dict[int, float]]], settings: list[str]
                   ) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """rliable's input: {setting: (runs, tasks) scores} on the tasks every setting finished (runs = the seeds every
    one of those tasks has); returns it with the tasks used and the settings left out (no finished task)."""
    included = [setting for setting in settings if metric_scores.get(setting)]
    common = [task for task in next(iter(metric_scores.values()))
              if all(task in metric_scores[setting] for setting in included)] if included else []
    matrices = {}
    for setting in included:
        seeds = sorted(set.intersection(*(set(metric_scores[setting][task]) for task in common))) if common else []
        if seeds:
            matrices[setting] = np.array([[metric_scores[setting][task][seed] for task in common] for seed in seeds])
    return matrices, common, [setting for setting in settings if setting not in matrices]


def aggregate_estimates(matrices: dict[str, np.ndarray], reps: int, seed: int = 0
                        ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """rliable's point estimates and 95% stratified-bootstrap intervals of (IQM, median, mean, optimality gap) per
    setting; scores in % (the optimality gap is the mean shortfall below 100)."""
    from rliable import library, metrics

    def aggregates(scores: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(scores), metrics.aggregate_median(scores),
                         metrics.aggregate_mean(scores), metrics.aggregate_optimality_gap(scores, gamma=100)])

    with warnings.catch_warnings():  # arch, under rliable, deprecates RandomState; it still seeds the bootstrap
        warnings.simplefilter('ignore', FutureWarning)
        return library.get_interval_estimates(matrices, aggregates, reps=reps,
                                              random_state=np.random.RandomState(seed))


def save_png(figure: Any, path: str) -> None:
    """The figure as a PNG cropped to its contents (rliable's plots place labels outside the axes), atomically."""
    png = io.BytesIO()
    figure.savefig(png, format='png', dpi=120, bbox_inches='tight')
    write_atomically(path, png.getvalue())


def plot_intervals(points: dict[str, np.ndarray], intervals: dict[str, np.ndarray], unit: str, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from rliable import plot_utils

    settings = list(points)
    figure, _ = plot_utils.plot_interval_estimates(points, intervals, metric_names=list(AGGREGATES),
                                                   algorithms=settings, xlabel=unit, max_ticks=4, subfigure_width=3.6,
                                                   row_height=max(0.45, 1.6 / len(settings)),
                                                   xlabel_y_coordinate=-0.5 if len(settings) < 4 else -0.1)
    figure.suptitle('95% stratified-bootstrap intervals (rliable)', y=1.25 if len(settings) < 4 else 1.05)
    save_png(figure, path)
    plt.close(figure)


def plot_profile(matrices: dict[str, np.ndarray], unit: str, reps: int, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from rliable import library, plot_utils

    taus = np.linspace(0.0, 100.0, 101)
    profiles, bands = library.create_performance_profile(matrices, taus, reps=reps)
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=bands, ax=axis,
                                         xlabel=f'τ ({unit})', ylabel='fraction of runs with score > τ',
                                         labelsize='medium', ticklabelsize='medium')
    axis.legend(axis.get_lines()[:len(profiles)], list(profiles), loc='upper right', fontsize='small')
    axis.set_title('performance profile (rliable), 95% bands')
    save_png(figure, path)
    plt.close(figure)


def selections(metric_scores: dict[str, dict[str, dict[int, float]]], settings: list[str], tasks: list[str],
               entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per agent with several settings and per environment: each setting's score (each seed's mean over the
    environment's tasks, then the mean over seeds) and the best one (the first of ties)."""
    result = []
    agents = list(dict.fromkeys(entries[setting]['agent'] for setting in settings))
    for agent in agents:
        own = [setting for setting in settings if entries[setting]['agent'] == agent]
        if len(own) < 2:
            continue
        for environment in dict.fromkeys(names.environment_of(task) for task in tasks):
            env_tasks = [task for task in tasks if names.environment_of(task) == environment]
            values = {setting: environment_scores(metric_scores.get(setting, {}), env_tasks) for setting in own}
            values = {setting: float(np.mean(v)) for setting, v in values.items() if v is not None}
            if not values:
                continue
            best = max(values, key=values.get)
            result.append({'agent': agent, 'environment': environment, 'tasks': len(env_tasks), 'scores': values,
                           'best': best, 'overrides': entries[best]['overrides']})
    return result


def _value(text: str) -> Any:
    """A swept value as the presets file stores it: '300' -> 300, '(32,32)' -> [32, 32], 'mlp' -> 'mlp'."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return list(value) if isinstance(value, tuple) else value


def _cell(cell: tuple[float, float, int] | None) -> str:
    return '–' if cell is None else f'{cell[0]:.1f} ± {cell[1]:.1f}'


def _latex(text: str) -> str:
    return text.replace('\\', r'\textbackslash{}').replace('_', r'\_').replace('%', r'\%').replace('&', r'\&') \
        .replace('±', r'$\pm$').replace('–', '--').replace('τ', r'$\tau$')


def latex_table(header: list[str], rows: list[list[str]], caption: str) -> str:
    lines = [r'\begin{table}[t]', r'\centering', r'\small', r'\begin{tabular}{l' + 'r' * (len(header) - 1) + '}',
             r'\toprule', ' & '.join(_latex(h) for h in header) + r' \\', r'\midrule']
    lines += [' & '.join(_latex(cell) for cell in row) + r' \\' for row in rows]
    lines += [r'\bottomrule', r'\end{tabular}', rf'\caption{{{_latex(caption)}}}', r'\end{table}']
    return '\n'.join(lines) + '\n'


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header),
            *('| ' + ' | '.join(row) + ' |' for row in rows)]


def write_report(sweep_dir: str, manifest: dict[str, Any], states: dict[str, tuple[str, str]], reps: int,
                 presets_path: str = '') -> str:
    """Writes the report files (module docstring) into `<sweep_dir>/report`; returns the Markdown path."""
    data = collect(sweep_dir, manifest, states)
    if not data['scores']:
        raise ValueError(f'no finished job in {sweep_dir} yet ({len(data["unfinished"])} unfinished); '
                         'python sweep.py --status shows them')
    out = os.path.join(sweep_dir, 'report')
    os.makedirs(out, exist_ok=True)
    settings, entries = data['settings'], data['entries']
    md = [f'# Sweep results: {sweep_dir}', '',
          'Per run (one seed): OGBench, success rate as the mean of the last three evaluations; D4RL, the final '
          'normalised score. Cells: mean ± std over seeds (ddof 0); environment rows average each seed over the '
          "environment's tasks first. Columns are settings (agent and swept values).", '']
    task_csv, aggregate_csv, tex = [], [], []
    for metric, metric_scores in data['scores'].items():
        unit = METRICS[metric][2]
        tasks = [task for task in data['tasks'] if metric_of(task) == metric]
        rows = table_rows(metric_scores, settings, tasks)
        header = ['environment / task', *(f'{setting} ({unit})' for setting in settings)]
        body = [[f'**{row["task"]}**' if row['kind'] == 'environment' else row['task'],
                 *(_cell(row['cells'][setting]) for setting in settings)] for row in rows]
        md += [f'## Per environment and task: {DEFINITIONS[metric]}', '', *markdown_table(header, body), '']
        tex.append(latex_table(header, [[cell.replace('**', '') for cell in row] for row in body],
                               f'{unit}: mean ± std over seeds'))
        for row in rows:
            for setting in settings:
                cell = row['cells'][setting]
                task_csv.append({'metric': metric, 'unit': unit, 'row': row['kind'], 'environment': row['environment'],
                                 'task': row['task'], 'setting': setting, 'agent': entries[setting]['agent'],
                                 'overrides': json.dumps(entries[setting]['overrides'], sort_keys=True),
                                 'num_seeds': cell[2] if cell else 0, 'mean': cell[0] if cell else '',
                                 'std': cell[1] if cell else ''})

        matrices, common, left_out = score_matrices(metric_scores, settings)
        if not matrices:
            md += ['No task was finished by every setting: no aggregates.', '']
            continue
        points, intervals = aggregate_estimates(matrices, reps)
        runs = {setting: matrix.shape[0] for setting, matrix in matrices.items()}
        md += [f'## Aggregates over {len(common)} task(s) (rliable): {DEFINITIONS[metric]}', '',
               f'Point estimates with 95% stratified-bootstrap intervals ({reps:,} replications, resampling the runs '
               'of each task); runs per task: ' + ', '.join(f'{s} {n}' for s, n in runs.items()) + '. '
               'IQM: mean of the middle 50% of all runs; median: of the per-task means; optimality gap: the mean '
               'shortfall below 100 (lower is better).', '']
        agg_header = ['setting', *(f'{name} ({unit}) [95% CI]' for name in AGGREGATES)]
        agg_body = [[setting, *(f'{points[setting][i]:.1f} [{intervals[setting][0, i]:.1f}, '
                                f'{intervals[setting][1, i]:.1f}]' for i in range(len(AGGREGATES)))]
                    for setting in matrices]
        md += [*markdown_table(agg_header, agg_body), '']
        if left_out:
            md += ['Not in the aggregates (no finished task in common): ' + ', '.join(left_out) + '.', '']
        tex.append(latex_table(agg_header, agg_body, f'Aggregates over {len(common)} tasks (rliable), {unit}'))
        for setting in matrices:
            for i, name in enumerate(AGGREGATES):
                aggregate_csv.append({'metric': metric, 'unit': unit, 'setting': setting, 'aggregate': name,
                                      'point': float(points[setting][i]), 'low': float(intervals[setting][0, i]),
                                      'high': float(intervals[setting][1, i]), 'num_tasks': len(common),
                                      'num_runs': runs[setting]})
        suffix = '' if metric == 'success' else f'_{metric}'
        plot_intervals(points, intervals, unit, os.path.join(out, f'intervals{suffix}.png'))
        plot_profile(matrices, unit, min(reps, 2000), os.path.join(out, f'profile{suffix}.png'))
        md += [f'![interval estimates](intervals{suffix}.png)', '', f'![performance profile](profile{suffix}.png)', '']

    chosen = []
    for metric, metric_scores in data['scores'].items():
        tasks = [task for task in data['tasks'] if metric_of(task) == metric]
        chosen += selections(metric_scores, settings, tasks, entries)
    if chosen:
        md += ['## Best swept values per environment', '',
               f'Score per setting: mean over seeds of each seed\'s mean over the environment\'s tasks; the best one '
               f'in bold is **{SELECTION_NOTE}**, so its score is an optimistic estimate.', '']
        body = [[row['agent'], row['environment'],
                 ', '.join(f'**{s}: {v:.1f}**' if s == row['best'] else f'{s}: {v:.1f}' for s, v in row['scores'].items())]
                for row in chosen]
        md += [*markdown_table(['agent', 'environment', 'score per setting (unit as above)'], body), '']
        write_atomically(os.path.join(out, 'selection.csv'), csv_text(
            ['agent', 'environment', 'setting', 'score', 'selected'],
            [{'agent': row['agent'], 'environment': row['environment'], 'setting': setting, 'score': value,
              'selected': setting == row['best']} for row in chosen for setting, value in row['scores'].items()]))
    if presets_path:
        presets: dict[str, dict[str, dict[str, Any]]] = {}
        for row in chosen:
            presets.setdefault(row['agent'], {})[row['environment']] = {
                key: _value(value) for key, value in row['overrides'].items()}
        if not presets:
            raise ValueError('--write_presets: the sweep has no swept setting with a finished environment to choose '
                             'from')
        configs.write_presets_file(presets_path, presets, f'best of a sweep in {sweep_dir}, {SELECTION_NOTE}')
        md += [f'Presets file written: `{presets_path}` (use with `python main.py --presets_file={presets_path}`).', '']
    if data['unfinished']:
        md += [f'Not finished ({len(data["unfinished"])} job(s); `python sweep.py --save_dir={sweep_dir} --status`): '
               + ', '.join(data['unfinished']) + '.', '']

    write_atomically(os.path.join(out, 'per_task.csv'), csv_text(list(task_csv[0]), task_csv))
    if aggregate_csv:
        write_atomically(os.path.join(out, 'aggregates.csv'), csv_text(list(aggregate_csv[0]), aggregate_csv))
    write_atomically(os.path.join(out, 'tables.tex'), '\n'.join(tex))
    path = os.path.join(out, 'report.md')
    write_atomically(path, '\n'.join(md))
    print('\n'.join(md))
    print(f'report written to {out}/ (report.md, per_task.csv, aggregates.csv, tables.tex, intervals.png, '
          'profile.png)')
    return path
