"""The grammar of task names: OGBench single-task names (state-based, and visual for the manipulation suites),
the paper's D4RL names, and task-family expansion.

A single-task name is `<suite>-<dataset kind>-singletask[-task<k>]-v0`, e.g.
`cube-single-play-singletask-task2-v0`. OGBench derives two other names from it:
- the dataset file stem drops `singletask` and `task<k>`: `cube-single-play-v0`
  (files `cube-single-play-v0.npz` and `cube-single-play-v0-val.npz`);
- the gymnasium env id drops the dataset kind: `cube-single-singletask-task2-v0`.
Without `-task<k>` OGBench uses a default task (`DEFAULT_TASKS`).

Visual tasks prefix all three names with `visual-` (`visual-cube-single-play-singletask-task1-v0` reads
`visual-cube-single-play-v0.npz`, env `visual-cube-single-singletask-task1-v0`): the same tasks observed
as 64x64x3 uint8 frames. mfql supports them for the manipulation suites (`VISUAL_SUITES`).

A *family* is a name without the task and version, e.g. `cube-double-play-singletask`,
and stands for its five tasks. This module is pure Python (no jax/ogbench import), so
`configs.py` and the command line can use it cheaply. It is the grammar only: which kind of task a name is
(OGBench states, OGBench frames, D4RL) and what that kind needs is `datasets.families`' decision.

The paper's 18 D4RL names are `antmaze-<dataset>-v2` (AntMaze) and `<hand task>-<dataset>-v1`
(Adroit), e.g. `antmaze-umaze-v2`, `pen-cloned-v1`; `datasets.d4rl` maps each to its Minari dataset
and evaluation env, which need the optional D4RL extra only when their data or envs are used.
`configs.py` keys the D4RL presets by the name without its version (`d4rl_stem`).
"""

import dataclasses
import difflib
import re

NUM_TASKS = 5

# Manipulation suites: datasets collected by scripted oracles that ship with `ogbench`, so they
# can be generated locally (`datasets.generate`).
MANIPULATION_DATASET_KINDS = ('play', 'noisy')
MANIPULATION_SUITES = (
    'cube-single', 'cube-double', 'cube-triple', 'cube-quadruple',
    'scene',
    'puzzle-3x3', 'puzzle-4x4', 'puzzle-4x5', 'puzzle-4x6',
)

# Suites whose visual variant (`visual-<suite>`) mfql supports: the manipulation ones (generable locally).
VISUAL_SUITES = MANIPULATION_SUITES
VISUAL_PREFIX = 'visual-'

# Locomotion suites and the dataset kinds OGBench publishes for each. Their datasets were
# collected with pretrained expert policies that are not in the package: download only.
LOCOMOTION_DATASET_KINDS = {
    'pointmaze-medium': ('navigate', 'stitch'),
    'pointmaze-large': ('navigate', 'stitch'),
    'pointmaze-giant': ('navigate', 'stitch'),
    'pointmaze-teleport': ('navigate', 'stitch'),
    'antmaze-medium': ('navigate', 'stitch', 'explore'),
    'antmaze-large': ('navigate', 'stitch', 'explore'),
    'antmaze-giant': ('navigate', 'stitch'),
    'antmaze-teleport': ('navigate', 'stitch', 'explore'),
    'humanoidmaze-medium': ('navigate', 'stitch'),
    'humanoidmaze-large': ('navigate', 'stitch'),
    'humanoidmaze-giant': ('navigate', 'stitch'),
    'antsoccer-arena': ('navigate', 'stitch'),
    'antsoccer-medium': ('navigate', 'stitch'),
}

# The task OGBench evaluates when a name has no `-task<k>` suffix (set inside each ogbench env).
DEFAULT_TASKS = {
    'cube': 2, 'scene': 2, 'puzzle-3x3': 4, 'puzzle-4x4': 4, 'puzzle-4x5': 2, 'puzzle-4x6': 2,
    'pointmaze': 1, 'antmaze': 1, 'humanoidmaze': 1, 'antsoccer': 4,
}

# The paper's D4RL tasks: antmaze-<dataset>-v2 and <hand task>-<dataset>-v1.
D4RL_ANTMAZE_DATASETS = ('umaze', 'umaze-diverse', 'medium-play', 'medium-diverse', 'large-play', 'large-diverse')
D4RL_ADROIT_TASKS = ('pen', 'door', 'hammer', 'relocate')
D4RL_ADROIT_DATASETS = ('human', 'cloned', 'expert')

_NAME_PATTERN = re.compile(r'^(?P<stem>[a-z0-9x-]+?)-singletask(?:-task(?P<task>\d+))?-v0$')
_FAMILY_PATTERN = re.compile(r'^(?P<stem>[a-z0-9x-]+?)-singletask$')


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """A parsed single-task name.

    Attributes:
      name: the full single-task name as given.
      suite: e.g. 'cube-single', 'antmaze-large'.
      dataset_kind: 'play' / 'noisy' (manipulation) or 'navigate' / 'stitch' / 'explore'.
      task: the task number given in the name, or None for OGBench's default task.
      is_manipulation: True for the suites whose datasets can be generated locally.
      dataset_name: OGBench's dataset file stem, e.g. 'cube-single-play-v0'.
      env_name: the gymnasium id OGBench builds the env from, e.g. 'cube-single-singletask-task2-v0'.
      visual: True for `visual-` names (observations are 64x64x3 uint8 frames); `suite` then has no prefix.
    """

    name: str
    suite: str
    dataset_kind: str
    task: int | None
    is_manipulation: bool
    dataset_name: str
    env_name: str
    visual: bool = False

    @property
    def effective_task(self) -> int:
        """The task actually evaluated: the explicit one, or OGBench's default for this suite."""
        if self.task is not None:
            return self.task
        # Puzzle sizes differ in their default; other suites share one per first word.
        return DEFAULT_TASKS.get(self.suite, DEFAULT_TASKS.get(self.suite.split('-')[0]))

    @property
    def family(self) -> str:
        """The family name, e.g. 'cube-single-play-singletask' (or 'visual-cube-single-play-singletask')."""
        return f'{self.prefix}{self.suite}-{self.dataset_kind}-singletask'

    @property
    def environment(self) -> str:
        """The environment the task's score is averaged in: `cube-double-play` (`visual-cube-double-play`)."""
        return f'{self.prefix}{self.suite}-{self.dataset_kind}'

    @property
    def prefix(self) -> str:
        """'visual-' for visual names, else ''."""
        return VISUAL_PREFIX if self.visual else ''


def _suite_kinds() -> list[tuple[str, str]]:
    pairs = [(suite, kind) for suite in MANIPULATION_SUITES for kind in MANIPULATION_DATASET_KINDS]
    pairs += [(suite, kind) for suite, kinds in LOCOMOTION_DATASET_KINDS.items() for kind in kinds]
    return pairs


def _visual_suite_kinds() -> list[tuple[str, str]]:
    return [(suite, kind) for suite in VISUAL_SUITES for kind in MANIPULATION_DATASET_KINDS]


def singletask_families() -> list[str]:
    """Every valid family name, e.g. 'cube-single-play-singletask', 'visual-cube-single-play-singletask'."""
    return ([f'{suite}-{kind}-singletask' for suite, kind in _suite_kinds()]
            + [f'{VISUAL_PREFIX}{suite}-{kind}-singletask' for suite, kind in _visual_suite_kinds()])


def singletask_env_names() -> list[str]:
    """Every valid single-task name, state-based and visual (default-task names and task1..5)."""
    names = []
    for family in singletask_families():
        names.append(f'{family}-v0')
        names += [f'{family}-task{k}-v0' for k in range(1, NUM_TASKS + 1)]
    return names


def unsupported_reason(name: str) -> str | None:
    """Why a real OGBench name that is not a supported single-task name is not supported, else None.

    OGBench also publishes visual (pixel) variants of the locomotion envs, goal-conditioned envs
    (`<suite>-<dataset kind>-v0`, also with `-oraclerep`) and the pixel-based powderworld suite; mfql trains
    single-task agents, from states or (manipulation suites) from frames.
    """
    if name.startswith(VISUAL_PREFIX):
        state_based = name[len(VISUAL_PREFIX):]
        if _is_goal_conditioned(state_based):
            return f'OGBench env {name!r} is not supported: it is visual (pixel-based) and goal-conditioned.'
        if state_based in singletask_families() or state_based in singletask_env_names():
            return (f'OGBench task {name!r} is not supported: mfql supports visual tasks of the manipulation suites '
                    f'({", ".join(VISUAL_SUITES)}) only; the state-based task is {state_based!r}.')
    if _is_goal_conditioned(name):
        family = name.removesuffix('-v0').removesuffix('-oraclerep') + '-singletask'
        return (f'OGBench env {name!r} is not supported: it is goal-conditioned, and mfql trains single-task '
                f'offline RL; use {family}-task<k>-v0 (k = 1..{NUM_TASKS}) or the family {family}.')
    if re.match(r'^powderworld-[a-z]+-play(-oraclerep)?-v0$', name):
        return f'OGBench env {name!r} is not supported: powderworld is pixel-based and goal-conditioned.'
    return None


def _is_goal_conditioned(name: str) -> bool:
    """OGBench's goal-conditioned env names: `<suite>-<dataset kind>-v0` and `<suite>-<dataset kind>-oraclerep-v0`."""
    stem = name.removesuffix('-v0').removesuffix('-oraclerep')
    return name.endswith('-v0') and stem in [f'{suite}-{kind}' for suite, kind in _suite_kinds()]


def _unknown(name: str, what: str, candidates: list[str]) -> ValueError:
    reason = unsupported_reason(name)
    if reason is not None:
        return ValueError(reason)
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    hint = f' Close valid names: {", ".join(close)}.' if close else (
        ' Valid names look like cube-single-play-singletask-task2-v0 or antmaze-large-navigate-singletask-v0.')
    return ValueError(f'Unknown OGBench {what} {name!r}.{hint}')


def parse_env_name(name: str) -> EnvSpec:
    """Parses an OGBench single-task name (state-based, or visual); raises ValueError with close valid names."""
    match = _NAME_PATTERN.match(name)
    if match is None:
        raise _unknown(name, 'single-task env name', singletask_env_names())
    stem, task = match['stem'], match['task']
    visual = stem.startswith(VISUAL_PREFIX)
    stem = stem.removeprefix(VISUAL_PREFIX)
    for suite, kind in (_visual_suite_kinds() if visual else _suite_kinds()):
        if stem == f'{suite}-{kind}':
            break
    else:
        raise _unknown(name, 'single-task env name', singletask_env_names())
    if task is not None and not 1 <= int(task) <= NUM_TASKS:
        raise ValueError(f'Unknown OGBench task in {name!r}: tasks are task1..task{NUM_TASKS}.')
    task_suffix = '' if task is None else f'-task{task}'
    prefix = VISUAL_PREFIX if visual else ''
    return EnvSpec(
        name=name,
        suite=suite,
        dataset_kind=kind,
        task=None if task is None else int(task),
        is_manipulation=suite in MANIPULATION_SUITES,
        dataset_name=f'{prefix}{suite}-{kind}-v0',
        env_name=f'{prefix}{suite}-singletask{task_suffix}-v0',
        visual=visual,
    )


def parse_dataset_name(name: str) -> tuple[str, str]:
    """Parses a dataset file stem such as 'cube-single-play-v0' into (suite, dataset kind); a visual stem
    ('visual-cube-single-play-v0') gives the same pair (see `is_visual`)."""
    stem = name.removeprefix(VISUAL_PREFIX)
    for suite, kind in (_visual_suite_kinds() if stem != name else _suite_kinds()):
        if stem == f'{suite}-{kind}-v0':
            return suite, kind
    candidates = [f'{s}-{k}-v0' for s, k in _suite_kinds()] + [f'{VISUAL_PREFIX}{s}-{k}-v0'
                                                                for s, k in _visual_suite_kinds()]
    raise _unknown(name, 'dataset name', candidates)


def is_visual(name: str) -> bool:
    """True for visual names (task, family or dataset stem): they start with 'visual-'."""
    return name.startswith(VISUAL_PREFIX)


def d4rl_env_names() -> list[str]:
    """The 18 D4RL names of the paper: the six AntMaze ones, then the twelve Adroit ones."""
    return ([f'antmaze-{dataset}-v2' for dataset in D4RL_ANTMAZE_DATASETS]
            + [f'{hand}-{dataset}-v1' for hand in D4RL_ADROIT_TASKS for dataset in D4RL_ADROIT_DATASETS])


def d4rl_stem(name: str) -> str | None:
    """'antmaze-umaze-v2' -> 'antmaze-umaze', 'pen-human-v1' -> 'pen-human'; None if not a D4RL name."""
    return name.rsplit('-', 1)[0] if is_d4rl_name(name) else None


def is_d4rl_name(name: str) -> bool:
    """True for the 18 D4RL names of the paper (e.g. 'antmaze-umaze-v2', 'pen-human-v1')."""
    return name in d4rl_env_names()


def environment_of(task: str) -> str:
    """The environment a task's score is averaged in; `datasets.families` owns the rule (each family's
    `environment_of`). Kept here for the callers that import it from `names` (training/summary.py, report.py)."""
    from datasets.families import family_of
    return family_of(task).environment_of(task)


def looks_like_d4rl_name(name: str) -> bool:
    """True for names that are probably meant as D4RL (antmaze-...-v<k> without 'singletask', or Adroit)."""
    first = name.split('-')[0]
    return (first in D4RL_ADROIT_TASKS) or (first == 'antmaze' and 'singletask' not in name
                                            and not name.endswith('-v0'))


def check_d4rl_name(name: str) -> str:
    """`name` if it is one of the paper's D4RL names; ValueError naming close valid names otherwise."""
    valid = d4rl_env_names()
    if name in valid:
        return name
    close = difflib.get_close_matches(name, valid, n=5, cutoff=0.6)
    hint = f' Close valid names: {", ".join(close)}.' if close else f' Valid names: {", ".join(valid)}.'
    raise ValueError(f'Unknown D4RL task name {name!r}.{hint}')


def is_family_spec(name: str) -> bool:
    """True for names of the form of a task family, `<suite>-<dataset kind>-singletask` (valid or not)."""
    return _FAMILY_PATTERN.match(name) is not None


def expand_singletask_entry(entry: str) -> list[str]:
    """One OGBench entry of --env_name as single-task names: a family (e.g. `cube-double-play-singletask`) gives its
    five tasks, task1..task5; a single-task name gives itself. Both are validated (ValueError with close names)."""
    if is_family_spec(entry):
        if entry not in singletask_families():
            raise _unknown(entry, 'task family', singletask_families())
        return [f'{entry}-task{k}-v0' for k in range(1, NUM_TASKS + 1)]
    return [parse_env_name(entry).name]


def expand_env_names(spec: str) -> list[str]:
    """The tasks of an --env_name value; `datasets.families.expand_env_names` owns the rule (each family expands its
    own entries). Kept here for the callers that import it from `names` (sweep.py)."""
    from datasets.families import expand_env_names
    return expand_env_names(spec)
