"""Per-task hyperparameter presets for FQL and MeanFlowQL (and FQL's baselines ReBRAC, IQL and IFQL), and the
paper's exact command grid. Presets are optional: an agent with none here (`PRESET_AGENTS`) trains with its
get_config defaults, and its runs record "no presets" in flags.json.

    python configs.py                              # the OGBench grid: 10 envs x 5 tasks + 5 visual tasks, x both agents
    python configs.py --agents=fql --num_seeds=4   # one agent, 4 seeds per command (--seed=0 ... 3)
    python configs.py --seeds=0,1,2                # these seeds (as main.py: --seeds is a list, --num_seeds a count)
    python configs.py --agents=rebrac,iql,ifql     # FQL's baselines on the same grid (unpublished α: '# unpublished')
    python configs.py --agents=myagent             # any agent in agents/ (no presets: the commands set no keys)
    python configs.py --env_name=cube-single-play-singletask --agents=fql,rebrac   # these tasks, each preset's source

Every preset value carries its source, recorded in each run's flags.json:
  [FQL README]  seohongpark/fql README, "exact command-line flags" (the same flags for all 5 tasks of an env;
                offline-to-online (O2O) rows were run on the env's default task).
  [MF README]   HiccupRL/MeanFlowQL README example commands (primary source, two rows only).
  [2nd]         MeanFlowQL paper Tables 6/7 as quoted by third-party documentation. Unverified.
  unknown: ...  no published value; the documented fallback is the agent's own default.

MeanFlowQL's α is NOT FQL's α: in MeanFlowQL it weights the MeanFlow-identity (BC) loss, with the Q term at
weight 1; in FQL it weights the distillation loss of a separate one-step policy. The losses have different
scales, so FQL's per-env α is never used as a MeanFlowQL fallback; unknown MeanFlowQL α falls back to the
authors' get_config default (α₀ = 10) and says so.

The [2nd] Table 7 rows quote one task per environment (task1, or task2 for cube-double).
FQL tunes per environment, so those values are applied to all five tasks of the env, with a source string
saying so. Env names without `-taskN` use OGBench's default task (`datasets.names.EnvSpec.effective_task`).

The presets of a task depend on its environment family (`datasets.families`: OGBench states, OGBench frames, D4RL):
`PRESET_RULES` holds one rule per (agent, family). Frame settings (`frame_stack`, `p_aug`) are main.py's run flags;
the visual presets set them through the agent config keys of the same names, which alias the flags.

This module imports no jax/ogbench (main.py imports it before building anything).
"""

import argparse
from typing import Any, Callable, Collection

import ml_collections

from datasets import names
from datasets.families import FRAME_KEYS, expand_env_names, family_of

Preset = dict[str, tuple[Any, str]]  # config key -> (value, source)

NO_PRESETS = 'no presets'  # flags.json's `presets` for an agent not in PRESET_AGENTS
PAPER_GRID_AGENTS = ('mfql', 'fql')  # the default of `paper_commands` and the CLI: the agents with published flags
FQL_SRC = '[FQL README]'
MF_SRC = '[MF README]'
T7_SRC = '[2nd] MeanFlowQL Table 7 (third-party quote, unverified)'
T6_SRC = '[2nd] MeanFlowQL Table 6 (third-party quote, unverified)'

# The OGBench state-based grid of FQL and MeanFlowQL: 10 envs x task1..5.
PAPER_OGBENCH_FAMILIES = (
    'antmaze-large-navigate-singletask', 'antmaze-giant-navigate-singletask',
    'humanoidmaze-medium-navigate-singletask', 'humanoidmaze-large-navigate-singletask',
    'antsoccer-arena-navigate-singletask',
    'cube-single-play-singletask', 'cube-double-play-singletask', 'scene-play-singletask',
    'puzzle-3x3-play-singletask', 'puzzle-4x4-play-singletask',
)
# The five visual OGBench tasks of the paper (task1 each), run with FQL's protocol (their family's budget, 500K).
PAPER_VISUAL_TASKS = tuple(f'visual-{env}-singletask-task1-v0' for env in (
    'cube-single-play', 'cube-double-play', 'scene-play', 'puzzle-3x3-play', 'puzzle-4x4-play'))
# Each task's offline budget is its family's `default_offline_steps` (1M OGBench states; 500K frames and D4RL, as
# FQL and [2nd] MeanFlowQL Appendix D); before an online phase D4RL's is 1M (`Family.offline_budget`).

# Fallbacks = the agents' get_config defaults (tests check they agree), used where nothing is published.
FQL_DEFAULT_ALPHA = 10.0
MFQL_DEFAULT_ALPHA = 10.0

# --------------------------------------------------------------------------------------------- FQL
# Offline OGBench, per (suite, dataset kind); the same for all 5 tasks.
FQL_OGBENCH_OFFLINE: dict[tuple[str, str], dict[str, Any]] = {
    ('antmaze-large', 'navigate'): dict(alpha=10.0, q_agg='min'),
    ('antmaze-giant', 'navigate'): dict(alpha=10.0, discount=0.995, q_agg='min'),
    ('humanoidmaze-medium', 'navigate'): dict(alpha=30.0, discount=0.995),
    ('humanoidmaze-large', 'navigate'): dict(alpha=30.0, discount=0.995),
    ('antsoccer-arena', 'navigate'): dict(alpha=10.0, discount=0.995),
    ('cube-single', 'play'): dict(alpha=300.0),
    ('cube-double', 'play'): dict(alpha=300.0),
    ('scene', 'play'): dict(alpha=300.0),
    ('puzzle-3x3', 'play'): dict(alpha=1000.0),
    ('puzzle-4x4', 'play'): dict(alpha=1000.0),
}
# Visual OGBench (task1, 500K offline steps): α per environment, and FQL's pixel settings for every visual task.
FQL_VISUAL_OFFLINE: dict[tuple[str, str], dict[str, Any]] = {
    ('cube-single', 'play'): dict(alpha=300.0),
    ('cube-double', 'play'): dict(alpha=100.0),
    ('scene', 'play'): dict(alpha=100.0),
    ('puzzle-3x3', 'play'): dict(alpha=300.0),
    ('puzzle-4x4', 'play'): dict(alpha=300.0),
}
VISUAL_SETTINGS = dict(encoder='impala_small', p_aug=0.5, frame_stack=3)
# Offline-to-online OGBench (1M + 1M), run on the default task.
FQL_OGBENCH_O2O: dict[tuple[str, str], dict[str, Any]] = {
    ('humanoidmaze-medium', 'navigate'): dict(alpha=100.0, discount=0.995),
    ('antsoccer-arena', 'navigate'): dict(alpha=30.0, discount=0.995),
    ('cube-double', 'play'): dict(alpha=300.0),
    ('scene', 'play'): dict(alpha=300.0),
    ('puzzle-4x4', 'play'): dict(alpha=1000.0),
}
# D4RL (500K offline steps): antmaze-* (v2) and Adroit (v1), keyed by the name without its version.
FQL_D4RL_OFFLINE: dict[str, dict[str, Any]] = {
    **{f'antmaze-{m}': dict(alpha=10.0) for m in ('umaze', 'umaze-diverse', 'medium-play', 'medium-diverse')},
    **{f'antmaze-{m}': dict(alpha=3.0) for m in ('large-play', 'large-diverse')},
    **{name: dict(alpha=alpha, q_agg='min') for name, alpha in {
        'pen-human': 10000.0, 'pen-cloned': 10000.0, 'pen-expert': 3000.0,
        'door-human': 30000.0, 'door-cloned': 30000.0, 'door-expert': 30000.0,
        'hammer-human': 30000.0, 'hammer-cloned': 10000.0, 'hammer-expert': 30000.0,
        'relocate-human': 10000.0, 'relocate-cloned': 30000.0, 'relocate-expert': 30000.0,
    }.items()},
}
FQL_D4RL_O2O: dict[str, dict[str, Any]] = {
    **{f'antmaze-{m}': dict(alpha=10.0) for m in ('umaze', 'umaze-diverse', 'medium-play', 'medium-diverse')},
    **{f'antmaze-{m}': dict(alpha=3.0) for m in ('large-play', 'large-diverse')},
    **{f'{m}-cloned': dict(alpha=1000.0, q_agg='min') for m in ('pen', 'door', 'hammer')},
    'relocate-cloned': dict(alpha=10000.0, q_agg='min'),
}

# ---------------------------------------------------------------------------------------- MeanFlowQL
# N (best-of-N candidates) is one number in the authors' code, used both at evaluation and in the Bellman
# target, so it sets both of our keys. time_steps T: t = k/T on a grid for T <= 1000, continuous otherwise.
def _mf(alpha: float | None = None, n: int | None = None, time_steps: int | None = None,
        discount: float | None = None) -> dict[str, Any]:
    values = dict(alpha=alpha, num_candidates_eval=n, num_candidates_target=n, time_steps=time_steps,
                  discount=discount)
    return {key: value for key, value in values.items() if value is not None}


# OGBench, per (suite, kind): (values, source, the task the source quotes or None if it names no task).
MFQL_OGBENCH_OFFLINE: dict[tuple[str, str], list[tuple[dict[str, Any], str, int | None]]] = {
    ('humanoidmaze-large', 'navigate'): [
        (_mf(alpha=6000.0, n=5, time_steps=50, discount=0.995),
         MF_SRC + ' offline example (the [2nd] Table 7 quote says α=10000)', 1)],
    ('humanoidmaze-medium', 'navigate'): [(_mf(alpha=150.0, n=5, time_steps=50), T7_SRC, 1)],
    ('cube-double', 'play'): [(_mf(alpha=120.0, n=5, time_steps=50), T7_SRC, 2)],
    ('antmaze-giant', 'navigate'): [(_mf(n=1), T7_SRC, None)],
    ('antsoccer-arena', 'navigate'): [(_mf(n=10), T7_SRC, 1)],
}
MFQL_OGBENCH_O2O: dict[tuple[str, str], list[tuple[dict[str, Any], str, int | None]]] = {
    ('humanoidmaze-medium', 'navigate'): [
        (_mf(alpha=2000.0, n=5, time_steps=100, discount=0.995), MF_SRC + ' offline-to-online example', 1)],
}
MFQL_OGBENCH_DISCOUNT = (0.995, T6_SRC + ': discount 0.995 for OGBench')
MFQL_D4RL_DISCOUNT = (0.99, T6_SRC + ': discount 0.99 for D4RL')
# D4RL rows of [2nd] Table 7. The same third party found these Adroit α far too large in its own O2O runs
# (door 1.9 at α=9000 vs ~90 at α=300-900): treat them as a starting point for a sweep.
MFQL_D4RL: dict[str, dict[str, Any]] = {
    'relocate-cloned': _mf(alpha=10000.0, n=5, time_steps=50),
    'pen-cloned': _mf(alpha=10000.0, n=5, time_steps=100),
    'hammer-cloned': _mf(alpha=11000.0, n=5, time_steps=100),
    'door-cloned': _mf(alpha=9000.0, n=5, time_steps=50),
    'antmaze-umaze': _mf(alpha=100.0, n=5, time_steps=10000),
    'antmaze-umaze-diverse': _mf(alpha=130.0, n=5, time_steps=100),
    'antmaze-medium-play': _mf(alpha=10.0, n=5, time_steps=50),
    'antmaze-medium-diverse': _mf(alpha=50.0, n=5, time_steps=50),
    'antmaze-large-play': _mf(alpha=10.0, n=5, time_steps=100),
}

# ------------------------------------------------------------------------------ FQL's baselines
# Every published per-environment value of the baselines, with its source (research notes: /work/research/published.md).
# FQL's README gives baseline flags for humanoidmaze-medium-navigate (offline; the same flags offline-to-online, both
# on the default task) and visual-cube-single (task1); the value-flows README (chongyi-zheng/value-flows README.md @
# 817b01a1, "version A"; its later copy hongjia-chen/value-flows @ 2242da31 agrees) gives cube-triple-play and the
# visual tasks. Its older README (@ 1387cb9b, "version B") differs for some visual values: noted in the source.
# FQL's paper appendix holds the other environments' values; they are not transcribed (not found), so a run there
# must give the per-environment keys itself (`REQUIRED_BASELINE_KEYS`).
VF_SRC = '[value-flows README] chongyi-zheng/value-flows README.md @ 817b01a1'
BASELINE_PUBLISHED: dict[str, dict[str, tuple[dict[str, Any], str]]] = {
    'rebrac': {
        'humanoidmaze-medium-navigate': (dict(alpha_actor=0.01, alpha_critic=0.01, discount=0.995), FQL_SRC),
        'cube-triple-play': (dict(alpha_actor=0.03, alpha_critic=0.0, discount=0.995), VF_SRC),
        'visual-cube-single-play': (dict(alpha_actor=1.0, alpha_critic=0.0), FQL_SRC),
        'visual-cube-double-play': (dict(alpha_actor=0.1, alpha_critic=0.0, discount=0.995), VF_SRC),
        'visual-scene-play': (dict(alpha_actor=0.3, alpha_critic=0.01),
                              VF_SRC + ' (its older README @ 1387cb9b says alpha_actor=0.1)'),
        'visual-puzzle-3x3-play': (dict(alpha_actor=0.1, alpha_critic=0.003),
                                   VF_SRC + ' (its older README @ 1387cb9b says alpha_actor=0.3, alpha_critic=0.01)'),
    },
    'iql': {
        'humanoidmaze-medium-navigate': (dict(alpha=10.0, discount=0.995), FQL_SRC),
        'cube-triple-play': (dict(alpha=10.0, discount=0.995), VF_SRC),
        'visual-cube-single-play': (dict(alpha=1.0), FQL_SRC),
        'visual-cube-double-play': (dict(alpha=0.3, discount=0.995), VF_SRC),
        'visual-scene-play': (dict(alpha=10.0), VF_SRC),
        'visual-puzzle-3x3-play': (dict(alpha=10.0), VF_SRC),
    },
    'ifql': {
        'humanoidmaze-medium-navigate': (dict(num_samples=32, discount=0.995), FQL_SRC),
        'cube-triple-play': (dict(num_samples=32, discount=0.995), VF_SRC),
        'visual-cube-single-play': (dict(num_samples=32), FQL_SRC),
        'visual-cube-double-play': (dict(num_samples=32, discount=0.995), VF_SRC),
        'visual-scene-play': (dict(num_samples=32), VF_SRC),
        'visual-puzzle-3x3-play': (dict(num_samples=32), VF_SRC),
    },
}
# The per-environment keys each baseline must have a published or explicit value for: a fallback would change the
# algorithm (ReBRAC with α = 0 is TD3 without behaviour regularisation; IQL's α sets how greedy the AWR actor is).
REQUIRED_BASELINE_KEYS: dict[str, tuple[str, ...]] = {'rebrac': ('alpha_actor', 'alpha_critic'), 'iql': ('alpha',)}
# IFQL's num_samples has a fallback: every published IFQL command (above) uses 32, its get_config default.
IFQL_SAMPLES_FALLBACK = (32, "unknown: no published IFQL flags for this environment; 32, the value of every "
                             "published IFQL command (FQL and value-flows READMEs) and the agent default")
# FQL on cube-triple-play (tasks 1-5), which FQL's README does not cover.
FQL_VALUE_FLOWS: dict[tuple[str, str], dict[str, Any]] = {('cube-triple', 'play'): dict(alpha=300.0, discount=0.995)}

def _with_source(values: dict[str, Any], source: str) -> Preset:
    return {key: (value, source) for key, value in values.items()}


def _ogbench_env(env_name: str) -> tuple[names.EnvSpec, str, tuple[str, str]]:
    """(spec, environment name, (suite, dataset kind)) of an OGBench task, for the preset tables."""
    spec = names.parse_env_name(env_name)
    return spec, spec.environment, (spec.suite, spec.dataset_kind)


def _fql_d4rl(env_name: str, online: bool) -> Preset:
    d4rl = names.d4rl_stem(env_name)
    if online and d4rl in FQL_D4RL_O2O:
        return _with_source(FQL_D4RL_O2O[d4rl], f'{FQL_SRC} O2O flags for {d4rl}')
    note = ' (no O2O row; offline flags)' if online else ''
    return _with_source(FQL_D4RL_OFFLINE[d4rl], f'{FQL_SRC} D4RL flags for {d4rl}{note}')


def _fql_visual(env_name: str, online: bool) -> Preset:
    _, env, key = _ogbench_env(env_name)
    presets = _with_source(VISUAL_SETTINGS, f"{FQL_SRC} pixel-task flags (the same for every visual task)")
    if key in FQL_VISUAL_OFFLINE:
        return presets | _with_source(FQL_VISUAL_OFFLINE[key], f'{FQL_SRC} offline flags for {env}')
    return presets | {'alpha': (FQL_DEFAULT_ALPHA, f'unknown: FQL published no flags for {env}; agent default α')}


def _fql_ogbench(env_name: str, online: bool) -> Preset:
    _, env, key = _ogbench_env(env_name)
    if online and key in FQL_OGBENCH_O2O:
        return _with_source(FQL_OGBENCH_O2O[key], f'{FQL_SRC} O2O flags for {env} (run on the default task)')
    if key in FQL_OGBENCH_OFFLINE:
        note = ' (no O2O row; offline flags)' if online else ''
        return _with_source(FQL_OGBENCH_OFFLINE[key], f'{FQL_SRC} offline flags for {env}{note}')
    if key in FQL_VALUE_FLOWS:
        note = ' (offline flags; its offline-to-online line for task1 uses the same)' if online else ''
        return _with_source(FQL_VALUE_FLOWS[key], f'{VF_SRC} fql flags for {env} (FQL\'s README has none){note}')
    return {'alpha': (FQL_DEFAULT_ALPHA, f'unknown: FQL published no flags for {env}; agent default α')}


def _mfql_unknown_alpha(env: str) -> tuple[float, str]:
    return (MFQL_DEFAULT_ALPHA, f'unknown: no published MeanFlowQL α for {env}; agent default α₀ (FQL α weights a '
                                'different loss, so it is not reused)')


def _mfql_d4rl(env_name: str, online: bool) -> Preset:
    d4rl = names.d4rl_stem(env_name)
    presets = {'discount': MFQL_D4RL_DISCOUNT}
    if d4rl in MFQL_D4RL:
        presets.update(_with_source(MFQL_D4RL[d4rl], T7_SRC))
    else:
        presets['alpha'] = _mfql_unknown_alpha(d4rl)
    return presets


def _mfql_visual(env_name: str, online: bool) -> Preset:
    """No published MeanFlowQL pixel settings: FQL's protocol, which the paper says it follows."""
    _, env, _ = _ogbench_env(env_name)
    presets: Preset = {'discount': MFQL_OGBENCH_DISCOUNT}
    presets |= _with_source(VISUAL_SETTINGS, f"{FQL_SRC} pixel-task flags (MeanFlowQL publishes none; the paper "
                                             "runs visual tasks with FQL's protocol)")
    presets['normalize_observations'] = (False, 'frames are not z-scored (the encoder scales them to [0, 1])')
    presets['alpha'] = _mfql_unknown_alpha(env)
    return presets


def _mfql_ogbench(env_name: str, online: bool) -> Preset:
    spec, env, key = _ogbench_env(env_name)
    task = spec.effective_task
    presets: Preset = {'discount': MFQL_OGBENCH_DISCOUNT}
    rows = MFQL_OGBENCH_O2O.get(key) if online else None
    rows = rows or MFQL_OGBENCH_OFFLINE.get(key, [])
    for values, source, quoted_task in rows:
        if online and key not in MFQL_OGBENCH_O2O:
            source += ' (offline value; no O2O value known)'
        if quoted_task is not None and quoted_task != task:
            source += f' (quoted for task{quoted_task}; assumed the same for task{task}, as FQL tunes per env)'
        presets.update(_with_source(values, source))
    if 'alpha' not in presets:
        presets['alpha'] = _mfql_unknown_alpha(env)
    return presets


def _baseline_environment(env_name: str) -> str:
    """The environment name of the baseline tables: 'humanoidmaze-medium-navigate', 'visual-scene-play', a D4RL stem."""
    family = family_of(env_name)
    if family.name == 'd4rl':
        return names.d4rl_stem(env_name)
    if family.name not in ('ogbench', 'ogbench_visual'):  # a family this file has no tables for
        return family.environment_of(env_name)
    spec = names.parse_env_name(env_name)
    return f"{'visual-' if spec.visual else ''}{spec.suite}-{spec.dataset_kind}"


def _baseline(agent_name: str) -> Callable[[str, bool], Preset]:
    """The presets of a baseline on any family: its published values, else FQL's discount for the environment (set by
    the task's horizon) and IFQL's fallback; the keys of `REQUIRED_BASELINE_KEYS` are left out when unknown, and
    `unpublished_required_keys` refuses the run unless they are given."""
    def presets(env_name: str, online: bool) -> Preset:
        env = _baseline_environment(env_name)
        frames: Preset = {}
        if family_of(env_name).name == 'ogbench_visual':  # every published pixel-task command carries these
            frames = _with_source(VISUAL_SETTINGS, f'{FQL_SRC} pixel-task flags (the same for every visual task and '
                                                   'agent)')
        if env in BASELINE_PUBLISHED[agent_name]:
            values, source = BASELINE_PUBLISHED[agent_name][env]
            if source == FQL_SRC:  # FQL's README runs its baselines on one task of each environment
                note = ' (run on one task; applied to all five, as FQL tunes per environment)'
                if online:
                    note += '; its offline-to-online example uses the same flags'
            else:  # value-flows gives one command for tasks 1-5, and no offline-to-online baseline commands
                note = ' (tasks 1-5)' + ('; no offline-to-online flags are published: the offline ones' if online
                                         else '')
            return frames | _with_source(values, f'{source} {agent_name} flags for {env}{note}')
        result: Preset = dict(frames)
        if agent_name == 'ifql':
            result['num_samples'] = IFQL_SAMPLES_FALLBACK
        if family_of(env_name).name != 'd4rl':
            spec = names.parse_env_name(env_name)
            discount = FQL_OGBENCH_OFFLINE.get((spec.suite, spec.dataset_kind), {}).get('discount')
            if discount is not None:
                result['discount'] = (discount, f"unknown for {agent_name}: the discount of FQL's own {FQL_SRC} flags "
                                                f"for {env} (the README's baseline examples use FQL's discount too)")
        return result
    return presets


def unpublished_required_keys(agent_name: str, env_name: str) -> dict[str, str]:
    """{key: message} for the keys of `REQUIRED_BASELINE_KEYS` that have no published value for this task's
    environment: a run must set them (command line or --presets_file). The message names the published values."""
    required = REQUIRED_BASELINE_KEYS.get(agent_name, ())
    if not required:
        return {}
    env = _baseline_environment(env_name)
    if env in BASELINE_PUBLISHED[agent_name]:
        return {}
    result = {}
    for key in required:
        known = '; '.join(f'{other} {_flag_value(values[key])}' for other, (values, _) in
                          BASELINE_PUBLISHED[agent_name].items() if key in values)
        result[key] = (f'{agent_name} has no published {key} for {env}: give --agent.{key}=VALUE (published values: '
                       f'{known}; sources in configs.BASELINE_PUBLISHED)')
    return result


def missing_required_line(agent_name: str, env_name: str, given_keys: Collection[str]) -> str | None:
    """The one line (without 'error: ') with which main.py and sweep.py refuse a run of `agent_name` on `env_name`
    whose per-environment key has no published value and is not in `given_keys` (set on the command line or by a
    presets file); None when nothing is missing."""
    for key, message in unpublished_required_keys(agent_name, env_name).items():
        if key not in given_keys:
            return f'{env_name}: {message}'
    return None


# The preset rule of each agent on each environment family (`datasets.families`): (task name, online) -> presets.
# A family without a rule for an agent gets no presets (the agent's get_config defaults).
PRESET_RULES: dict[str, dict[str, Callable[[str, bool], Preset]]] = {
    'mfql': {'ogbench': _mfql_ogbench, 'ogbench_visual': _mfql_visual, 'd4rl': _mfql_d4rl},
    'fql': {'ogbench': _fql_ogbench, 'ogbench_visual': _fql_visual, 'd4rl': _fql_d4rl},
    **{agent: {'ogbench': _baseline(agent), 'ogbench_visual': _baseline(agent), 'd4rl': _baseline(agent)}
       for agent in ('rebrac', 'iql', 'ifql')},
}
PRESET_AGENTS = tuple(PRESET_RULES)  # the agents this file has presets for


def get_presets(agent_name: str, env_name: str, online: bool = False) -> Preset:
    """{config key: (value, source)} for `agent_name` on one task; {} for an agent not in `PRESET_AGENTS`.

    `env_name` is one task name of any family (`datasets.families`: 'cube-single-play-singletask-task2-v0',
    'visual-...', 'antmaze-large-play-v2'), checked for every agent (ValueError naming the problem); `online`
    selects the offline-to-online values where published. For mfql, fql and ifql every result sets the
    per-environment keys (`alpha`; `num_samples` for ifql) to a published value or the documented fallback; for rebrac
    and iql an unpublished `alpha_actor`/`alpha_critic`/`alpha` is left out (`unpublished_required_keys`).
    """
    family = family_of(env_name)
    if family.expand(env_name) != [env_name]:  # an unknown name (or a family of tasks) is an error whatever the agent
        raise ValueError(f'{env_name!r} is a family of tasks; presets are per task')
    rule = PRESET_RULES.get(agent_name, {}).get(family.name)
    return rule(env_name, online) if rule is not None else {}


def presets_origin(agent_name: str) -> str:
    """Where the runs of `agent_name` take per-task presets from, for flags.json: this file, or `NO_PRESETS`."""
    if agent_name in PRESET_AGENTS:
        return 'configs.py (per-key sources in preset_sources)'
    return f"{NO_PRESETS}: configs.py has none for agent {agent_name!r}; its get_config defaults apply"


def apply_presets(config: ml_collections.ConfigDict, env_name: str, explicit_keys: Collection[str],
                  online: bool = False) -> tuple[ml_collections.ConfigDict, dict[str, str]]:
    """A copy of `config` with the task's presets applied, except keys set explicitly on the command line.

    Returns (config, record) where record maps each preset key to its source, or to 'command line' for
    explicit keys (with the preset that was overridden), for flags.json. A preset key missing from the
    agent config is a bug in this file or in the agent's get_config, and raises ValueError.
    """
    if 'agent_name' not in config:
        raise ValueError('agent config has no agent_name key; cannot choose presets')
    agent_name = config.agent_name
    presets = get_presets(agent_name, env_name, online)
    unknown = sorted(key for key in presets if key not in config)
    if unknown:
        raise ValueError(f'presets for agent {agent_name!r} on {env_name!r} name keys {unknown} that the agent config '
                         f'lacks (a bug in configs.py or in the agent get_config); config keys: {sorted(config)}')
    explicit = set(explicit_keys)
    new_config = config.copy_and_resolve_references()
    record = {}
    for key, (value, source) in presets.items():
        if key in explicit:
            record[key] = f'command line (preset {value!r} from {source} not applied)'
        else:
            new_config[key] = value
            record[key] = source
    for key in sorted(explicit - set(presets)):
        record[key] = 'command line'
    return new_config, record


def _flag_value(value: Any) -> str:
    """Command-line text of a preset value: 300.0 -> '300', 0.995 -> '0.995'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def visual_agents() -> tuple[str, ...]:
    """The registered agents that train on tasks observed as frames: those whose get_config has an `encoder` key (read
    from the agent files' source, so no agent module, and no JAX, is imported)."""
    from agents import agent_file, config_key_comments, registered_agents
    with_encoder = []
    for name in registered_agents():
        with open(agent_file(name), encoding='utf-8') as f:
            if 'encoder' in config_key_comments(f.read()):
                with_encoder.append(name)
    return tuple(with_encoder)


def paper_commands(agents: Collection[str] = PAPER_GRID_AGENTS, num_seeds: int = 8,
                   seeds: Collection[int] | None = None) -> list[str]:
    """The exact commands of the paper's OGBench grid, presets written out: 10 state-based envs x task1..5
    (1M offline steps) and, for the agents with a pixel encoder (`visual_agents`), the five visual tasks
    (`PAPER_VISUAL_TASKS`, 500K), per agent; each budget is the task family's default. Frame settings are written as
    main.py's run flags (`--frame_stack`, `--p_aug`), as FQL writes them; other presets as `--agent.KEY`.

    One line per (agent, task); each line trains its seeds together: `num_seeds` of them (`--num_seeds`), or the
    explicit list `seeds` when given (`--seeds`), with main.py's meaning of both flags.
    """
    seed_flag = _seed_flag(agents, num_seeds, seeds)
    with_encoder = visual_agents()
    return [task_command(agent, env_name, seed_flag)[0] for agent in agents
            for env_name in paper_tasks('paper') + (paper_tasks('paper-visual') if agent in with_encoder else [])]


def _seed_flag(agents: Collection[str], num_seeds: int, seeds: Collection[int] | None) -> str:
    """main.py's seed flag of each command (`--seeds=...` when `seeds` is given, else `--num_seeds=N`), after checking
    the agents (registered) and the seeds; TypeError or ValueError naming the problem."""
    from agents import agent_file
    if isinstance(agents, str):
        raise TypeError(f'agents must be a collection of agent names, got the string {agents!r}')
    for agent in agents:
        agent_file(agent)  # ValueError naming the registered agents
    if not (isinstance(num_seeds, int) and num_seeds >= 1):
        raise ValueError(f'num_seeds must be a positive int, got {num_seeds!r}')
    if seeds is not None:
        seeds = list(seeds)
        if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) and s >= 0 for s in seeds):
            raise ValueError(f'seeds must be distinct non-negative integers, got {seeds!r}')
        return f'--seeds={",".join(map(str, seeds))}'
    return f'--num_seeds={num_seeds}'


def task_command(agent: str, env_name: str, seed_flag: str) -> tuple[str, list[str]]:
    """The main.py command of one agent on one task with its presets written out, and one line per preset flag
    naming its source ('--agent.alpha=300: [FQL README] offline flags for ...'). Frame settings are written as main.py's
    run flags (`--frame_stack`, `--p_aug`), as FQL writes them; other presets as `--agent.KEY`. A baseline's
    per-environment key without a published value ends the command with a shell comment: as written, it refuses to
    run until the key is given."""
    flags, sources = [], []
    for key, (value, source) in sorted(get_presets(agent, env_name).items()):
        flag = f'--{key}={_flag_value(value)}' if key in FRAME_KEYS else f'--agent.{key}={_flag_value(value)}'
        flags.append(flag)
        sources.append(f'{flag}: {source}')
    command = (f'python main.py --env_name={env_name} --agent=agents/{agent}.py {seed_flag} '
               f'--offline_steps={family_of(env_name).default_offline_steps} {" ".join(flags)}')
    unknown = unpublished_required_keys(agent, env_name)
    if unknown:
        command += f"  # unpublished: set {', '.join(f'--agent.{key}' for key in unknown)}"
        sources += [f'--agent.{key}: {message}' for key, message in unknown.items()]
    return command, sources


def commands_with_sources(agents: Collection[str], tasks: Collection[str], seed_flag: str) -> list[str]:
    """`task_command` of each agent on each task, each followed by its presets' sources as indented shell comments
    (configs.py --env_name). An agent without a pixel encoder on a visual task gets one comment line instead."""
    with_encoder = visual_agents()
    lines = []
    for agent in agents:
        for env_name in tasks:
            if family_of(env_name).observes_frames and agent not in with_encoder:
                lines.append(f'# agents/{agent}.py has no pixel encoder: it cannot run {env_name} (visual agents: '
                             f'{", ".join(with_encoder)})')
                continue
            command, sources = task_command(agent, env_name, seed_flag)
            lines.append(command)
            lines += [f'    # {source}' for source in sources] or ['    # no presets: the agent\'s get_config defaults']
    return lines


PAPER_GRIDS = ('paper', 'paper-visual', 'paper-ogbench', 'paper-d4rl')  # sweep.py --grid names


def paper_tasks(grid: str = 'paper') -> list[str]:
    """The task names of one of the papers' grids: 'paper' = the 50 state-based OGBench tasks (10 envs x task1..5),
    'paper-visual' = the 5 visual OGBench tasks, 'paper-ogbench' = both (the papers' 55 OGBench tasks),
    'paper-d4rl' = the 18 D4RL tasks (AntMaze v2, Adroit v1). ValueError for another name."""
    if grid == 'paper':
        return expand_env_names(','.join(PAPER_OGBENCH_FAMILIES))
    if grid == 'paper-visual':
        return list(PAPER_VISUAL_TASKS)
    if grid == 'paper-ogbench':
        return paper_tasks('paper') + paper_tasks('paper-visual')
    if grid == 'paper-d4rl':
        return names.d4rl_env_names()
    raise ValueError(f"unknown grid {grid!r}; known grids: {', '.join(PAPER_GRIDS)}")


# ------------------------------------------------------------------------------------------- presets files
# A presets file (JSON) holds per-environment agent settings chosen by a sweep (`sweep.py --report
# --write_presets=FILE`); `main.py --presets_file=FILE` applies them after this module's presets, and explicit
# --agent.KEY flags still win. Environments are named as the results tables name them: `cube-single-play`
# (suite and dataset kind: all five tasks) or a D4RL task name (`antmaze-umaze-v2`).
PRESETS_FILE_FORMAT = 'mfql-presets/1'


def write_presets_file(path: str, presets: dict[str, dict[str, dict[str, Any]]], source: str) -> None:
    """Writes {agent: {environment: {config key: value}}} with the `source` every value will be recorded under (its
    folder made if missing)."""
    import json
    import os

    from runs import write_atomically
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    payload = {'format': PRESETS_FILE_FORMAT, 'source': source, 'presets': presets}
    write_atomically(path, json.dumps(payload, indent=1, sort_keys=True) + '\n')


def read_presets_file(path: str) -> dict[str, Any]:
    """The payload of a presets file; ValueError naming the problem if it is missing or malformed."""
    import json
    try:
        with open(path) as f:
            payload = json.load(f)
    except FileNotFoundError:
        raise ValueError(f'presets file {path} not found')
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f'presets file {path} is not readable JSON ({error})')
    presets = payload.get('presets') if isinstance(payload, dict) else None
    if payload.get('format') != PRESETS_FILE_FORMAT or not isinstance(presets, dict) or not all(
            isinstance(envs, dict) and all(isinstance(values, dict) for values in envs.values())
            for envs in presets.values()):
        raise ValueError(f'{path} is not a presets file (expected {{"format": "{PRESETS_FILE_FORMAT}", "source": ..., '
                         '"presets": {agent: {environment: {key: value}}}}, as sweep.py --write_presets writes)')
    return payload


def presets_from_file(payload: dict[str, Any], path: str, agent_name: str, env_name: str) -> Preset:
    """{config key: (value, source)} that a presets file (`read_presets_file`) sets for one agent on one task."""
    values = payload['presets'].get(agent_name, {}).get(family_of(env_name).environment_of(env_name), {})
    return {key: (value, f'presets file {path} ({payload.get("source", "no source given")})')
            for key, value in values.items()}


def main(argv: list[str] | None = None) -> None:
    from agents import registered_agents
    from cli.output import print_all
    parser = argparse.ArgumentParser(description='Print the exact commands of the paper OGBench grid, or with '
                                                 '--env_name those of the given tasks with the source of each preset.',
                                     allow_abbrev=False)  # --seed must not pass for --seeds
    parser.add_argument('--agents', default=','.join(PAPER_GRID_AGENTS),
                        help=f'comma-separated agents, of {",".join(registered_agents())} (default: '
                             f'{",".join(PAPER_GRID_AGENTS)})')
    parser.add_argument('--env_name', default=None,
                        help='comma-separated tasks or families (as main.py): print their commands, each preset flag '
                             'followed by its source, instead of the paper grid')
    seed_group = parser.add_mutually_exclusive_group()
    seed_group.add_argument('--num_seeds', type=int, default=8, help='number of seeds per command (seeds 0 ... N-1)')
    seed_group.add_argument('--seeds', default=None, help='explicit comma-separated seeds per command, e.g. 0,1,2')
    args = parser.parse_args(argv)
    try:
        seeds = None if args.seeds is None else [int(seed) for seed in args.seeds.split(',')]
    except ValueError:
        parser.error(f'--seeds must be comma-separated integers, got {args.seeds}')
    agents = tuple(a.strip() for a in args.agents.split(',') if a.strip())
    try:
        if args.env_name is None:
            lines = paper_commands(agents, args.num_seeds, seeds)
        else:
            lines = commands_with_sources(agents, expand_env_names(args.env_name),
                                          _seed_flag(agents, args.num_seeds, seeds))
    except ValueError as error:
        parser.error(str(error))
    print_all('\n'.join(lines))


if __name__ == '__main__':
    main()
