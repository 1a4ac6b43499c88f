"""Visual OGBench tasks: encoder, frame stacking, augmentation, the visual loader and its errors, main.py runs.

One tiny visual dataset (rendered by OGBench's visual env, 12-step episodes) is generated once per session and
shared; unit tests use synthetic uint8 frames.
"""

import importlib
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

import main
from cli.plan import plan_run
from datasets import frames as frame_data
from datasets.families import FrameSettings
from datasets import ogbench_data
from datasets.generate import generate_dataset
from networks.encoders import make_encoder
from tests.test_main import REPO_DIR, compile_cache, parse, plan  # noqa: F401  (fixture)
from training import checkpoint
from runs import read_csv

TASK = 'visual-cube-single-play-singletask-task1-v0'
EPISODE_LENGTH = 12
EVAL_EPISODE_STEPS = 4  # evaluation episodes are cut short: software rendering costs ~0.2 s per frame


@pytest.fixture(scope='session')
def visual_dataset_dir(tmp_path_factory) -> str:
    directory = str(tmp_path_factory.mktemp('visual_data'))
    generate_dataset('visual-cube-single-play-v0', 2, seed=0, dataset_dir=directory, show_progress=False,
                     episode_length=EPISODE_LENGTH)
    return directory


@pytest.fixture(autouse=True)
def in_repo_dir(monkeypatch):
    monkeypatch.chdir(REPO_DIR)


# -------------------------------------------------------------------------------------------- encoder
@pytest.mark.parametrize('name, batch_shape', [('impala_small', (2,)), ('impala_small', (3, 2)),
                                               ('impala_debug', (2,))])
def test_encoder_maps_frame_stacks_to_512_features_and_reads_uint8_as_pixels(name, batch_shape):
    encoder = make_encoder(name)
    frames = jax.random.randint(jax.random.PRNGKey(0), (*batch_shape, 64, 64, 9), 0, 256).astype(jnp.uint8)
    params = encoder.init(jax.random.PRNGKey(1), frames)
    features = encoder.apply(params, frames)
    assert features.shape == (*batch_shape, 512) and features.dtype == jnp.float32
    np.testing.assert_array_equal(features, encoder.apply(params, frames.astype(jnp.float32)))
    # impala_small: one residual block per stack (16, 32, 32 channels), then 8x8x32 -> 512
    if name == 'impala_small':
        assert sum(x.size for x in jax.tree.leaves(params)) == 1105920  # for a 9-channel input
        assert params['params']['MLP_0']['Dense_0']['kernel'].shape == (8 * 8 * 32, 512)
    with pytest.raises(ValueError, match="unknown encoder 'resnet'; known encoders: impala, impala_small"):
        make_encoder('resnet')
    assert make_encoder(None) is None


# Each baseline's networks, each with its own encoder (as in FQL's code): module -> its encoder's parameter path.
BASELINE_ENCODERS = {'rebrac': {'modules_actor': 'encoder', 'modules_critic': 'encoder'},
                     'iql': {'modules_value': 'encoder', 'modules_critic': 'encoder', 'modules_actor': 'encoder'},
                     'ifql': {'modules_value': 'encoder', 'modules_critic': 'encoder',
                              'modules_actor_bc_flow_encoder': None}}


@pytest.mark.parametrize('agent_name', list(BASELINE_ENCODERS))
def test_each_baseline_network_has_its_own_encoder_and_acts_on_one_or_many_frame_stacks(agent_name):
    module = importlib.import_module(f'agents.{agent_name}')
    config = module.get_config()
    config.update(encoder='impala_debug', actor_hidden_dims=(8,), value_hidden_dims=(8,), frame_stack=3)
    if agent_name == 'ifql':
        config.update(num_samples=3, flow_steps=2)
    frames = lambda key, shape: jax.random.randint(jax.random.PRNGKey(key), shape, 0, 256).astype(jnp.uint8)
    batch = {'observations': frames(0, (4, 64, 64, 9)), 'next_observations': frames(1, (4, 64, 64, 9)),
             'actions': jnp.zeros((4, 2)), 'next_actions': jnp.zeros((4, 2)), 'rewards': jnp.ones(4),
             'masks': jnp.ones(4)}
    agent = module.AGENT_CLASS.create(jax.random.PRNGKey(2), batch, config)
    params = agent.network.params
    assert set(params) == set(BASELINE_ENCODERS[agent_name]) | ({'modules_actor_bc_flow'} if agent_name == 'ifql'
                                                                else set())
    encoders = [params[name] if key is None else params[name][key] for name, key in
                BASELINE_ENCODERS[agent_name].items()]
    first_kernels = [encoder['ResidualStack_0']['Conv_0']['kernel'] for encoder in encoders]
    assert all(not np.array_equal(first_kernels[0], kernel) for kernel in first_kernels[1:])  # separate encoders
    assert 'encoder' in agent.target_critic_params
    if agent_name == 'rebrac':
        assert 'encoder' in agent.target_actor_params
    updated, info = agent.update(batch)
    critic_encoder = updated.network.params['modules_critic']['encoder']['ResidualStack_0']['Conv_0']['kernel']
    assert np.isfinite(float(info['critic/loss'])) and not np.array_equal(critic_encoder, first_kernels[1])
    assert agent.sample_actions(batch['observations'][0], jax.random.PRNGKey(3)).shape == (2,)
    assert agent.sample_actions(batch['observations'], jax.random.PRNGKey(3)).shape == (4, 2)


# --------------------------------------------------------------------------------------- augmentation
def test_random_shift_keeps_the_shape_is_the_identity_at_p_aug_0_and_matches_an_edge_padded_crop():
    images = jax.random.randint(jax.random.PRNGKey(0), (5, 64, 64, 9), 0, 256).astype(jnp.uint8)
    pad = frame_data.AUGMENT_PADDING
    identity = frame_data.draw_shift_offsets(jax.random.PRNGKey(1), 5, p_aug=0.0)
    np.testing.assert_array_equal(identity, np.full((5, 2), pad))
    np.testing.assert_array_equal(frame_data.random_shift(images, identity), images)
    offsets = frame_data.draw_shift_offsets(jax.random.PRNGKey(2), 5, p_aug=1.0)
    shifted = frame_data.random_shift(images, offsets)
    assert shifted.shape == images.shape and shifted.dtype == jnp.uint8
    assert ((0 <= offsets) & (offsets <= 2 * pad)).all()
    padded = np.pad(np.asarray(images), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='edge')
    for row, (dy, dx) in enumerate(np.asarray(offsets)):
        np.testing.assert_array_equal(shifted[row], padded[row, dy:dy + 64, dx:dx + 64])
    other = frame_data.draw_shift_offsets(jax.random.PRNGKey(3), 5, p_aug=1.0)
    assert not np.array_equal(offsets, other)  # different keys, different shifts
    # one coin per batch: over many keys, p_aug = 0.5 augments about half of the batches, each all or nothing
    draws = jax.vmap(lambda k: frame_data.draw_shift_offsets(k, 64, 0.5))(jax.random.split(jax.random.PRNGKey(4), 400))
    untouched = (np.asarray(draws) == pad).all(axis=(1, 2))
    assert 0.4 < untouched.mean() < 0.6


def synthetic_frame_split(episode_lengths: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    """A frame dataset as the loader builds it, from OGBench's compact form; frame f is filled with value f % 251."""
    num_frames = sum(episode_lengths)
    last = np.cumsum(episode_lengths) - 1
    valids = np.ones(num_frames, np.float32)
    valids[last] = 0.0
    terminals = np.zeros(num_frames, np.float32)
    terminals[last] = terminals[last - 1] = 1.0  # OGBench's compact terminals: last transition and last frame
    rng = np.random.default_rng(seed)
    compact = {'observations': (np.arange(num_frames) % 251).astype(np.uint8)[:, None, None, None]
               * np.ones((1, 8, 8, 3), np.uint8),
               'actions': rng.uniform(-1, 1, (num_frames, 5)).astype(np.float32),
               'rewards': -rng.integers(0, 2, num_frames).astype(np.float32),
               'masks': np.ones(num_frames, np.float32), 'terminals': terminals, 'valids': valids}
    return ogbench_data._to_frame_output(compact, 'synthetic.npz')


def brute_force_stacks(split: dict[str, np.ndarray], frame_stack: int) -> tuple[np.ndarray, np.ndarray]:
    """FQL's rule written out: obs = [s_max(t-k+1, start), ..., s_t], next = [s_max(t-k+2, start), ..., s_{t+1}]."""
    observations, next_observations = [], []
    for t, start in zip(split['frame_index'], split['episode_start']):
        observations.append(np.concatenate([split['frames'][max(t - j, start)] for j in range(frame_stack - 1, -1, -1)],
                                           axis=-1))
        next_observations.append(np.concatenate([split['frames'][max(t + 1 - j, start)]
                                                 for j in range(frame_stack - 1, -1, -1)], axis=-1))
    return np.stack(observations), np.stack(next_observations)


@pytest.mark.parametrize('frame_stack', [1, 3, 5])
def test_frame_stacks_match_a_brute_force_reference_and_never_cross_an_episode_start(frame_stack):
    split = synthetic_frame_split([2, 7, 3, 5])
    # transitions: episode lengths - 1 each; frame_index skips each episode's last frame
    assert len(split['actions']) == 1 + 6 + 2 + 4
    np.testing.assert_array_equal(split['frame_index'][:4], [0, 2, 3, 4])
    np.testing.assert_array_equal(split['episode_start'][:4], [0, 2, 2, 2])
    np.testing.assert_array_equal(np.flatnonzero(split['terminals']), [0, 6, 8, 12])
    dataset = frame_data.frame_dataset_from_numpy(split, frame_stack=frame_stack)
    batch = dataset.batch_at(jnp.arange(dataset.size))
    expected_observations, expected_next = brute_force_stacks(split, frame_stack)
    np.testing.assert_array_equal(batch['observations'], expected_observations)
    np.testing.assert_array_equal(batch['next_observations'], expected_next)
    assert batch['observations'].shape == (13, 8, 8, 3 * frame_stack) and batch['observations'].dtype == jnp.uint8
    np.testing.assert_array_equal(batch['actions'], split['actions'])
    # a sampled batch is the same function of its rows
    sampled = dataset.sample(jax.random.PRNGKey(0), 6)
    assert {key: value.shape[0] for key, value in sampled.items()} == {key: 6 for key in sampled}


def test_next_actions_of_a_frame_dataset_are_the_next_action_within_the_episode():
    """ReBRAC's critic penalty reads the dataset's next action: the next row's within an episode, the row's own at
    the episode's last transition (as for state datasets), and absent unless asked for."""
    split = synthetic_frame_split([2, 7, 3])  # transitions: rows 0 | 1-6 | 7-8; terminal rows 0, 6, 8
    dataset = frame_data.frame_dataset_from_numpy(split, frame_stack=3, next_actions=True)
    batch = dataset.batch_at(jnp.arange(dataset.size))
    expected_rows = [0, 2, 3, 4, 5, 6, 6, 8, 8]
    np.testing.assert_array_equal(batch['next_actions'], split['actions'][expected_rows])
    assert 'next_actions' not in frame_data.frame_dataset_from_numpy(split).batch_at(jnp.arange(2))
    assert dataset.sample(jax.random.PRNGKey(0), 4)['next_actions'].shape == (4, 5)


def test_augmented_batches_shift_observation_and_next_observation_by_the_same_offset():
    split = synthetic_frame_split([6, 6])
    pattern = (np.arange(8)[:, None] * 8 + np.arange(8)[None, :]).astype(np.uint8)  # every frame the same image
    split['frames'] = np.broadcast_to(pattern[None, :, :, None], split['frames'].shape).copy()
    plain = frame_data.frame_dataset_from_numpy(split, frame_stack=3, p_aug=0.0)
    augmented = frame_data.frame_dataset_from_numpy(split, frame_stack=3, p_aug=1.0)
    for seed in range(3):
        key = jax.random.PRNGKey(seed)
        batch, plain_batch = augmented.sample(key, 16), plain.sample(key, 16)
        np.testing.assert_array_equal(batch['observations'], batch['next_observations'])
        assert not np.array_equal(batch['observations'], plain_batch['observations'])
        np.testing.assert_array_equal(batch['actions'], plain_batch['actions'])  # same rows, only the pixels move
    np.testing.assert_array_equal(plain.sample(key, 16)['observations'], plain.batch_at(
        jax.random.randint(jax.random.split(key)[0], (16,), 0, plain.size))['observations'])


def test_frame_stack_env_repeats_the_first_frame_after_reset_then_shifts():
    import gymnasium

    class CountingEnv(gymnasium.Env):
        observation_space = gymnasium.spaces.Box(0, 255, (2, 2, 3), np.uint8)
        action_space = gymnasium.spaces.Box(-1, 1, (1,), np.float32)

        def reset(self, seed=None, options=None):
            self.t = 0
            return np.full((2, 2, 3), 0, np.uint8), {}

        def step(self, action):
            self.t += 1
            return np.full((2, 2, 3), self.t, np.uint8), 0.0, False, False, {}

    env = frame_data.FrameStack(CountingEnv(), 3)
    assert env.observation_space.shape == (2, 2, 9)
    observation, _ = env.reset()
    np.testing.assert_array_equal(observation[0, 0], [0] * 9)
    for _ in range(2):
        observation, *_ = env.step(np.zeros(1))
    np.testing.assert_array_equal(observation[0, 0], [0] * 3 + [1] * 3 + [2] * 3)  # oldest first, as the datasets
    observation, _ = env.reset()
    np.testing.assert_array_equal(observation[0, 0], [0] * 9)


# ----------------------------------------------------------------------------------------- the loader
def test_generated_visual_files_have_ogbench_format_and_load_every_frame_once(visual_dataset_dir):
    import ogbench

    path = os.path.join(visual_dataset_dir, 'visual-cube-single-play-v0.npz')
    with np.load(path) as raw:
        stored = {key: raw[key] for key in raw.files}
    assert stored['observations'].dtype == np.uint8 and stored['observations'].shape == (2 * EPISODE_LENGTH, 64, 64, 3)
    assert stored['actions'].shape == (2 * EPISODE_LENGTH, 5) and stored['terminals'].dtype == bool
    np.testing.assert_array_equal(np.flatnonzero(stored['terminals']), [EPISODE_LENGTH - 1, 2 * EPISODE_LENGTH - 1])
    train, val = ogbench_data.load_datasets(TASK, visual_dataset_dir)
    assert set(train) == set(frame_data.FRAME_KEYS) and len(val['actions']) == EPISODE_LENGTH - 1
    np.testing.assert_array_equal(train['frames'], stored['observations'])  # stored once, unchanged
    assert len(train['actions']) == 2 * (EPISODE_LENGTH - 1)
    # the same transitions as OGBench's regular (copying) loader: rewards, masks, terminals, observation pairs
    reference, _ = ogbench.make_env_and_datasets(TASK, dataset_dir=visual_dataset_dir, compact_dataset=False)[1:]
    for key in ('rewards', 'masks', 'terminals'):
        np.testing.assert_array_equal(train[key], reference[key], err_msg=key)
    np.testing.assert_array_equal(train['actions'], np.clip(reference['actions'], -1 + 1e-5, 1 - 1e-5))
    np.testing.assert_array_equal(train['frames'][train['frame_index']], reference['observations'])
    np.testing.assert_array_equal(train['frames'][train['frame_index'] + 1], reference['next_observations'])


def write_copy(source_dir: str, target_dir: str, **changes) -> str:
    """Copies the visual files, replacing arrays of the train file; returns its path."""
    shutil.copytree(source_dir, target_dir)
    path = os.path.join(target_dir, 'visual-cube-single-play-v0.npz')
    with np.load(path) as raw:
        arrays = {key: raw[key] for key in raw.files}
    arrays.update(changes)
    np.savez_compressed(path, **arrays)
    return path


@pytest.mark.parametrize('change, message', [
    (lambda a: dict(observations=a['observations'].astype(np.float32)),
     'observations must be uint8 frames of shape (N, 64, 64, 3) for the visual task '
     'visual-cube-single-play-singletask-task1-v0, got float32 (24, 64, 64, 3).'),
    (lambda a: dict(observations=a['observations'][:, :32, :32]), 'got uint8 (24, 32, 32, 3).'),
    (lambda a: dict(observations=a['observations'][:-1]), 'arrays have inconsistent lengths'),
    (lambda a: dict(terminals=np.zeros_like(a['terminals'])), 'no terminals'),
])
def test_bad_visual_files_are_one_error_naming_the_file_and_the_problem(visual_dataset_dir, tmp_path, change,
                                                                        message):
    with np.load(os.path.join(visual_dataset_dir, 'visual-cube-single-play-v0.npz')) as raw:
        arrays = {key: raw[key] for key in raw.files}
    path = write_copy(visual_dataset_dir, str(tmp_path / 'data'), **change(arrays))
    with pytest.raises(ogbench_data.DatasetError) as error:
        ogbench_data.load_datasets(TASK, str(tmp_path / 'data'))
    assert str(error.value).startswith(f'{path}: ') and message in str(error.value) and '\n' not in str(error.value)


def test_a_dataset_larger_than_free_memory_stops_with_its_size_and_the_remedy(monkeypatch):
    split = synthetic_frame_split([4, 4])
    monkeypatch.setattr(frame_data, 'free_device_bytes', lambda device: 1000)
    with pytest.raises(frame_data.DatasetTooLargeError) as error:
        frame_data.check_fits(TASK, [split], jax.devices()[0])
    needed = 8 * 8 * 8 * 3 + 6 * (5 + 5) * 4  # frames (uint8) + actions and five per-transition columns
    assert frame_data.device_bytes(split) == needed
    message = str(error.value)
    assert f'{TASK}: the visual dataset needs {needed / 2**30:.2f} GiB on cpu (8 frames of 192 bytes' in message
    assert 'Use a smaller dataset (--generate_missing_data=N' in message
    monkeypatch.setattr(frame_data, 'free_device_bytes', lambda device: needed)
    frame_data.check_fits(TASK, [split], jax.devices()[0])  # fits exactly: no error


# ------------------------------------------------------------------------------------------ main.py runs
TINY = {'fql': ['--agent=agents/fql.py', '--agent.actor_hidden_dims=(8,8)', '--agent.value_hidden_dims=(8,8)',
                '--agent.flow_steps=2'],
        'mfql': ['--agent=agents/mfql.py', '--agent.actor_arch=mlp', '--agent.actor_mlp_hidden_dims=(8,8)',
                 '--agent.value_hidden_dims=(8,8)', '--agent.num_candidates_eval=2',
                 '--agent.num_candidates_target=2'],
        **{agent: [f'--agent=agents/{agent}.py', '--agent.actor_hidden_dims=(8,8)', '--agent.value_hidden_dims=(8,8)',
                   *extra] for agent, extra in (('rebrac', ['--agent.alpha_critic=0.01']), ('iql', []),
                                                ('ifql', ['--agent.flow_steps=2', '--agent.num_samples=3']))}}


@pytest.fixture
def short_eval_episodes(monkeypatch):
    make_env = ogbench_data.make_env
    monkeypatch.setattr(ogbench_data, 'make_env',
                        lambda name, **kwargs: make_env(name, max_episode_steps=EVAL_EPISODE_STEPS, **kwargs))


def visual_args(agent: str, dataset_dir: str, save_dir: str, offline_steps: int, *extra: str) -> list[str]:
    return [f'--env_name={TASK}', f'--dataset_dir={dataset_dir}', f'--save_dir={save_dir}', '--run_name=r',
            f'--offline_steps={offline_steps}', f'--eval_interval={offline_steps}', '--eval_episodes=1',
            '--log_interval=50', '--save_interval=50', '--steps_per_call=50', '--progress_bar=false',
            *TINY[agent], '--agent.encoder=impala_debug', '--agent.batch_size=4', *extra]


def parse_visual(args: list[str], monkeypatch) -> None:
    """`parse`, plus the string-valued --agent.encoder (parse reads literals) and the argv that main.py reads its
    explicit --agent.* keys from."""
    encoder = [arg for arg in args if arg.startswith('--agent.encoder=')]
    parse(*[arg for arg in args if arg not in encoder])
    if encoder:
        value = encoder[0].split('=', 1)[1]
        flags.FLAGS.agent.encoder = None if value == 'None' else value
    monkeypatch.setattr(sys, 'argv', ['main.py', *args])


def run_in_process(args: list[str], monkeypatch) -> None:
    parse_visual(args, monkeypatch)
    try:
        main.main([])
    finally:
        flags.FLAGS.unparse_flags()


def run_in_subprocess(args: list[str], cache_dir: str) -> subprocess.CompletedProcess:
    """main.py with `args` in a fresh process (evaluation episodes cut short, as `short_eval_episodes` does)."""
    code = ('import runpy, sys; from datasets import ogbench_data; make_env = ogbench_data.make_env; '
            'ogbench_data.make_env = lambda name, **kwargs: make_env(name, max_episode_steps='
            f'{EVAL_EPISODE_STEPS}, **kwargs); sys.argv = ["main.py", *sys.argv[1:]]; '
            'runpy.run_path("main.py", run_name="__main__")')
    env = dict(os.environ, JAX_PLATFORMS='cpu', MUJOCO_GL='egl', JAX_COMPILATION_CACHE_DIR=cache_dir)
    return subprocess.run([sys.executable, '-c', code, *args], cwd=REPO_DIR, env=env, capture_output=True,
                          text=True, timeout=600)


# Each run has a fresh process: inside the whole suite's long-lived process, XLA's CPU compiler crashed (a
# segmentation fault) compiling IQL's visual update, in two suite runs at the same test; the test passes alone.
@pytest.mark.parametrize('agent', ['fql', 'mfql', 'rebrac', 'iql', 'ifql'])
def test_main_trains_and_evaluates_every_agent_on_a_visual_task(agent, visual_dataset_dir, compile_cache, tmp_path):
    result = run_in_subprocess(visual_args(agent, visual_dataset_dir, str(tmp_path), 100), compile_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    seed_dir = f'{tmp_path}/r/{TASK}/seed0'
    rows = read_csv(f'{seed_dir}/train.csv')
    assert [row['step'] for row in rows] == [50, 100] and np.isfinite(rows[-1]['training/critic/loss'])
    if agent == 'rebrac':  # its critic penalty reads the frame dataset's next actions
        assert rows[-1]['training/critic/penalty'] > 0
    assert [row['step'] for row in read_csv(f'{seed_dir}/eval.csv')] == [1, 100]
    flags_json = json.load(open(f'{seed_dir}/flags.json'))
    assert flags_json['agent_config']['encoder'] == 'impala_debug'  # explicit flag over the preset
    assert flags_json['agent_config']['frame_stack'] == 3 and flags_json['agent_config']['p_aug'] == 0.5
    assert flags_json['preset_sources']['frame_stack'].startswith('[FQL README] pixel-task flags')


def state_only_agent(directory: str) -> str:
    """agents/iql.py copied to DIRECTORY/stateonly.py without its pixel keys (encoder, frame_stack, p_aug): an agent
    with no encoder, as a user's new agent may be."""
    with open(os.path.join(REPO_DIR, 'agents', 'iql.py')) as f:
        lines = f.read().replace("agent_name='iql'", "agent_name='stateonly'").splitlines(keepends=True)
    kept = [line for line in lines if not line.lstrip().startswith(('encoder=ml_collections', 'frame_stack=1,',
                                                                     'p_aug=0.0,'))]
    assert len(lines) - len(kept) == 3
    path = os.path.join(directory, 'stateonly.py')
    with open(path, 'w') as f:
        f.writelines(kept)
    return path


def test_visual_run_killed_then_resumed_is_bitwise_identical(visual_dataset_dir, short_eval_episodes, tmp_path,
                                                             monkeypatch):
    args = lambda save_dir, *extra: visual_args('fql', visual_dataset_dir, save_dir, 100, '--eval_episodes=0',
                                                *extra)
    run_in_process(args(f'{tmp_path}/reference'), monkeypatch)
    reference_dir, resumed_dir = f'{tmp_path}/reference/r/{TASK}/seed0', f'{tmp_path}/resumed/r/{TASK}/seed0'
    shutil.copytree(f'{tmp_path}/reference', f'{tmp_path}/resumed')
    os.remove(checkpoint.checkpoint_path(resumed_dir, 100))  # as if killed after the step-50 checkpoint
    os.remove(os.path.join(resumed_dir, 'final.json'))
    run_in_process(args(f'{tmp_path}/resumed', '--resume'), monkeypatch)
    with open(checkpoint.checkpoint_path(reference_dir, 100), 'rb') as f:
        expected = f.read()
    with open(checkpoint.checkpoint_path(resumed_dir, 100), 'rb') as f:
        assert f.read() == expected
    strip = lambda rows: [{k: v for k, v in row.items() if not k.startswith('time/')} for row in rows]
    assert strip(read_csv(f'{resumed_dir}/train.csv')) == strip(read_csv(f'{reference_dir}/train.csv'))


def test_visual_settings_errors_are_one_line_and_the_default_budget_is_500k(tmp_path, monkeypatch):
    def error(*args: str) -> str:
        with pytest.raises(SystemExit) as raised:
            plan(f'--save_dir={tmp_path}', *args)
        assert '\n' not in str(raised.value) and str(raised.value).startswith('error: ')
        return str(raised.value)

    fql_visual = [f'--env_name={TASK}', '--agent=agents/fql.py']
    assert 'online training on ogbench_visual tasks is not supported' in error(*fql_visual, '--online_steps=10')
    parse_visual([f'--env_name={TASK}', f'--save_dir={tmp_path}', '--agent=agents/fql.py'], monkeypatch)
    visual_plan = plan_run(flags.FLAGS, [f'--env_name={TASK}', '--agent=agents/fql.py'])
    assert visual_plan.options.offline_steps == 500_000 and visual_plan.task_configs[0][0].encoder == 'impala_small'
    assert visual_plan.frames == [FrameSettings(frame_stack=3, p_aug=0.5)]  # FQL's pixel presets
    flags.FLAGS.unparse_flags()
    assert ('is a visual task, and agent stateonly has no pixel encoder (visual tasks run with the agents whose config '
            'has an encoder key: fql, ifql, iql, mfql, rebrac)') in error(f'--env_name={TASK}', '--agent.alpha=1',
                                                                       f'--agent={state_only_agent(str(tmp_path))}')
    state = 'cube-single-play-singletask-task1-v0'
    assert "observes states, but {'frame_stack': 3} are set" in error(f'--env_name={state}', '--agent=agents/fql.py',
                                                                      '--agent.frame_stack=3')
    assert "observes states, but {'p_aug': 0.5} are set" in error(f'--env_name={state}', '--agent=agents/iql.py',
                                                                  '--agent.alpha=1', '--p_aug=0.5')
    assert 'mixes tasks whose default budgets differ (ogbench_visual 500,000, ogbench 1,000,000 offline steps)' in \
        error(f'--env_name={TASK},{state}', '--agent=agents/fql.py')
    assert '--frame_stack must be a positive integer, got 0' in error(*fql_visual, '--frame_stack=0')
    assert '--p_aug must be in [0, 1], got 2.0' in error(*fql_visual, '--p_aug=2')


def test_frame_flags_and_their_agent_config_aliases_are_one_setting(tmp_path):
    """--frame_stack / --p_aug (FQL's run flags) and --agent.frame_stack / --agent.p_aug give the same plan: config,
    sources, frame settings and explicit keys; given both, they must agree."""
    common = (f'--save_dir={tmp_path}', f'--env_name={TASK}', '--agent=agents/fql.py')
    as_flags = plan(*common, '--frame_stack=2', '--p_aug=0.25')
    as_keys = plan(*common, '--agent.frame_stack=2', '--agent.p_aug=0.25')
    both = plan(*common, '--frame_stack=2', '--agent.frame_stack=2', '--p_aug=0.25')
    for other in (as_keys, both):
        assert other.task_configs[0][0].to_dict() == as_flags.task_configs[0][0].to_dict()
        assert other.task_configs[0][1] == as_flags.task_configs[0][1]
        assert other.frames == as_flags.frames == [FrameSettings(frame_stack=2, p_aug=0.25)]
        assert sorted(other.explicit_keys) == sorted(as_flags.explicit_keys)
    config, sources = as_flags.task_configs[0]
    assert (config.frame_stack, config.p_aug) == (2, 0.25)
    assert sources['frame_stack'].startswith('command line (preset 3 from [FQL README] pixel-task flags')
    with pytest.raises(SystemExit, match=r'^error: --frame_stack=4 and --agent.frame_stack=2 disagree; they are one '
                                         r'setting: give one of them$'):
        plan(*common, '--frame_stack=4', '--agent.frame_stack=2')
    flags.FLAGS.unparse_flags()
