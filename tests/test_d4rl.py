"""D4RL through Minari: name mapping, conversion conventions, score normalisation, eval envs, main.py routing.

The first part runs in the core install (no minari): name tables, normalised scores, the episode
conversion on hand-made episodes, and the clear error for a D4RL name without the extra. The second
part needs the extra (`pip install -r requirements-d4rl.txt`) and is skipped without it: it writes tiny
Minari datasets with Minari's own API into a temporary MINARI_DATASETS_PATH (no network), loads them
through our path, and creates and steps AntMaze and Adroit evaluation envs.
"""

import importlib.util
import os
import subprocess
import sys
import time
import types

import numpy as np
import pytest

import configs
from datasets import d4rl, names
from datasets.ogbench_data import DatasetError

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_EXTRA = not d4rl.missing_extra_modules()
# Minari asks for author / description / eval env metadata on every dataset it creates; the tiny test
# datasets need none.
pytestmark = pytest.mark.filterwarnings('ignore::UserWarning:minari.utils')
needs_extra = pytest.mark.skipif(not HAS_EXTRA, reason='D4RL extra not installed (pip install -r requirements-d4rl.txt)')


# ----------------------------------------------------------------------------------------- names
def test_the_18_paper_names_map_to_minari_ids_and_envs():
    assert len(d4rl.D4RL_TASKS) == 18
    umaze = d4rl.parse_d4rl_name('antmaze-umaze-v2')
    assert (umaze.minari_id, umaze.env_id, umaze.max_episode_steps, umaze.maze) == (
        'D4RL/antmaze/umaze-v1', 'AntMaze_UMaze-v4', 700, 'umaze')
    large = d4rl.parse_d4rl_name('antmaze-large-diverse-v2')
    assert (large.minari_id, large.env_id, large.max_episode_steps) == (
        'D4RL/antmaze/large-diverse-v1', 'AntMaze_Large_Diverse_GR-v4', 1000)
    pen = d4rl.parse_d4rl_name('pen-cloned-v1')
    assert (pen.minari_id, pen.env_id, pen.max_episode_steps, pen.domain) == (
        'D4RL/pen/cloned-v2', 'AdroitHandPen-v1', 100, 'adroit')
    assert d4rl.parse_d4rl_name('relocate-expert-v1').max_episode_steps == 200
    assert list(d4rl.D4RL_TASKS) == names.d4rl_env_names()  # one grammar: the Minari table follows `names`
    for name in d4rl.D4RL_TASKS:  # every task has FQL and MeanFlowQL presets
        assert 'alpha' in configs.get_presets('fql', name) and 'alpha' in configs.get_presets('mfql', name)
    assert (names.d4rl_stem('antmaze-umaze-diverse-v2'), names.d4rl_stem('pen-human-v1')) == (
        'antmaze-umaze-diverse', 'pen-human')
    for other in ('antmaze-umaze-v1', 'pen-human-v2', 'cube-single-play-singletask-task2-v0', 'antmaze-umaze'):
        assert names.d4rl_stem(other) is None and not names.is_d4rl_name(other)
    assert names.expand_env_names('antmaze-umaze-v2, pen-human-v1,antmaze-umaze-v2') == [
        'antmaze-umaze-v2', 'pen-human-v1']


@pytest.mark.parametrize('name, close', [('antmaze-umaze-v3', 'antmaze-umaze-v2'), ('pen-clone-v1', 'pen-cloned-v1'),
                                         ('door-human-v0', 'door-human-v1')])
def test_unknown_d4rl_names_name_close_valid_ones(name, close):
    with pytest.raises(ValueError, match=f'Unknown D4RL task name .*{close}'):
        names.expand_env_names(name)


def test_normalized_score_uses_d4rl_reference_returns():
    # AntMaze v2: min 0, max 1 (d4rl/infos.py), so a success episode (return 1) scores 100.
    np.testing.assert_allclose(d4rl.normalized_score('antmaze-large-play-v2', np.array([0.0, 1.0])), [0.0, 100.0])
    # Adroit v1 = the v0 human reference returns.
    assert d4rl.normalized_score('pen-human-v1', 96.262799) == pytest.approx(0.0, abs=1e-9)
    assert d4rl.normalized_score('pen-cloned-v1', 3076.8331017826877) == pytest.approx(100.0)
    assert d4rl.normalized_score('pen-expert-v1', (96.262799 + 3076.8331017826877) / 2) == pytest.approx(50.0)
    assert d4rl.normalized_score('door-cloned-v1', 2880.5693087298737) == pytest.approx(100.0)
    assert d4rl.normalized_score('hammer-human-v1', -274.856578) == pytest.approx(0.0, abs=1e-9)
    # relocate: (R + 6.425911) / 4240.303708728884 * 100
    assert d4rl.normalized_score('relocate-cloned-v1', 1000.0) == pytest.approx(100 * 1006.425911 / 4240.303708728884)


# ------------------------------------------------------------------------------------ conversion
def _episode(observations, actions, rewards, terminations):
    return types.SimpleNamespace(observations=observations, actions=np.asarray(actions, np.float32),
                                 rewards=np.asarray(rewards, np.float32), terminations=np.asarray(terminations))


def _antmaze_obs(length: int, offset: float) -> dict[str, np.ndarray]:
    """length + 1 observations whose entries encode (step, column) so rows can be traced."""
    steps = offset + np.arange(length + 1, dtype=np.float32)[:, None]
    return {'achieved_goal': steps + np.array([0.1, 0.2], np.float32),
            'observation': steps + np.linspace(0.3, 0.9, 27, dtype=np.float32),
            'desired_goal': np.zeros((length + 1, 2), np.float32)}


def test_antmaze_conversion_shift_masks_terminals_and_next_observations():
    task = d4rl.parse_d4rl_name('antmaze-umaze-v2')
    episodes = [_episode(_antmaze_obs(3, 0.0), np.full((3, 8), 0.5), [0, 1, 1], [False] * 3),
                _episode(_antmaze_obs(0, 50.0), np.zeros((0, 8)), [], []),  # empty: skipped
                _episode(_antmaze_obs(2, 100.0), np.full((2, 8), 2.0), [0, 0], [False, True])]
    out = d4rl.episodes_to_transitions(task, episodes)
    assert {k: v.shape for k, v in out.items()} == {
        'observations': (5, 29), 'actions': (5, 8), 'rewards': (5,), 'masks': (5,), 'next_observations': (5, 29),
        'terminals': (5,)}
    assert all(v.dtype == np.float32 for v in out.values())
    np.testing.assert_array_equal(out['rewards'], [-1, 0, 0, -1, -1])  # 1/0 -> 0/-1
    # mask 0 where the ant is at the goal (reward 1, D4RL's terminal) or Minari says terminated.
    np.testing.assert_array_equal(out['masks'], [1, 0, 0, 1, 0])
    np.testing.assert_array_equal(out['terminals'], [0, 0, 1, 0, 1])  # trajectory breaks only
    # Observations: xy first, then the 27 body coordinates; next observation of an episode's last
    # transition is that episode's final stored observation, not the next episode's first.
    np.testing.assert_allclose(out['observations'][0, :3], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(out['next_observations'][2, :2], [3.1, 3.2], rtol=1e-6)
    np.testing.assert_allclose(out['observations'][3, :2], [100.1, 100.2], rtol=1e-6)
    np.testing.assert_allclose(out['next_observations'][4, :2], [102.1, 102.2], rtol=1e-6)
    np.testing.assert_allclose(out['next_observations'][:2], out['observations'][1:3])
    assert out['actions'].max() == pytest.approx(1 - 1e-5)  # clipped


def test_adroit_conversion_keeps_rewards_and_uses_terminations():
    task = d4rl.parse_d4rl_name('door-human-v1')
    obs = np.arange(4 * 39, dtype=np.float32).reshape(4, 39)
    out = d4rl.episodes_to_transitions(task, [_episode(obs, np.zeros((3, 28)), [5.0, -2.0, 7.5], [False, True, False])])
    np.testing.assert_array_equal(out['rewards'], [5.0, -2.0, 7.5])
    np.testing.assert_array_equal(out['masks'], [1, 0, 1])
    np.testing.assert_array_equal(out['terminals'], [0, 1, 1])  # dataset terminal, then the episode end
    np.testing.assert_array_equal(out['next_observations'], obs[1:])


@pytest.mark.parametrize('episode, message', [
    (_episode(np.zeros((3, 45)), np.zeros((3, 24)), [0, 0, 0], [False] * 3), 'expected T \\+ 1, T, T, T'),
    (_episode(np.full((3, 45), np.nan), np.zeros((2, 24)), [0, 0], [False] * 2), 'NaN/inf'),
    (_episode({'observation': np.zeros((3, 45))}, np.zeros((2, 24)), [0, 0], [False] * 2), 'must be an array'),
])
def test_malformed_episodes_are_named(episode, message):
    with pytest.raises(DatasetError, match=message):
        d4rl.episodes_to_transitions(d4rl.parse_d4rl_name('pen-human-v1'), [episode])


# ------------------------------------------------------------------------- without the extra
def test_d4rl_name_without_the_extra_says_what_to_install(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name, *a: None if name in d4rl.EXTRA_MODULES else real_find_spec(name, *a))
    with pytest.raises(ImportError, match='pip install -r requirements-d4rl.txt'):
        d4rl.make_env('pen-human-v1')
    from tests.test_main import plan
    with pytest.raises(SystemExit) as error:
        plan(f'--save_dir={tmp_path}', '--env_name=antmaze-umaze-v2')
    message = str(error.value)
    assert 'antmaze-umaze-v2 is a D4RL task' in message and 'pip install -r requirements-d4rl.txt' in message
    assert 'minari' in message


def test_core_requirements_stay_free_of_the_extra():
    with open(os.path.join(REPO_DIR, 'requirements.txt')) as f:
        core = f.read().lower()
    assert 'minari' not in core and 'gymnasium-robotics' not in core
    with open(os.path.join(REPO_DIR, 'requirements-d4rl.txt')) as f:
        extra = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    assert extra[0] == '-r requirements.txt' and any(line.startswith('minari[') for line in extra)
    assert any(line.startswith('gymnasium-robotics') for line in extra)


# ---------------------------------------------------------------------------- with the extra
@pytest.fixture
def minari_store(tmp_path, monkeypatch):
    """An empty Minari store in tmp_path; downloads are reported as impossible (no network in tests)."""
    store = tmp_path / 'minari'
    monkeypatch.setenv('MINARI_DATASETS_PATH', str(store))
    monkeypatch.setattr(d4rl, '_host_reachable', lambda host, timeout=5.0: 'offline (test)')
    return str(store)


def write_antmaze_dataset(minari_id: str = 'D4RL/antmaze/umaze-v1') -> None:
    """Two episodes (T = 3, 2) in Minari's format: rewards [0, 1, 1] and [0, 0], no terminations."""
    import gymnasium
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    env = d4rl.make_env('antmaze-umaze-v2').unwrapped
    space = env.observation_space
    buffers = [EpisodeBuffer(id=i, observations=_antmaze_obs(length, 100.0 * i),
                             actions=np.full((length, 8), 0.25, np.float32), rewards=rewards,
                             terminations=[False] * length, truncations=[False] * (length - 1) + [True])
               for i, (length, rewards) in enumerate([(3, [0.0, 1.0, 1.0]), (2, [0.0, 0.0])])]
    assert isinstance(space, gymnasium.spaces.Dict)
    minari.create_dataset_from_buffers(minari_id, buffers, env=env.spec, algorithm_name='mfql-test',
                                       observation_space=space, action_space=env.action_space)
    env.close()


@needs_extra
def test_tiny_minari_antmaze_dataset_loads_through_our_path(minari_store):
    write_antmaze_dataset()
    assert os.path.isfile(os.path.join(minari_store, 'D4RL', 'antmaze', 'umaze-v1', 'data', 'metadata.json'))
    train, val = d4rl.load_dataset('antmaze-umaze-v2')
    assert val is None and train['observations'].shape == (5, 29)
    np.testing.assert_array_equal(train['rewards'], [-1, 0, 0, -1, -1])
    np.testing.assert_array_equal(train['masks'], [1, 0, 0, 1, 1])
    np.testing.assert_array_equal(train['terminals'], [0, 0, 1, 0, 1])
    np.testing.assert_allclose(train['next_observations'][2, :2], [3.1, 3.2], rtol=1e-6)
    np.testing.assert_allclose(train['next_observations'][4, :2], [102.1, 102.2], rtol=1e-6)
    np.testing.assert_allclose(train['actions'], 0.25)


@needs_extra
def test_tiny_minari_adroit_dataset_loads_and_width_mismatch_is_named(minari_store):
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer

    env = d4rl.make_env('pen-human-v1').unwrapped
    obs = np.linspace(-1, 1, 5 * 45, dtype=np.float32).reshape(5, 45)
    buffer = EpisodeBuffer(id=0, observations=obs, actions=np.zeros((4, 24), np.float32),
                           rewards=[1.0, 2.0, 3.0, 4.0], terminations=[False, False, True, False],
                           truncations=[False, False, False, True])
    minari.create_dataset_from_buffers('D4RL/pen/human-v2', [buffer], env=env.spec, algorithm_name='mfql-test',
                                       observation_space=env.observation_space, action_space=env.action_space)
    train, _ = d4rl.load_dataset('pen-human-v1')
    np.testing.assert_array_equal(train['rewards'], [1, 2, 3, 4])
    np.testing.assert_array_equal(train['masks'], [1, 1, 0, 1])
    np.testing.assert_array_equal(train['terminals'], [0, 0, 1, 1])
    np.testing.assert_allclose(train['next_observations'], obs[1:])
    # A dataset whose observations do not fit the eval env fails with both widths named.
    import gymnasium
    small = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float64)
    bad = EpisodeBuffer(id=0, observations=np.zeros((3, 3)), actions=np.zeros((2, 24), np.float32),
                        rewards=[0.0, 0.0], terminations=[False, False], truncations=[False, True])
    minari.create_dataset_from_buffers('D4RL/pen/cloned-v2', [bad], env=env.spec, algorithm_name='mfql-test',
                                       observation_space=small, action_space=env.action_space)
    with pytest.raises(DatasetError, match='observations have width 3, but the evaluation env AdroitHandPen-v1 has 45'):
        d4rl.load_dataset('pen-cloned-v1')
    env.close()


@needs_extra
def test_missing_dataset_fails_fast_naming_the_minari_id_and_command(minari_store):
    start = time.perf_counter()
    with pytest.raises(DatasetError) as error:
        d4rl.load_dataset('antmaze-large-play-v2')
    message = str(error.value)
    assert 'D4RL/antmaze/large-play-v1' in message and '`minari download D4RL/antmaze/large-play-v1`' in message
    assert minari_store in message and 'offline (test)' in message
    assert time.perf_counter() - start < 10


@needs_extra
def test_antmaze_eval_env_flat_obs_goal_termination_and_online_shift():
    env, online = d4rl.make_env('antmaze-umaze-v2'), d4rl.make_env('antmaze-umaze-v2', online=True)
    assert env.observation_space.shape == (29,) and env.action_space.shape == (8,)
    assert env.spec.max_episode_steps == 700
    obs, _ = env.reset(seed=3)
    online_obs, _ = online.reset(seed=3)
    np.testing.assert_array_equal(obs, online_obs)
    inner = env.unwrapped
    np.testing.assert_allclose(obs[:2], inner.data.qpos[:2], atol=1e-6)  # xy first, as in D4RL
    action = np.full(8, 0.1, np.float32)
    for _ in range(3):
        obs, reward, terminated, truncated, _ = env.step(action)
        online_obs, online_reward, *_ = online.step(action)
        assert obs.shape == (29,) and obs.dtype == np.float32 and not (terminated or truncated)
        assert (reward, online_reward) == (0.0, -1.0)
    # Put the ant on the goal: the eval episode ends with reward 1 -> return 1 -> score 100.
    qpos, qvel = inner.data.qpos.copy(), inner.data.qvel.copy()
    qpos[:2] = inner.goal
    inner.ant_env.set_state(qpos, qvel)  # AntMazeEnv keeps the MuJoCo Ant env as ant_env
    _, reward, terminated, _, info = env.step(np.zeros(8, np.float32))
    assert reward == 1.0 and terminated and info['success']
    assert d4rl.normalized_score('antmaze-umaze-v2', reward) == pytest.approx(100.0)
    env.close()
    online.close()


@needs_extra
@pytest.mark.parametrize('name, obs_dim, act_dim, horizon', [('pen-cloned-v1', 45, 24, 100),
                                                             ('door-human-v1', 39, 28, 200)])
def test_adroit_eval_env_steps_with_d4rl_horizon(name, obs_dim, act_dim, horizon):
    env = d4rl.make_env(name, online=True)  # Adroit: no reward shift online either
    plain = d4rl.make_env(name)
    obs, _ = env.reset(seed=0)
    plain.reset(seed=0)
    assert obs.shape == (obs_dim,) and env.action_space.shape == (act_dim,) and env.spec.max_episode_steps == horizon
    action = np.zeros(act_dim, np.float32)
    for _ in range(2):
        obs, reward, terminated, truncated, info = env.step(action)
        assert np.isfinite(obs).all() and obs.dtype == np.float32 and 'success' in info
        assert reward == plain.step(action)[1]
    env.close()
    plain.close()


@needs_extra
def test_plan_uses_500k_steps_and_d4rl_presets(tmp_path):
    from tests.test_main import plan
    run = plan(f'--save_dir={tmp_path}', '--env_name=antmaze-large-play-v2', '--agent=agents/fql.py')
    assert run.options.offline_steps == 500_000 and 'offline_steps' not in run.task_configs[0][0]  # FQL: no schedule
    assert run.task_configs[0][0].alpha == 3  # FQL README flags for D4RL antmaze large
    explicit = plan(f'--save_dir={tmp_path}', '--env_name=pen-cloned-v1', '--offline_steps=1234')
    assert explicit.options.offline_steps == 1234 and explicit.task_configs[0][0].offline_steps == 1234  # MFQL's
    with pytest.raises(SystemExit, match=r'mixes tasks whose default budgets differ \(d4rl 500,000, ogbench 1,000,000 '
                                         r'offline steps\); pass --offline_steps'):
        plan(f'--save_dir={tmp_path}', '--env_name=pen-cloned-v1,cube-single-play-singletask-task2-v0')
    # Families whose default budgets agree mix without --offline_steps.
    mixed = plan(f'--save_dir={tmp_path}', '--env_name=pen-cloned-v1,visual-cube-single-play-singletask-task1-v0',
                 '--agent=agents/fql.py')
    assert mixed.options.offline_steps == 500_000
    # Before an online phase FQL's README keeps main.py's 1M offline updates for D4RL, as for OGBench's state tasks.
    online = plan(f'--save_dir={tmp_path}', '--env_name=antmaze-large-play-v2,cube-single-play-singletask-task2-v0',
                  '--agent=agents/fql.py', '--online_steps=1000000')
    assert online.options.offline_steps == 1_000_000 and online.options.total_steps == 2_000_000


@needs_extra
def test_main_trains_on_a_tiny_minari_dataset_and_reports_the_score(minari_store, tmp_path):
    write_antmaze_dataset()
    env = dict(os.environ, MINARI_DATASETS_PATH=minari_store, MUJOCO_GL='egl', JAX_PLATFORMS='cpu')
    args = [sys.executable, 'main.py', '--env_name=antmaze-umaze-v2', '--agent=agents/fql.py',
            '--agent.actor_hidden_dims=(16,16)', '--agent.value_hidden_dims=(16,16)', '--agent.batch_size=4',
            '--agent.flow_steps=2', '--offline_steps=4', '--steps_per_call=2', '--log_interval=2', '--eval_interval=4',
            '--eval_episodes=1', '--save_interval=0', f'--save_dir={tmp_path}', '--run_name=d4rl', '--progress_bar=False']
    done = subprocess.run(args, cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    from runs import read_csv
    rows = read_csv(os.path.join(tmp_path, 'd4rl', 'antmaze-umaze-v2', 'seed0', 'eval.csv'))
    assert [int(float(r['step'])) for r in rows] == [1, 4]
    for row in rows:  # one AntMaze eval episode: return 0 or 1, score = 100 x return
        assert float(row['evaluation/score']) == pytest.approx(100.0 * float(row['evaluation/return']))
    with open(os.path.join(tmp_path, 'd4rl', 'summary.csv')) as f:
        header = f.readline()
    assert 'score_x100_mean' in header and 'success_fraction_mean' in header
