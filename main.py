"""Train an agent (MeanFlowQL, FQL, or FQL's baselines ReBRAC, IQL and IFQL) on OGBench single-task environments, or
on D4RL AntMaze / Adroit via Minari.

    python main.py --env_name=cube-double-play-singletask-task2-v0 --agent=agents/mfql.py
    python main.py --env_name=cube-double-play-singletask --agent=agents/fql.py --agent.alpha=300 --num_seeds=4
    python main.py --env_name=antmaze-umaze-v2 --agent=agents/mfql.py   # needs requirements-d4rl.txt
    python main.py --agent=agents/fql.py --helpagent   # the agent's config keys, defaults and meanings
    python main.py --agent=path/to/myagent.py ...      # any agent file (the convention: agents/__init__.py)

Flags -> per-task presets (`configs.apply_presets`, if configs.py has any for the agent; explicit `--agent.KEY`
flags win) -> datasets -> `AGENT_CLASS.create` of the --agent file -> `training.runner.train_task`. No algorithm
logic lives here.

Outputs: `<save_dir>/<run_name>/<task>/seed<k>/{train.csv, eval.csv, flags.json, final.json, checkpoints/}`,
`<save_dir>/<run_name>/<task>/curves.png`, and `<save_dir>/<run_name>/summary.{csv,md}` (final success per
task and per environment, mean ± std over seeds; D4RL tasks add the normalised score ×100). `--resume` continues every task from its newest checkpoint
and skips finished tasks.
"""

import ast
import dataclasses
import difflib
import functools
import hashlib
import importlib.util
import io
import os
import re
import sys
import tokenize
from typing import Any

from absl import app, flags
from ml_collections import config_flags

import run_flags

REPO_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_AGENT_FILE = 'agents/mfql.py'

if __name__ == '__main__':
    # State tasks never render: without a MUJOCO_GL choice, dm_control (imported by OGBench) would probe OpenGL
    # backends, and GLFW warns on machines without a display. Set MUJOCO_GL=egl/glfw/osmesa to render.
    # Visual tasks (visual-...) render every observation: EGL (hardware on a GPU, software otherwise).
    os.environ.setdefault('MUJOCO_GL', 'egl' if any('visual-' in arg for arg in sys.argv) else 'disable')


# ------------------------------------------------------------------------------------ argv checks
def _agent_file_from_argv(argv: list[str]) -> str:
    """The path given with --agent=PATH / --agent PATH (the last one wins), else the default."""
    path = DEFAULT_AGENT_FILE
    for i, arg in enumerate(argv):
        if arg.startswith('--agent='):
            path = arg.split('=', 1)[1]
        elif arg == '--agent' and i + 1 < len(argv):
            path = argv[i + 1]
    return path


def explicit_agent_keys(argv: list[str]) -> list[str]:
    """Config keys set on the command line with --agent.KEY=V or --agent.KEY V (e.g. ['alpha'])."""
    keys = []
    for arg in argv:
        match = re.match(r'^--agent\.([A-Za-z0-9_.]+)(=.*)?$', arg)
        if match:
            keys.append(match.group(1))
    return keys


def config_key_comments(source: str) -> dict[str, str]:
    """The comment of each key in the `get_config()` of an agent file's source, by key name.

    A key is a keyword argument (`dict(key=value,  # comment)`), a dict-literal key or an attribute assignment
    (`config.key = value  # comment`) inside get_config; its comment is the one at the end of the line where
    its value ends, else the comment lines right above it.
    """
    comments = {token.start[0]: token.string.lstrip('#').strip()
                for token in tokenize.generate_tokens(io.StringIO(source).readline) if token.type == tokenize.COMMENT}
    lines = source.splitlines()

    def comment(first_line: int, last_line: int) -> str:
        if last_line in comments and lines[last_line - 1].lstrip()[:1] != '#':
            return comments[last_line]
        above, line = [], first_line - 1
        while line in comments and lines[line - 1].lstrip().startswith('#'):
            above.insert(0, comments[line])
            line -= 1
        return ' '.join(above)

    result = {}
    for function in ast.walk(ast.parse(source)):
        if not (isinstance(function, ast.FunctionDef) and function.name == 'get_config'):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg is not None:
                        result.setdefault(keyword.arg, comment(keyword.value.lineno, keyword.value.end_lineno))
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        result.setdefault(key.value, comment(key.lineno, value.end_lineno))
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Attribute):
                        result.setdefault(target.attr, comment(node.lineno, node.end_lineno))
    return result


def agent_config_help(path: str, config: Any) -> str:
    """`--helpagent`: every key of the agent config in `path` with its default and its comment in get_config()."""
    with open(path) as f:
        comments = config_key_comments(f.read())

    order = {key: index for index, key in enumerate(comments)}  # the order of get_config's source

    def rows(node: Any, prefix: str) -> list[tuple[str, str, str]]:
        result = []
        for key in sorted(node.keys(), key=lambda key: (order.get(key, len(order)), key)):
            value = node[key]
            if hasattr(value, 'keys'):
                result += rows(value, f'{prefix}{key}.')
            else:
                result.append((f'--agent.{prefix}{key}', repr(value), comments.get(key, '')))
        return result

    table = rows(config, '')
    width = max(len(flag) + len(default) for flag, default, _ in table) + 3
    lines = [f'Agent config of {path}: --agent.KEY=VALUE sets a key; per-task presets (configs.py) may replace '
             'defaults of keys not given on the command line.']
    lines += [f'  {flag}={default}'.ljust(width + 2) + f'  # {text}' if text else f'  {flag}={default}'
              for flag, default, text in table]
    return '\n'.join(lines)


def available_agents_text() -> str:
    """The registered agents as --agent paths, for help and error messages (found in agents/, not listed here)."""
    from agents import registered_agents
    return ', '.join(f'agents/{name}.py' for name in registered_agents())


def check_agent_argv(argv: list[str]) -> list[str]:
    """Checks the agent config file and every --agent.KEY before absl parses them; returns the keys.

    ml_collections would otherwise fail with a bare AttributeError traceback (unknown key) or an
    opaque error object (missing file). Raises SystemExit with a clear message.
    """
    path = _agent_file_from_argv(argv)
    if not os.path.isfile(path):
        raise SystemExit(f"error: agent config file '{path}' not found (paths are relative to the current "
                         f"directory, {os.getcwd()}); registered agents: {available_agents_text()}")
    spec = importlib.util.spec_from_file_location('_agent_config_check', path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        config = module.get_config()
    except Exception as error:  # any import or get_config failure of a user-given file
        raise SystemExit(f"error: cannot load the agent config from '{path}': {type(error).__name__}: {error}")
    if any(arg in ('--helpagent', '--helpagent=true', '--helpagent=True') for arg in argv):
        print(agent_config_help(path, config))
        raise SystemExit(0)
    keys = explicit_agent_keys(argv)
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:  # ml_collections would keep the last scalar but concatenate repeated tuples
        raise SystemExit(f"error: agent config key(s) given more than once: {', '.join('--agent.' + k for k in repeated)}")
    for key in keys:
        node = config
        for part in key.split('.'):
            if not hasattr(node, 'keys') or part not in node:
                close = difflib.get_close_matches(part, list(node.keys()) if hasattr(node, 'keys') else [], n=3)
                hint = f'; did you mean {", ".join(close)}?' if close else ''
                raise SystemExit(f"error: unknown agent config key '{key}' (from --agent.{key}) for {path}{hint} "
                                 f"Known keys: {', '.join(sorted(config.keys()))}")
            node = node[part]
    return keys


if __name__ == '__main__':
    check_agent_argv(sys.argv[1:])  # before DEFINE_config_file, which parses --agent.* from sys.argv

FLAGS = flags.FLAGS
flags.DEFINE_boolean('helpagent', False, 'Print every key of the --agent config file (e.g. --agent=agents/fql.py) '
                     'with its default and its meaning, then exit.')
run_flags.define(flags)
config_flags.DEFINE_config_file('agent', DEFAULT_AGENT_FILE, lock_config=False,
                                help_string=f'Agent file (its get_config() is the agent config; --agent.KEY=VALUE sets '
                                            f'a key). Registered agents: {available_agents_text()}; any file following '
                                            'the convention of agents/__init__.py works too.')


def show_warnings_only() -> None:
    """Logs WARNING and above unless --verbosity was given (--verbosity=0 shows INFO lines).

    absl's app.run raises the default verbosity to INFO, which prints every library's INFO lines (dm_control's
    renderer choice and MuJoCo version, JAX's failed probe of a TPU backend); mfql logs nothing itself.
    """
    if not FLAGS['verbosity'].present:
        FLAGS.verbosity = -1  # absl's WARNING


def resolve_seeds() -> list[int]:
    if FLAGS.seeds:
        try:
            seeds = [int(s) for s in FLAGS.seeds]
        except ValueError:
            raise SystemExit(f'error: --seeds must be comma-separated integers, got {",".join(FLAGS.seeds)}')
    else:
        if FLAGS.num_seeds < 1:
            raise SystemExit(f'error: --num_seeds must be >= 1, got {FLAGS.num_seeds}')
        seeds = list(range(FLAGS.seed, FLAGS.seed + FLAGS.num_seeds))
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise SystemExit(f'error: seeds must be distinct non-negative integers, got {seeds}')
    return seeds


def _run_options():
    from training.schedule import RunOptions, validate_options
    options = RunOptions(
        offline_steps=FLAGS.offline_steps, online_steps=FLAGS.online_steps, steps_per_call=FLAGS.steps_per_call,
        log_interval=FLAGS.log_interval, eval_interval=FLAGS.eval_interval, eval_episodes=FLAGS.eval_episodes,
        eval_parallel_envs=FLAGS.eval_parallel_envs, save_interval=FLAGS.save_interval, resume=FLAGS.resume,
        progress_bar=FLAGS.progress_bar)
    try:
        validate_options(options)
    except ValueError as error:
        raise SystemExit(f'error: {error}')
    return options


def _task_configs(tasks: list[str], explicit_keys: list[str]) -> list[tuple]:
    """(config, preset sources) per task: presets, then the explicit --agent.* flags, then the budgets.

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
    if FLAGS.presets_file:
        try:
            presets_file = configs.read_presets_file(FLAGS.presets_file)
        except ValueError as error:
            raise SystemExit(f'error: --presets_file: {error}')
    result = []
    for task in tasks:
        try:
            config, sources = configs.apply_presets(FLAGS.agent.copy_and_resolve_references(), task,
                                                    explicit_keys, FLAGS.online_steps > 0)
        except ValueError as error:
            raise SystemExit(f'error: {error}')
        if presets_file is not None:
            _apply_presets_file(config, sources, presets_file, task, explicit_keys)
        for budget in ('offline_steps', 'online_steps'):
            if budget in config:
                config[budget] = getattr(FLAGS, budget)
        try:
            batch_size_of(config)
        except ValueError as error:
            raise SystemExit(f'error: {error} (--agent.batch_size)')
        result.append((config, sources))
    return result


def _apply_presets_file(config: Any, sources: dict[str, str], payload: dict[str, Any], task: str,
                        explicit_keys: list[str]) -> None:
    """Sets the --presets_file values of this agent and task in `config` (after configs.py's presets, so they replace
    them), except keys given on the command line; records each value's source in `sources` (for flags.json)."""
    import configs
    for key, (value, source) in configs.presets_from_file(payload, FLAGS.presets_file, config.agent_name,
                                                          task).items():
        if key not in config:
            raise SystemExit(f"error: --presets_file {FLAGS.presets_file} sets '{key}', which agent "
                             f"{config.agent_name!r} does not have (config keys: {', '.join(sorted(config))})")
        if key in explicit_keys:
            sources[key] = f'command line (value {value!r} from {source} not applied)'
            continue
        config[key] = tuple(value) if isinstance(config[key], tuple) and isinstance(value, list) else value
        sources[key] = source


def generate_workers() -> int:
    """--generate_workers, or with 0 the number of cores this process may use."""
    if FLAGS.generate_workers > 0:
        return FLAGS.generate_workers
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def _ensure_datasets(tasks: list[str]) -> None:
    """Makes sure every task's dataset files exist (download / generate / clear error) before training."""
    from datasets import d4rl, names, ogbench_data
    seen = set()
    for task in tasks:
        if d4rl.is_d4rl_name(task):
            d4rl.ensure_dataset(task)
            continue
        spec = names.parse_env_name(task)
        if spec.dataset_name in seen:
            continue
        seen.add(spec.dataset_name)
        paths = ogbench_data.dataset_file_paths(spec.dataset_name, FLAGS.dataset_dir)
        if not all(os.path.exists(p) for p in paths):
            ogbench_data.load_datasets(task, FLAGS.dataset_dir, FLAGS.generate_missing_data or None,
                                       generate_workers=generate_workers(), show_progress=FLAGS.progress_bar)


def _check_visual_settings(tasks: list[str], task_configs: list[tuple]) -> None:
    """Visual tasks need an agent with a pixel encoder and run offline only; frame settings need a visual task."""
    from datasets import names
    for task, (config, _) in zip(tasks, task_configs):
        visual = names.is_visual(task)
        if visual and config.get('encoder') is None:
            reason = ('has no pixel encoder (visual tasks run with mfql or fql)' if 'encoder' not in config
                      else 'runs with encoder=None; the visual presets set --agent.encoder=impala_small')
            raise SystemExit(f'error: {task} is a visual task, and agent {config.agent_name} {reason}')
        if visual and FLAGS.online_steps > 0:
            raise SystemExit(f'error: {task}: online training on visual tasks is not supported (offline only); '
                             'use --online_steps=0')
        state_values = {'frame_stack': 1, 'p_aug': 0.0, 'encoder': None}
        frame_settings = {key: config[key] for key, value in state_values.items()
                          if key in config and config[key] != value}
        if not visual and frame_settings:
            raise SystemExit(f'error: {task} observes states, but {frame_settings} are set: frame stacking, image '
                             'augmentation and pixel encoders apply to visual tasks (visual-...) only')


def _default_visual_budget(tasks: list[str]) -> None:
    """Visual tasks: the default budget becomes FQL's 500K; a list mixing them with state tasks needs
    --offline_steps."""
    import configs
    from datasets import names
    visual = [task for task in tasks if names.is_visual(task)]
    if not visual or FLAGS['offline_steps'].present:
        return
    if len(visual) < len(tasks):
        raise SystemExit('error: --env_name mixes visual and state-based tasks, whose default budgets differ (500K vs '
                         '1M offline steps); pass --offline_steps explicitly or run them separately')
    FLAGS.offline_steps = configs.PAPER_VISUAL_OFFLINE_STEPS


def _check_d4rl_tasks(tasks: list[str]) -> None:
    """D4RL tasks: the optional extra must be installed; the default budget becomes the papers' 500K.

    A list mixing D4RL and OGBench tasks has no common default budget, so it needs --offline_steps.
    """
    import configs
    from datasets import d4rl
    d4rl_tasks = [task for task in tasks if d4rl.is_d4rl_name(task)]
    if not d4rl_tasks:
        return
    try:
        d4rl.check_extra(d4rl_tasks[0])
    except ImportError as error:
        raise SystemExit(f'error: {error}')
    if FLAGS['offline_steps'].present:
        return
    if len(d4rl_tasks) < len(tasks):
        raise SystemExit('error: --env_name mixes D4RL and OGBench tasks, whose default budgets differ (500K vs '
                         '1M offline steps); pass --offline_steps explicitly or run them separately')
    FLAGS.offline_steps = configs.PAPER_D4RL_OFFLINE_STEPS


def _keep_saved_schedules(tasks: list[str], run_dirs: list[str], task_configs: list[tuple], seeds: list[int]) -> None:
    """--resume: each task's agent config keeps the schedule length (`offline_steps`) its run started with, so a
    larger --offline_steps extends the run (`training.resume.extension_schedule_length`)."""
    from training import resume
    from training.checkpoint import ResumeError
    for task, run_dir, (config, _) in zip(tasks, run_dirs, task_configs):
        try:
            length = resume.extension_schedule_length(run_dir, seeds, FLAGS.offline_steps, FLAGS.online_steps)
        except ResumeError as error:
            raise SystemExit(f'error: {error}')
        if length is None or 'offline_steps' not in config:
            continue
        if length != FLAGS.offline_steps:
            print(f'{task}: training on to step {FLAGS.offline_steps} with the agent\'s schedules of the run\'s first '
                  f'{length} steps (agent config offline_steps={length}; past it, MFQL\'s actor LR stays at its final '
                  'value)', flush=True)
        config.offline_steps = length


@dataclasses.dataclass
class RunPlan:
    """Everything decided from the flags before any data is loaded or any computation runs."""

    agent_name: str
    agent_file: str  # the --agent path
    agent_class: type  # its AGENT_CLASS
    explicit_keys: list[str]  # --agent.KEY flags given on the command line (they override presets)
    tasks: list[str]
    run_root: str
    run_dirs: list[str]
    task_configs: list[tuple]  # (ml_collections.ConfigDict, preset sources) per task
    seeds: list[int]
    options: Any  # training.schedule.RunOptions


def plan_run(argv: list[str] | None = None) -> RunPlan:
    """Validates every flag and resolves tasks, configs, seeds and folders; SystemExit on bad input.

    `argv` (default: sys.argv[1:]) is only used for the --agent path and to see which --agent.KEY flags were given
    explicitly.
    """
    from agents import agent_class_from_file
    from datasets import names

    argv = sys.argv[1:] if argv is None else argv
    explicit_keys = explicit_agent_keys(argv)
    seeds = resolve_seeds()
    if FLAGS.generate_missing_data < 0:
        raise SystemExit(f'error: --generate_missing_data must be >= 0, got {FLAGS.generate_missing_data}')
    if FLAGS.generate_workers < 0:
        raise SystemExit(f'error: --generate_workers must be >= 0 (0 = one per available core), got '
                         f'{FLAGS.generate_workers}')
    try:
        tasks = names.expand_env_names(FLAGS.env_name)
    except ValueError as error:
        raise SystemExit(f'error: --env_name: {error}')
    _check_d4rl_tasks(tasks)
    _default_visual_budget(tasks)
    agent_file = _agent_file_from_argv(argv)
    try:
        agent_class = agent_class_from_file(agent_file)
    except ValueError as error:
        raise SystemExit(f'error: {error}; registered agents: {available_agents_text()}')
    task_configs = _task_configs(tasks, explicit_keys)
    _check_visual_settings(tasks, task_configs)
    options = _run_options()
    if FLAGS.wandb:
        from training.tracking import wandb_problem
        problem = wandb_problem()
        if problem:
            raise SystemExit(f'error: {problem}')
    agent_name = FLAGS.agent.agent_name
    run_name = FLAGS.run_name or f'{agent_name}_{FLAGS.env_name.replace(",", "+")}'
    run_root = os.path.join(os.path.expanduser(FLAGS.save_dir), run_name)
    run_dirs = [os.path.join(run_root, task) for task in tasks]
    if not FLAGS.resume:
        existing = [d for d in run_dirs if os.path.isdir(d) and os.listdir(d)]
        if existing:
            raise SystemExit(f'error: run folder {existing[0]} already exists; pass --resume to continue it, or '
                             'choose another --run_name / --save_dir')
    else:
        _keep_saved_schedules(tasks, run_dirs, task_configs, seeds)
    return RunPlan(agent_name, agent_file, agent_class, explicit_keys, tasks, run_root, run_dirs, task_configs, seeds, options)


def main(_argv: list[str]) -> None:
    import configs
    from datasets import d4rl, ogbench_data
    from datasets.frames import DatasetTooLargeError
    from training import tracking
    from training.checkpoint import ResumeError
    from training.tracking import WandbError
    from training.runner import NonFiniteLossError, TaskInputs, train_task
    from training.summary import write_summary

    show_warnings_only()
    plan = plan_run()
    try:
        _ensure_datasets(plan.tasks)
    except ValueError as error:  # DatasetError is a ValueError
        raise SystemExit(f'error: {error}')

    flag_values = {name: FLAGS[name].value for name in run_flags.FLAG_NAMES}
    flag_values['agent'] = plan.agent_file
    base_metadata = dict(flags=flag_values, explicit_agent_keys=plan.explicit_keys, seeds=plan.seeds,
                         presets=configs.presets_origin(plan.agent_name), **tracking.run_metadata(REPO_DIR))
    if FLAGS.presets_file:  # the file's content, so that a later edit of it cannot pass for the values used
        with open(FLAGS.presets_file, 'rb') as f:
            base_metadata['presets_file'] = dict(path=os.path.abspath(FLAGS.presets_file),
                                                 sha256=hashlib.sha256(f.read()).hexdigest())
    results = []
    for task, run_dir, (config, sources) in zip(plan.tasks, plan.run_dirs, plan.task_configs):
        metadata = dict(base_metadata, preset_sources=sources)  # the runner adds agent_config
        if d4rl.is_d4rl_name(task):
            try:
                train, val = d4rl.load_dataset(task)
            except ValueError as error:  # DatasetError
                raise SystemExit(f'error: {error}')
            metadata['d4rl'] = dataclasses.asdict(d4rl.parse_d4rl_name(task))
            env_kwargs = dict(env_factory=lambda task=task: d4rl.make_env(task),
                              online_env_factory=lambda task=task: d4rl.make_env(task, online=True),
                              return_to_score=functools.partial(d4rl.normalized_score, task))
        else:
            try:
                train, val = ogbench_data.load_datasets(task, FLAGS.dataset_dir, FLAGS.generate_missing_data or None,
                                                        show_progress=FLAGS.progress_bar)
            except ValueError as error:  # DatasetError: a file failed validation (the message names its remedy)
                raise SystemExit(f'error: {error}')
            frame_stack = int(config.get('frame_stack', 1))  # visual tasks: observations stack this many frames
            env_kwargs = dict(env_factory=lambda task=task, k=frame_stack: ogbench_data.make_env(task, frame_stack=k))
        inputs = TaskInputs(task=task, agent_class=plan.agent_class, config=config, train_data=train, val_data=val,
                            seeds=plan.seeds, run_dir=run_dir, metadata=metadata,
                            wandb_project=FLAGS.wandb_project if FLAGS.wandb else None, **env_kwargs)
        try:
            results.append(train_task(inputs, plan.options))
        # ResumeError includes ConfigMismatchError
        except (NonFiniteLossError, ResumeError, WandbError, DatasetTooLargeError) as error:
            raise SystemExit(f'error: {error}')
    csv_path, md_path = write_summary(plan.run_root, results, plan.agent_name)
    with open(md_path) as f:
        print(f.read())
    print(f'summary written to {csv_path} and {md_path}')


if __name__ == '__main__':
    app.run(main)
