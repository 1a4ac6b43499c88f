"""The OGBench name grammar agrees with the env ids ogbench registers, and errors are helpful."""

import os
import subprocess
import sys

import gymnasium
import ogbench  # noqa: F401  (registers the envs)
import pytest

from datasets import names

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def test_every_name_maps_to_a_registered_gym_id():
    all_names = names.singletask_env_names()
    assert len(all_names) == len(names.singletask_families()) * 6
    for name in all_names:
        spec = names.parse_env_name(name)
        assert spec.env_name in gymnasium.registry, spec.env_name


def test_parse_fields():
    spec = names.parse_env_name('cube-single-play-singletask-task2-v0')
    assert (spec.suite, spec.dataset_kind, spec.task) == ('cube-single', 'play', 2)
    assert spec.dataset_name == 'cube-single-play-v0'
    assert spec.env_name == 'cube-single-singletask-task2-v0'
    assert spec.is_manipulation and spec.family == 'cube-single-play-singletask'
    loco = names.parse_env_name('antmaze-large-navigate-singletask-v0')
    assert not loco.is_manipulation and loco.task is None and loco.effective_task == 1
    assert loco.dataset_name == 'antmaze-large-navigate-v0'
    assert names.parse_env_name('puzzle-3x3-play-singletask-v0').effective_task == 4
    assert names.parse_env_name('antsoccer-arena-navigate-singletask-v0').effective_task == 4
    assert names.parse_env_name('scene-noisy-singletask-v0').effective_task == 2


@pytest.mark.parametrize('bad, close', [
    ('cube-singel-play-singletask-task2-v0', 'cube-single-play-singletask-task2-v0'),
    ('antmaze-large-navigat-singletask-v0', 'antmaze-large-navigate-singletask-v0'),
])
def test_unknown_name_lists_close_valid_names(bad, close):
    with pytest.raises(ValueError, match='Unknown OGBench single-task env name') as error:
        names.parse_env_name(bad)
    assert close in str(error.value)


def test_bad_task_number():
    with pytest.raises(ValueError, match='task1..task5'):
        names.parse_env_name('cube-single-play-singletask-task7-v0')


def test_expand_family_list_and_dedup():
    family = names.expand_env_names('cube-double-play-singletask')
    assert family == [f'cube-double-play-singletask-task{k}-v0' for k in range(1, 6)]
    mixed = names.expand_env_names('scene-play-singletask-task1-v0, cube-double-play-singletask,'
                                   'cube-double-play-singletask-task3-v0')
    assert mixed[0] == 'scene-play-singletask-task1-v0' and len(mixed) == 6
    with pytest.raises(ValueError, match='Unknown OGBench task family'):
        names.expand_env_names('cube-dubble-play-singletask')
    with pytest.raises(ValueError, match='Empty entry'):
        names.expand_env_names('cube-double-play-singletask,')


def test_dataset_names():
    assert names.parse_dataset_name('puzzle-4x4-noisy-v0') == ('puzzle-4x4', 'noisy')
    with pytest.raises(ValueError, match='Unknown OGBench dataset name'):
        names.parse_dataset_name('puzzle-4x4-stitch-v0')


def test_the_name_grammar_imports_no_other_module_of_the_package():
    """names.py is the leaf of datasets/ (the families, configs.py and d4rl.py build on it): expanding OGBench and D4RL
    names with the grammar loads neither the families, d4rl, ogbench_data, generate nor numpy."""
    code = ('import sys; from datasets import names; '
            "assert names.check_d4rl_name('antmaze-umaze-v2') == 'antmaze-umaze-v2'; "
            "assert len(names.expand_singletask_entry('cube-single-play-singletask')) == 5; "
            "print(sorted(m for m in sys.modules if m.startswith('datasets.') or m == 'numpy'))")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO_DIR, check=True)
    assert result.stdout.strip() == "['datasets.names']"


def test_environment_of_groups_the_tasks_of_an_environment_and_keeps_d4rl_names():
    """One function decides the environment rows of the summary, the sweep report and presets files."""
    assert names.environment_of('cube-double-play-singletask-task2-v0') == 'cube-double-play'
    assert names.environment_of('cube-double-play-singletask-v0') == 'cube-double-play'
    assert names.environment_of('antmaze-large-navigate-singletask-task5-v0') == 'antmaze-large-navigate'
    assert names.environment_of('pen-human-v1') == 'pen-human-v1'
    assert names.environment_of('antmaze-umaze-diverse-v2') == 'antmaze-umaze-diverse-v2'


def test_a_presets_file_applies_to_d4rl_and_ogbench_tasks_by_environment(tmp_path):
    import configs
    import results
    path = str(tmp_path / 'presets.json')
    configs.write_presets_file(path, {'mfql': {'pen-human-v1': {'alpha': 9.0}, 'cube-single-play': {'alpha': 30.0}}},
                               'a test')
    payload = configs.read_presets_file(path)
    assert configs.presets_from_file(payload, path, 'mfql', 'pen-human-v1')['alpha'][0] == 9.0
    assert configs.presets_from_file(payload, path, 'mfql', 'cube-single-play-singletask-task3-v0')['alpha'][0] == 30.0
    assert configs.presets_from_file(payload, path, 'fql', 'pen-human-v1') == {}
    assert results.task_info('pen-human-v1').reported.key == 'evaluation/score'
    assert results.task_info('cube-single-play-singletask-v0').reported.key == 'evaluation/success_last3'


@pytest.mark.parametrize('name, message', [
    ('visual-antmaze-large-navigate-singletask-task1-v0', "not supported: mfql supports visual tasks of the "
     "manipulation suites (cube-single, cube-double, cube-triple, cube-quadruple, scene, puzzle-3x3, puzzle-4x4, "
     "puzzle-4x5, puzzle-4x6) only; the state-based task is 'antmaze-large-navigate-singletask-task1-v0'"),
    ('visual-humanoidmaze-medium-navigate-singletask', "the state-based task is "
     "'humanoidmaze-medium-navigate-singletask'"),
    ('visual-antmaze-large-navigate-v0', 'not supported: it is visual (pixel-based) and goal-conditioned'),
    ('cube-single-play-v0', 'not supported: it is goal-conditioned, and mfql trains single-task offline RL; use '
     'cube-single-play-singletask-task<k>-v0 (k = 1..5) or the family cube-single-play-singletask'),
    ('antmaze-large-navigate-oraclerep-v0', 'use antmaze-large-navigate-singletask-task<k>-v0'),
    ('powderworld-easy-play-v0', 'not supported: powderworld is pixel-based and goal-conditioned'),
])
def test_real_ogbench_names_mfql_does_not_train_are_unsupported_not_unknown(name, message):
    with pytest.raises(ValueError) as error:
        names.expand_env_names(name)
    assert message in str(error.value) and 'Unknown' not in str(error.value)
    with pytest.raises(ValueError, match='Unknown OGBench single-task env name'):  # a typo stays unknown
        names.expand_env_names('visual-cube-singel-play-singletask-task1-v0')


def test_visual_manipulation_names_parse_to_the_visual_files_and_env():
    spec = names.parse_env_name('visual-puzzle-3x3-play-singletask-task1-v0')
    assert (spec.suite, spec.dataset_kind, spec.task, spec.visual) == ('puzzle-3x3', 'play', 1, True)
    assert spec.dataset_name == 'visual-puzzle-3x3-play-v0'
    assert spec.env_name == 'visual-puzzle-3x3-singletask-task1-v0'
    assert spec.family == 'visual-puzzle-3x3-play-singletask' and spec.effective_task == 1
    assert names.parse_env_name('visual-scene-play-singletask-v0').effective_task == 2  # OGBench's default task
    assert not names.parse_env_name('puzzle-3x3-play-singletask-task1-v0').visual
    assert names.expand_env_names('visual-cube-double-play-singletask') == [
        f'visual-cube-double-play-singletask-task{k}-v0' for k in range(1, 6)]
    assert names.environment_of('visual-cube-double-play-singletask-task1-v0') == 'visual-cube-double-play'
    assert names.parse_dataset_name('visual-scene-play-v0') == ('scene', 'play')
