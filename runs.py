"""The run folder: its layout, its readers and its atomic writers. Standard library only, so that the sweep, the
report and the benchmarks read runs without importing JAX.

Layout of one `main.py` run (`--save_dir=ROOT --run_name=NAME`, one folder per task, one per seed):

    ROOT/NAME/summary.{csv,md}              the run's results table (every task)
    ROOT/NAME/<task>/curves.png             learning curves of the task, one line per seed
    ROOT/NAME/<task>/seed<k>/flags.json     the command (a list of arguments), flags, agent config, sources, versions
    ROOT/NAME/<task>/seed<k>/train.csv      training metrics every --log_interval updates (`step` column first)
    ROOT/NAME/<task>/seed<k>/eval.csv       evaluations
    ROOT/NAME/<task>/seed<k>/final.json     the seed's reported numbers; written once the last update is evaluated
    ROOT/NAME/<task>/seed<k>/checkpoints/step_<step, 9 digits>.msgpack
    ROOT/NAME/<task>/seed<k>/wandb_run_id.txt   with --wandb: the seed's wandb run, continued by --resume
    ROOT/NAME/<task>/evaluations/step_<step, 9 digits>_episodes<E>.csv   `python -m evaluate` of a checkpoint, a row
                                            per seed
    ROOT/NAME/<task>/evaluations/videos/seed<k>_step_<step, 9 digits>_episode<e>.{mp4,gif}   its videos

Every file here is written atomically (`write_atomically`): a reader sees the old file or the whole new one, and a
kill leaves at most a stray `<name>.tmp`, which no reader takes for a file of the run.
"""

import csv
import io
import json
import math
import os
import re
import uuid
from typing import Any, Iterable

FLAGS_FILE = 'flags.json'
FINAL_FILE = 'final.json'
TRAIN_CSV = 'train.csv'
EVAL_CSV = 'eval.csv'
CURVES_FILE = 'curves.png'
SUMMARY_STEM = 'summary'  # summary.csv and summary.md in the run root
CHECKPOINTS = 'checkpoints'
EVALUATIONS = 'evaluations'  # in a task folder: evaluate.py's CSVs and videos of kept checkpoints
WANDB_RUN_ID_FILE = 'wandb_run_id.txt'
_SEED_FOLDER = re.compile(r'^seed(\d+)$')
_CHECKPOINT_FILE = re.compile(r'^step_(\d+)\.msgpack$')


# ------------------------------------------------------------------------------------------------------- layout
def run_root(save_dir: str, run_name: str) -> str:
    """The folder of one main.py run (`--save_dir`/`--run_name`), holding one folder per task."""
    return os.path.join(os.path.expanduser(save_dir), run_name)


def task_dir(root: str, task: str) -> str:
    """The folder of one task of a run, holding one folder per seed and `curves.png`."""
    return os.path.join(root, task)


def seed_dir(task_folder: str, seed: int) -> str:
    """The folder of one seed inside a task's folder."""
    return os.path.join(task_folder, f'seed{seed}')


def seed_dirs(task_folder: str, seeds: Iterable[int]) -> list[str]:
    return [seed_dir(task_folder, seed) for seed in seeds]


def seeds_on_disk(task_folder: str) -> list[int]:
    """The seeds that have a folder in a task's folder, ascending ([] when it does not exist)."""
    if not os.path.isdir(task_folder):
        return []
    return sorted(int(m.group(1)) for m in map(_SEED_FOLDER.match, os.listdir(task_folder))
                  if m and os.path.isdir(os.path.join(task_folder, m.group(0))))


def seed_of(seed_folder: str) -> int:
    """The seed a seed folder belongs to ('…/seed3' -> 3); ValueError for another folder."""
    match = _SEED_FOLDER.match(os.path.basename(os.path.normpath(seed_folder)))
    if match is None:
        raise ValueError(f'{seed_folder} is not a seed folder (seed<k>)')
    return int(match.group(1))


def flags_path(seed_folder: str) -> str:
    return os.path.join(seed_folder, FLAGS_FILE)


def final_path(seed_folder: str) -> str:
    return os.path.join(seed_folder, FINAL_FILE)


def train_csv_path(seed_folder: str) -> str:
    return os.path.join(seed_folder, TRAIN_CSV)


def eval_csv_path(seed_folder: str) -> str:
    return os.path.join(seed_folder, EVAL_CSV)


def curves_path(task_folder: str) -> str:
    return os.path.join(task_folder, CURVES_FILE)


def summary_paths(root: str) -> tuple[str, str]:
    """(summary.csv, summary.md) of a run."""
    return os.path.join(root, SUMMARY_STEM + '.csv'), os.path.join(root, SUMMARY_STEM + '.md')


def checkpoint_dir(seed_folder: str) -> str:
    return os.path.join(seed_folder, CHECKPOINTS)


def checkpoint_path(seed_folder: str, step: int) -> str:
    return os.path.join(checkpoint_dir(seed_folder), f'step_{step:09d}.msgpack')


def evaluation_csv_path(task_folder: str, step: int, episodes: int) -> str:
    """The CSV of `python -m evaluate` for the checkpoints at `step`, evaluated with `episodes` episodes per seed."""
    return os.path.join(task_folder, EVALUATIONS, f'step_{step:09d}_episodes{episodes}.csv')


def video_path(task_folder: str, seed: int, step: int, episode: int, extension: str = 'mp4') -> str:
    """One evaluation video of `python -m evaluate --video_episodes=V` ('mp4', or 'gif' without imageio-ffmpeg)."""
    return os.path.join(task_folder, EVALUATIONS, 'videos', f'seed{seed}_step_{step:09d}_episode{episode}.{extension}')


# ------------------------------------------------------------------------------------------------------ readers
def last_step(csv_path: str) -> int | None:
    """The largest step among a CSV log's complete rows, or None when it has none (or does not exist)."""
    return max((int(row['step']) for row in read_csv_if_any(csv_path) if 'step' in row), default=None)


def checkpoint_steps(seed_folder: str) -> list[int]:
    """Steps of the complete checkpoints of one seed, ascending (`.tmp` files of an interrupted save ignored)."""
    directory = checkpoint_dir(seed_folder)
    if not os.path.isdir(directory):
        return []
    return sorted(int(m.group(1)) for m in map(_CHECKPOINT_FILE.match, os.listdir(directory)) if m)


def common_checkpoint_step(seed_folders: Iterable[str]) -> int | None:
    """The newest step every seed has a complete checkpoint for (where `--resume` continues), or None."""
    common = None
    for folder in seed_folders:
        steps = set(checkpoint_steps(folder))
        common = steps if common is None else common & steps
    return max(common) if common else None


def read_json(path: str) -> dict[str, Any] | None:
    """A JSON object from a file, or None if it is missing or unreadable (a file of a run still being written)."""
    try:
        with open(path) as f:
            payload = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def read_flags(seed_folder: str) -> dict[str, Any] | None:
    return read_json(flags_path(seed_folder))


def read_final(seed_folder: str) -> dict[str, Any] | None:
    return read_json(final_path(seed_folder))


def recorded_arguments(flags_json: dict[str, Any]) -> list[str]:
    """main.py's arguments (without the script) as a run recorded them in flags.json.

    `command` is the argument list; runs written before it was one hold `' '.join(sys.argv)`, which is split on
    spaces (exact unless an argument itself held a space)."""
    command = flags_json.get('command', [])
    arguments = command if isinstance(command, list) else command.split(' ')
    return [str(argument) for argument in arguments[1:]]


def total_steps(flags_json: dict[str, Any]) -> int:
    """The last step of the run a flags.json belongs to (offline plus online updates)."""
    flags = flags_json.get('flags', {})
    return int(flags.get('offline_steps', 0)) + int(flags.get('online_steps', 0))


def finished_at(seed_folder: str) -> int | None:
    """The step at which the seed finished (its final.json is at its run's last step), else None."""
    final, recorded = read_final(seed_folder), read_flags(seed_folder)
    if final is None or recorded is None or final.get('step') != total_steps(recorded):
        return None
    return int(final['step'])


def read_csv(path: str) -> list[dict[str, float]]:
    """Rows of a run's CSV log as floats (empty cells dropped); complete lines only, so a file being appended to
    reads as its finished rows."""
    with open(path, newline='') as f:
        text = f.read()
    reader = csv.DictReader(io.StringIO(text[:text.rfind('\n') + 1]))
    return [{k: float(v) for k, v in row.items() if v not in ('', None)} for row in reader]


def read_csv_if_any(path: str) -> list[dict[str, float]]:
    """`read_csv`, with no rows for a file that does not exist yet (a run not started)."""
    return read_csv(path) if os.path.exists(path) else []


# ------------------------------------------------------------------------------------------------------ writers
def logged_total_seconds(rows: Iterable[dict[str, Any]]) -> float:
    """The largest `time/total` among log rows (0.0 when none has one): the wall time a run had spent when it
    logged its last row."""
    return max((float(row['time/total']) for row in rows if row.get('time/total') not in (None, '')), default=0.0)


def wandb_run_id(seed_folder: str, reuse: bool) -> str:
    """The id of the seed's wandb run. With `reuse` (a resumed run), the id recorded in the seed folder, so that
    the resumed process logs into the same wandb run; otherwise (or when none is recorded) a new random id,
    recorded for later resumes."""
    path = os.path.join(seed_folder, WANDB_RUN_ID_FILE)
    if reuse and os.path.exists(path):
        with open(path) as f:
            recorded = f.read().strip()
        if recorded:
            return recorded
    run_id = uuid.uuid4().hex[:16]
    write_atomically(path, run_id + '\n')
    return run_id


def unwritable(folder: str) -> str | None:
    """Why files cannot be written in `folder`, e.g. 'Permission denied', or None when they can: checked before hours
    of work whose results would go there. Tried by writing a file there; the folders made for the try are removed."""
    folder = os.path.abspath(os.path.expanduser(folder))
    made, parent = [], folder
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
        made.append(parent)
        parent = os.path.dirname(parent)
    probe = os.path.join(folder, f'.write-test-{uuid.uuid4().hex}')
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, 'wb'):
            pass
        os.remove(probe)
    except OSError as error:
        return error.strerror or type(error).__name__
    finally:
        for folder_made in made:  # the deepest first; a folder something else wrote into meanwhile stays
            try:
                os.rmdir(folder_made)
            except OSError:
                pass
    return None


def write_atomically(path: str, data: str | bytes) -> None:
    """Writes `data` (str: UTF-8) to `path` so that readers only ever see the old file or the whole new one,
    even after a kill or a power cut: a temp file beside it, fsynced, `os.replace`d over `path`, and the
    folder fsynced so that the rename itself is durable. A kill can leave only a stray `<path>.tmp`."""
    tmp_path = path + '.tmp'
    with open(tmp_path, 'wb') as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp_path, path)
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def strict_json_value(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (JSON `null`), so that the file is strict JSON."""
    if hasattr(value, 'item') and getattr(value, 'shape', None) == ():  # a numpy or JAX scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json_value(item) for item in value]
    return value


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Writes strict JSON atomically: NaN and ±inf become `null` (a bare NaN is not JSON)."""
    text = json.dumps(strict_json_value(payload), indent=2, sort_keys=True, default=str, allow_nan=False)
    write_atomically(path, text)


def csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """A CSV file's text: the header `columns`, then one line per row (missing cells empty)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, restval='')
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def save_figure(figure: Any, path: str, dpi: int) -> None:
    """A matplotlib figure as a PNG at `path`, written atomically."""
    png = io.BytesIO()
    figure.savefig(png, format='png', dpi=dpi)
    write_atomically(path, png.getvalue())


def _plain(value: Any) -> Any:
    """A Python scalar for CSV/JSON from a numpy/jax scalar."""
    return value.item() if hasattr(value, 'item') else value


class CsvLogger:
    """A CSV file of rows keyed by `step`, which tolerates new columns and resumes cleanly.

    New keys: when a row brings a column the header lacks, the file is rewritten with the union of
    the columns (earlier rows get empty cells). Resume: `CsvLogger(path, resume_step=k)` keeps the
    rows with step <= k and drops later ones (they came from updates after the last checkpoint,
    which will be redone), and a last row without its line end (a kill in the middle of an append);
    `resume_step=None` starts a fresh file. Rows are appended; rewrites are atomic.
    """

    def __init__(self, path: str, resume_step: int | None = None):
        self.path = path
        self.columns: list[str] = ['step']
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and os.path.exists(path):
            with open(path, newline='') as f:
                text = f.read()
            reader = csv.DictReader(io.StringIO(text[:text.rfind('\n') + 1]))  # complete lines only
            self.columns = list(reader.fieldnames or ['step'])
            self.rows = [row for row in reader if int(float(row['step'])) <= resume_step]
        self._rewrite()

    def _rewrite(self) -> None:
        write_atomically(self.path, csv_text(self.columns, self.rows))

    def log(self, step: int, values: dict[str, Any]) -> None:
        row = {'step': int(step), **{k: _plain(v) for k, v in values.items()}}
        self.rows.append(row)
        new_columns = [k for k in row if k not in self.columns]
        if new_columns:
            self.columns += sorted(new_columns)
            self._rewrite()
        else:
            with open(self.path, 'a', newline='') as f:
                csv.DictWriter(f, fieldnames=self.columns, restval='').writerow(row)
