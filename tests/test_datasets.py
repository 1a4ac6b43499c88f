"""Tests for datasets/ogbench_data.py and the OGBench family's data (datasets/families/ogbench.py): loading generated
files through OGBench, validation errors, and the fallbacks for missing files (download, generation, remedies)."""

import os
import shutil

import numpy as np
import pytest

from datasets import names
from datasets.buffer import dataset_from_numpy
from datasets.families.ogbench import FAMILY as OGBENCH
from datasets.generate import EPISODE_LENGTH
from datasets.ogbench_data import ACTION_CLIP, DatasetError, load_datasets, make_env, validate_dataset_file
from tests.test_generate import NUM_TRAIN_EPISODES, cube_single_play_files, load_npz  # noqa: F401  (fixture)

TASK2 = 'cube-single-play-singletask-task2-v0'
CUBE_XYZ = slice(14, 17)  # the cube's position inside qpos


@pytest.fixture(scope='module')
def task2_env():
    return make_env(TASK2)


@pytest.fixture(scope='module')
def task2_datasets(cube_single_play_files):
    return load_datasets(TASK2, dataset_dir=os.path.dirname(cube_single_play_files[0]))


def drop_last_step_of_each_episode(array: np.ndarray) -> np.ndarray:
    """Raw per-step rows -> the rows that start a transition (OGBench drops each episode's last state)."""
    return array.reshape(-1, EPISODE_LENGTH, *array.shape[1:])[:, :-1].reshape(-1, *array.shape[1:])


def goal_cube_xyz(env) -> np.ndarray:
    env.reset()
    return env.unwrapped.cur_task_info['goal_xyzs'][0]


def write_split_files(directory, train: dict, val: dict, dataset_name: str = 'cube-single-play-v0') -> None:
    np.savez_compressed(os.path.join(directory, f'{dataset_name}.npz'), **train)
    np.savez_compressed(os.path.join(directory, f'{dataset_name}-val.npz'), **val)


def test_loaded_splits_have_transition_layout(task2_datasets, cube_single_play_files):
    train, val = task2_datasets
    raw = load_npz(cube_single_play_files[0])
    transitions_per_episode = EPISODE_LENGTH - 1
    assert sorted(train) == sorted(['observations', 'actions', 'rewards', 'masks', 'next_observations', 'terminals'])
    assert train['observations'].shape == (NUM_TRAIN_EPISODES * transitions_per_episode, 28)
    assert val['observations'].shape == (transitions_per_episode, 28)
    for split in (train, val):
        for key, value in split.items():
            assert value.dtype == np.float32, key
        num_rows = len(split['observations'])
        assert split['actions'].shape == (num_rows, 5)
        for key in ('rewards', 'masks', 'terminals'):
            assert split[key].shape == (num_rows,), key
        assert split['next_observations'].shape == split['observations'].shape
    np.testing.assert_array_equal(np.flatnonzero(train['terminals']),
                                  np.arange(1, NUM_TRAIN_EPISODES + 1) * transitions_per_episode - 1)
    # (s_t, s_{t+1}) pairs come from the stored steps, never across an episode boundary.
    episodes = raw['observations'].reshape(NUM_TRAIN_EPISODES, EPISODE_LENGTH, 28)
    np.testing.assert_array_equal(train['observations'], episodes[:, :-1].reshape(-1, 28))
    np.testing.assert_array_equal(train['next_observations'], episodes[:, 1:].reshape(-1, 28))


def test_actions_are_clipped_like_fql(task2_datasets, cube_single_play_files):
    train, _ = task2_datasets
    raw_actions = drop_last_step_of_each_episode(load_npz(cube_single_play_files[0])['actions'])
    assert np.abs(raw_actions).max() == 1.0  # the oracle saturates some action dimensions
    assert np.abs(train['actions']).max() == np.float32(ACTION_CLIP)
    np.testing.assert_array_equal(train['actions'], np.clip(raw_actions, -ACTION_CLIP, ACTION_CLIP))


def test_rewards_and_masks_follow_ogbench_relabelling(task2_datasets, cube_single_play_files, task2_env):
    train, _ = task2_datasets
    cube_xyz = drop_last_step_of_each_episode(load_npz(cube_single_play_files[0])['qpos'])[:, CUBE_XYZ]
    # Single cube task: success iff the cube is within 4 cm of the goal; reward = success - 1, mask = 1 - success.
    success = np.linalg.norm(cube_xyz - goal_cube_xyz(task2_env), axis=-1) <= 0.04
    assert 0 < success.sum() < len(success)  # this seed's play data visits the task-2 goal and leaves it
    np.testing.assert_array_equal(train['rewards'], success.astype(np.float32) - 1.0)
    np.testing.assert_array_equal(train['masks'], 1.0 - success.astype(np.float32))


def test_rewards_depend_on_the_task(task2_datasets, cube_single_play_files):
    task1_train, _ = load_datasets('cube-single-play-singletask-task1-v0',
                                   dataset_dir=os.path.dirname(cube_single_play_files[0]))
    np.testing.assert_array_equal(task1_train['observations'], task2_datasets[0]['observations'])
    assert not np.array_equal(task1_train['rewards'], task2_datasets[0]['rewards'])


def test_constructed_success_state_gets_reward_zero_and_mask_zero(cube_single_play_files, task2_env, tmp_path):
    train = load_npz(cube_single_play_files[0])
    goal = goal_cube_xyz(task2_env)
    train['qpos'][5, CUBE_XYZ] = goal + [0.0, 0.03, 0.0]  # 3 cm away: success
    train['qpos'][6, CUBE_XYZ] = goal + [0.05, 0.0, 0.0]  # 5 cm away: not a success
    write_split_files(tmp_path, train, load_npz(cube_single_play_files[1]))
    loaded, _ = load_datasets(TASK2, dataset_dir=str(tmp_path))
    assert (loaded['rewards'][5], loaded['masks'][5]) == (0.0, 0.0)
    assert (loaded['rewards'][6], loaded['masks'][6]) == (-1.0, 1.0)


def one_episode(files) -> dict[str, np.ndarray]:
    return {key: value[:EPISODE_LENGTH].copy() for key, value in load_npz(files[0]).items()}


def _set(key, value_fn):
    def mutate(arrays):
        arrays[key] = value_fn(arrays[key])
    return mutate


def _set_row(key, row, value):
    def mutate(arrays):
        arrays[key][row] = value
    return mutate


BAD_ARRAYS = [
    ('missing_key', lambda a: a.pop('qpos'), "missing key(s) ['qpos']"),
    ('int_observations', _set('observations', lambda x: x.astype(np.int32)), 'observations must have a float dtype'),
    ('string_terminals', _set('terminals', lambda x: x.astype(str)), 'terminals must be bool or numeric'),
    ('wrong_observation_width', _set('observations', lambda x: x[:, :27]), 'observations has width 27, expected == 28'),
    ('wrong_qpos_width', _set('qpos', lambda x: x[:, :20]), 'qpos has width 20, expected == 21'),
    ('one_dim_actions', _set('actions', lambda x: x[:, 0]), 'actions must be 2-D (N, 5), got shape (1001,)'),
    ('two_dim_terminals', _set('terminals', lambda x: x[:, None]), 'terminals must be 1-D (N,)'),
    ('short_actions', _set('actions', lambda x: x[:-1]), 'inconsistent lengths'),
    ('short_qvel', _set('qvel', lambda x: x[:-5]), "'qvel': 996"),  # OGBench slices qvel too
    ('one_dim_qvel', _set('qvel', lambda x: x[:, 0]), 'qvel must be 2-D (N, k), got shape (1001,)'),
    ('int_qvel', _set('qvel', lambda x: x.astype(np.int64)), 'qvel must have a float dtype'),
    ('stray_button_states', lambda a: a.update(button_states=np.zeros((len(a['qpos']) - 1, 2), np.int64)),
     "'button_states': 1000"),
    ('nan_observation', _set_row('observations', 5, np.nan), 'observations has 28 NaN/inf value(s), first at row 5'),
    ('inf_qpos', _set_row('qpos', 7, np.inf), 'qpos has 21 NaN/inf value(s), first at row 7'),
    ('action_out_of_range', _set_row('actions', 9, 1.5), 'action value(s) outside [-1, 1]'),
    ('no_terminals', _set('terminals', np.zeros_like), 'no terminals'),
    ('last_row_not_terminal', _set('terminals', lambda x: np.roll(x, -1)), 'the last row (1000) is not terminal'),
    ('terminal_value_two', _set('terminals', lambda x: x.astype(np.int64) * 2), 'terminals must be 0/1'),
    ('single_step_episode', _set_row('terminals', 0, True), 'an episode has a single step (terminal at row 0'),
]


@pytest.mark.parametrize('case, mutate, message', BAD_ARRAYS, ids=[case[0] for case in BAD_ARRAYS])
def test_validate_reports_malformed_arrays(case, mutate, message, cube_single_play_files, task2_env, tmp_path):
    arrays = one_episode(cube_single_play_files)
    mutate(arrays)
    path = str(tmp_path / f'{case}.npz')
    np.savez_compressed(path, **arrays)
    with pytest.raises(DatasetError) as error:
        validate_dataset_file(path, names.parse_env_name(TASK2), task2_env)
    assert str(error.value).startswith(f'{path}: ')
    assert message in str(error.value)


def test_validate_accepts_a_generated_file(cube_single_play_files, task2_env):
    for path in cube_single_play_files:
        validate_dataset_file(path, names.parse_env_name(TASK2), task2_env)


def test_validate_reports_unreadable_files(cube_single_play_files, task2_env, tmp_path):
    spec = names.parse_env_name(TASK2)
    garbage = tmp_path / 'garbage.npz'
    garbage.write_bytes(b'this is not a zip archive')
    with pytest.raises(DatasetError, match=f'{garbage}: not a readable .npz file'):
        validate_dataset_file(str(garbage), spec, task2_env)
    truncated = tmp_path / 'truncated.npz'
    with open(cube_single_play_files[0], 'rb') as file:
        truncated.write_bytes(file.read()[: os.path.getsize(cube_single_play_files[0]) // 2])
    with pytest.raises(DatasetError, match=f'{truncated}: not a readable .npz file'):
        validate_dataset_file(str(truncated), spec, task2_env)
    single_array = tmp_path / 'single.npz'
    with open(single_array, 'wb') as file:
        np.save(file, np.zeros(3))
    with pytest.raises(DatasetError, match='is a single .npy array, expected an .npz archive'):
        validate_dataset_file(str(single_array), spec, task2_env)
    with pytest.raises(DatasetError, match=f'{tmp_path / "absent.npz"}: file not found'):
        validate_dataset_file(str(tmp_path / 'absent.npz'), spec, task2_env)


def test_load_validates_before_ogbench_reads_the_files(cube_single_play_files, tmp_path):
    val = load_npz(cube_single_play_files[1])
    val['actions'][3, 0] = -1.01
    write_split_files(tmp_path, load_npz(cube_single_play_files[0]), val)
    with pytest.raises(DatasetError, match=r'cube-single-play-v0-val.npz: 1 action value\(s\) outside \[-1, 1\]') \
            as error:
        load_datasets(TASK2, dataset_dir=str(tmp_path))
    assert str(error.value).endswith(  # the remedy: replace both splits together (download, or generate offline)
        f'Delete {tmp_path}/cube-single-play-v0.npz and {tmp_path}/cube-single-play-v0-val.npz and rerun to fetch '
        "them again (OGBench's file with --download_missing_data, or local generation with "
        '--generate_missing_data=N).')


def test_missing_val_file_with_train_present_is_not_generated_over(cube_single_play_files, tmp_path):
    shutil.copy(cube_single_play_files[0], tmp_path)
    with pytest.raises(DatasetError) as error:
        OGBENCH.ensure_data(TASK2, str(tmp_path), generate_missing_episodes=1)
    message = str(error.value)
    assert f'{tmp_path}/cube-single-play-v0-val.npz not found, but the other split exists; not fetching over it' \
        in message
    assert sorted(os.listdir(tmp_path)) == ['cube-single-play-v0.npz']


def test_missing_manipulation_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError) as error:
        OGBENCH.ensure_data(TASK2, str(tmp_path))
    message = str(error.value)
    assert '\n' not in message
    assert 'cube-single-play-v0.npz' in message and 'cube-single-play-v0-val.npz' in message
    assert f'python -m datasets.generate --env_name=cube-single-play-v0 --dataset_dir={tmp_path}' in message
    assert ("Rerun main.py with --download_missing_data (OGBench's file, 1000 episodes), or generate it locally with "
            '--generate_missing_data=N (N train episodes)') in message


def test_missing_locomotion_dataset_explains_download(tmp_path):
    with pytest.raises(DatasetError) as error:
        OGBENCH.ensure_data('antmaze-large-navigate-singletask-task1-v0', str(tmp_path))
    message = str(error.value)
    assert '\n' not in message
    assert "pretrained expert policies, which the ogbench package does not include" in message
    assert 'rerun with --download_missing_data' in message
    assert f"ogbench.download_datasets(['antmaze-large-navigate-v0'], '{tmp_path}')" in message
    assert 'https://rail.eecs.berkeley.edu/datasets/ogbench/antmaze-large-navigate-v0-val.npz' in message


def test_missing_dataset_is_generated_when_allowed(cube_single_play_files, task2_datasets, tmp_path, capsys):
    OGBENCH.ensure_data(TASK2, str(tmp_path), generate_missing_episodes=1, show_progress=False)
    train, val = load_datasets(TASK2, dataset_dir=str(tmp_path))
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1
    assert 'cube-single-play-v0: not in' in printed[0] and 'generating 1 episodes locally (seed 0' in printed[0]
    assert sorted(os.listdir(tmp_path)) == ['cube-single-play-v0-val.npz', 'cube-single-play-v0.npz',
                                            'cube-single-play-v0.source.json']
    # Episodes are seeded by (seed, split, index): one generated episode equals the first of the fixture's.
    reference_train, reference_val = task2_datasets
    assert len(train['observations']) == EPISODE_LENGTH - 1
    for key in train:
        np.testing.assert_array_equal(train[key], reference_train[key][:EPISODE_LENGTH - 1], err_msg=key)
        np.testing.assert_array_equal(val[key], reference_val[key], err_msg=key)


def test_loading_missing_files_names_them_and_the_ways_to_get_them(tmp_path):
    with pytest.raises(DatasetError, match=f'{tmp_path}/cube-single-play-v0.npz, {tmp_path}/cube-single-play-v0-val.npz '
                                           'not found; main.py downloads them with --download_missing_data, or '
                                           'generates manipulation datasets with --generate_missing_data=N; or on a '
                                           'machine with internet run'):
        load_datasets(TASK2, dataset_dir=str(tmp_path))


def test_unknown_env_name_lists_close_names():
    with pytest.raises(ValueError, match='Close valid names: cube-single-play-singletask-task2-v0'):
        load_datasets('cube-single-play-singletask-tsk2-v0')


def test_make_env_builds_the_single_task_env_without_files():
    env = make_env(TASK2)
    observation, _ = env.reset(seed=0)
    assert observation.shape == (28,) and env.action_space.shape == (5,)
    assert env.unwrapped.cur_task_id == 2
    locomotion_env = make_env('antmaze-large-navigate-singletask-task3-v0')
    observation, _ = locomotion_env.reset(seed=0)
    assert observation.shape == (29,) and locomotion_env.unwrapped.cur_task_id == 3


def test_loaded_split_becomes_a_device_dataset(task2_datasets):
    dataset = dataset_from_numpy(task2_datasets[0])
    assert dataset.size == NUM_TRAIN_EPISODES * (EPISODE_LENGTH - 1)
    import jax
    batch = dataset.sample(jax.random.PRNGKey(0), 8)
    assert batch['observations'].shape == (8, 28) and batch['masks'].shape == (8,)


def test_the_data_source_is_the_one_asked_for_and_recorded(cube_single_play_files, tmp_path, monkeypatch):
    """--generate_missing_data=N never downloads (the same data with or without network); --download_missing_data
    never generates; each records its source beside the files, and the run's provenance names size and md5."""
    import hashlib
    import json
    from datasets import generate, ogbench_data

    calls = []

    def fake_download(name: str, directory: str) -> None:  # OGBench's download, without the network
        calls.append(name)
        os.makedirs(directory, exist_ok=True)
        for source, target in zip(cube_single_play_files, ogbench_data.dataset_file_paths(name, directory)):
            shutil.copy(source, target)

    def no_generation(*args, **kwargs):
        raise AssertionError('generated although a download was asked for')

    monkeypatch.setattr(ogbench_data, 'download', fake_download)
    generated_dir, downloaded_dir = tmp_path / 'generated', tmp_path / 'downloaded'
    OGBENCH.ensure_data(TASK2, str(generated_dir), generate_missing_episodes=1, show_progress=False)
    assert calls == []  # generation asked for: no download tried first
    record = json.loads((generated_dir / 'cube-single-play-v0.source.json').read_text())
    assert record == dict(source='generated', generator=record['generator'], seed=0, num_episodes=1,
                          num_val_episodes=1, episode_length=EPISODE_LENGTH)
    monkeypatch.setattr(generate, 'generate_dataset', no_generation)
    OGBENCH.ensure_data(TASK2, str(downloaded_dir), generate_missing_episodes=None, download=True)
    assert calls == ['cube-single-play-v0']
    provenance = OGBENCH.provenance(TASK2, str(downloaded_dir))['dataset']
    assert provenance['name'] == 'cube-single-play-v0' and provenance['origin']['source'] == 'downloaded'
    train_path = str(downloaded_dir / 'cube-single-play-v0.npz')
    assert provenance['files'][0] == dict(path=train_path, bytes=os.path.getsize(train_path),
                                          md5=hashlib.md5(open(train_path, 'rb').read()).hexdigest())
    OGBENCH.ensure_data(TASK2, str(downloaded_dir), download=True)  # present: nothing fetched again
    assert calls == ['cube-single-play-v0']
    with pytest.raises(DatasetError, match='--download_missing_data failed'):
        monkeypatch.setattr(ogbench_data, 'download', lambda name, directory: 'URLError: no network')
        OGBENCH.ensure_data(TASK2, str(tmp_path / 'offline'), download=True)
