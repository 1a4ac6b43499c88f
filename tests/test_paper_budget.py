"""The paper-budget study's driver (relaunch until finished, health sampling, events) and its report (evaluation table,
pooled comparison with Newcombe's interval, health table, kept hand-written part) on made-up runs."""

import json
import os
import sys

import pytest

import runs
from benchmarks import paper_budget, paper_budget_report
from benchmarks.intervals import newcombe_interval


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, Table II example (a): 56/70 against 48/80, method 10.
    low, high = newcombe_interval((56, 70), (48, 80))
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def write_seed(work_dir: str, agent: str, seed: int, successes: list[float], finished: bool) -> None:
    folder = paper_budget.seed_dirs(work_dir, agent)[seed]
    os.makedirs(runs.checkpoint_dir(folder), exist_ok=True)
    evals = runs.CsvLogger(runs.eval_csv_path(folder))
    for k, success in enumerate(successes):
        evals.log(1 if k == 0 else k * paper_budget.EVAL_INTERVAL, {'evaluation/success': success,
                                                                    'time/eval_seconds': 60.0})
    train = runs.CsvLogger(runs.train_csv_path(folder))
    for step in range(paper_budget.LOG_INTERVAL, len(successes) * paper_budget.EVAL_INTERVAL, 50_000):
        train.log(step, {'training/critic/q_mean': -step / 1e5, **({'training/alpha': 120.0} if agent == 'mfql' else {})})
    if finished:
        runs.write_json(runs.flags_path(folder), {'flags': {'offline_steps': paper_budget.UPDATES, 'online_steps': 0}})
        runs.write_json(runs.final_path(folder), {'step': paper_budget.UPDATES})


def test_report_tables_and_comparison_on_made_up_runs(tmp_path):
    work_dir, results = str(tmp_path / 'work'), tmp_path / 'results'
    results.mkdir()
    fql = [0.0] + [0.5] * 8 + [0.9, 0.8]  # updates 1, 100k, ..., 1M
    mfql = [0.0] + [0.1] * 8 + [0.2, 0.3]
    for seed in (0, 1):
        write_seed(work_dir, 'fql', seed, fql, True)
        write_seed(work_dir, 'mfql', seed, mfql, True)
    os.makedirs(os.path.join(work_dir, 'health'))
    health = os.path.join(work_dir, 'health', 'fql_task2_1m.csv')
    paper_budget.append_line(health, ','.join(paper_budget.HEALTH_COLUMNS))
    for k, step in enumerate(range(0, 300_001, 50_000)):
        paper_budget.append_line(health, f'{1000.0 + 1800 * k},1,{step},{900 + k},{950 + k},1.5,4,3.2')
    # Launch 2 resumes from 250k: its evaluation envs (+500 MiB, once) are built at its first evaluation, 300k.
    for k, (step, rss) in enumerate(((250_000, 300), (300_000, 310), (305_000, 810), (400_000, 812),
                                     (450_000, 816))):
        paper_budget.append_line(health, f'{20000.0 + 60 * k},2,{step},{rss},{rss},1.5,4,3.2')
    # Launch 2 finishes at 500k between two samples: its recorded exit ends the 400k-500k block (660 s after 400k).
    paper_budget.append_line(os.path.join(work_dir, 'health', 'fql_task2_1m.events.jsonl'), json.dumps(
        {'event': 'exit', 'launch': 2, 'time': 20840.0, 'returncode': 0, 'reached': 500_000, 'nan_guard': False}))
    (results / 'paper-budget-cpu.md').write_text('old generated part\n' + paper_budget_report.MARKER + '\nmy notes\n')
    assert paper_budget_report.write(work_dir, str(results)) == 0
    text = (results / 'paper-budget-cpu.md').read_text()
    assert 'old generated part' not in text and text.endswith(paper_budget_report.MARKER + '\nmy notes\n')
    assert '| 1,000,000 | 0.80 | 0.80 | 0.30 | 0.30 | 80/100 = 0.80' in text
    assert 'Both runs finished: evaluated to update 1,000,000.' in text
    # Pooled over 900k and 1M: FQL (45 + 40) × 2 = 170 of 200, MFQL (10 + 15) × 2 = 50 of 200.
    assert '- FQL: 170 of 200 scored episodes, 0.85' in text and '- MFQL: 50 of 200 scored episodes, 0.25' in text
    low, high = newcombe_interval((50, 200), (170, 200))
    assert f'- MFQL − FQL: -0.60 (Newcombe 95% {low:+.2f} to {high:+.2f}): FQL ahead.' in text
    assert '| peak resident memory (job and children) | 956 MiB | none yet |' in text  # MFQL has no samples
    assert '0k–100k: 1.00 h (0.98 h without evaluation)' in text and '| NaN-guard trips | 0 |' in text
    assert '; 300k–400k: 0.03 h (' in text  # launch 2's block: from its 300k sample to its 400k sample, 120 s
    assert '; 400k–500k: 0.18 h (' in text and '| exits (status, step reached) | #2: 0, 500,000 |' in text
    # Launch 1 ran from 200k to 300k (3600 s); launch 2 resumed at 250k and redid the updates to 300k (60 s).
    assert '; 200k–300k: 1.02 h (1.00 h without evaluation, launches #1–#2 with their start-ups);' in text
    assert ('| resident memory growth within a launch, after its first evaluation | #1: +5 MiB from update 50,000 '
            'to 300,000; #2: +6 MiB from update 305,000 to 450,000 |') in text
    assert (results / 'paper-budget-cpu.png').stat().st_size > 10_000


FAKE_MAIN = '''import os, sys
import runs
from benchmarks import paper_budget
work_dir, agent = sys.argv[1], sys.argv[2]
for folder in paper_budget.seed_dirs(work_dir, agent):
    os.makedirs(runs.checkpoint_dir(folder), exist_ok=True)
    open(runs.checkpoint_path(folder, paper_budget.UPDATES), 'wb').close()
    runs.write_json(runs.flags_path(folder), {'flags': {'offline_steps': paper_budget.UPDATES, 'online_steps': 0}})
    runs.write_json(runs.final_path(folder), {'step': paper_budget.UPDATES})
'''


def test_driver_runs_until_finished_and_records_its_launches(tmp_path, monkeypatch):
    script = tmp_path / 'fake_main.py'
    script.write_text(FAKE_MAIN)
    work_dir = str(tmp_path / 'work')
    monkeypatch.setattr(paper_budget, 'main_command',
                        lambda agent, work: [sys.executable, str(script), work, agent])
    monkeypatch.setenv('PYTHONPATH', paper_budget.REPO_DIR)
    assert paper_budget.run('fql', work_dir, sample_seconds=0.05) == 0
    assert paper_budget.finished(work_dir, 'fql')
    logged = paper_budget_report.events(work_dir, 'fql')
    assert [e['event'] for e in logged] == ['launch', 'exit']
    assert logged[0]['resumed_from'] == 0 and logged[1]['returncode'] == 0 and logged[1]['reached'] == 1_000_000
    assert paper_budget.run('fql', work_dir, sample_seconds=0.05) == 0  # finished: nothing is launched again
    assert len(paper_budget_report.events(work_dir, 'fql')) == 2


def test_driver_stops_without_relaunching_when_main_was_asked_to_stop(tmp_path, monkeypatch):
    """main.py exits with EXIT_STATUS after SIGUSR2/SIGTERM, its checkpoint written: the driver records the exit and
    returns, so that a stop asked for at the end of a working session is not undone by a relaunch."""
    from training.preemption import EXIT_STATUS
    monkeypatch.setattr(paper_budget, 'main_command',
                        lambda agent, work: [sys.executable, '-c', f'raise SystemExit({EXIT_STATUS})'])
    assert paper_budget.run('fql', str(tmp_path), sample_seconds=0.05) == EXIT_STATUS
    logged = paper_budget_report.events(str(tmp_path), 'fql')
    assert [(e['event'], e.get('returncode')) for e in logged] == [('launch', None), ('exit', EXIT_STATUS)]


def test_driver_gives_up_after_launches_without_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(paper_budget, 'main_command', lambda agent, work: [sys.executable, '-c', 'raise SystemExit(1)'])
    assert paper_budget.run('mfql', str(tmp_path), sample_seconds=0.05) == 1
    assert 'error: 3 launches in a row made no progress' in capsys.readouterr().err
    exits = [e for e in paper_budget_report.events(str(tmp_path), 'mfql') if e['event'] == 'exit']
    assert [e['returncode'] for e in exits] == [1, 1, 1]


def test_process_tree_memory_counts_this_process():
    rss, peak = paper_budget.process_tree_memory(os.getpid())
    assert 10 < rss <= peak


@pytest.mark.parametrize('text, step', [('step,a\n5,1\n10,2\n', 10), ('step,a\n5,1\n10,2\n15,', 10), ('step\n', 0)])
def test_last_logged_step_reads_complete_lines(tmp_path, text, step):
    path = tmp_path / 'train.csv'
    path.write_text(text)
    assert paper_budget.last_logged_step(str(path)) == step
    assert paper_budget.last_logged_step(str(tmp_path / 'none.csv')) == 0
