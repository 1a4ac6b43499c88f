"""main.py's plan: every flag checked and every per-task choice made before any data is loaded or anything computed.

`plan_run(FLAGS, argv)` resolves, in order: seeds; the tasks of --env_name and their environment families
(`datasets.families`: the optional packages they need, their default budget when --offline_steps is not given); the
agent class; each task's agent config (configs.py's presets, then --presets_file, then the command line: --agent.KEY
and the frame flags; the budget flags); each task's frame settings (checked against its family); the run options;
the run folders (and, with --resume, the schedule length each run started with). Bad input stops with one `error:`
line (SystemExit).

Frame settings. `--frame_stack` and `--p_aug` are run flags (FQL's names). The visual agents also have config keys of
the same names, which alias them: one value, from (first given) --frame_stack / --agent.frame_stack (both: they must
agree), a preset, the agent's default. The value is written into the agent config (so the agent checks it and
flags.json records it) and into the task's `FrameSettings`, which the data and the envs read.
"""

import dataclasses
import os
from typing import Any

from absl import flags as absl_flags

import runs
from cli.agent_args import agent_file_from_argv, available_agents_text, explicit_agent_keys
from datasets.families import FRAME_KEYS, FrameSettings, expand_env_names, family_of
from training.schedule import RunOptions

FlagValues = absl_flags.FlagValues


@dataclasses.dataclass
class RunPlan:
    """Everything decided from the flags before any data is loaded or any computation runs."""

    agent_name: str
    agent_file: str  # the --agent path
    agent_class: type  # its AGENT_CLASS
    explicit_keys: list[str]  # agent config keys set on the command line (--agent.KEY, and the frame flags' aliases)
    tasks: list[str]
    run_root: str
    run_dirs: list[str]
    task_configs: list[tuple]  # (ml_collections.ConfigDict, preset sources) per task
    frames: list[FrameSettings]  # per task
    seeds: list[int]
    options: RunOptions


def plan_run(flags: FlagValues, argv: list[str]) -> RunPlan:
    """Validates every flag of `flags` (main.py's parsed FLAGS) and resolves tasks, configs, frames, seeds and folders;
    SystemExit on bad input. `argv` gives the --agent path and which --agent.KEY flags were given explicitly."""
    from agents import agent_class_from_file

    explicit_keys = explicit_agent_keys(argv)
    seeds = resolve_seeds(flags)
    if flags.generate_missing_data < 0:
        raise SystemExit(f'error: --generate_missing_data must be >= 0, got {flags.generate_missing_data}')
    if flags.generate_missing_data and flags.download_missing_data:
        raise SystemExit('error: --generate_missing_data and --download_missing_data are two different sources of a '
                         "missing dataset (local generation, OGBench's file); pass one of them")
    if flags.generate_workers < 0:
        raise SystemExit(f'error: --generate_workers must be >= 0 (0 = one per available core), got '
                         f'{flags.generate_workers}')
    try:
        tasks = expand_env_names(flags.env_name)
    except ValueError as error:
        raise SystemExit(f'error: --env_name: {error}')
    _check_families(flags, tasks)
    agent_file = agent_file_from_argv(argv)
    try:
        agent_class = agent_class_from_file(agent_file)
    except ValueError as error:
        raise SystemExit(f'error: {error}; registered agents: {available_agents_text()}')
    frame_flags = _frame_flags(flags, explicit_keys)
    explicit_keys += [key for key in frame_flags if key in flags.agent and key not in explicit_keys]
    task_configs = _task_configs(flags, tasks, explicit_keys, frame_flags)
    options = _run_options(flags)  # the budget flags first: a bad budget is named as the flag the user gave
    from cli.agent_args import check_task_configs  # every config value against the agent's CONFIG_RULES, before data
    check_task_configs(agent_file, tasks, task_configs, FRAME_KEYS)
    frames = [_frame_settings(flags, task, config, frame_flags) for task, (config, _) in zip(tasks, task_configs)]
    if flags.wandb:
        from training.tracking import wandb_problem
        problem = wandb_problem()
        if problem:
            raise SystemExit(f'error: {problem}')
    agent_name = flags.agent.agent_name
    run_name = flags.run_name or f'{agent_name}_{flags.env_name.replace(",", "+")}'
    run_root = runs.run_root(flags.save_dir, run_name)
    run_dirs = [runs.task_dir(run_root, task) for task in tasks]
    if not flags.resume:
        existing = [d for d in run_dirs if os.path.isdir(d) and os.listdir(d)]
        if existing:
            raise SystemExit(f'error: run folder {existing[0]} already exists; pass --resume to continue it, or '
                             'choose another --run_name / --save_dir')
    else:
        _keep_saved_schedules(flags, tasks, run_dirs, task_configs, seeds)
    return RunPlan(agent_name, agent_file, agent_class, explicit_keys, tasks, run_root, run_dirs, task_configs, frames,
                   seeds, options)


def resolve_seeds(flags: FlagValues) -> list[int]:
    """--seeds, else --seed, ..., --seed + --num_seeds - 1."""
    if flags.seeds:
        try:
            seeds = [int(s) for s in flags.seeds]
        except ValueError:
            raise SystemExit(f'error: --seeds must be comma-separated integers, got {",".join(flags.seeds)}')
    else:
        if flags.num_seeds < 1:
            raise SystemExit(f'error: --num_seeds must be >= 1, got {flags.num_seeds}')
        seeds = list(range(flags.seed, flags.seed + flags.num_seeds))
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise SystemExit(f'error: seeds must be distinct non-negative integers, got {seeds}')
    return seeds


def generate_workers(flags: FlagValues) -> int:
    """--generate_workers, or with 0 the number of cores this process may use."""
    if flags.generate_workers > 0:
        return flags.generate_workers
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def _check_families(flags: FlagValues, tasks: list[str]) -> None:
    """Each family's optional packages must be installed; without --offline_steps the budget becomes the families'
    default (1M OGBench states, 500K frames and D4RL; 1M for D4RL before an online phase), and tasks whose defaults
    differ need --offline_steps."""
    by_family = {}
    for task in tasks:
        by_family.setdefault(family_of(task), task)
    for family, task in by_family.items():
        try:
            family.check_installed(task)
        except ImportError as error:
            raise SystemExit(f'error: {error}')
    if flags['offline_steps'].present:
        return
    online = flags.online_steps > 0
    budgets = {family.offline_budget(online) for family in by_family}
    if len(budgets) > 1:
        defaults = ', '.join(f'{family.name} {family.offline_budget(online):,}' for family in by_family)
        raise SystemExit(f'error: --env_name mixes tasks whose default budgets differ ({defaults} offline steps); pass '
                         '--offline_steps explicitly or run them separately')
    if budgets != {flags.offline_steps}:
        flags.offline_steps = budgets.pop()


def _frame_flags(flags: FlagValues, explicit_keys: list[str]) -> dict[str, Any]:
    """The frame flags given on the command line (--frame_stack, --p_aug), each checked against its alias
    --agent.KEY when both are given."""
    given = {}
    for key in FRAME_KEYS:
        value = flags[key].value
        if value is None:
            continue
        if key in explicit_keys and key in flags.agent and flags.agent[key] != value:
            raise SystemExit(f'error: --{key}={value} and --agent.{key}={flags.agent[key]} disagree; they are one '
                             'setting: give one of them')
        given[key] = value
    return given


def _task_configs(flags: FlagValues, tasks: list[str], explicit_keys: list[str],
                  frame_flags: dict[str, Any]) -> list[tuple]:
    """(config, preset sources) per task: presets, then --presets_file, then the explicit --agent.* and frame flags,
    then the budgets.

    The budgets have one source, main.py's --offline_steps/--online_steps; an agent whose schedules depend on the
    length of training declares an `offline_steps` key, which is set from the flag here. `batch_size` has one source
    too, the agent config (the loop reads it from there).
    """
    import configs
    from training.schedule import batch_size_of
    for budget in ('offline_steps', 'online_steps'):
        if budget in explicit_keys:
            raise SystemExit(f'error: set the budget with --{budget}, not --agent.{budget} (main.py copies it '
                             'into the configs of agents that read it)')
    presets_file = None
    if flags.presets_file:
        try:
            presets_file = configs.read_presets_file(flags.presets_file)
        except ValueError as error:
            raise SystemExit(f'error: --presets_file: {error}')
    base = flags.agent.copy_and_resolve_references()
    for key, value in frame_flags.items():
        if key in base:
            base[key] = value
    result = []
    for task in tasks:
        try:
            config, sources = configs.apply_presets(base, task, explicit_keys, flags.online_steps > 0)
        except ValueError as error:
            raise SystemExit(f'error: {error}')
        if presets_file is not None:
            _apply_presets_file(flags.presets_file, config, sources, presets_file, task, explicit_keys)
        for budget in ('offline_steps', 'online_steps'):
            if budget in config:
                config[budget] = getattr(flags, budget)
        try:
            batch_size_of(config)
        except ValueError as error:
            raise SystemExit(f'error: {error} (--agent.batch_size)')
        result.append((config, sources))
    return result


def _apply_presets_file(path: str, config: Any, sources: dict[str, str], payload: dict[str, Any], task: str,
                        explicit_keys: list[str]) -> None:
    """Sets the --presets_file values of this agent and task in `config` (after configs.py's presets, so they replace
    them), except keys given on the command line; records each value's source in `sources` (for flags.json)."""
    import configs
    for key, (value, source) in configs.presets_from_file(payload, path, config.agent_name, task).items():
        if key not in config:
            raise SystemExit(f"error: --presets_file {path} sets '{key}', which agent "
                             f"{config.agent_name!r} does not have (config keys: {', '.join(sorted(config))})")
        if key in explicit_keys:
            sources[key] = f'command line (value {value!r} from {source} not applied)'
            continue
        config[key] = tuple(value) if isinstance(config[key], tuple) and isinstance(value, list) else value
        sources[key] = source


def _frame_settings(flags: FlagValues, task: str, config: Any, frame_flags: dict[str, Any]) -> FrameSettings:
    """The task's frame settings (the agent config's aliases where it has them, else the flags, else none), checked
    against its family: frames need a pixel encoder and run offline only; states take no frame settings."""
    import configs
    family = family_of(task)
    defaults = dataclasses.asdict(FrameSettings())
    values = {key: config[key] if key in config else frame_flags.get(key, defaults[key]) for key in FRAME_KEYS}
    if not (isinstance(values['frame_stack'], int) and values['frame_stack'] >= 1):
        raise SystemExit(f"error: --frame_stack must be a positive integer, got {values['frame_stack']!r}")
    if not 0.0 <= float(values['p_aug']) <= 1.0:
        raise SystemExit(f"error: --p_aug must be in [0, 1], got {values['p_aug']!r}")
    if family.observes_frames:
        if config.get('encoder') is None:
            reason = (f'has no pixel encoder (visual tasks run with the agents whose config has an encoder key: '
                      f'{", ".join(configs.visual_agents())})' if 'encoder' not in config
                      else 'runs with encoder=None; the visual presets set --agent.encoder=impala_small')
            raise SystemExit(f'error: {task} is a visual task, and agent {config.agent_name} {reason}')
    else:
        settings = dict(values, encoder=config.get('encoder'))
        unused = {key: value for key, value in settings.items() if value != dict(defaults, encoder=None)[key]}
        if unused:
            raise SystemExit(f'error: {task} observes states, but {unused} are set: frame stacking, image augmentation '
                             'and pixel encoders apply to visual tasks (visual-...) only')
    if not family.supports_online and flags.online_steps > 0:
        raise SystemExit(f'error: {task}: online training on {family.name} tasks is not supported (offline only); '
                         'use --online_steps=0')
    return FrameSettings(int(values['frame_stack']), float(values['p_aug']))


def _run_options(flags: FlagValues) -> RunOptions:
    from training.schedule import validate_options
    options = RunOptions(
        offline_steps=flags.offline_steps, online_steps=flags.online_steps, steps_per_call=flags.steps_per_call,
        log_interval=flags.log_interval, eval_interval=flags.eval_interval, eval_episodes=flags.eval_episodes,
        eval_parallel_envs=flags.eval_parallel_envs, save_interval=flags.save_interval,
        keep_checkpoints=flags.keep_checkpoints, resume=flags.resume,
        progress_bar=flags.progress_bar)
    try:
        validate_options(options)
    except ValueError as error:
        raise SystemExit(f'error: {error}')
    return options


def _keep_saved_schedules(flags: FlagValues, tasks: list[str], run_dirs: list[str], task_configs: list[tuple],
                          seeds: list[int]) -> None:
    """--resume: each task's agent config keeps the schedule length (`offline_steps`) its run started with, so a
    larger --offline_steps extends the run (`training.resume.extension_schedule_length`)."""
    from training import resume
    from training.checkpoint import ResumeError
    for task, run_dir, (config, _) in zip(tasks, run_dirs, task_configs):
        try:
            length = resume.extension_schedule_length(run_dir, seeds, flags.offline_steps, flags.online_steps)
        except ResumeError as error:
            raise SystemExit(f'error: {error}')
        if length is None or 'offline_steps' not in config:
            continue
        if length != flags.offline_steps:
            print(f'{task}: training on to step {flags.offline_steps} with the agent\'s schedules of the run\'s first '
                  f'{length} steps (agent config offline_steps={length}; past it, MFQL\'s actor LR stays at its final '
                  'value)', flush=True)
        config.offline_steps = length
