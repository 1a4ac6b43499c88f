"""Tests for datasets/generate.py on a few generated episodes.

Generated files are cached per test session (`generate_cached`, also used by tests/test_datasets.py),
so each configuration is collected once.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from datasets import generate
from datasets.generate import (EPISODE_LENGTH, generate_dataset, num_val_episodes, resolve_dataset_target,
                               write_npz_atomically)

NUM_TRAIN_EPISODES = 2
_GENERATED: dict[tuple, tuple[str, str]] = {}


def generate_cached(tmp_path_factory, env_name: str, num_episodes: int, seed: int,
                    workers: int = 1) -> tuple[str, str]:
    """Generates a dataset once per session (keyed by its arguments) into a fresh temp dir."""
    key = (env_name, num_episodes, seed, workers)
    if key not in _GENERATED:
        directory = tmp_path_factory.mktemp(f'{env_name}-n{num_episodes}-s{seed}-w{workers}')
        _GENERATED[key] = generate_dataset(env_name, num_episodes, seed, str(directory), workers=workers,
                                           show_progress=False)
    return _GENERATED[key]


@pytest.fixture(scope='session')
def cube_single_play_files(tmp_path_factory) -> tuple[str, str]:
    """(train, val) paths of 2 train + 1 val cube-single-play episodes, seed 0."""
    return generate_cached(tmp_path_factory, 'cube-single-play-v0', NUM_TRAIN_EPISODES, 0)


def load_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def test_files_use_ogbench_names_keys_dtypes_and_episode_layout(cube_single_play_files):
    train_path, val_path = cube_single_play_files
    assert os.path.basename(train_path) == 'cube-single-play-v0.npz'
    assert os.path.basename(val_path) == 'cube-single-play-v0-val.npz'
    assert os.path.dirname(train_path) == os.path.dirname(val_path)
    for path, num_episodes in ((train_path, NUM_TRAIN_EPISODES), (val_path, 1)):
        arrays = load_npz(path)
        num_rows = num_episodes * EPISODE_LENGTH
        assert sorted(arrays) == ['actions', 'observations', 'qpos', 'qvel', 'terminals']
        assert arrays['observations'].shape == (num_rows, 28) and arrays['observations'].dtype == np.float32
        assert arrays['actions'].shape == (num_rows, 5) and arrays['actions'].dtype == np.float32
        assert arrays['terminals'].shape == (num_rows,) and arrays['terminals'].dtype == bool
        assert arrays['qpos'].shape == (num_rows, 21) and arrays['qpos'].dtype == np.float32
        assert arrays['qvel'].shape == (num_rows, 20) and arrays['qvel'].dtype == np.float32
        # Exactly one terminal, at the last of each 1001 steps.
        np.testing.assert_array_equal(np.flatnonzero(arrays['terminals']),
                                      np.arange(1, num_episodes + 1) * EPISODE_LENGTH - 1)
        assert np.abs(arrays['actions']).max() <= 1.0
        assert np.isfinite(arrays['observations']).all() and np.isfinite(arrays['qpos']).all()
        # The cube moves: the oracle actually manipulates it (cube xyz = qpos[:, 14:17]).
        assert np.ptp(arrays['qpos'][:, 14:16], axis=0).max() > 0.05


def test_observation_is_the_state_before_the_stored_action(cube_single_play_files):
    arrays = load_npz(cube_single_play_files[0])
    # Observations start with the 6 arm joint positions (ogbench's proprio block), which are qpos[:, :6]:
    # both are recorded before the step, so they agree row by row.
    np.testing.assert_allclose(arrays['observations'][:, :6], arrays['qpos'][:, :6], atol=1e-6)


def test_val_episode_differs_from_train_episodes(cube_single_play_files):
    train, val = (load_npz(path) for path in cube_single_play_files)
    for episode in range(NUM_TRAIN_EPISODES):
        rows = slice(episode * EPISODE_LENGTH, (episode + 1) * EPISODE_LENGTH)
        assert not np.array_equal(train['observations'][rows], val['observations'])


def test_two_workers_give_the_same_bytes_as_one(cube_single_play_files, tmp_path_factory):
    # A separate run with the same seed (and 2 processes) reproduces the files byte for byte.
    parallel_paths = generate_cached(tmp_path_factory, 'cube-single-play-v0', NUM_TRAIN_EPISODES, 0, workers=2)
    for serial_path, parallel_path in zip(cube_single_play_files, parallel_paths):
        with open(serial_path, 'rb') as serial, open(parallel_path, 'rb') as parallel:
            assert serial.read() == parallel.read(), serial_path


def test_cli_maps_singletask_name_and_different_seed_gives_different_data(cube_single_play_files, tmp_path):
    command = [sys.executable, '-m', 'datasets.generate', '--env_name=cube-single-play-singletask-task3-v0',
               '--num_episodes=1', '--seed=1', f'--dataset_dir={tmp_path}']
    result = subprocess.run(command, cwd=os.path.dirname(os.path.dirname(generate.__file__)), capture_output=True,
                            text=True, env={**os.environ, 'MUJOCO_GL': 'egl'}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'env steps/s' in result.stdout
    assert sorted(os.listdir(tmp_path)) == ['cube-single-play-v0-val.npz', 'cube-single-play-v0.npz',
                                            'cube-single-play-v0.source.json']  # where they came from
    again = subprocess.run(command, cwd=os.path.dirname(os.path.dirname(generate.__file__)), capture_output=True,
                           text=True, env={**os.environ, 'MUJOCO_GL': 'egl'}, timeout=300)
    assert again.returncode == 1 and 'Traceback' not in again.stderr
    assert again.stderr.strip().startswith('error: Refusing to overwrite existing dataset file(s)')
    seed1_train = load_npz(str(tmp_path / 'cube-single-play-v0.npz'))
    seed0_train = load_npz(cube_single_play_files[0])
    assert seed1_train['observations'].shape == (EPISODE_LENGTH, 28)
    assert not np.array_equal(seed1_train['observations'], seed0_train['observations'][:EPISODE_LENGTH])
    assert not np.array_equal(seed1_train['actions'], seed0_train['actions'][:EPISODE_LENGTH])


def test_puzzle_noisy_episode_has_int64_button_states_and_random_actions():
    np.random.seed(123)
    expected_global_draw = np.random.rand()
    np.random.seed(123)
    episode, env_steps = generate.collect_episode('puzzle-3x3', 'noisy', 0, 0, 0)
    # Collection reseeds numpy's global generator for the oracles, then restores the caller's state.
    assert np.random.rand() == expected_global_draw
    assert env_steps == EPISODE_LENGTH
    assert sorted(episode) == ['actions', 'button_states', 'observations', 'qpos', 'qvel', 'terminals']
    assert episode['button_states'].shape == (EPISODE_LENGTH, 9) and episode['button_states'].dtype == np.int64
    assert set(np.unique(episode['button_states']).tolist()) <= {0, 1}
    assert episode['observations'].shape == (EPISODE_LENGTH, 55)
    # The gripper stays closed in puzzle except in random actions (p = 0.2): some gripper commands are not 1.
    assert np.abs(episode['actions']).max() <= 1.0
    assert (episode['actions'][:, 4] < 0.9).mean() > 0.05
    # Same (seed, split, index) gives the same episode although the env now starts from another episode's end.
    again, _ = generate.collect_episode('puzzle-3x3', 'noisy', 0, 0, 0)
    for key in episode:
        np.testing.assert_array_equal(episode[key], again[key])


def test_scene_health_check_matches_ogbench_rule():
    qpos = np.zeros((3, 30), np.float32)
    qpos[:, 14:17] = [0.4, 0.0, 0.02]
    assert generate._scene_episode_is_healthy(qpos)
    too_far_right = qpos.copy()
    too_far_right[1, 15] = 0.29
    assert not generate._scene_episode_is_healthy(too_far_right)
    left_in_drawer = qpos.copy()
    left_in_drawer[1, 15:17] = [-0.31, 0.07]
    assert generate._scene_episode_is_healthy(left_in_drawer)
    left_on_table = qpos.copy()
    left_on_table[1, 15:17] = [-0.31, 0.02]
    assert not generate._scene_episode_is_healthy(left_on_table)


@pytest.mark.parametrize('name, expected', [
    ('cube-single-play-v0', ('cube-single-play-v0', 'cube-single', 'play')),
    ('scene-noisy-singletask-task4-v0', ('scene-noisy-v0', 'scene', 'noisy')),
    ('puzzle-4x4-play-singletask-v0', ('puzzle-4x4-play-v0', 'puzzle-4x4', 'play')),
])
def test_resolve_dataset_target_accepts_dataset_and_singletask_names(name, expected):
    target = resolve_dataset_target(name)
    assert (target.dataset_name, target.suite, target.dataset_kind) == expected


def test_resolve_dataset_target_rejects_locomotion_and_unknown_names():
    with pytest.raises(ValueError, match="'antmaze-large-navigate-v0': only manipulation datasets"):
        resolve_dataset_target('antmaze-large-navigate-v0')
    with pytest.raises(ValueError, match='Close valid names: cube-single-play-v0'):
        resolve_dataset_target('cube-singel-play-v0')


def test_val_episode_count():
    assert [num_val_episodes(n) for n in (1, 9, 10, 1000, 3000)] == [1, 1, 1, 100, 300]


def test_generate_dataset_refuses_to_overwrite_and_validates_arguments(cube_single_play_files):
    directory = os.path.dirname(cube_single_play_files[0])
    with pytest.raises(FileExistsError, match='Refusing to overwrite existing dataset file'):
        generate_dataset('cube-single-play-v0', 1, 0, directory, show_progress=False)
    with pytest.raises(ValueError, match='num_episodes must be >= 1, got 0'):
        generate_dataset('cube-single-play-v0', 0, 0, directory, show_progress=False)
    with pytest.raises(ValueError, match='workers must be >= 1, got 0'):
        generate_dataset('cube-single-play-v0', 1, 0, directory, workers=0, show_progress=False)
    with pytest.raises(ValueError, match=rf'^cannot write dataset files to {cube_single_play_files[0]}/data \(Not a '
                                         r'directory\); choose another --dataset_dir$'):
        generate_dataset('cube-single-play-v0', 1, 0, f'{cube_single_play_files[0]}/data', show_progress=False)


def test_atomic_write_is_deterministic_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    arrays = {'observations': np.arange(12, dtype=np.float32).reshape(4, 3), 'terminals': np.array([0, 0, 0, 1], bool)}
    first, second = str(tmp_path / 'a.npz'), str(tmp_path / 'b.npz')
    write_npz_atomically(first, arrays)
    write_npz_atomically(second, arrays)
    with open(first, 'rb') as a, open(second, 'rb') as b:
        assert a.read() == b.read()
    loaded = load_npz(first)
    np.testing.assert_array_equal(loaded['observations'], arrays['observations'])
    assert loaded['terminals'].dtype == bool

    def fail_midway(*args, **kwargs):
        raise KeyboardInterrupt('interrupted while writing')

    monkeypatch.setattr(np.lib.format, 'write_array', fail_midway)
    with pytest.raises(KeyboardInterrupt):
        write_npz_atomically(str(tmp_path / 'c.npz'), arrays)
    assert sorted(os.listdir(tmp_path)) == ['a.npz', 'b.npz']  # no c.npz, no temp file
