"""sweeps.report: the paper's tables from a sweep folder, on made-up runs (no training): environment means, rliable
aggregates and selection through the CLI, the raw per-seed CSV against the runs' eval.csv, the main and appendix
tables (bold entries, readable names, short task names, the "paper" column, protocol labels, the last-three steps),
LaTeX that compiles, dropped tasks named, seeded profile bands, folders written before the change, and the one
environment average shared with a run's summary.
"""

import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

import configs
import runs
import sweep
from sweeps import SweepError, report, statistics
from tests.test_sweep import TASKS, write_fake_sweep
from training.summary import TaskResult, summary_rows

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SINGLE = ['cube-single-play-singletask-task1-v0', 'cube-single-play-singletask-task2-v0']
DOUBLE = ['cube-double-play-singletask-task1-v0', 'cube-double-play-singletask-task3-v0']
COMMIT = '0123456789abcdef0123456789abcdef01234567'


def make_sweep(sweep_dir: str, success: dict[tuple[str, str], list[float]], unfinished: tuple[str, ...] = (),
               tasks: list[str] = SINGLE + DOUBLE) -> tuple[dict, dict]:
    """A sweep folder written as main.py writes runs (flags.json, eval.csv, final.json through `runs`): settings
    'mfql,alpha=10', 'mfql,alpha=30' and 'fql'; seeds 0-2; 300 updates, evaluations every 100 at steps 1, 100,
    200, 300 whose success drifts up to the final value `success[(setting, task)][seed]` (the last-three mean).
    Jobs named in `unfinished` have no final.json. Returns the manifest and the jobs' states."""
    settings = {'mfql,alpha=10': ('mfql', {'alpha': '10'}), 'mfql,alpha=30': ('mfql', {'alpha': '30'}),
                'fql': ('fql', {})}
    manifest, states = {'version': 1, 'jobs': {}}, {}
    for setting, (agent, overrides) in settings.items():
        for task in tasks:
            name, run_dir = f'{setting}/{task}', os.path.join('runs', setting, task, task)
            manifest['jobs'][name] = {'setting': setting, 'agent': agent, 'task': task, 'seeds': [0, 1, 2],
                                      'overrides': overrides, 'run_dir': run_dir}
            states[name] = ('pending', '') if name in unfinished else ('done', 'step 300')
            for seed in (0, 1, 2):
                folder = runs.seed_dir(os.path.join(sweep_dir, run_dir), seed)
                os.makedirs(folder)
                config = {'alpha': float(overrides.get('alpha', 10)), 'value_hidden_dims': [512, 512, 512, 512],
                          'actor_hidden_dims': [512, 512, 512, 512], 'batch_size': 256}
                runs.write_json(runs.flags_path(folder), {
                    'command': ['main.py', f'--env_name={task}'], 'git_hash': COMMIT, 'eval_episodes': 50,
                    'agent_config': config, 'flags': {'offline_steps': 300, 'online_steps': 0, 'eval_interval': 100,
                                                      'eval_episodes': 50}})
                final = success[(setting, task)][seed]
                logger = runs.CsvLogger(runs.eval_csv_path(folder))
                values = {1: 0.0, 100: final - 0.02, 200: final + 0.01, 300: final + 0.01}
                for step, value in values.items():
                    logger.log(step, {'evaluation/success': value, 'evaluation/return': 100 * value - 50})
                if name not in unfinished:
                    runs.write_json(runs.final_path(folder), {'step': 300, 'evaluation/success_last3': final,
                                                              'evaluation/success': final + 0.01,
                                                              'evaluation/score': 100 * final})
    return manifest, states


def scores_for(tasks: list[str] = SINGLE + DOUBLE, seed: int = 0) -> dict[tuple[str, str], list[float]]:
    rng = np.random.default_rng(seed)
    scores = {(setting, task): list(rng.uniform(0.1, 0.9, 3).round(3))
              for setting in ('mfql,alpha=10', 'mfql,alpha=30', 'fql') for task in tasks}
    scores[('mfql,alpha=30', SINGLE[0])] = [0.95, 0.96, 0.97]
    return scores


@pytest.fixture(scope='module')
def written(tmp_path_factory) -> tuple[str, dict]:
    """A finished made-up sweep and its report (1,000 bootstrap replications)."""
    sweep_dir = str(tmp_path_factory.mktemp('sweep'))
    scores = scores_for()
    manifest, states = make_sweep(sweep_dir, scores)
    report.write_report(sweep_dir, manifest, states, 1000)
    return sweep_dir, scores


def read_rows(path: str) -> list[dict[str, str]]:
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_report_environment_means_aggregates_and_selection_on_made_up_runs(tmp_path, capsys):
    """Through the CLI, on a sweep folder written before flags.json held a list (the command as one string)."""
    rng = np.random.default_rng(0)
    tasks = [*TASKS, 'cube-double-play-singletask-task2-v0']
    scores = {(alpha, task): list(rng.uniform(0, 1, 3).round(2)) for alpha in ('10', '30.0') for task in tasks}
    scores[('30.0', TASKS[0])] = [0.9, 0.95, 1.0]  # alpha 30 wins cube-single; cube-double is a draw of the rng
    write_fake_sweep(str(tmp_path), scores)
    presets = tmp_path / 'chosen' / 'presets.json'  # its folder is made
    assert sweep.run([f'--save_dir={tmp_path}', '--report', '--bootstrap_reps=2000', f'--write_presets={presets}']) == 0
    rows = {(row['setting'], row['task']): row for row in read_rows(tmp_path / 'report' / 'per_task.csv')}
    for alpha in ('10', '30.0'):
        per_seed = np.mean([scores[(alpha, task)] for task in TASKS], axis=0)  # each seed over the env's tasks
        row = rows[(f'mfql,alpha={alpha}', 'cube-single-play (average)')]
        assert (float(row['mean']), float(row['std'])) == pytest.approx((per_seed.mean(), per_seed.std()))
        assert row['unit'] == 'success rate, fraction'
        single = rows[(f'mfql,alpha={alpha}', tasks[2])]  # a one-task environment has no average row
        assert float(single['mean']) == pytest.approx(np.mean(scores[(alpha, tasks[2])]))
    assert ('mfql,alpha=10', 'cube-double-play (average)') not in rows
    aggregates = {(row['setting'], row['aggregate']): row for row in read_rows(tmp_path / 'report' / 'aggregates.csv')}
    for alpha in ('10', '30.0'):
        all_runs = np.array([scores[(alpha, task)] for task in tasks]).T  # (runs, tasks)
        # rliable: IQM over all runs; median of the per-task means; mean; shortfall below 1 over all runs.
        expected = {'IQM': stats.trim_mean(all_runs.ravel(), 0.25), 'Median': np.median(all_runs.mean(axis=0)),
                    'Mean': all_runs.mean(), 'Optimality gap': np.mean(1 - all_runs)}
        for name, value in expected.items():
            row = aggregates[(f'mfql,alpha={alpha}', name)]
            assert float(row['point']) == pytest.approx(value)
            assert float(row['low']) <= float(row['point']) <= float(row['high'])
            assert float(row['low']) < float(row['high'])  # the runs differ, so the intervals have width
    payload = configs.read_presets_file(str(presets))
    double_best = max(('10', '30.0'), key=lambda a: np.mean(scores[(a, tasks[2])]))
    assert payload['presets'] == {'mfql': {'cube-single-play': {'alpha': 30},
                                           'cube-double-play': {'alpha': ast.literal_eval(double_best)}}}
    markdown = open(tmp_path / 'report' / 'report.md').read()
    single = {alpha: np.mean(np.mean([scores[(alpha, task)] for task in TASKS], axis=0)) for alpha in ('10', '30.0')}
    assert (f'| MeanFlowQL | cube-single-play | MeanFlowQL (α=10): {single["10"]:.2f}, '
            f'**MeanFlowQL (α=30.0): {single["30.0"]:.2f}** |' in markdown)
    assert 'selected on evaluation success, as the papers do' in payload['source']
    # Runs from before the change recorded no evaluation settings: the label says so rather than guessing.
    assert 'evaluation steps not recorded' in markdown and 'commit not recorded' in markdown


def test_raw_csv_has_one_row_per_seed_and_evaluation_equal_to_the_runs_eval_csv(written):
    sweep_dir, _ = written
    raw = read_rows(os.path.join(sweep_dir, 'report', 'per_seed.csv'))
    manifest_jobs = {row['setting'] + '/' + row['task'] for row in raw}
    assert len(manifest_jobs) == 3 * 4 and len(raw) == 3 * 4 * 3 * 4  # settings × tasks × seeds × evaluations
    by_key = {(row['setting'], row['task'], int(row['seed']), int(row['step'])): row for row in raw}
    for setting in ('mfql,alpha=10', 'mfql,alpha=30', 'fql'):
        for task in SINGLE + DOUBLE:
            for seed in (0, 1, 2):
                folder = runs.seed_dir(os.path.join(sweep_dir, 'runs', setting, task, task), seed)
                for evaluation in runs.read_csv(runs.eval_csv_path(folder)):
                    row = by_key[(setting, task, seed, int(evaluation['step']))]
                    for key, value in evaluation.items():
                        assert float(row[key]) == value
                    assert row['commit'] == COMMIT and row['environment'] == task.split('-singletask')[0]
    assert raw[0]['agent'] == 'mfql' and json.loads(raw[0]['overrides']) == {'alpha': '10'}


def test_main_table_has_environments_their_average_paper_columns_and_protocol(written):
    sweep_dir, scores = written
    markdown = open(os.path.join(sweep_dir, 'report', 'report.md')).read()
    main = markdown.split('### Main table: environments')[1].split('###')[0]
    assert ('| environment (success rate, fraction) | MeanFlowQL (α=10) | MeanFlowQL (α=30) | FQL | '
            'MeanFlowQL (paper) | FQL (paper) |') in main
    lines = [line for line in main.splitlines() if line.startswith('| ')]
    assert [line.split(' | ')[0] for line in lines[1:]] == ['| cube-single-play', '| cube-double-play', '| Average']
    assert all(line.count('not verified') == 2 for line in lines[2:])  # no published number is verified yet
    rows = {(row['setting'], row['task']): row for row in read_rows(os.path.join(sweep_dir, 'report', 'per_task.csv'))}
    for setting in ('mfql,alpha=10', 'fql'):
        per_env = [np.mean([scores[(setting, t)] for t in tasks], axis=0) for tasks in (SINGLE, DOUBLE)]
        overall = np.mean(per_env, axis=0)  # each seed's mean over the environments
        assert float(rows[(setting, 'average')]['mean']) == pytest.approx(overall.mean())
        assert float(rows[(setting, 'average')]['std']) == pytest.approx(overall.std())
    # The protocol label, with the evaluation steps "last three" means and the commit, under every table.
    label = ('Protocol: 300 offline updates; score: success rate (a fraction), mean of the last three evaluations '
             '(steps 100, 200 and 300); 50 evaluation episodes per seed; dataset: each task\'s OGBench dataset (size '
             'not recorded); networks: MeanFlowQL: actor_hidden_dims 4×512, value_hidden_dims 4×512; FQL: '
             f'actor_hidden_dims 4×512, value_hidden_dims 4×512; commit {COMMIT[:12]}.')
    assert markdown.count(label) == 4  # main, appendix, aggregates, selection
    assert {row['commit'] for row in rows.values()} == {COMMIT[:12]}


def test_the_best_entry_and_those_within_its_interval_are_bold(written):
    sweep_dir, scores = written
    rows = read_rows(os.path.join(sweep_dir, 'report', 'per_task.csv'))
    task_row = {row['setting']: row for row in rows if row['task'] == SINGLE[0]}
    assert task_row['mfql,alpha=30']['bold'] == 'True'  # 0.96 ± 0.01 against draws from U(0.1, 0.9)
    assert task_row['mfql,alpha=10']['bold'] == task_row['fql']['bold'] == 'False'
    # Two settings with overlapping seeds: the runner-up lies within the best one's interval and is bold too.
    cells = {'a': statistics.Cell((0, 1, 2), np.array([[0.5], [0.7], [0.9]])),
             'b': statistics.Cell((0, 1, 2), np.array([[0.6], [0.65], [0.7]])),
             'c': statistics.Cell((0, 1, 2), np.array([[0.1], [0.1], [0.2]]))}
    marked = statistics.mark_best([statistics.Row('task', 'env', 'task', 'task1', cells)])[0]
    assert marked.bold == {'a', 'b'}


def test_appendix_lists_short_task_names_under_environment_headings(written):
    sweep_dir, _ = written
    markdown = open(os.path.join(sweep_dir, 'report', 'report.md')).read()
    appendix = markdown.split('### Per task (appendix)')[1].split('###')[0]
    first_column = [line.split(' | ')[0][2:] for line in appendix.splitlines() if line.startswith('| ')][1:]
    assert first_column == ['**cube-single-play**', 'task1', 'task2', '**cube-double-play**', 'task1', 'task3']
    assert '| task (success rate, fraction) | MeanFlowQL (α=10) | MeanFlowQL (α=30) | FQL |' in appendix


def latex_environments(text: str) -> list[str]:
    """The \\begin/\\end environment names in order; raises if they do not nest."""
    stack, seen = [], []
    for kind, name in re.findall(r'\\(begin|end)\{(\w+\*?)\}', text):
        if kind == 'begin':
            stack.append(name)
            seen.append(name)
        else:
            assert stack and stack.pop() == name, f'\\end{{{name}}} does not close the open environment'
    assert not stack, f'unclosed: {stack}'
    return seen


def test_latex_has_separate_floats_that_compile(written, tmp_path):
    sweep_dir, _ = written
    tex = open(os.path.join(sweep_dir, 'report', 'tables.tex')).read()
    floats = [name for name in latex_environments(tex) if name in ('table', 'longtable')]
    assert floats == ['table', 'longtable', 'table']  # main, appendix, aggregates: one float each
    for body in re.findall(r'\\begin\{(?:tabular|longtable)\}\{(l\w*)\}\n(.*?)\n\\end\{(?:tabular|longtable)\}', tex,
                           re.S):
        columns = len(body[0])
        for line in body[1].splitlines():
            if line.endswith(r'\\') and 'multicolumn' not in line and 'caption' not in line:
                assert line.count(' & ') == columns - 1, line
    assert r'\textbf{' in tex and r'MeanFlowQL ($\alpha$=10)' in tex and r'\caption{' in tex
    if shutil.which('pdflatex') is None:
        pytest.skip('pdflatex is not installed: the LaTeX was checked for balance only')
    document = ('\\documentclass{article}\\usepackage[T1]{fontenc}\\usepackage[utf8]{inputenc}'
                '\\usepackage{booktabs,longtable,graphicx}\\begin{document}\n' + tex + '\\end{document}\n')
    (tmp_path / 'tables.tex').write_text(document)
    result = subprocess.run(['pdflatex', '-interaction=nonstopmode', '-halt-on-error', 'tables.tex'], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'Overfull' not in result.stdout and (tmp_path / 'tables.pdf').exists()


def test_aggregates_name_the_tasks_they_dropped(tmp_path):
    manifest, states = make_sweep(str(tmp_path), scores_for(), unfinished=('fql/' + DOUBLE[1],))
    report.write_report(str(tmp_path), manifest, states, 500)
    markdown = open(tmp_path / 'report' / 'report.md').read()
    assert f'aggregates over 3 task(s) (rliable)' in markdown
    assert f'Dropped (not finished by every setting): {DOUBLE[1]}.' in markdown
    assert f'Not finished (1 job(s);' in markdown and f'fql/{DOUBLE[1]}' in markdown
    aggregates = read_rows(tmp_path / 'report' / 'aggregates.csv')
    assert {row['dropped_tasks'] for row in aggregates} == {DOUBLE[1]}
    rows = {(row['setting'], row['task']): row for row in read_rows(tmp_path / 'report' / 'per_task.csv')}
    assert rows[('fql', 'cube-double-play (average)')]['mean'] == ''  # an environment with a task missing
    assert rows[('fql', 'average')]['mean'] == ''
    assert f'{DOUBLE[1]}' not in {row['task'] for row in read_rows(tmp_path / 'report' / 'per_seed.csv')
                                  if row['setting'] == 'fql'}


def test_a_presets_file_that_cannot_be_written_is_one_error_line(tmp_path):
    write_fake_sweep(str(tmp_path), {(alpha, task): [0.5] * 3 for alpha in ('10', '30.0')
                                     for task in [*TASKS, 'cube-double-play-singletask-task2-v0']})
    (tmp_path / 'a_file').write_text('')
    with pytest.raises(SweepError,
                       match=rf"^cannot write the report or the presets file: File exists: {tmp_path}/a_file$"):
        sweep.run([f'--save_dir={tmp_path}', '--report', '--bootstrap_reps=200',
                   f'--write_presets={tmp_path}/a_file/presets.json'])


def test_d4rl_tasks_are_their_own_environments_in_a_table_of_their_own(tmp_path):
    d4rl = ['pen-human-v1', 'antmaze-umaze-v2']
    manifest, states = make_sweep(str(tmp_path), scores_for(SINGLE + d4rl), tasks=SINGLE + d4rl)
    report.write_report(str(tmp_path), manifest, states, 500)
    markdown = open(tmp_path / 'report' / 'report.md').read()
    d4rl_part = markdown.split('## D4RL: normalised score (×100) at the final evaluation')[1]
    assert '| environment (D4RL normalised score, ×100) | MeanFlowQL (α=10) |' in d4rl_part
    assert '### Per task (appendix)' not in d4rl_part  # each task is its own environment: the main table has them
    assert '(step 300)' in d4rl_part and 'the mean shortfall below 100' in d4rl_part
    rows = {(row['setting'], row['task']): row for row in read_rows(tmp_path / 'report' / 'per_task.csv')}
    assert float(rows[('fql', 'pen-human-v1')]['mean']) == pytest.approx(100 * np.mean(scores_for(SINGLE + d4rl)[
        ('fql', 'pen-human-v1')]))
    assert rows[('fql', 'pen-human-v1')]['unit'] == 'D4RL normalised score, ×100'
    for image in ('intervals.png', 'profile.png', 'intervals_score.png', 'profile_score.png'):
        assert (tmp_path / 'report' / image).stat().st_size > 10_000


def test_performance_profile_bands_are_seeded():
    rng = np.random.default_rng(1)
    matrices = {'a': rng.uniform(0, 1, (5, 4)), 'b': rng.uniform(0, 1, (5, 4))}
    taus = np.linspace(0, 1, 11)
    first = statistics.performance_profiles(matrices, taus, 200, seed=0)
    again = statistics.performance_profiles(matrices, taus, 200, seed=0)
    other = statistics.performance_profiles(matrices, taus, 200, seed=1)
    for name in matrices:
        np.testing.assert_array_equal(first[1][name], again[1][name])
        np.testing.assert_array_equal(first[0][name], np.mean(matrices[name][..., None] > taus, axis=(0, 1)))
    assert any(not np.array_equal(first[1][name], other[1][name]) for name in matrices)


def test_the_report_and_a_runs_summary_share_one_environment_average(written):
    """The same seeds' scores through training.summary (a main.py run) and the sweep report give the same numbers."""
    sweep_dir, scores = written
    results = [TaskResult(task, [0, 1, 2], 300, [0.0] * 3, [0.0] * 3, scores[('fql', task)]) for task in SINGLE]
    summary = {row['task']: row for row in summary_rows(results)}['cube-single-play (average)']
    rows = {(row['setting'], row['task']): row for row in read_rows(os.path.join(sweep_dir, 'report', 'per_task.csv'))}
    reported = rows[('fql', 'cube-single-play (average)')]
    assert float(reported['mean']) == summary['success_last3_fraction_mean']
    assert float(reported['std']) == summary['success_last3_fraction_std']


def test_the_report_needs_no_jax():
    code = 'import sys, sweeps.report; assert "jax" not in sys.modules and "flax" not in sys.modules'
    subprocess.run([sys.executable, '-c', code], cwd=REPO_DIR, check=True)
