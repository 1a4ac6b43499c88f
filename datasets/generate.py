"""Generate OGBench manipulation datasets locally with the scripted oracles shipped in `ogbench`.

    python -m datasets.generate --env_name=cube-single-play-v0 --num_episodes=10 --seed=0 --dataset_dir=DIR

`--env_name` is a dataset name (`cube-single-play-v0`) or a single-task name
(`cube-single-play-singletask-task2-v0`, mapped to its dataset). The output is what OGBench's
loader reads: `<dataset_name>.npz` (train) and `<dataset_name>-val.npz` (val) in `dataset_dir`.

Visual datasets (`visual-cube-single-play-v0`, ...) are collected the same way in OGBench's visual env
(`visual-<suite>-v0`, whose observations are 64x64x3 uint8 frames rendered by MuJoCo): the oracles act on
the privileged `info`, so the actions and states are those of the state-based collection; only the
stored `observations` differ (uint8 frames, as in OGBench's visual files). Rendering dominates the cost
(docs/running.md gives the measured rate; a GPU with `MUJOCO_GL=egl` renders much faster than software).
`--episode_length` shortens episodes for quick tests (OGBench's files have 1001 steps per episode).

Collection procedure (OGBench's `data_gen_scripts/generate_manipspace.py` and its published
commands; re-implemented here):
- env `<suite>-v0` with `terminate_at_goal=False`, `mode='data_collection'`, 1001 steps per episode;
- `play`: non-Markovian plan oracles (noise 0.1, noise smoothing 0.5), no random actions;
- `noisy`: Markovian oracles (min_norm 0.4; scene's cube oracle is given max_step 100, as in OGBench's
  script, though the installed oracle's `reset` sets it to 200 either way), Gaussian action noise
  N(0, (xi * [1, 1, 1, 3, 10])^2) with one xi ~ U(0, 0.1) per episode, and a uniformly random action
  with probability 0.1 (cube, scene) or 0.2 (puzzle);
- puzzle oracles keep the gripper closed; scene chooses the oracle by `info['privileged/target_task']`;
- when the oracle is done, `set_new_target(p_stack)` with p_stack 0 (cube-single), U(0, 0.25) (double),
  U(0.05, 0.35) (triple), U(0.1, 0.5) (quadruple), 0.5 otherwise, drawn once per episode;
- actions clipped to [-1, 1]; per step we store the observation before the step, the action, the
  done flag, `info['prev_qpos']`, `info['prev_qvel']` and, for scene/puzzle, `info['prev_button_states']`;
- scene re-rolls an episode in which the cube leaves the visible area (y >= 0.29, or y <= -0.3 while
  not at drawer height 0.06..0.08).
Stored dtypes match OGBench's files: observations/actions/qpos/qvel float32, terminals bool,
button_states int64.

Differences from OGBench's script, on purpose:
- Reproducible: OGBench never seeds numpy. Here every random source of an episode (the env's
  generator via `reset(seed=...)`, numpy's global generator used inside the oracles, and our own
  generator for p_stack, xi, noise and random actions) is seeded from
  SeedSequence(seed, spawn_key=(split, episode index, attempt)), so the arrays do not depend on
  `--workers` or on which process ran an episode; same seed -> identical files.
- Val episodes: OGBench collects num_episodes // 10 val episodes after the train ones (0 for fewer
  than 10 episodes, which leaves an empty val file). We use max(1, num_episodes // 10) so a usable
  val file always exists; for num_episodes >= 10 this is the same count.
- A scene episode is re-rolled at most MAX_SCENE_ATTEMPTS times, then generation stops with an
  error naming the episode; OGBench's script retries without limit.
- Files are written atomically (temp file in the same directory, fsync, os.replace) in the
  `np.savez_compressed` format (a deflated zip of .npy arrays) with fixed zip timestamps, so equal
  arrays give byte-identical files.
"""

import concurrent.futures
import dataclasses
import multiprocessing
import os
import sys
import tempfile
import time
import zipfile

import numpy as np

import runs
from datasets import names
# ogbench_data also ignores gymnasium's Box precision warning about OGBench's envs (see there), for the collectors too.
from datasets.ogbench_data import dataset_file_paths, record_source

EPISODE_LENGTH = 1001  # stored steps per episode (1000 transitions after OGBench's loader)
PLAN_NOISE = 0.1  # plan oracles: scale of the temporally correlated plan noise
PLAN_NOISE_SMOOTHING = 0.5  # plan oracles: smoothing of that noise
MARKOV_MIN_NORM = 0.4  # Markov oracles: minimum norm of the relative position command
MAX_EPISODE_NOISE = 0.1  # noisy: per-episode noise level xi ~ U(0, MAX_EPISODE_NOISE)
NOISE_SCALE_PER_ACTION_DIM = np.array([1.0, 1.0, 1.0, 3.0, 10.0])  # noisy: xyz, yaw, gripper
MAX_SCENE_ATTEMPTS = 100  # give up on an episode after this many unhealthy scene re-rolls

# OGBench's published dataset sizes (train episodes), used when --num_episodes is not given.
PUBLISHED_NUM_EPISODES = {
    'cube-single': 1000, 'cube-double': 1000, 'cube-triple': 3000, 'cube-quadruple': 5000,
    'scene': 1000, 'puzzle-3x3': 1000, 'puzzle-4x4': 1000, 'puzzle-4x5': 3000, 'puzzle-4x6': 5000,
}

SPLITS = ('train', 'val')  # split index 0 / 1 enters the per-episode seed

# Stored dtypes; visual datasets store observations (frames) as uint8.
_DTYPES = {'observations': np.float32, 'actions': np.float32, 'terminals': bool,
           'qpos': np.float32, 'qvel': np.float32, 'button_states': np.int64}


@dataclasses.dataclass(frozen=True)
class DatasetTarget:
    """What to collect: OGBench's dataset file stem, its suite, its kind ('play' or 'noisy'), and whether the
    observations are frames (`visual`)."""

    dataset_name: str
    suite: str
    dataset_kind: str
    visual: bool = False


def resolve_dataset_target(name: str) -> DatasetTarget:
    """Maps a dataset name or a single-task env name to the dataset to generate.

    Raises ValueError for unknown names and for locomotion suites (their data needs OGBench's
    pretrained experts, which are not in the package).
    """
    try:
        suite, kind = names.parse_dataset_name(name)
    except ValueError:
        if '-singletask' not in name:
            raise
        spec = names.parse_env_name(name)
        suite, kind = spec.suite, spec.dataset_kind
    if suite not in names.MANIPULATION_SUITES:
        raise ValueError(
            f'{name!r}: only manipulation datasets ({", ".join(names.MANIPULATION_SUITES)}) can be generated '
            'locally; locomotion datasets need OGBench\'s pretrained experts, download them instead.')
    visual = names.is_visual(name)
    prefix = names.VISUAL_PREFIX if visual else ''
    return DatasetTarget(dataset_name=f'{prefix}{suite}-{kind}-v0', suite=suite, dataset_kind=kind, visual=visual)


def num_val_episodes(num_episodes: int) -> int:
    """max(1, num_episodes // 10): OGBench's val count, but never an empty val file."""
    return max(1, num_episodes // 10)


class EpisodeCollector:
    """One data-collection env and its oracles; collects seeded episodes of `episode_length` steps (OGBench: 1001),
    from OGBench's visual env (frames as observations) if `visual`."""

    def __init__(self, suite: str, dataset_kind: str, visual: bool = False, episode_length: int = EPISODE_LENGTH):
        import gymnasium
        import ogbench.manipspace  # noqa: F401  (registers the manipspace envs)

        self.suite = suite
        self.episode_length = episode_length
        self.observation_dtype = np.uint8 if visual else np.float32
        self.uses_markov_oracles = dataset_kind == 'noisy'
        self.random_action_prob = 0.0 if dataset_kind == 'play' else (0.2 if suite.startswith('puzzle') else 0.1)
        self.env = gymnasium.make(f'{names.VISUAL_PREFIX if visual else ""}{suite}-v0', terminate_at_goal=False,
                                  mode='data_collection', max_episode_steps=episode_length)
        self.has_button_states = hasattr(self.env.unwrapped, '_cur_button_states')
        self.action_low = self.env.action_space.low.astype(np.float64)
        self.action_high = self.env.action_space.high.astype(np.float64)
        self.oracles = self._build_oracles()

    def _build_oracles(self) -> dict:
        from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
        from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
        from ogbench.manipspace.oracles.markov.drawer_markov import DrawerMarkovOracle
        from ogbench.manipspace.oracles.markov.window_markov import WindowMarkovOracle
        from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
        from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
        from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
        from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

        env = self.env
        if self.uses_markov_oracles:
            markov = dict(env=env, min_norm=MARKOV_MIN_NORM)
            if self.suite.startswith('cube'):
                return {'cube': CubeMarkovOracle(**markov)}
            if self.suite == 'scene':
                return {'cube': CubeMarkovOracle(max_step=100, **markov), 'button': ButtonMarkovOracle(**markov),
                        'drawer': DrawerMarkovOracle(**markov), 'window': WindowMarkovOracle(**markov)}
            return {'button': ButtonMarkovOracle(gripper_always_closed=True, **markov)}
        plan = dict(env=env, noise=PLAN_NOISE, noise_smoothing=PLAN_NOISE_SMOOTHING)
        if self.suite.startswith('cube'):
            return {'cube': CubePlanOracle(**plan)}
        if self.suite == 'scene':
            return {'cube': CubePlanOracle(**plan), 'button': ButtonPlanOracle(**plan),
                    'drawer': DrawerPlanOracle(**plan), 'window': WindowPlanOracle(**plan)}
        return {'button': ButtonPlanOracle(gripper_always_closed=True, **plan)}

    def _sample_p_stack(self, rng: np.random.Generator) -> float:
        """Probability of stacking the new target block on another block, drawn once per episode."""
        bounds = {'cube-single': (0.0, 0.0), 'cube-double': (0.0, 0.25), 'cube-triple': (0.05, 0.35),
                  'cube-quadruple': (0.1, 0.5)}.get(self.suite, (0.5, 0.5))
        return float(rng.uniform(*bounds))

    def collect(self, seed: int, split_index: int, episode_index: int) -> tuple[dict[str, np.ndarray], int]:
        """Collects one episode; returns (arrays of `episode_length` rows, env steps incl. re-rolls)."""
        saved_global_state = np.random.get_state()
        try:
            env_steps = 0
            for attempt in range(MAX_SCENE_ATTEMPTS):
                episode = self._collect_attempt(np.random.SeedSequence(seed, spawn_key=(split_index, episode_index,
                                                                                       attempt)))
                env_steps += self.episode_length
                if self.suite != 'scene' or _scene_episode_is_healthy(episode['qpos']):
                    return episode, env_steps
            raise RuntimeError(f'{self.suite}: episode {episode_index} of split {SPLITS[split_index]} was unhealthy '
                               f'in all {MAX_SCENE_ATTEMPTS} attempts.')
        finally:
            np.random.set_state(saved_global_state)  # the oracles' global generator was reseeded

    def _collect_attempt(self, sequence: np.random.SeedSequence) -> dict[str, np.ndarray]:
        env_sequence, oracle_sequence, policy_sequence = sequence.spawn(3)
        # OGBench's oracles draw from numpy's global generator (plan noise, waypoints, final poses).
        np.random.seed(oracle_sequence.generate_state(4))
        rng = np.random.default_rng(policy_sequence)
        ob, info = self.env.reset(seed=int(env_sequence.generate_state(1)[0]))
        p_stack = self._sample_p_stack(rng)
        noise_std = rng.uniform(0.0, MAX_EPISODE_NOISE) * NOISE_SCALE_PER_ACTION_DIM if self.uses_markov_oracles \
            else None
        oracle = self.oracles[info['privileged/target_task']]
        oracle.reset(ob, info)

        steps = {key: [] for key in _DTYPES if key != 'button_states' or self.has_button_states}
        done = False
        while not done:
            if rng.random() < self.random_action_prob:
                action = rng.uniform(self.action_low, self.action_high)
            else:
                action = np.asarray(oracle.select_action(ob, info), dtype=np.float64)
                if noise_std is not None:
                    action = action + rng.normal(0.0, noise_std)
            action = np.clip(action, -1.0, 1.0)
            next_ob, _, terminated, truncated, info = self.env.step(action)
            done = terminated or truncated
            if oracle.done:
                oracle_ob, oracle_info = self.env.unwrapped.set_new_target(p_stack=p_stack)
                oracle = self.oracles[oracle_info['privileged/target_task']]
                oracle.reset(oracle_ob, oracle_info)
            steps['observations'].append(ob)
            steps['actions'].append(action)
            steps['terminals'].append(done)
            steps['qpos'].append(info['prev_qpos'])
            steps['qvel'].append(info['prev_qvel'])
            if self.has_button_states:
                steps['button_states'].append(info['prev_button_states'])
            ob = next_ob
        if len(steps['terminals']) != self.episode_length:
            raise RuntimeError(f'{self.suite}: episode ended after {len(steps["terminals"])} steps, '
                               f'expected {self.episode_length} (terminate_at_goal should be off).')
        dtypes = _DTYPES | {'observations': self.observation_dtype}
        return {key: np.asarray(values, dtype=dtypes[key]) for key, values in steps.items()}


def _scene_episode_is_healthy(qpos: np.ndarray) -> bool:
    """OGBench's scene check: the cube stays visible (not too far right, and far left only in the drawer)."""
    cube_y, cube_z = qpos[:, 15], qpos[:, 16]
    too_far_right = cube_y >= 0.29
    too_far_left_outside_drawer = (cube_y <= -0.3) & ((cube_z < 0.06) | (cube_z > 0.08))
    return not (too_far_right.any() or too_far_left_outside_drawer.any())


_COLLECTORS: dict[tuple, EpisodeCollector] = {}  # one env per (suite, kind, visual, length) per process


def collect_episode(suite: str, dataset_kind: str, seed: int, split_index: int, episode_index: int,
                    visual: bool = False, episode_length: int = EPISODE_LENGTH) -> tuple[dict[str, np.ndarray], int]:
    """Process-pool entry point: collects one episode with this process's cached collector."""
    key = (suite, dataset_kind, visual, episode_length)
    if key not in _COLLECTORS:
        _COLLECTORS[key] = EpisodeCollector(*key)
    return _COLLECTORS[key].collect(seed, split_index, episode_index)


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_npz_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Writes `arrays` as a compressed .npz (np.savez_compressed's format) that appears only when complete.

    Writes a temp file in the target directory, fsyncs it, then os.replace()s it over `path`, so an
    interrupted run leaves no file under the final name. Zip entries get a fixed timestamp, so the
    same arrays always give the same bytes.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    file_descriptor, temp_path = tempfile.mkstemp(prefix=os.path.basename(path) + '.tmp-', dir=directory)
    try:
        with os.fdopen(file_descriptor, 'wb') as file:
            with zipfile.ZipFile(file, mode='w', compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
                for key, array in arrays.items():
                    entry = zipfile.ZipInfo(f'{key}.npy', date_time=(1980, 1, 1, 0, 0, 0))
                    entry.compress_type = zipfile.ZIP_DEFLATED
                    entry.external_attr = 0o600 << 16
                    with archive.open(entry, mode='w', force_zip64=True) as member:
                        np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_path, 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise
    directory_descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_descriptor)  # make the rename itself durable
    finally:
        os.close(directory_descriptor)


def generate_dataset(env_name: str, num_episodes: int, seed: int, dataset_dir: str, workers: int = 1,
                     show_progress: bool = True, overwrite: bool = False,
                     episode_length: int = EPISODE_LENGTH) -> tuple[str, str]:
    """Collects `num_episodes` train and max(1, num_episodes // 10) val episodes and writes both files.

    Args:
      env_name: dataset name ('cube-single-play-v0', 'visual-cube-single-play-v0') or single-task name of a
        manipulation suite.
      num_episodes: train episodes (each `episode_length` stored steps).
      seed: base seed; episode i of split s uses SeedSequence(seed, spawn_key=(s, i, attempt)).
      dataset_dir: output directory (created if needed; '~' is expanded).
      workers: number of processes; the output does not depend on it.
      show_progress: show a tqdm bar and print a one-line summary with the env steps per second.
      overwrite: replace existing files; otherwise existing files raise FileExistsError.
      episode_length: stored steps per episode (OGBench: 1001; shorter for quick tests), >= 2.

    Returns:
      (train_path, val_path).
    """
    from tqdm import tqdm

    target = resolve_dataset_target(env_name)
    if num_episodes < 1:
        raise ValueError(f'num_episodes must be >= 1, got {num_episodes}.')
    if workers < 1:
        raise ValueError(f'workers must be >= 1, got {workers}.')
    if episode_length < 2:
        raise ValueError(f'episode_length must be >= 2 (one transition), got {episode_length}.')
    paths = dataset_file_paths(target.dataset_name, dataset_dir)
    problem = runs.unwritable(os.path.dirname(paths[0]))
    if problem is not None:  # found before the episodes are collected, not after
        raise ValueError(f'cannot write dataset files to {os.path.dirname(paths[0])} ({problem}); choose another '
                         '--dataset_dir')
    existing = [path for path in paths if os.path.exists(path)]
    if existing and not overwrite:
        raise FileExistsError(f'Refusing to overwrite existing dataset file(s): {", ".join(existing)} '
                              '(pass overwrite=True / --overwrite).')

    episode_counts = (num_episodes, num_val_episodes(num_episodes))
    jobs = [(split_index, episode_index) for split_index, count in enumerate(episode_counts)
            for episode_index in range(count)]
    splits: list[dict[str, np.ndarray] | None] = [None, None]
    total_env_steps = 0
    start_time = time.perf_counter()

    def store(split_index: int, episode_index: int, episode: dict[str, np.ndarray]) -> None:
        # Preallocate each split once its first episode shows the array widths; fill rows in place.
        if splits[split_index] is None:
            num_rows = episode_counts[split_index] * episode_length
            splits[split_index] = {key: np.empty((num_rows, *value.shape[1:]), dtype=value.dtype)
                                   for key, value in episode.items()}
        rows = slice(episode_index * episode_length, (episode_index + 1) * episode_length)
        for key, value in episode.items():
            splits[split_index][key][rows] = value

    with tqdm(total=len(jobs), unit='episode', desc=target.dataset_name, disable=not show_progress) as progress:
        if workers == 1:
            for split_index, episode_index in jobs:
                episode, env_steps = collect_episode(target.suite, target.dataset_kind, seed, split_index,
                                                     episode_index, target.visual, episode_length)
                store(split_index, episode_index, episode)
                total_env_steps += env_steps
                progress.update(1)
        else:
            # 'spawn' gives clean workers (no forked jax/MuJoCo state from the parent process).
            context = multiprocessing.get_context('spawn')
            with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = {pool.submit(collect_episode, target.suite, target.dataset_kind, seed, split_index,
                                       episode_index, target.visual, episode_length): (split_index, episode_index)
                           for split_index, episode_index in jobs}
                for future in concurrent.futures.as_completed(futures):
                    episode, env_steps = future.result()
                    store(*futures[future], episode)
                    total_env_steps += env_steps
                    progress.update(1)

    for path, arrays in zip(paths, splits):
        write_npz_atomically(path, arrays)
    # Beside the files, not inside them: the .npz stay OGBench's format and byte-identical for a seed.
    record_source(target.dataset_name, dataset_dir, dict(
        source='generated', generator="datasets.generate (OGBench's scripted oracles, re-implemented)", seed=seed,
        num_episodes=episode_counts[0], num_val_episodes=episode_counts[1], episode_length=episode_length))
    elapsed = time.perf_counter() - start_time
    if show_progress:
        print(f'Wrote {paths[0]} ({episode_counts[0]} episodes) and {paths[1]} ({episode_counts[1]} episodes): '
              f'{total_env_steps} env steps in {elapsed:.1f} s = {total_env_steps / elapsed:.0f} env steps/s '
              f'with {workers} worker(s).', flush=True)
    return paths


def main(_argv) -> None:
    from absl import flags

    config = flags.FLAGS
    if not config['verbosity'].present:
        config.verbosity = -1  # WARNING and above: absl's app.run would print every library's INFO lines
    target = resolve_dataset_target(config.env_name)
    num_episodes = config.num_episodes if config.num_episodes is not None else PUBLISHED_NUM_EPISODES[target.suite]
    try:
        generate_dataset(config.env_name, num_episodes, config.seed, config.dataset_dir, workers=config.workers,
                         show_progress=True, overwrite=config.overwrite, episode_length=config.episode_length)
    except (ValueError, FileExistsError) as error:  # a name, a count or a folder the user gave
        raise SystemExit(f'error: {error}')


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string('env_name', None, 'Dataset name (cube-single-play-v0) or single-task name to generate.',
                        required=True)
    flags.DEFINE_integer('num_episodes', None, 'Train episodes (1001 steps each); default: OGBench\'s published '
                         'count for the suite. Val gets max(1, num_episodes // 10).')
    flags.DEFINE_integer('seed', 0, 'Base seed; same seed -> identical files.')
    flags.DEFINE_string('dataset_dir', '~/.ogbench/data', 'Output directory (OGBench\'s default data directory).')
    flags.DEFINE_integer('workers', 1, 'Worker processes; the output does not depend on it.')
    flags.DEFINE_boolean('overwrite', False, 'Replace existing dataset files.')
    flags.DEFINE_integer('episode_length', EPISODE_LENGTH, 'Stored steps per episode (OGBench: 1001); shorter only '
                         'for quick tests.')


if __name__ == '__main__':
    from absl import app

    from datasets.families import mujoco_gl

    # State datasets never render; visual ones render every step, in software unless a GPU is used (`mujoco_gl`).
    os.environ.setdefault('MUJOCO_GL', mujoco_gl(sys.argv[1:]))
    _define_flags()
    app.run(main)
