"""Load OGBench single-task datasets (state-based and visual) through OGBench's own loader, after validating the files.

`load_datasets('cube-single-play-singletask-task2-v0')` reads `cube-single-play-v0.npz` and
`cube-single-play-v0-val.npz` from `dataset_dir` (default: OGBench's `~/.ogbench/data`, so files
OGBench downloaded are used as they are), checks them, and hands them to
`ogbench.make_env_and_datasets(..., compact_dataset=False)`, which builds `next_observations`
(dropping the last state of each episode: 1001 stored steps -> 1000 transitions), marks
`terminals` at the last transition of each episode, and relabels `rewards` and `masks` for the
single task from `qpos` / `button_states` (we do not reimplement that relabelling).

Missing files are the OGBench families' job (`datasets.families.ogbench`): OGBench's download (`download`) first;
if it fails (e.g. no network), manipulation datasets can be generated locally (main.py's
`--generate_missing_data=N`, via `datasets.generate`); locomotion datasets need OGBench's pretrained experts and
must be downloaded elsewhere and copied in.
"""

import contextlib
import hashlib
import io
import os
import warnings

import numpy as np

from datasets import names

DEFAULT_DATASET_DIR = '~/.ogbench/data'  # OGBench's default download directory
OGBENCH_DATASET_URL = 'https://rail.eecs.berkeley.edu/datasets/ogbench'  # OGBench's file server
# FQL clips dataset actions to +-(1 - 1e-5) when loading, keeping them strictly inside the action
# box (a policy squashed into (-1, 1) can then represent every dataset action); we do the same.
ACTION_CLIP = 1.0 - 1e-5
OUTPUT_KEYS = ('observations', 'actions', 'rewards', 'masks', 'next_observations', 'terminals')


# OGBench's manipulation envs build a float32 action Box from float64 bounds at every reset, and gymnasium warns
# "Box low's/high's precision lowered by casting to float32" about the cast (whatever the values). Only that
# message is ignored, for the whole process (a `catch_warnings` block would reset the once-per-location
# bookkeeping and make other warnings repeat).
warnings.filterwarnings('ignore', message=r".*Box (low|high)'s precision lowered by casting to float32",
                        category=UserWarning)


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or malformed; the message names the file and the problem."""


def dataset_file_paths(dataset_name: str, dataset_dir: str) -> tuple[str, str]:
    """OGBench's file names for a dataset: (<dir>/<name>.npz, <dir>/<name>-val.npz)."""
    dataset_dir = os.path.expanduser(dataset_dir)
    return os.path.join(dataset_dir, f'{dataset_name}.npz'), os.path.join(dataset_dir, f'{dataset_name}-val.npz')


def source_record_path(dataset_name: str, dataset_dir: str) -> str:
    """The JSON beside a dataset's two files that records where they came from (`record_source`)."""
    return os.path.join(os.path.expanduser(dataset_dir), f'{dataset_name}.source.json')


def record_source(dataset_name: str, dataset_dir: str, source: dict) -> None:
    """Records where a dataset's files came from ({'source': 'generated', 'seed': ..., ...} or {'source':
    'downloaded', 'url': ...}) in a file beside them, so that the .npz files themselves stay OGBench's format and a
    generated file stays byte-identical for its seed."""
    import runs
    runs.write_json(source_record_path(dataset_name, dataset_dir), source)


def file_md5(path: str) -> str:
    """The md5 of a file, read in chunks (dataset files reach gigabytes)."""
    digest = hashlib.md5()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 23), b''):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_provenance(dataset_name: str, dataset_dir: str) -> dict:
    """What a run's flags.json records about a dataset: its name, where it came from (the `record_source` file, or
    'unknown' for files copied in or fetched before sources were recorded), and each file's path, size and md5."""
    import runs
    record = runs.read_json(source_record_path(dataset_name, dataset_dir))
    files = [dict(path=path, bytes=os.path.getsize(path), md5=file_md5(path))
             for path in dataset_file_paths(dataset_name, dataset_dir) if os.path.exists(path)]
    return dict(name=dataset_name, origin=record or {'source': 'unknown (no record beside the files)'}, files=files)


def make_env(env_name: str, frame_stack: int = 1, **env_kwargs):
    """The single-task evaluation (and online) env of an OGBench name (needs no dataset files). Visual envs
    return frames; with `frame_stack` = k > 1 their observations are stacks of the last k frames
    (`datasets.frames.FrameStack`), as the visual datasets' batches are."""
    import ogbench

    spec = names.parse_env_name(env_name)
    env = ogbench.make_env_and_datasets(spec.name, env_only=True, **env_kwargs)
    if frame_stack > 1:
        if not spec.visual:
            raise ValueError(f'frame_stack={frame_stack} needs a visual task; {env_name} observes states.')
        from datasets.frames import FrameStack
        env = FrameStack(env, frame_stack)
    return env


def _required_qpos_width(spec: names.EnvSpec, env) -> tuple[int, str]:
    """Columns of qpos that OGBench's relabelling reads, and a comparison word ('==' or '>=')."""
    if spec.is_manipulation:
        return int(env.unwrapped.model.nq), '=='
    # Locomotion: agent xy (columns 0:2) for mazes, ball xy (columns 15:17) for soccer.
    return (17 if spec.suite.startswith('antsoccer') else 2), '>='


def _npy_header(archive: np.lib.npyio.NpzFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of an .npz member from its .npy header, without reading the array (frames: gigabytes)."""
    with archive.zip.open(f'{key}.npy') as member:
        version = np.lib.format.read_magic(member)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(member)
    return shape, dtype


def validate_dataset_file(path: str, spec: names.EnvSpec, env) -> None:
    """Checks one OGBench .npz file before OGBench loads it; raises DatasetError naming the file and problem.

    Checks: the file exists and is a readable .npz; the keys OGBench's loader and relabelling read
    (observations, actions, terminals, qpos, and button_states for scene/puzzle) are present; these and
    the optional info arrays OGBench also slices when present (qvel; button_states elsewhere) have
    float (int for button_states) dtypes, 2-D shapes (terminals 1-D), widths matching `env` where the
    relabelling reads columns, and one common length N >= 2; no NaN/inf; actions within [-1, 1];
    terminals in {0, 1}, with the last row terminal (the loader would otherwise misalign
    next_observations) and no single-step episodes. Visual files: observations must be uint8 frames of the
    env's shape (N, 64, 64, 3); only their header is read here.
    """
    if not os.path.exists(path):
        raise DatasetError(f'{path}: file not found.')
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # zipfile.BadZipFile, OSError, ValueError, EOFError, ...
        raise DatasetError(f'{path}: not a readable .npz file ({type(error).__name__}: {error}).') from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(f'{path}: is a single .npy array, expected an .npz archive of named arrays.')

    with archive:
        needs_button_states = spec.suite == 'scene' or spec.suite.startswith('puzzle')
        required = ['observations', 'actions', 'terminals', 'qpos'] + (['button_states'] if needs_button_states else [])
        missing = [key for key in required if key not in archive.files]
        if missing:
            raise DatasetError(f'{path}: missing key(s) {missing}; found {sorted(archive.files)}.')
        # OGBench's single-task loader also slices these info arrays whenever the file has them.
        optional = [key for key in ('qvel', 'button_states') if key in archive.files and key not in required]
        arrays = {}
        if spec.visual:
            try:
                frame_shape, frame_dtype = _npy_header(archive, 'observations')
            except Exception as error:
                raise DatasetError(f'{path}: array \'observations\' cannot be read ({type(error).__name__}: '
                                   f'{error}).') from error
            if frame_dtype != np.uint8 or tuple(frame_shape[1:]) != tuple(env.observation_space.shape):
                raise DatasetError(f'{path}: observations must be uint8 frames of shape (N, '
                                   f'{", ".join(map(str, env.observation_space.shape))}) for the visual task '
                                   f'{spec.name}, got {frame_dtype} {tuple(frame_shape)}.')
        for key in required + optional:
            if key == 'observations' and spec.visual:
                continue
            try:
                arrays[key] = archive[key]
            except Exception as error:  # truncated or corrupt archive member
                raise DatasetError(f'{path}: array {key!r} cannot be read ({type(error).__name__}: {error}).') \
                    from error

    observation_dim = int(np.prod(env.observation_space.shape))
    action_dim = int(np.prod(env.action_space.shape))
    qpos_width, qpos_comparison = _required_qpos_width(spec, env)
    expected_width = {'observations': (observation_dim, '=='), 'actions': (action_dim, '=='),
                      'qpos': (qpos_width, qpos_comparison)}
    if spec.visual:  # checked from the header above; its length joins the length check below
        header_lengths = {'observations': int(frame_shape[0])}
    else:
        header_lengths = {}
    if needs_button_states:
        expected_width['button_states'] = (int(env.unwrapped._num_buttons), '==')

    for key, array in arrays.items():
        if key == 'terminals':
            if array.ndim != 1:
                raise DatasetError(f'{path}: terminals must be 1-D (N,), got shape {array.shape}.')
            if array.dtype.kind not in 'biuf':
                raise DatasetError(f'{path}: terminals must be bool or numeric, got dtype {array.dtype}.')
            continue
        wanted_kind = 'iu' if key == 'button_states' else 'f'
        if array.dtype.kind not in wanted_kind:
            raise DatasetError(f'{path}: {key} must have a {"integer" if wanted_kind == "iu" else "float"} dtype, '
                               f'got {array.dtype}.')
        width, comparison = expected_width.get(key, ('k', None))  # None: OGBench only slices its rows
        if array.ndim != 2:
            raise DatasetError(f'{path}: {key} must be 2-D (N, {width}), got shape {array.shape}.')
        if (comparison == '==' and array.shape[1] != width) or (comparison == '>=' and array.shape[1] < width):
            raise DatasetError(f'{path}: {key} has width {array.shape[1]}, expected {comparison} {width} '
                               f'for {spec.env_name}.')

    lengths = {key: len(array) for key, array in arrays.items()} | header_lengths
    if len(set(lengths.values())) != 1:
        raise DatasetError(f'{path}: arrays have inconsistent lengths {lengths}.')
    num_rows = lengths['observations']
    if num_rows < 2:
        raise DatasetError(f'{path}: has {num_rows} row(s); need at least one episode of 2 steps.')

    for key in ('observations', 'actions', 'qpos'):
        if key not in arrays:  # visual frames: uint8, always finite
            continue
        finite = np.isfinite(arrays[key])
        if not finite.all():
            row = int(np.argwhere(~finite)[0, 0])
            raise DatasetError(f'{path}: {key} has {int((~finite).sum())} NaN/inf value(s), first at row {row}.')
    actions = arrays['actions']
    outside = np.abs(actions) > 1.0
    if outside.any():
        row = int(np.argwhere(outside)[0, 0])
        raise DatasetError(f'{path}: {int(outside.sum())} action value(s) outside [-1, 1] '
                           f'(min {actions.min():.4g}, max {actions.max():.4g}), first at row {row}.')

    terminals = arrays['terminals']
    if not np.isin(terminals, (0, 1)).all():
        raise DatasetError(f'{path}: terminals must be 0/1, found values {np.unique(terminals)[:10].tolist()}.')
    terminal_rows = np.flatnonzero(terminals)
    if terminal_rows.size == 0:
        raise DatasetError(f'{path}: no terminals (no row marks the end of an episode).')
    if terminal_rows[-1] != num_rows - 1:
        raise DatasetError(f'{path}: the last row ({num_rows - 1}) is not terminal; the file ends inside an '
                           f'episode (last terminal at row {terminal_rows[-1]}).')
    episode_lengths = np.diff(np.concatenate([[-1], terminal_rows]))
    if (episode_lengths < 2).any():
        row = int(terminal_rows[np.argmax(episode_lengths < 2)])
        raise DatasetError(f'{path}: an episode has a single step (terminal at row {row} right after the '
                           f'previous episode ended); it would give no transition.')


def download(dataset_name: str, dataset_dir: str) -> str | None:
    """Runs OGBench's download of both files of a dataset; returns None on success, else a one-line reason."""
    import ogbench

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # OGBench prints the URL before trying it
            ogbench.download_datasets([dataset_name], dataset_dir)
    except Exception as error:  # URLError without network, HTTPError, OSError, ...
        return ' '.join(f'{type(error).__name__}: {error}'.split())
    return None


def download_hint(dataset_name: str, dataset_dir: str) -> str:
    """How to fetch a dataset's files on another machine and where to copy them."""
    return (f"on a machine with internet run `python -c \"import ogbench; ogbench.download_datasets("
            f"['{dataset_name}'], '{dataset_dir}')\"` (or fetch {OGBENCH_DATASET_URL}/{dataset_name}.npz and "
            f"{OGBENCH_DATASET_URL}/{dataset_name}-val.npz) and copy both files into {dataset_dir}")


def _bad_file_remedy(spec: names.EnvSpec, train_path: str, val_path: str) -> str:
    """What to do about a dataset file that failed validation (both splits are replaced together)."""
    source = ('OGBench\'s file with --download_missing_data, or local generation with --generate_missing_data=N'
              if spec.is_manipulation else 'OGBench\'s file with --download_missing_data')
    return f'Delete {train_path} and {val_path} and rerun to fetch them again ({source}).'


def _to_output(dataset: dict[str, np.ndarray], path: str) -> dict[str, np.ndarray]:
    """Keeps the transition keys as float32, with actions clipped to +-ACTION_CLIP."""
    missing = [key for key in OUTPUT_KEYS if key not in dataset]
    if missing:
        raise DatasetError(f'{path}: OGBench\'s loader returned no {missing} (is the name a single-task name?).')
    output = {key: np.asarray(dataset[key], dtype=np.float32) for key in OUTPUT_KEYS}
    output['actions'] = np.clip(output['actions'], -ACTION_CLIP, ACTION_CLIP)
    return output


def _to_frame_output(dataset: dict[str, np.ndarray], path: str) -> dict[str, np.ndarray]:
    """OGBench's compact split (every stored frame once, `valids` = 0 on each episode's last frame) -> the frame
    dataset of `datasets.frames`: frames, and per transition (valid row) its actions (clipped), rewards, masks,
    terminals (1 at each episode's last transition), frame_index and the episode's first frame."""
    missing = [key for key in ('observations', 'actions', 'rewards', 'masks', 'terminals', 'valids')
               if key not in dataset]
    if missing:
        raise DatasetError(f'{path}: OGBench\'s loader returned no {missing} (is the name a single-task name?).')
    valids = np.asarray(dataset['valids']) > 0
    frame_index = np.flatnonzero(valids).astype(np.int32)
    # Episode starts: row 0 and every row after an invalid (last-of-episode) row.
    starts = np.flatnonzero(np.concatenate([[True], ~valids[:-1]])).astype(np.int32)
    episode_start = starts[np.searchsorted(starts, frame_index, side='right') - 1]
    return {
        'frames': dataset['observations'],
        'actions': np.clip(np.asarray(dataset['actions'][frame_index], np.float32), -ACTION_CLIP, ACTION_CLIP),
        'rewards': np.asarray(dataset['rewards'][frame_index], np.float32),
        'masks': np.asarray(dataset['masks'][frame_index], np.float32),
        'terminals': np.asarray(dataset['terminals'][frame_index], np.float32),
        'frame_index': frame_index,
        'episode_start': episode_start,
    }


def load_datasets(env_name: str, dataset_dir: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Loads the train and val splits of an OGBench single-task env name (state-based or visual) from files on disk
    (`datasets.families` fetches or generates missing ones first).

    Args:
      env_name: e.g. 'cube-single-play-singletask-task2-v0' (ValueError with close names if unknown).
      dataset_dir: where OGBench's files live (default '~/.ogbench/data').

    Returns:
      (train, val): dicts of float32 numpy arrays, N rows each: observations (N, obs_dim),
      actions (N, act_dim) clipped to +-(1 - 1e-5), rewards (N,), masks (N,) (0 where the task is
      solved), next_observations (N, obs_dim), terminals (N,) (1 at each episode's last transition).
      Visual names give frame datasets instead (`datasets.frames.FRAME_KEYS`): frames (F, 64, 64, 3) uint8, every
      stored frame once (no next_observations copy), and per transition actions, rewards, masks, terminals,
      frame_index (the frame of s_t; s_{t+1} is the next frame) and episode_start.
    """
    import ogbench

    spec = names.parse_env_name(env_name)
    dataset_dir = os.path.expanduser(dataset_dir if dataset_dir is not None else DEFAULT_DATASET_DIR)
    train_path, val_path = dataset_file_paths(spec.dataset_name, dataset_dir)
    missing = [path for path in (train_path, val_path) if not os.path.exists(path)]
    if missing:
        raise DatasetError(f'OGBench dataset file(s) {", ".join(missing)} not found; main.py downloads them with '
                           f'--download_missing_data, or generates manipulation datasets with '
                           f'--generate_missing_data=N; or '
                           f'{download_hint(spec.dataset_name, dataset_dir)}.')
    env = make_env(spec.name)
    try:
        for path in (train_path, val_path):
            try:
                validate_dataset_file(path, spec, env)
            except DatasetError as error:
                raise DatasetError(f'{error} {_bad_file_remedy(spec, train_path, val_path)}') from error
        # dataset_only with cur_env: OGBench relabels with this single-task env instead of building another.
        # Visual: the compact form keeps each frame once (the regular one copies all frames into next_observations).
        train, val = ogbench.make_env_and_datasets(spec.name, dataset_dir=dataset_dir, compact_dataset=spec.visual,
                                                   dataset_only=True, cur_env=env)
    finally:
        env.close()
    if spec.visual:
        return _to_frame_output(train, train_path), _to_frame_output(val, val_path)
    return _to_output(train, train_path), _to_output(val, val_path)
