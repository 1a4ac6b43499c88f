"""The agent part of main.py's command line, read from argv before absl parses it: the agent file (`--agent=PATH`),
the config keys set with `--agent.KEY=VALUE`, their checks, and `--helpagent`.

ml_collections parses `--agent.KEY` flags while main.py defines them, and would stop on a bad one with a bare
AttributeError traceback (unknown key) or an opaque error object (missing file); `check_agent_argv` runs first and
stops with one `error:` line instead.
"""

import difflib
import importlib.util
import os
import re
from typing import Any

from agents import config_key_comments, registered_agents
from agents.config_rules import (ConfigValueError, check_combinations, check_value, literal_defaults,
                                 rules_from_source)
from datasets.families import expand_env_names

DEFAULT_AGENT_FILE = 'agents/mfql.py'


def agent_file_from_argv(argv: list[str]) -> str:
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


def available_agents_text() -> str:
    """The registered agents as --agent paths, for help and error messages (found in agents/, not listed here)."""
    return ', '.join(f'agents/{name}.py' for name in registered_agents())


def _config_rows(path: str, config: Any) -> list[tuple[str, str, str]]:
    """(key path, value repr, get_config comment) for every leaf key of `config`, in the order of get_config's
    source (nested ConfigDicts as `outer.inner`)."""
    with open(path) as f:
        comments = config_key_comments(f.read())
    order = {key: index for index, key in enumerate(comments)}

    def rows(node: Any, prefix: str) -> list[tuple[str, str, str]]:
        result = []
        for key in sorted(node.keys(), key=lambda key: (order.get(key, len(order)), key)):
            value = node[key]
            if hasattr(value, 'keys'):
                result += rows(value, f'{prefix}{key}.')
            else:
                result.append((f'{prefix}{key}', repr(value), comments.get(key, '')))
        return result

    return rows(config, '')


def _table(rows: list[tuple[str, str]]) -> list[str]:
    """'  --agent.KEY=VALUE  # note' lines with the notes aligned."""
    width = max(len(flag) for flag, _ in rows) + 3
    return [f'  {flag}'.ljust(width + 2) + f'  # {note}' if note else f'  {flag}' for flag, note in rows]


def agent_config_help(path: str, config: Any) -> str:
    """`--helpagent`: every key of the agent config in `path` with its default and its comment in get_config()."""
    lines = [f'Agent config of {path}: --agent.KEY=VALUE sets a key; per-task presets (configs.py) may replace '
             'defaults of keys not given on the command line (--env_name=TASK --helpagent shows them).']
    return '\n'.join(lines + _table([(f'--agent.{key}={value}', comment)
                                     for key, value, comment in _config_rows(path, config)]))


def print_task_settings(flags: Any, argv: list[str]) -> None:
    """Prints `task_settings_help` (main.py's --helpagent with --env_name), quietly if piped to `head`."""
    from cli.output import print_all
    print_all(task_settings_help(flags, argv))


def task_settings_help(flags: Any, argv: list[str]) -> str:
    """`--env_name=TASK --helpagent`: for each task of --env_name, every agent config key with the value a run would
    use and where it comes from (a configs.py preset and its table, --presets_file, the command line, main.py's budget
    flags, or the agent's default). `flags` are main.py's parsed FLAGS; bad input stops with one `error:` line."""
    import configs
    from cli import plan  # the plan's own steps, so that the values shown are the ones a run would use
    path = agent_file_from_argv(argv)
    try:
        tasks = expand_env_names(flags.env_name)
    except ValueError as error:
        raise SystemExit(f'error: --env_name: {error}')
    plan._check_families(flags, tasks)  # noqa: SLF001 (sets each family's default budget, as a run does)
    explicit_keys = explicit_agent_keys(argv)
    frame_flags = plan._frame_flags(flags, explicit_keys)  # noqa: SLF001
    explicit_keys += [key for key in frame_flags if key in flags.agent and key not in explicit_keys]
    task_configs = plan._task_configs(flags, tasks, explicit_keys, frame_flags)  # noqa: SLF001
    blocks = []
    for task, (config, sources) in zip(tasks, task_configs):
        unpublished = configs.unpublished_required_keys(config.agent_name, task)
        rows = []
        for key, value, _ in _config_rows(path, config):
            if key in sources:
                source = sources[key]
            elif key in unpublished:  # a run refuses to start until it is given
                source = f'NOT SET, a run stops: {unpublished[key]}'
            elif key in ('offline_steps', 'online_steps'):
                source = f'--{key} (main.py copies the budget into the config)'
            else:
                source = f'default of {path}'
            rows.append((f'--agent.{key}={value}', source))
        blocks.append('\n'.join([f'{task}: the agent config of {path} a run of this task uses; each value with '
                                 'where it comes from'] + _table(rows)))
    return '\n\n'.join(blocks)


def _wants_task_settings(argv: list[str]) -> bool:
    """Whether --helpagent comes with --env_name: then main.py prints the per-task values (`task_settings_help`) after
    absl has parsed every flag, instead of the defaults table."""
    return any(arg == '--env_name' or arg.startswith('--env_name=') for arg in argv)


def check_agent_argv(argv: list[str]) -> list[str]:
    """Checks the agent config file and every --agent.KEY before absl parses them; returns the keys. With
    --helpagent (without --env_name), prints the agent's config table and exits. Raises SystemExit with a clear message."""
    path = agent_file_from_argv(argv)
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
    if any(arg in ('--helpagent', '--helpagent=true', '--helpagent=True') for arg in argv) and \
            not _wants_task_settings(argv):
        from cli.output import print_all
        print_all(agent_config_help(path, config))
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


def check_task_configs(path: str, tasks: list[str], task_configs: list[tuple], skip: tuple[str, ...] = ()) -> None:
    """Checks every value of each task's resolved agent config (presets, presets file and command line applied)
    against the agent file's `CONFIG_RULES` and its defaults' types, before any data is loaded: SystemExit with one
    `error:` line naming the key, the value, where it came from and what is allowed. Keys in `skip` are left to
    their own check (the frame flags, which the plan checks under their flag names). A baseline's per-environment key
    without a published value (`configs.unpublished_required_keys`) must be set explicitly."""
    with open(path, encoding='utf-8') as f:
        source = f.read()
    try:
        rules = rules_from_source(source)
    except ValueError as error:
        raise SystemExit(f'error: {path}: {error}')
    import configs
    defaults = literal_defaults(source)
    for task, (config, sources) in zip(tasks, task_configs):
        missing = configs.missing_required_line(config.agent_name, task, sources)  # keys a preset, --presets_file
        if missing:  # or the command line set are in `sources`
            raise SystemExit(f'error: {missing}')
        try:
            for key, value in config.items():
                if key not in skip:
                    check_value(key, value, rules, defaults)
            check_combinations(config)
        except ConfigValueError as error:
            origin = sources.get(error.key, 'default of ' + path)
            origin = 'command line' if origin.startswith('command line') else origin
            raise SystemExit(f'error: {error} (for {task}; value from {origin})')
