"""Checkpoints: bitwise resume, atomic writes, pruning, template checks, replay-buffer round trip."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from datasets.buffer import Dataset, ReplayBuffer
from tests.test_training import toy_data, toy_inputs, toy_options, toy_states
from training import checkpoint, resume
import runs
from runs import read_csv
from training.resume import ConfigMismatchError, buffer_payload, restore_buffer, resume_step
from training.runner import train_task
from training.summary import TaskResult


def test_resume_after_a_kill_is_bitwise_identical_and_csv_has_no_duplicates(tmp_path):
    data = toy_data()
    reference_dir, resumed_dir = str(tmp_path / 'reference'), str(tmp_path / 'resumed')
    result = train_task(toy_inputs(reference_dir, data, seeds=(0, 1)), toy_options())
    assert isinstance(result, TaskResult) and result.step == 20
    shutil.copytree(reference_dir, resumed_dir)
    for seed in (0, 1):  # as if killed just after the step-10 checkpoint: later files gone, later CSV rows stale
        seed_dir = os.path.join(resumed_dir, f'seed{seed}')
        os.remove(checkpoint.checkpoint_path(seed_dir, 20))
        os.remove(os.path.join(seed_dir, 'final.json'))
        open(checkpoint.checkpoint_path(seed_dir, 20) + '.tmp', 'wb').write(b'partial write')
    train_task(toy_inputs(resumed_dir, data, seeds=(0, 1)), toy_options(resume=True))
    for seed in (0, 1):
        with open(checkpoint.checkpoint_path(os.path.join(reference_dir, f'seed{seed}'), 20), 'rb') as f:
            expected = f.read()
        with open(checkpoint.checkpoint_path(os.path.join(resumed_dir, f'seed{seed}'), 20), 'rb') as f:
            assert f.read() == expected
        rows = read_csv(os.path.join(resumed_dir, f'seed{seed}', 'train.csv'))
        assert [row['step'] for row in rows] == [5, 10, 15, 20]
        assert 'validation/critic/loss' in rows[0] and 'time/updates_per_sec' in rows[0]
    assert checkpoint.checkpoint_steps(os.path.join(resumed_dir, 'seed0')) == [10, 20]  # keep=2


def test_a_kill_during_the_first_checkpoints_restarts_the_seeds_from_step_0(tmp_path, capsys):
    data = toy_data()
    reference_dir, killed_dir = str(tmp_path / 'reference'), str(tmp_path / 'killed')
    train_task(toy_inputs(reference_dir, data, seeds=(0, 1)), toy_options())
    shutil.copytree(reference_dir, killed_dir)
    for seed in (0, 1):  # as if killed while seed 1's first checkpoint (step 10) was being written
        seed_dir = os.path.join(killed_dir, f'seed{seed}')
        os.remove(checkpoint.checkpoint_path(seed_dir, 20))
        os.remove(os.path.join(seed_dir, 'final.json'))
    seed1_first = checkpoint.checkpoint_path(os.path.join(killed_dir, 'seed1'), 10)
    os.replace(seed1_first, seed1_first + '.tmp')
    capsys.readouterr()
    result = train_task(toy_inputs(killed_dir, data, seeds=(0, 1)), toy_options(resume=True))
    assert result.step == 20
    assert 'killed while writing its first checkpoints' in capsys.readouterr().out
    for seed in (0, 1):
        reference_seed, killed_seed = os.path.join(reference_dir, f'seed{seed}'), os.path.join(killed_dir, f'seed{seed}')
        assert checkpoint.checkpoint_steps(killed_seed) == [10, 20]
        for step in (10, 20):
            with open(checkpoint.checkpoint_path(reference_seed, step), 'rb') as f:
                expected = f.read()
            with open(checkpoint.checkpoint_path(killed_seed, step), 'rb') as f:
                assert f.read() == expected
        assert [row['step'] for row in read_csv(os.path.join(killed_seed, 'train.csv'))] == [5, 10, 15, 20]


def test_seeds_of_different_launches_without_a_common_step_are_not_restarted(tmp_path):
    seed_dirs = [str(tmp_path / 'seed0'), str(tmp_path / 'seed1')]
    checkpoint.save_checkpoint(seed_dirs[0], 10, {'x': np.arange(3.0)})
    os.makedirs(seed_dirs[1])
    for directory, seeds in zip(seed_dirs, ([0], [0, 1])):  # seed 0 trained alone, then seed 1 added
        with open(os.path.join(directory, 'flags.json'), 'w') as f:
            json.dump({'seeds': seeds}, f)
    with pytest.raises(checkpoint.ResumeError, match=r'no checkpoint step in common'):
        resume_step(seed_dirs, [0, 1])
    assert checkpoint.checkpoint_steps(seed_dirs[0]) == [10]  # nothing removed
    with open(os.path.join(seed_dirs[0], 'flags.json'), 'w') as f:
        json.dump({'seeds': [0, 1]}, f)  # one launch of both seeds: its first save was interrupted
    assert resume_step(seed_dirs, [0, 1]) is None
    assert checkpoint.checkpoint_steps(seed_dirs[0]) == []


def test_checkpoint_template_mismatch_names_the_leaf(tmp_path):
    data = Dataset(data={k: jnp.asarray(v) for k, v in toy_data().items()})
    state = jax.tree.map(lambda x: np.asarray(x)[0], toy_states([0], data))
    checkpoint.save_checkpoint(str(tmp_path), 7, state)
    wrong = state.replace(sample_key=np.zeros(3, np.uint32))
    with pytest.raises(ValueError, match=r'sample_key.*expected uint32\(3,\)'):
        checkpoint.load_checkpoint(str(tmp_path), 7, wrong)
    assert checkpoint.latest_common_step([str(tmp_path)]) == 7
    assert checkpoint.latest_common_step([str(tmp_path / 'none'), str(tmp_path / 'none2')]) is None
    with pytest.raises(checkpoint.ResumeError, match=rf"no checkpoint step in common \({tmp_path}: \[7\]; "
                                                     rf"{tmp_path}/none: none\).*seed list the run was trained with"):
        checkpoint.latest_common_step([str(tmp_path), str(tmp_path / 'none')])


def test_save_is_atomic_prunes_old_and_ignores_partial_files(tmp_path):
    seed_dir = str(tmp_path)
    state = {'w': np.arange(3, dtype=np.float32), 'key': np.array([1, 2], np.uint32)}
    for step in (5, 10, 15):
        checkpoint.save_checkpoint(seed_dir, step, state, keep=2)
    assert checkpoint.checkpoint_steps(seed_dir) == [10, 15]
    with open(checkpoint.checkpoint_path(seed_dir, 20) + '.tmp', 'wb') as f:  # a write cut short by a kill
        f.write(b'\x00' * 7)
    assert checkpoint.checkpoint_steps(seed_dir) == [10, 15]
    restored, buffer = checkpoint.load_checkpoint(seed_dir, 15, state)
    np.testing.assert_array_equal(restored['w'], state['w'])
    assert restored['key'].dtype == np.uint32 and buffer is None
    with pytest.raises(ValueError, match=r"\['w'\].*saved float32\(3,\), expected float32\(4,\)"):
        checkpoint.load_checkpoint(seed_dir, 15, {'w': np.zeros(4, np.float32), 'key': state['key']})


def test_a_kill_between_two_seeds_writes_leaves_a_common_step_with_one_kept_checkpoint(tmp_path, monkeypatch):
    """Seeds prune only once every seed's new checkpoint is written: a kill after seed 0's write at step 15 leaves
    both seeds their step-10 checkpoint, so --resume continues there even with --keep_checkpoints=1."""
    seed_dirs = [str(tmp_path / f'seed{s}') for s in (0, 1)]
    stacked = {'w': np.arange(6, dtype=np.float32).reshape(2, 3)}
    resume.save_seeds(seed_dirs, 10, stacked, None, keep=1)
    write = checkpoint.write_checkpoint

    def killed_at_seed_1(seed_dir, *args):
        if seed_dir == seed_dirs[1]:
            raise KeyboardInterrupt  # the process dies before seed 1's write
        return write(seed_dir, *args)

    monkeypatch.setattr(checkpoint, 'write_checkpoint', killed_at_seed_1)
    with pytest.raises(KeyboardInterrupt):
        resume.save_seeds(seed_dirs, 15, stacked, None, keep=1)
    assert [checkpoint.checkpoint_steps(d) for d in seed_dirs] == [[10, 15], [10]]
    assert resume_step(seed_dirs, [0, 1]) == 10
    monkeypatch.setattr(checkpoint, 'write_checkpoint', write)
    resume.save_seeds(seed_dirs, 20, stacked, None, keep=1)
    assert [checkpoint.checkpoint_steps(d) for d in seed_dirs] == [[20], [20]]


def test_evaluation_checkpoints_drop_their_replay_buffer_once_older_than_the_newest_kept(tmp_path):
    """Online buffers stay on disk in the newest `keep` checkpoints only; an evaluation step's checkpoint keeps its
    agent for `python -m evaluate`."""
    seed_dir = str(tmp_path)
    state = {'w': np.arange(3, dtype=np.float32)}
    for step in (10, 15, 20, 25):
        buffer = {'data': {'rewards': np.full(step, 1.0, np.float32)}, 'size': step, 'insert_index': step}
        checkpoint.save_checkpoint(seed_dir, step, state, buffer, keep=2, protected={10})
    assert checkpoint.checkpoint_steps(seed_dir) == [10, 20, 25]
    kept_state, dropped = checkpoint.load_checkpoint(seed_dir, 10, state)
    np.testing.assert_array_equal(kept_state['w'], state['w'])
    assert dropped is None
    assert [int(checkpoint.load_checkpoint(seed_dir, step, state)[1]['size']) for step in (20, 25)] == [20, 25]


def test_replay_buffer_round_trips_through_a_checkpoint(tmp_path):
    transition = {'observations': jnp.zeros(3), 'rewards': jnp.zeros(())}
    empty = ReplayBuffer.create(transition, capacity=6)
    filled = []
    for s in range(2):  # two seeds holding 2 and 4 transitions
        buffer = empty
        for i in range(2 + 2 * s):
            buffer = buffer.add({'observations': jnp.full(3, 10 * s + i, jnp.float32), 'rewards': jnp.float32(-i)})
        filled.append(buffer)
    stacked = jax.device_get(jax.tree.map(lambda *xs: jnp.stack(xs), *filled))
    for s in range(2):
        checkpoint.save_checkpoint(str(tmp_path / f'seed{s}'), 3, {'x': np.zeros(1)}, buffer_payload(stacked, s))
    payloads = [checkpoint.load_checkpoint(str(tmp_path / f'seed{s}'), 3, {'x': np.zeros(1)})[1] for s in range(2)]
    assert [p['size'] for p in payloads] == [2, 4] and len(payloads[0]['data']['observations']) == 2
    restored = restore_buffer(jax.device_get(empty), payloads)
    for key in ('observations', 'rewards'):
        np.testing.assert_array_equal(restored.data[key], stacked.data[key])
    np.testing.assert_array_equal(restored.size, [2, 4])
    np.testing.assert_array_equal(restored.insert_index, [2, 4])


def test_resume_with_another_agent_config_is_refused_naming_the_keys(tmp_path):
    data = toy_data()
    run_dir = str(tmp_path / 'run')
    train_task(toy_inputs(run_dir, data, lr=1e-2), toy_options(offline_steps=10))
    saved = read_flags(os.path.join(run_dir, 'seed0', 'flags.json'))
    assert saved['agent_config'] == {'agent_name': 'toy', 'lr': 1e-2, 'batch_size': 8}
    before = checkpoint.checkpoint_steps(os.path.join(run_dir, 'seed0'))
    for offline_steps in (10, 20):  # a finished run is not reused, an unfinished one not continued
        with pytest.raises(ConfigMismatchError, match=r"lr: saved 0\.01, requested 0\.03.*new --run_name"):
            train_task(toy_inputs(run_dir, data, lr=3e-2), toy_options(offline_steps=offline_steps, resume=True))
    assert checkpoint.checkpoint_steps(os.path.join(run_dir, 'seed0')) == before
    assert read_flags(os.path.join(run_dir, 'seed0', 'flags.json'))['agent_config']['lr'] == 1e-2
    result = train_task(toy_inputs(run_dir, data, lr=1e-2), toy_options(offline_steps=20, resume=True))
    assert result.step == 20  # the same config resumes


def test_a_run_saved_before_the_agent_gained_a_key_resumes_with_that_key_at_its_default(tmp_path):
    """IQL gained encoder, frame_stack and p_aug (defaults: None, 1, 0.0, the computation it had before); a run whose
    flags.json predates them resumes when they are at their defaults, and is refused when one is not."""
    from agents import agent_defaults, iql
    run_dir = str(tmp_path / 'run')
    saved = resume.agent_config_dict(iql.get_config())
    for key in ('encoder', 'frame_stack', 'p_aug'):
        del saved[key]
    os.makedirs(runs.seed_dir(run_dir, 0))
    runs.write_json(runs.flags_path(runs.seed_dir(run_dir, 0)), {'agent_config': saved, 'eval_episodes': 5})
    defaults = agent_defaults(iql.IQLAgent)
    assert resume.agent_config_dict(defaults) == resume.agent_config_dict(iql.get_config())
    resume.check_same_agent_config(run_dir, [0], iql.get_config(), 5, defaults)  # no error
    with pytest.raises(ConfigMismatchError, match=r"frame_stack: saved '<missing>', requested 1"):
        resume.check_same_agent_config(run_dir, [0], iql.get_config(), 5)  # without the agent's defaults
    augmented = iql.get_config()
    augmented.p_aug = 0.5
    with pytest.raises(ConfigMismatchError, match=r'p_aug: saved 0\.0, requested 0\.5.*new --run_name'):
        resume.check_same_agent_config(run_dir, [0], augmented, 5, defaults)
    assert agent_defaults(type('NoFile', (), {})) is None  # a class whose module has no get_config


def test_resume_with_an_added_seed_is_refused_and_leaves_the_trained_seed_untouched(tmp_path):
    data = toy_data()
    run_dir = str(tmp_path / 'run')
    train_task(toy_inputs(run_dir, data, seeds=(0,)), toy_options(offline_steps=10))
    seed0_dir = os.path.join(run_dir, 'seed0')
    before = {name: open(os.path.join(seed0_dir, name), 'rb').read() for name in ('train.csv', 'flags.json')}
    for offline_steps in (10, 20):  # a finished run and one to be continued
        with pytest.raises(checkpoint.ResumeError, match=r'seed0: \[10\]; .*seed1: none'):
            train_task(toy_inputs(run_dir, data, seeds=(0, 1)), toy_options(offline_steps=offline_steps, resume=True))
    assert {name: open(os.path.join(seed0_dir, name), 'rb').read() for name in before} == before
    assert checkpoint.checkpoint_steps(seed0_dir) == [10]


def test_resume_with_another_evaluation_episode_count_is_refused(tmp_path):
    data = toy_data()
    run_dir = str(tmp_path / 'run')
    train_task(toy_inputs(run_dir, data), toy_options(offline_steps=10, eval_episodes=2))
    assert read_flags(os.path.join(run_dir, 'seed0', 'flags.json'))['eval_episodes'] == 2
    with pytest.raises(ConfigMismatchError, match=r'eval_episodes: saved 2, requested 3.*new --run_name'):
        train_task(toy_inputs(run_dir, data), toy_options(offline_steps=20, eval_episodes=3, resume=True))
    assert train_task(toy_inputs(run_dir, data), toy_options(offline_steps=20, eval_episodes=2, resume=True)).step == 20


def read_flags(path: str) -> dict:
    with open(path) as f:
        return json.load(f)
