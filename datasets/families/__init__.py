"""Environment families: the one place that decides what kind of task a name is, and what that kind needs.

A family is one module of this package defining `FAMILY`, an instance of a `Family` subclass (found by listing the
package, as agents/ finds its agents; nothing else lists them):
- `ogbench`: OGBench single-task envs observed as states (`cube-double-play-singletask-task2-v0`), the default
  family: it takes every name no other family claims, and its name checks give the errors for unknown names;
- `ogbench_visual`: the same manipulation tasks observed as 64x64x3 frames (`visual-...`);
- `d4rl`: the papers' 18 D4RL tasks through Minari (`antmaze-umaze-v2`, `pen-cloned-v1`).

    family = family_of('antmaze-umaze-v2')       # the D4RL family
    family.metric_key, family.unit                # 'evaluation/score', 'D4RL normalised, ×100'
    family.environment_of('antmaze-umaze-v2')     # the environment its score is averaged in

Each family answers, for its task names: which names are its own and how a family spec expands (`claims`,
`expand`); where a task's score is averaged and listed (`environment_of`, `benchmark`, `short_name`); data
(`ensure_data`, then `load`); the evaluation env
(`make_env`); the scoring rule (`metric`, `metric_key`, `unit`, `return_to_score`); the default budget
(`default_offline_steps`); frames (`observes_frames`: only such families take `--frame_stack`/`--p_aug`) and whether
an online phase is possible (`supports_online`). main.py, configs.py and the training loop ask the family; none of
them tests a name for 'visual-' or D4RL.

Looking a family up imports neither JAX, MuJoCo nor OGBench: the family modules import those inside the methods
that need them, so the sweep and the report can call `family_of` on a login node.
"""

import abc
import dataclasses
import functools
import importlib
import pkgutil
from typing import Any, Callable

import numpy as np

Dataset = dict[str, np.ndarray]  # a numpy split: transitions (or frames) as `datasets.ogbench_data` documents


@dataclasses.dataclass(frozen=True)
class FrameSettings:
    """How a frame-observing task's observations are built (FQL's run flags of the same names).

    frame_stack: frames per observation, stacked along channels ((H, W, 3·k)); 1 = no stacking.
    p_aug: probability that a training batch gets FQL's random-shift augmentation; 0 = never.
    Tasks observed as states take only the defaults.
    """

    frame_stack: int = 1
    p_aug: float = 0.0


FRAME_KEYS = tuple(field.name for field in dataclasses.fields(FrameSettings))  # ('frame_stack', 'p_aug')


class Family(abc.ABC):
    """One environment family. Subclasses set the class attributes and implement the abstract methods."""

    name: str  # the family's name, e.g. 'ogbench' (the module's name)
    benchmark: str  # the results table its tasks go in: 'OGBench', 'D4RL'
    metric: str  # the per-evaluation metric the console and eval.csv report, `evaluation/<metric>`: 'success', 'score'
    metric_key: str  # the final.json key of each seed's reported result ('evaluation/success_last3', ...)
    unit: str  # the unit of both, e.g. 'fraction' (success in [0, 1]) or 'D4RL normalised, ×100'
    default_offline_steps: int  # offline updates when --offline_steps is not given (the papers' budget)
    # The papers' offline budget before an online phase, where it differs from `default_offline_steps`.
    default_offline_steps_before_online: int | None = None
    observes_frames: bool = False  # observations are image frames: frame settings and pixel encoders apply
    supports_online: bool = True  # an online phase (--online_steps) is possible
    default: bool = False  # takes the names no other family claims (exactly one family sets it)

    def offline_budget(self, online: bool) -> int:
        """Offline updates when --offline_steps is not given, for an offline run or (`online`) one followed by an
        online phase."""
        if online and self.default_offline_steps_before_online is not None:
            return self.default_offline_steps_before_online
        return self.default_offline_steps

    @abc.abstractmethod
    def claims(self, name: str) -> bool:
        """Whether `name` (a task, or a spec that `expand` turns into tasks) is this family's, by its form alone:
        a claimed name may still be invalid (`expand` says why)."""

    @abc.abstractmethod
    def expand(self, entry: str) -> list[str]:
        """The task names of one --env_name entry (a task, or a family spec such as `cube-double-play-singletask` =
        its five tasks), validated; ValueError naming close valid names otherwise."""

    @abc.abstractmethod
    def environment_of(self, task: str) -> str:
        """The environment whose tasks' scores are averaged together (`cube-double-play` for its five tasks); a task
        reported alone is its own environment."""

    def short_name(self, task: str) -> str:
        """The task's name under its environment's heading in a results table ('task2'); a task that is its own
        environment keeps its name."""
        return task

    def check_installed(self, task: str) -> None:
        """Raises ImportError saying what to install when the family needs optional packages that are missing."""

    @abc.abstractmethod
    def ensure_data(self, task: str, dataset_dir: str, generate_missing_episodes: int | None = None,
                    generate_workers: int = 1, show_progress: bool = True, download: bool = False) -> None:
        """Makes sure the task's data is on disk: there already, downloaded (`download`: main.py's
        --download_missing_data), or (where the family can) generated (`generate_missing_episodes` train episodes;
        None: never generate). Raises `DatasetError` naming the files and the remedy."""

    @abc.abstractmethod
    def load(self, task: str, dataset_dir: str) -> tuple[Dataset, Dataset | None]:
        """(train, validation or None) numpy splits of the task's data, validated (`ensure_data` first)."""

    @abc.abstractmethod
    def make_env(self, task: str, frame_stack: int = 1, online: bool = False) -> Any:
        """A gymnasium env of the task: for evaluation, or with `online` for the online phase (whose rewards may
        follow the training data's convention); observations stack `frame_stack` frames (frame families)."""

    def return_to_score(self, task: str) -> Callable[[np.ndarray], np.ndarray] | None:
        """Episode returns (E,) -> the task's scores (E,) when the family's metric is a score of the return; None
        when it reports the env's success."""
        return None

    def data_files(self, task: str, dataset_dir: str) -> list[str]:
        """The files a run of the task reads from `dataset_dir`, for a check before jobs are queued ([] for a family
        whose data lives in its own store)."""
        return []

    def provenance(self, task: str, dataset_dir: str) -> dict[str, Any]:
        """What flags.json records about the task's data: where it came from, its files' sizes and md5 (OGBench),
        or D4RL's Minari ids."""
        return {}


@functools.cache
def families() -> tuple[Family, ...]:
    """Every family, by module name: the modules of this package that define `FAMILY`."""
    found = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f'{__name__}.{module_info.name}')
        family = getattr(module, 'FAMILY', None)
        if isinstance(family, Family):
            found.append(family)
    defaults = [family.name for family in found if family.default]
    if len(defaults) != 1:
        raise RuntimeError(f'exactly one environment family must be the default, found {defaults or "none"}')
    return tuple(found)


def family_of(name: str) -> Family:
    """The family of a task name (or of a family spec such as `cube-double-play-singletask`): the one family that
    claims it, else the default family (OGBench states), whose checks name the problem when the name is invalid."""
    claiming = [family for family in families() if not family.default and family.claims(name)]
    if len(claiming) > 1:
        raise RuntimeError(f'{name!r} is claimed by several environment families: '
                           f'{", ".join(family.name for family in claiming)}')
    return claiming[0] if claiming else next(family for family in families() if family.default)


def expand_env_names(spec: str) -> list[str]:
    """The tasks of an --env_name value, in order and without duplicates: one name, a family spec (its tasks), or a
    comma-separated list of those, each entry expanded and validated by its family (ValueError naming the
    problem)."""
    entries = [entry.strip() for entry in spec.split(',')]
    if not spec.strip() or any(not entry for entry in entries):
        raise ValueError(f'Empty entry in env_name {spec!r}; expected a name, a family, or a comma-separated list.')
    tasks: list[str] = []
    for entry in entries:
        tasks += [task for task in family_of(entry).expand(entry) if task not in tasks]
    return tasks


def mujoco_gl(argv: list[str]) -> str:
    """The MUJOCO_GL a process needs for these command-line arguments: 'egl' if one of them names a task of a family
    observed as frames (rendered every step: EGL uses a GPU where there is one, software otherwise), else 'disable'
    (state tasks never render; without a choice dm_control, imported by OGBench, would probe OpenGL backends and
    GLFW warn on machines without a display)."""
    words = [word for arg in argv for word in arg.split('=', 1)[-1].split(',')]
    return 'egl' if any(family_of(word.strip()).observes_frames for word in words if word.strip()) else 'disable'
