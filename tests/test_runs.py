"""Tests of `runs`, the one owner of the run-folder layout, its readers and its atomic writers."""

import json
import os
import re

import pytest

import runs

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_seed(task_folder: str, seed: int, command, offline_steps: int = 10, final_step: int | None = 10) -> str:
    folder = runs.seed_dir(task_folder, seed)
    os.makedirs(folder)
    runs.write_json(runs.flags_path(folder), {'command': command, 'flags': {'offline_steps': offline_steps,
                                                                            'online_steps': 0}})
    if final_step is not None:
        runs.write_json(runs.final_path(folder), {'step': final_step, 'evaluation/success': 0.5})
    return folder


def test_layout_names_every_file_of_a_run(tmp_path):
    root = runs.run_root(str(tmp_path), 'exp1')
    task = runs.task_dir(root, 'cube-single-play-singletask-task2-v0')
    seed = runs.seed_dir(task, 3)
    assert seed == os.path.join(str(tmp_path), 'exp1', 'cube-single-play-singletask-task2-v0', 'seed3')
    assert runs.flags_path(seed).endswith('seed3/flags.json')
    assert runs.final_path(seed).endswith('seed3/final.json')
    assert runs.train_csv_path(seed).endswith('seed3/train.csv')
    assert runs.eval_csv_path(seed).endswith('seed3/eval.csv')
    assert runs.checkpoint_path(seed, 2500).endswith('seed3/checkpoints/step_000002500.msgpack')
    assert runs.curves_path(task).endswith('task2-v0/curves.png')
    assert runs.evaluation_csv_path(task, 2500, 50).endswith('task2-v0/evaluations/step_000002500_episodes50.csv')
    assert runs.video_path(task, 3, 2500, 1, 'gif').endswith('evaluations/videos/seed3_step_000002500_episode1.gif')
    assert runs.summary_paths(root) == (os.path.join(root, 'summary.csv'), os.path.join(root, 'summary.md'))
    assert runs.seed_of(seed) == 3
    with pytest.raises(ValueError, match='not a seed folder'):
        runs.seed_of(task)


def test_seeds_on_disk_lists_seed_folders_only(tmp_path):
    for name in ('seed2', 'seed10', 'seed0', 'seedx', 'other'):
        os.makedirs(tmp_path / name)
    (tmp_path / 'seed5').write_text('a file, not a folder')
    assert runs.seeds_on_disk(str(tmp_path)) == [0, 2, 10]
    assert runs.seeds_on_disk(str(tmp_path / 'missing')) == []


def test_checkpoint_steps_ignore_unfinished_saves(tmp_path):
    seeds = [runs.seed_dir(str(tmp_path), s) for s in (0, 1)]
    for folder, steps in zip(seeds, ((10, 20, 30), (10, 20))):
        os.makedirs(runs.checkpoint_dir(folder))
        for step in steps:
            open(runs.checkpoint_path(folder, step), 'wb').close()
    open(runs.checkpoint_path(seeds[1], 30) + '.tmp', 'wb').close()  # a save killed half-way
    assert runs.checkpoint_steps(seeds[0]) == [10, 20, 30]
    assert runs.checkpoint_steps(seeds[1]) == [10, 20]
    assert runs.common_checkpoint_step(seeds) == 20
    assert runs.common_checkpoint_step([str(tmp_path / 'none')]) is None


def test_recorded_arguments_read_lists_and_the_former_joined_string():
    argv = ['main.py', '--save_dir=/a b/runs', "--agent.value_hidden_dims=(256, 256)", '--resume']
    assert runs.recorded_arguments({'command': argv}) == argv[1:]
    legacy = {'command': 'main.py --env_name=cube --agent.alpha=3 --resume'}
    assert runs.recorded_arguments(legacy) == ['--env_name=cube', '--agent.alpha=3', '--resume']
    assert runs.recorded_arguments({}) == []


def test_finished_at_needs_final_json_at_the_last_step(tmp_path):
    done = write_seed(str(tmp_path), 0, ['main.py'], offline_steps=10, final_step=10)
    early = write_seed(str(tmp_path), 1, ['main.py'], offline_steps=20, final_step=10)
    running = write_seed(str(tmp_path), 2, ['main.py'], final_step=None)
    assert runs.finished_at(done) == 10
    assert runs.finished_at(early) is None
    assert runs.finished_at(running) is None


def test_write_json_is_strict_json_with_null_for_non_finite_values(tmp_path):
    import numpy as np
    path = str(tmp_path / 'final.json')
    runs.write_json(path, {'a': float('nan'), 'b': [1.0, float('inf')], 'c': np.float32('nan'), 'd': 0.25})
    text = open(path).read()
    assert 'NaN' not in text and 'Infinity' not in text
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f'non-strict JSON constant {name}')) == \
        {'a': None, 'b': [1.0, None], 'c': None, 'd': 0.25}
    assert not os.path.exists(path + '.tmp')


def test_read_json_and_read_csv_tolerate_files_being_written(tmp_path):
    path = str(tmp_path / 'x.json')
    open(path, 'w').write('{"step": 1')  # a torn write of an older writer
    assert runs.read_json(path) is None
    assert runs.read_json(str(tmp_path / 'missing.json')) is None
    csv_path = str(tmp_path / 'eval.csv')
    open(csv_path, 'w').write('step,evaluation/success\n1,0.0\n2,0.5\n3,0.')  # last row without its line end
    assert runs.read_csv(csv_path) == [{'step': 1.0, 'evaluation/success': 0.0},
                                       {'step': 2.0, 'evaluation/success': 0.5}]
    assert runs.read_csv_if_any(str(tmp_path / 'none.csv')) == []


# File names of a run folder written as string literals, and the f-strings that build seed folders or
# checkpoint names: only `runs` may spell them.
LAYOUT_LITERALS = re.compile(r"""['"](flags\.json|final\.json|eval\.csv|train\.csv|curves\.png|checkpoints|"""
                             r"""summary\.csv|summary\.md)['"]|f['"]seed\{\w+\}['"]|step_\{|\.msgpack['"]""")


def test_unwritable_names_why_and_leaves_no_trace(tmp_path):
    assert runs.unwritable(str(tmp_path / 'new' / 'deeper')) is None
    assert os.listdir(tmp_path) == []  # the folders made for the try are gone
    (tmp_path / 'a_file').write_text('')
    assert runs.unwritable(str(tmp_path / 'a_file' / 'run')) == 'Not a directory'
    assert os.listdir(tmp_path) == ['a_file']


def test_no_module_but_runs_spells_the_run_folder_layout():
    offenders = []
    for directory, folders, files in os.walk(REPO_DIR):
        folders[:] = [f for f in folders if not f.startswith('.') and f not in ('tests', '__pycache__', 'exp')]
        for name in files:
            path = os.path.join(directory, name)
            if not name.endswith('.py') or os.path.relpath(path, REPO_DIR) == 'runs.py':
                continue
            for number, line in enumerate(open(path, encoding='utf-8'), 1):
                if LAYOUT_LITERALS.search(line):
                    offenders.append(f'{os.path.relpath(path, REPO_DIR)}:{number}: {line.strip()}')
    assert not offenders, 'build run-folder paths through runs.py:\n' + '\n'.join(offenders)


@pytest.mark.parametrize('module', ['runs.py', 'run_flags.py'])
def test_module_imports_the_standard_library_only(module):
    import ast
    import sys
    tree = ast.parse(open(os.path.join(REPO_DIR, module)).read())
    imported = {alias.name.split('.')[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split('.')[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
