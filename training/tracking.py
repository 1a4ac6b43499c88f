"""What a run records beside its CSV logs: provenance for flags.json (commit, library versions, devices, the
command as an argument list), the learning-curve figure, and optional Weights & Biases logging. The run folder's
layout and its files' readers and writers live in `runs`.
"""

import dataclasses
import os
import platform
import subprocess
import sys
from typing import Any

from runs import save_figure

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


LIBRARIES = ('jax', 'jaxlib', 'flax', 'optax', 'numpy', 'ogbench', 'mujoco', 'gymnasium', 'ml_collections')


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """The Python version and those of `names` (distributions; default: the libraries that determine the numbers),
    'not installed' for a missing one."""
    import importlib.metadata
    versions = {'python': platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = 'not installed'
    return versions


def cpu_description() -> str:
    """The CPU model and the cores this process may use, e.g. 'AMD EPYC 7B13, 2 cores'."""
    try:
        with open('/proc/cpuinfo') as f:
            model = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        model = platform.processor() or 'unknown CPU'
    return f'{model}, {len(os.sched_getaffinity(0))} cores'


def run_metadata(repo_dir: str) -> dict[str, Any]:
    """Git hash, library versions, devices and the command line (a list of arguments), for flags.json."""
    import jax
    return {'git_hash': git_hash(repo_dir), 'versions': library_versions(),
            'devices': [str(d) for d in jax.devices()], 'command': list(sys.argv)}


# Panels of curves.png: (key, rows ('evaluation' or 'training'), y-axis label, y scale). Success and return are
# always drawn; the D4RL score, α (MFQL's adaptive BC weight) and Q where the run logs them.
CURVE_PANELS = (('evaluation/success', 'evaluation', 'success (fraction)', 'linear'),
                ('evaluation/return', 'evaluation', 'episode return', 'linear'),
                ('evaluation/score', 'evaluation', 'D4RL normalised score (×100)', 'linear'),
                ('training/alpha', 'training', 'α (weight of the BC loss)', 'log'),
                ('training/critic/q_mean', 'training', 'Q (batch mean, critic)', 'linear'))


def curves_figure(eval_rows_per_seed: list[list[dict[str, float]]], train_rows_per_seed: list[list[dict[str, float]]],
                  title: str, seeds: list[int]) -> Any:
    """The learning curves of one task against updates, one line per seed (the same colour in every panel); None
    when no panel has data (a run without evaluation that never reached a log step).

    Evaluation panels mark each evaluation with a dot; training panels are lines through the log steps.
    Panels without data (α for FQL, the score outside D4RL, every evaluation panel of a run without evaluation) are
    left out.
    """
    import matplotlib
    matplotlib.use('Agg')  # files only, no display
    import matplotlib.pyplot as plt

    sources = {'evaluation': eval_rows_per_seed, 'training': train_rows_per_seed}
    panels = [panel for panel in CURVE_PANELS
              if any(panel[0] in row for rows in sources[panel[1]] for row in rows)]
    if not panels:
        return None
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
    """Writes `curves_figure` as a PNG at `path` (atomically); nothing when it has no panel."""
    import matplotlib.pyplot as plt

    fig = curves_figure(eval_rows_per_seed, train_rows_per_seed, title, seeds)
    if fig is None:
        return
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


@dataclasses.dataclass(frozen=True)
class WandbSettings:
    """Where `--wandb` logs: `--wandb_project`, `--wandb_entity` (None: the user's default) and the group
    (`--run_group`, else the run folder's name)."""

    project: str
    entity: str | None
    group: str


def wandb_run_name(group: str, task: str, seed: int) -> str:
    """The wandb run of one task and seed, named by group and seed as FQL names its runs (FQL trains one task per
    command, so the task is added here, where a command may train several)."""
    return f'{group}_{task}_sd{seed:03d}'


class WandbLogger:
    """Optional Weights & Biases logging, as FQL does it: one wandb run per seed (of one task), all in one group, each
    with the run's flags and config and its seed, metrics under the same keys as the CSV logs.

    Only used when asked for (`--wandb`; main.py checks `wandb_problem` first). The seeds of a task train together in
    one process, so their runs are open together: `reinit='create_new'` (wandb >= 0.19.10) keeps the earlier ones
    open. A failing `wandb.init` raises WandbError with the remedy.

    Resumes: each seed's run is opened by its id (`run_ids[s]`) with `resume='allow'`, so a process resumed with
    `--resume` (after a preemption, say) continues the same wandb run instead of opening a new one. A resumed process
    redoes the updates after its last checkpoint; the rows of each log (`'train'`, `'eval'`) up to the last step the
    killed process wrote to it (`logged_through[s][log]`) are already in the wandb run and are not sent again, since
    wandb refuses steps that go back. (For the same reason wandb refuses an evaluation whose step already has the
    killed process's training row, if the kill came during that evaluation; the CSV logs always hold it.)
    """

    def __init__(self, settings: WandbSettings, task: str, seeds: list[int], metadata: dict[str, Any],
                 run_ids: list[str] | None = None, logged_through: list[dict[str, int | None]] | None = None):
        try:
            import wandb
        except ImportError as error:
            raise WandbError('--wandb was given but the wandb package is not installed: pip install wandb, or drop '
                             '--wandb') from error
        self._runs: list[Any] = []
        self._logged_through = logged_through or [{} for _ in seeds]
        try:
            for s, seed in enumerate(seeds):
                identity = dict(id=run_ids[s], resume='allow') if run_ids else {}
                self._runs.append(wandb.init(project=settings.project, entity=settings.entity, group=settings.group,
                                             name=wandb_run_name(settings.group, task, seed), job_type=task,
                                             config=dict(metadata, seed=seed, task=task), reinit='create_new',
                                             **identity))
        except Exception as error:  # wandb.errors.UsageError / CommError: no key, no network, bad project, ...
            self.close()  # the seeds' runs already opened
            message = ' '.join(f'{type(error).__name__}: {error}'.split())
            raise WandbError(f'wandb.init failed ({message}): {WANDB_REMEDY}') from error

    def log(self, step: int, seed_index: int, values: dict[str, Any], log: str = 'train') -> None:
        """Logs one seed's row of one CSV log (`'train'` or `'eval'`, the row of that step) to that seed's run,
        unless an earlier process of a resumed run logged that row already."""
        logged_through = self._logged_through[seed_index].get(log)
        if logged_through is not None and step <= logged_through:
            return
        plain = {key: value.item() if hasattr(value, 'item') else value for key, value in values.items()}
        self._runs[seed_index].log(plain, step=step)

    def close(self) -> None:
        """Finishes every seed's run."""
        for run in self._runs:
            run.finish()
        self._runs = []
