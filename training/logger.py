"""Run outputs: resumable CSV logs, flags.json, learning-curve PNG, optional wandb, progress bar.

Every CSV row has a `step` column (number of updates done, 1 … N). Keys are namespaced as in FQL:
`training/<agent info key>`, `validation/<key>`, `evaluation/<key>`, `time/<key>`.
"""

import csv
import io
import json
import os
import platform
import subprocess
import sys
from typing import Any

import numpy as np


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


def seed_dir(run_dir: str, seed: int) -> str:
    """The folder of one seed inside a task's run folder."""
    return os.path.join(run_dir, f'seed{seed}')


def _plain(value: Any) -> Any:
    """A Python scalar for CSV/JSON from a numpy/jax scalar."""
    if hasattr(value, 'item'):
        return value.item()
    return value


def read_csv(path: str) -> list[dict[str, float]]:
    """Rows of a `CsvLogger` file as floats (empty cells dropped)."""
    with open(path, newline='') as f:
        return [{k: float(v) for k, v in row.items() if v not in ('', None)} for row in csv.DictReader(f)]


def git_hash(repo_dir: str) -> str:
    """The current commit of `repo_dir` (with '+dirty' when there are uncommitted changes), or 'unknown'."""
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=repo_dir, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=repo_dir,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ('+dirty' if dirty else '')
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def library_versions() -> dict[str, str]:
    """Versions of the libraries that determine the numbers."""
    import importlib.metadata
    versions = {'python': platform.python_version()}
    for name in ('jax', 'jaxlib', 'flax', 'optax', 'numpy', 'ogbench', 'mujoco', 'gymnasium', 'ml_collections'):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = 'not installed'
    return versions


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


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Writes JSON atomically (`write_atomically`)."""
    write_atomically(path, json.dumps(payload, indent=2, sort_keys=True, default=str))


def run_metadata(repo_dir: str) -> dict[str, Any]:
    """Git hash, library versions, devices and the command line, for flags.json."""
    import jax
    return {'git_hash': git_hash(repo_dir), 'versions': library_versions(),
            'devices': [str(d) for d in jax.devices()], 'command': ' '.join(sys.argv)}


# Panels of curves.png: (key, rows ('evaluation' or 'training'), y-axis label, y scale). Success and return are
# always drawn; the D4RL score, α (MFQL's adaptive BC weight) and Q where the run logs them.
CURVE_PANELS = (('evaluation/success', 'evaluation', 'success (fraction)', 'linear'),
                ('evaluation/return', 'evaluation', 'episode return', 'linear'),
                ('evaluation/score', 'evaluation', 'D4RL normalised score (×100)', 'linear'),
                ('training/alpha', 'training', 'α (weight of the BC loss)', 'log'),
                ('training/critic/q_mean', 'training', 'Q (batch mean, critic)', 'linear'))


def curves_figure(eval_rows_per_seed: list[list[dict[str, float]]], train_rows_per_seed: list[list[dict[str, float]]],
                  title: str, seeds: list[int]) -> Any:
    """The learning curves of one task against updates, one line per seed (the same colour in every panel).

    Evaluation panels mark each evaluation with a dot; training panels are lines through the log steps.
    Panels without data (α for FQL, the score outside D4RL) are left out.
    """
    import matplotlib
    matplotlib.use('Agg')  # files only, no display
    import matplotlib.pyplot as plt

    sources = {'evaluation': eval_rows_per_seed, 'training': train_rows_per_seed}
    panels = [panel for panel in CURVE_PANELS
              if any(panel[0] in row for rows in sources[panel[1]] for row in rows)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (key, source, label, scale) in zip(axes[0], panels):
        for seed_index, rows in enumerate(sources[source]):
            points = [(row['step'], row[key]) for row in rows if key in row]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, color=f'C{seed_index % 10}', label=f'seed {seeds[seed_index]}',
                        marker='o' if source == 'evaluation' else None, ms=4)
        if key == 'evaluation/success':
            ax.set_ylim(-0.03, 1.03)
        if scale == 'log' and all(v > 0 for line in ax.get_lines() for v in line.get_ydata()):
            ax.set_yscale('log')
        ax.set_title(key, fontsize=9)
        ax.set_xlim(left=0)  # every panel starts at update 0, so that they line up
        ax.set_xlabel('updates')
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_curves(path: str, eval_rows_per_seed: list[list[dict[str, float]]],
                train_rows_per_seed: list[list[dict[str, float]]], title: str, seeds: list[int]) -> None:
    """Writes `curves_figure` as a PNG at `path` (atomically)."""
    import matplotlib.pyplot as plt

    fig = curves_figure(eval_rows_per_seed, train_rows_per_seed, title, seeds)
    save_figure(fig, path, dpi=90)
    plt.close(fig)


WANDB_REMEDY = ('run `wandb login` (or set WANDB_API_KEY), or set WANDB_MODE=offline to log locally and '
                '`wandb sync` later, or drop --wandb')


class WandbError(RuntimeError):
    """`--wandb` cannot log: the package is missing, there is no login, or wandb.init failed; says what to do."""


def wandb_problem(environ: dict[str, str] | None = None, installed: bool | None = None) -> str | None:
    """Why `--wandb` would fail, checked before any data is loaded, or None when it can log.

    wandb needs an API key (WANDB_API_KEY, or the netrc entry `wandb login` writes for the host of
    WANDB_BASE_URL, default api.wandb.ai) unless WANDB_MODE is offline or disabled.
    """
    import importlib.util
    import netrc
    import urllib.parse

    environ = os.environ if environ is None else environ
    if not (importlib.util.find_spec('wandb') is not None if installed is None else installed):
        return '--wandb was given but the wandb package is not installed: pip install wandb, or drop --wandb'
    if environ.get('WANDB_MODE', '').lower() in ('offline', 'disabled', 'dryrun') or environ.get('WANDB_API_KEY'):
        return None
    host = urllib.parse.urlparse(environ.get('WANDB_BASE_URL', 'https://api.wandb.ai')).hostname
    path = environ.get('NETRC') or os.path.join(environ.get('HOME', os.path.expanduser('~')), '.netrc')
    try:
        if netrc.netrc(path).authenticators(host):
            return None
    except (OSError, netrc.NetrcParseError):
        pass
    return f'--wandb was given but wandb has no login (no WANDB_API_KEY, no {host} entry in {path}): {WANDB_REMEDY}'


class WandbLogger:
    """Optional Weights & Biases logging: one wandb run per task, metrics under `seed<k>/…`.

    Only used when asked for (`--wandb`; main.py checks `wandb_problem` first); a failing `wandb.init`
    raises WandbError with the remedy.
    """

    def __init__(self, project: str, run_name: str, config: dict[str, Any]):
        try:
            import wandb
        except ImportError as error:
            raise WandbError('--wandb was given but the wandb package is not installed: pip install wandb, or drop '
                             '--wandb') from error
        self._wandb = wandb
        try:
            self._run = wandb.init(project=project, name=run_name, config=config, reinit=True)
        except Exception as error:  # wandb.errors.UsageError / CommError: no key, no network, bad project, ...
            message = ' '.join(f'{type(error).__name__}: {error}'.split())
            raise WandbError(f'wandb.init failed ({message}): {WANDB_REMEDY}') from error

    def log(self, step: int, seed_index: int, values: dict[str, Any]) -> None:
        self._run.log({f'seed{seed_index}/{k}': _plain(v) for k, v in values.items()}, step=step)

    def close(self) -> None:
        self._run.finish()


def summarize_metrics(values: dict[str, np.ndarray], keys: tuple[str, ...]) -> str:
    """Short 'key=mean' text for the progress bar (means over seeds)."""
    parts = []
    for key in keys:
        if key in values:
            parts.append(f'{key.split("/")[-1]}={float(np.mean(values[key])):.3g}')
    return ' '.join(parts)
