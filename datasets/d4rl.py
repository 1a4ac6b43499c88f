"""D4RL AntMaze and Adroit tasks through Farama's Minari (optional extra: `pip install -r requirements-d4rl.txt`).

The paper's 18 D4RL names map to Minari datasets and gymnasium-robotics evaluation envs:

    antmaze-{umaze,umaze-diverse,medium-play,medium-diverse,large-play,large-diverse}-v2
        -> D4RL/antmaze/<kind>-v1, eval env AntMaze_{UMaze,Medium,Large}-v4 (Minari's fixed eval map)
    {pen,door,hammer,relocate}-{human,cloned,expert}-v1
        -> D4RL/<task>/<kind>-v2, eval env AdroitHand{Pen,Door,Hammer,Relocate}-v1

Conventions (FQL's `d4rl_utils.get_dataset`; docs/d4rl.md says more):
- observations: Adroit as stored; AntMaze = concat(achieved_goal, observation) = the ant's (x, y) then
  qpos[2:], qvel, i.e. D4RL's 29-dim qpos+qvel layout (the goal is not observed, as in D4RL).
- rewards: Adroit as stored; AntMaze r − 1 (sparse 1/0 -> 0/−1), also online (`make_env(online=True)`).
- terminals: 1 at the last transition of every Minari episode (a trajectory break); Adroit also where
  the dataset's `terminations` is set.
- masks: 1 − dataset terminal. D4RL's AntMaze terminal equals its sparse reward (1 within the goal
  radius, D4RL issue #199); Minari recorded AntMaze as a continuing task, so `terminations` is never
  set there and we rebuild D4RL's flag: AntMaze mask = 1 − max(termination, reward == 1).
- next_observations: Minari stores T + 1 observations per episode, so every transition (including the
  last one of each episode) has its true next observation; no val split (FQL has none for D4RL).
- actions clipped to ±(1 − 1e-5), as for OGBench.

Evaluation: AntMaze eval envs terminate at the goal (`continuing_task=False`, D4RL's `eval=True`), so
an episode's return is 1 (success) or 0; D4RL's horizons (700 umaze, 1000 medium/large, 100 pen,
200 door/hammer/relocate). Score = 100 · (return − ref_min) / (ref_max − ref_min) with D4RL's
reference returns (`d4rl/infos.py`: AntMaze v2 min 0, max 1; Adroit v1 uses the v0 human entries).

This module imports only the standard library and NumPy at import time; minari, gymnasium and
gymnasium_robotics are imported inside the functions that need them.
"""

import dataclasses
import importlib.util
import os
import socket
import warnings

import numpy as np

from datasets.names import D4RL_ADROIT_DATASETS, D4RL_ADROIT_TASKS, D4RL_ANTMAZE_DATASETS, check_d4rl_name
from datasets.ogbench_data import ACTION_CLIP, OUTPUT_KEYS, DatasetError

EXTRA_INSTALL = 'pip install -r requirements-d4rl.txt'
EXTRA_MODULES = ('minari', 'gymnasium_robotics', 'h5py')  # h5py: Minari's D4RL datasets are HDF5 files
MINARI_HUB_HOST = 'huggingface.co'  # Minari's default remote (hf://farama-minari)

# Minari's evaluation maps for the D4RL AntMaze datasets (1 wall, 0 free, 'r' reset cell, 'g' goal
# cell), as given to `create_dataset(eval_env=...)` in Farama-Foundation/minari-dataset-generation-scripts
# (scripts/D4RL/antmaze/create_antmaze_dataset.py, EVAL_ENV_MAPS).
_R, _G = 'r', 'g'
ANTMAZE_EVAL_MAPS: dict[str, tuple[tuple, ...]] = {
    'umaze': ((1, 1, 1, 1, 1),
              (1, 0, 0, _R, 1),
              (1, 0, 1, 1, 1),
              (1, 0, 0, _G, 1),
              (1, 1, 1, 1, 1)),
    'medium': ((1, 1, 1, 1, 1, 1, 1, 1),
               (1, _R, 0, 1, 1, 0, 0, 1),
               (1, 0, 0, 1, 0, 0, 0, 1),
               (1, 1, 0, 0, 0, 1, 1, 1),
               (1, 0, 0, 1, 0, 0, 0, 1),
               (1, 0, 1, 0, 0, 1, 0, 1),
               (1, 0, 0, 0, 1, 0, _G, 1),
               (1, 1, 1, 1, 1, 1, 1, 1)),
    'large': ((1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
              (1, _R, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1),
              (1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1),
              (1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1),
              (1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1),
              (1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1),
              (1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1),
              (1, 0, 0, 1, 0, 0, 0, 1, 0, _G, 0, 1),
              (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)),
}
# The env each Minari AntMaze dataset was collected in (the same script, DATASET_ID_TO_ENV_ID).
_ANTMAZE_ENV_IDS = {
    'umaze': 'AntMaze_UMaze-v4', 'umaze-diverse': 'AntMaze_UMaze-v4',
    'medium-play': 'AntMaze_Medium-v4', 'medium-diverse': 'AntMaze_Medium_Diverse_GR-v4',
    'large-play': 'AntMaze_Large-v4', 'large-diverse': 'AntMaze_Large_Diverse_GR-v4',
}
_ANTMAZE_HORIZONS = {'umaze': 700, 'medium': 1000, 'large': 1000}  # D4RL's max_episode_steps
# D4RL reference returns (d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE; the v1 Adroit entries copy
# the v0 human ones, which are the random- and expert-policy returns of d4rl/hand_manipulation_suite).
_ADROIT_REF_RETURNS = {
    'pen': (96.262799, 3076.8331017826877),
    'door': (-56.512833, 2880.5693087298737),
    'hammer': (-274.856578, 12794.134825156867),
    'relocate': (-6.425911, 4233.877797728884),
}
_ADROIT_HORIZONS = {'pen': 100, 'door': 200, 'hammer': 200, 'relocate': 200}  # D4RL's max_episode_steps
ANTMAZE_REWARD_SHIFT = -1.0  # FQL / IQL convention: sparse 1/0 -> 0/-1, offline and online


@dataclasses.dataclass(frozen=True)
class D4RLTask:
    """One D4RL task name and what it maps to.

    Attributes:
      name: the D4RL name, e.g. 'antmaze-large-play-v2' or 'pen-cloned-v1'.
      domain: 'antmaze' or 'adroit'.
      minari_id: the Minari dataset id, e.g. 'D4RL/antmaze/large-play-v1'.
      env_id: the gymnasium-robotics id of the evaluation env.
      max_episode_steps: D4RL's evaluation horizon.
      ref_min_score, ref_max_score: D4RL's reference returns for the normalised score.
      maze: 'umaze' / 'medium' / 'large' for AntMaze (its eval map), None for Adroit.
    """

    name: str
    domain: str
    minari_id: str
    env_id: str
    max_episode_steps: int
    ref_min_score: float
    ref_max_score: float
    maze: str | None = None

    @property
    def is_antmaze(self) -> bool:
        return self.domain == 'antmaze'


def _build_tasks() -> dict[str, D4RLTask]:
    tasks = {}
    for kind in D4RL_ANTMAZE_DATASETS:
        maze = kind.split('-')[0]
        name = f'antmaze-{kind}-v2'
        tasks[name] = D4RLTask(name, 'antmaze', f'D4RL/antmaze/{kind}-v1', _ANTMAZE_ENV_IDS[kind],
                               _ANTMAZE_HORIZONS[maze], 0.0, 1.0, maze)
    for hand in D4RL_ADROIT_TASKS:
        ref_min, ref_max = _ADROIT_REF_RETURNS[hand]
        for kind in D4RL_ADROIT_DATASETS:
            name = f'{hand}-{kind}-v1'
            tasks[name] = D4RLTask(name, 'adroit', f'D4RL/{hand}/{kind}-v2', f'AdroitHand{hand.capitalize()}-v1',
                                   _ADROIT_HORIZONS[hand], ref_min, ref_max)
    return tasks


D4RL_TASKS: dict[str, D4RLTask] = _build_tasks()  # keyed and ordered as `names.d4rl_env_names()`


def parse_d4rl_name(name: str) -> D4RLTask:
    """The task for a D4RL name; ValueError naming close valid names otherwise."""
    return D4RL_TASKS[check_d4rl_name(name)]


def missing_extra_modules() -> list[str]:
    """The modules of the D4RL extra that are not importable here (empty when the extra is installed)."""
    return [module for module in EXTRA_MODULES if importlib.util.find_spec(module) is None]


def check_extra(name: str) -> None:
    """Raises ImportError saying what to install if the D4RL extra is missing."""
    missing = missing_extra_modules()
    if missing:
        raise ImportError(f'{name} is a D4RL task, which needs the optional D4RL extra (Minari datasets and '
                          f'gymnasium-robotics envs); missing module(s): {", ".join(missing)}. Install it with '
                          f'`{EXTRA_INSTALL}`.')


def normalized_score(name: str, episode_return: float | np.ndarray) -> float | np.ndarray:
    """D4RL's normalised score ×100: 100 · (R − ref_min) / (ref_max − ref_min), for raw (unshifted) returns R."""
    task = parse_d4rl_name(name)
    return 100.0 * (np.asarray(episode_return, np.float64) - task.ref_min_score) / (
        task.ref_max_score - task.ref_min_score)


def minari_root() -> str:
    """Minari's local store: $MINARI_DATASETS_PATH, else ~/.minari/datasets (Minari's rule)."""
    return os.environ.get('MINARI_DATASETS_PATH') or os.path.join(os.path.expanduser('~'), '.minari', 'datasets')


def local_dataset_dir(minari_id: str) -> str:
    """The folder Minari reads `minari_id` from (it holds data/ with metadata.json and the episode file)."""
    return os.path.join(minari_root(), minari_id)


def is_dataset_local(minari_id: str) -> bool:
    return os.path.isfile(os.path.join(local_dataset_dir(minari_id), 'data', 'metadata.json'))


def _host_reachable(host: str, timeout: float = 5.0) -> str | None:
    """None if a TCP connection to host:443 opens within `timeout` s, else a one-line reason."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return None
    except OSError as error:
        return f'{type(error).__name__}: {error}'


def ensure_dataset(name: str) -> str:
    """Makes sure the Minari dataset of `name` is in the local store; returns its id.

    Tries Minari's download when its remote answers (a 5 s connection probe first, so an offline
    machine fails in seconds instead of after Minari's retries); otherwise raises DatasetError with
    the dataset id, the local folder searched, and the command that fetches it.
    """
    task = parse_d4rl_name(name)
    check_extra(name)
    if is_dataset_local(task.minari_id):
        return task.minari_id
    reason = _host_reachable(MINARI_HUB_HOST)
    if reason is None:
        import minari
        try:
            minari.download_dataset(task.minari_id)
        except Exception as error:  # network, remote or version errors from Minari / huggingface_hub
            reason = ' '.join(f'{type(error).__name__}: {error}'.split())
    if is_dataset_local(task.minari_id):
        return task.minari_id
    raise DatasetError(
        f'{name} needs the Minari dataset {task.minari_id}, which is not in the local Minari store '
        f'({local_dataset_dir(task.minari_id)}) and could not be downloaded ({reason}). On a machine with '
        f'internet run `minari download {task.minari_id}` (or `python -c "import minari; '
        f"minari.download_dataset('{task.minari_id}')\"`), then copy the folder {task.minari_id} into "
        f'{minari_root()} here (or point MINARI_DATASETS_PATH at the folder that holds D4RL/).')


def flatten_observations(task: D4RLTask, observations) -> np.ndarray:
    """(T, obs_dim) float32 observations: Adroit as given; AntMaze concat(achieved_goal, observation)."""
    if task.is_antmaze:
        if not isinstance(observations, dict) or not {'achieved_goal', 'observation'} <= set(observations):
            got = sorted(observations) if isinstance(observations, dict) else type(observations).__name__
            raise DatasetError(f'{task.minari_id}: AntMaze observations must be a dict with achieved_goal and '
                               f'observation, got {got}.')
        return np.concatenate([np.asarray(observations['achieved_goal'], np.float32),
                               np.asarray(observations['observation'], np.float32)], axis=-1)
    if isinstance(observations, dict):
        raise DatasetError(f'{task.minari_id}: Adroit observations must be an array, got a dict with keys '
                           f'{sorted(observations)}.')
    return np.asarray(observations, np.float32)


def episodes_to_transitions(task: D4RLTask, episodes) -> dict[str, np.ndarray]:
    """Converts Minari episodes to our transition dict (the conventions in the module docstring).

    Args:
      task: the D4RL task (selects the AntMaze or Adroit conventions).
      episodes: iterable of objects with `observations` (T+1 rows; a dict for AntMaze), `actions` (T, a),
        `rewards` (T,), `terminations` (T,) — Minari's EpisodeData. Episodes with T = 0 are skipped.

    Returns:
      float32 arrays with N = Σ T rows: observations / next_observations (N, obs_dim), actions (N, a)
      clipped to ±(1 − 1e-5), rewards (N,), masks (N,), terminals (N,).
    """
    parts = {key: [] for key in OUTPUT_KEYS}
    for index, episode in enumerate(episodes):
        actions = np.asarray(episode.actions, np.float32)
        length = len(actions)
        if length == 0:
            continue
        observations = flatten_observations(task, episode.observations)
        rewards = np.asarray(episode.rewards, np.float32).reshape(-1)
        terminations = np.asarray(episode.terminations).astype(np.float32).reshape(-1)
        if len(observations) != length + 1 or len(rewards) != length or len(terminations) != length:
            raise DatasetError(f'{task.minari_id}: episode {index} has {len(observations)} observations, {length} '
                               f'actions, {len(rewards)} rewards, {len(terminations)} terminations; expected '
                               f'T + 1, T, T, T.')
        terminals = np.zeros(length, np.float32)
        terminals[-1] = 1.0  # trajectory break: the next row starts another episode
        if task.is_antmaze:
            reached_goal = (rewards >= 1.0).astype(np.float32)
            masks = 1.0 - np.maximum(terminations, reached_goal)
            rewards = rewards + ANTMAZE_REWARD_SHIFT
        else:
            terminals = np.maximum(terminals, terminations)
            masks = 1.0 - terminations
        parts['observations'].append(observations[:-1])
        parts['next_observations'].append(observations[1:])
        parts['actions'].append(actions)
        parts['rewards'].append(rewards)
        parts['masks'].append(masks)
        parts['terminals'].append(terminals)
    if not parts['actions']:
        raise DatasetError(f'{task.minari_id}: the dataset has no transitions.')
    output = {key: np.concatenate(values).astype(np.float32) for key, values in parts.items()}
    for key in ('observations', 'next_observations', 'actions', 'rewards'):
        finite = np.isfinite(output[key])
        if not finite.all():
            row = int(np.argwhere(~finite)[0, 0])
            raise DatasetError(f'{task.minari_id}: {key} has {int((~finite).sum())} NaN/inf value(s), first at '
                               f'transition {row}.')
    output['actions'] = np.clip(output['actions'], -ACTION_CLIP, ACTION_CLIP)
    return output


def load_dataset(name: str) -> tuple[dict[str, np.ndarray], None]:
    """(train, None) for a D4RL name: the Minari dataset (downloaded if needed and possible), converted.

    The observation and action widths are checked against the evaluation env, so a dataset that does
    not belong to the env fails here with both shapes named instead of deep inside training.
    """
    minari_id = ensure_dataset(name)
    import minari

    task = parse_d4rl_name(name)
    try:
        with warnings.catch_warnings():  # Minari rebuilds the stored EnvSpec; gymnasium notes that v5 exists
            warnings.simplefilter('ignore', DeprecationWarning)
            dataset = minari.load_dataset(minari_id)
    except Exception as error:  # unreadable or incompatible files
        raise DatasetError(f'{local_dataset_dir(minari_id)}: Minari cannot load {minari_id} '
                           f'({type(error).__name__}: {error}).') from error
    train = episodes_to_transitions(task, dataset.iterate_episodes())
    env = make_env(name)
    try:
        expected = {'observations': int(np.prod(env.observation_space.shape)),
                    'actions': int(np.prod(env.action_space.shape))}
    finally:
        env.close()
    for key, width in expected.items():
        if train[key].shape[1] != width:
            raise DatasetError(f'{minari_id}: {key} have width {train[key].shape[1]}, but the evaluation env '
                               f'{task.env_id} has {width}.')
    return train, None


def make_env(name: str, online: bool = False):
    """The evaluation env of a D4RL name (no dataset needed); `online=True` adds AntMaze's −1 reward shift.

    AntMaze: Minari's evaluation map (fixed reset and goal cells), `continuing_task=False` (the episode
    ends at the goal, as D4RL's eval=True), D4RL's horizon, observations flattened as in the dataset.
    Adroit: AdroitHand<Task>-v1 with D4RL's horizon (100 for pen, 200 otherwise).
    """
    task = parse_d4rl_name(name)
    check_extra(name)
    kwargs = {}
    if task.is_antmaze:
        kwargs = dict(maze_map=[list(row) for row in ANTMAZE_EVAL_MAPS[task.maze]], continuing_task=False,
                      reset_target=False)
    # gymnasium-robotics warns at import about the Adroit v1 reward change (docs/d4rl.md) and on every
    # AntMaze v4 make that v5 exists; v4 is the version Minari's AntMaze datasets were collected with.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        import gymnasium
        import gymnasium_robotics

        gymnasium.register_envs(gymnasium_robotics)
        env = gymnasium.make(task.env_id, max_episode_steps=task.max_episode_steps, **kwargs)
    return _wrapper_class()(env, task, ANTMAZE_REWARD_SHIFT if (online and task.is_antmaze) else 0.0)


_WRAPPER_CLASS = None


def _wrapper_class():
    """The gymnasium.Wrapper subclass of `make_env`, defined on first use (gymnasium is optional).

    It returns flat float32 observations (AntMaze: concat(achieved_goal, observation)) and adds
    `reward_offset` to every reward.
    """
    global _WRAPPER_CLASS
    if _WRAPPER_CLASS is not None:
        return _WRAPPER_CLASS
    import gymnasium

    class _D4RLEnv(gymnasium.Wrapper):
        def __init__(self, env, task: D4RLTask, reward_offset: float):
            super().__init__(env)
            self.task = task
            self.reward_offset = float(reward_offset)
            if task.is_antmaze:
                spaces = env.observation_space.spaces
                width = spaces['achieved_goal'].shape[0] + spaces['observation'].shape[0]
            else:
                width = env.observation_space.shape[0]
            self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (width,), np.float32)

        def _flat(self, observation) -> np.ndarray:
            return flatten_observations(self.task, observation)

        def reset(self, **kwargs):
            observation, info = self.env.reset(**kwargs)
            return self._flat(observation), info

        def step(self, action):
            observation, reward, terminated, truncated, info = self.env.step(action)
            return self._flat(observation), float(reward) + self.reward_offset, terminated, truncated, info

    _WRAPPER_CLASS = _D4RLEnv
    return _WRAPPER_CLASS
