"""Agent registry: an agent is one file, found by its name.

Convention. An agent file `NAME.py` defines
  get_config() -> ml_collections.ConfigDict   with `agent_name='NAME'` (the file's stem, the one place its name is
                                              written) and a comment on every key;
  AGENT_CLASS = <its agent class>             a module-level name for the class the training loop builds;
  DISPLAY_NAME = 'Name'                       (optional) how results tables name the agent, read as text.
Every `agents/NAME.py` whose source defines a top-level `get_config` is registered under NAME (helper modules such
as train_state.py define none); `main.py --agent=PATH/TO/NAME.py` trains the agent of any such file, inside
agents/ or not. Files are imported only when their agent is used, so one agent's import error never breaks another.

The interface the training loop relies on (and nothing more):
  AGENT_CLASS.create(rng, example_batch, config) -> agent    (pure; `jax.vmap`-able over rng)
  agent.update(batch) -> (agent, info)                       (pure, jitted; info: dict of scalars; the entries
                                                             whose key ends in 'loss' are checked for NaN/inf at
                                                             every update, the rest only where they are logged)
  agent.sample_actions(observations, rng, temperature=1.0)   ((B, obs_dim) -> (B, action_dim) in [-1, 1]; the
                                                             policy's noise is scaled by temperature)
  agent.validation_metrics(batch, rng) -> info               (pure; the metrics logged as `validation/…` on a
                                                             batch of the validation set, with no update)
Config keys the loop reads:
  batch_size                (required) transitions per update;
  offline_steps             (optional) main.py sets it from --offline_steps, for agents whose schedules depend on the
                            length of training (MFQL's learning rate); other agents leave it out;
  evaluation_temperature    (optional, default 1) the temperature evaluation acts with (0 for agents evaluated with
                            their deterministic action, as FQL's code evaluates IQL and ReBRAC);
  normalize_observations    (optional, default False) with it, the loop fills `observation_mean`/`observation_std`
                            with the training set's statistics;
  next_actions              (optional, default False) with it, batches carry `next_actions` (B, action_dim): the
                            dataset's next action in the episode (`datasets.buffer.next_action_indices`).
Presets (configs.py) are optional: an agent without any trains with its get_config defaults, and its runs record
"no presets" in flags.json.
"""

import ast
import importlib
import importlib.util
import io
import os
import re
import sys
import tokenize
from types import ModuleType
from typing import Any

AGENTS_DIR = os.path.dirname(os.path.abspath(__file__))
_DEFINES_GET_CONFIG = re.compile(r'^def get_config\(', re.MULTILINE)


def is_agent_file(path: str) -> bool:
    """Whether the Python file at `path` defines a top-level `get_config` (read as text: nothing is imported)."""
    if not path.endswith('.py') or not os.path.isfile(path):
        return False
    with open(path, encoding='utf-8') as f:
        return bool(_DEFINES_GET_CONFIG.search(f.read()))


def config_key_comments(source: str) -> dict[str, str]:
    """The keys of the `get_config()` in an agent file's source with their comments, in source order (read as text:
    nothing is imported). `main.py --helpagent` prints them; `configs.visual_agents` looks for an `encoder` key.

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


def registered_agents() -> list[str]:
    """The names of the agents in agents/, sorted: the stems of its files that define `get_config`."""
    return sorted(name[:-3] for name in os.listdir(AGENTS_DIR)
                  if not name.startswith('_') and is_agent_file(os.path.join(AGENTS_DIR, name)))


def agent_file(name: str) -> str:
    """The path of the registered agent `name`; ValueError listing the registered agents if there is none."""
    path = os.path.join(AGENTS_DIR, f'{name}.py')
    if not (isinstance(name, str) and re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*', name) and is_agent_file(path)):
        raise ValueError(f"unknown agent {name!r}; registered agents: {', '.join(registered_agents())} (an agent is a "
                         'file agents/NAME.py defining get_config and AGENT_CLASS)')
    return path


def load_agent_module(path: str) -> ModuleType:
    """Imports the agent file at `path`: as `agents.NAME` for a file in agents/ (one module per agent, whatever the
    caller), else under a name of its own. Errors of the file itself propagate."""
    path = os.path.abspath(path)
    name = os.path.splitext(os.path.basename(path))[0]
    if os.path.dirname(path) == AGENTS_DIR:
        return importlib.import_module(f'agents.{name}')
    module_name = '_agent_file_' + re.sub(r'\W', '_', path)
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # before executing it: flax dataclasses look their module up
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return sys.modules[module_name]


def agent_class_from_file(path: str) -> type:
    """The `AGENT_CLASS` of the agent file at `path`. ValueError if the file does not follow the convention (no
    AGENT_CLASS, or a get_config whose agent_name is not the file's stem)."""
    module = load_agent_module(path)
    stem = os.path.splitext(os.path.basename(path))[0]
    if not isinstance(getattr(module, 'AGENT_CLASS', None), type):
        raise ValueError(f'agent file {path} defines no AGENT_CLASS (the agent class the training loop builds, e.g. '
                         f'AGENT_CLASS = MyAgent at module level)')
    agent_name = module.get_config().get('agent_name')
    if agent_name != stem:
        raise ValueError(f"agent file {path} has get_config().agent_name={agent_name!r}; an agent's name is its file's "
                         f"stem, {stem!r}: rename one of them")
    return module.AGENT_CLASS


def get_agent_class(name: str) -> type:
    """The agent class of the registered agent `name` (agents/NAME.py); ValueError for an unknown name."""
    return agent_class_from_file(agent_file(name))


_DISPLAY_NAME = re.compile(r'''^DISPLAY_NAME = ['"]([^'"]+)['"]''', re.MULTILINE)


def display_name(name: str) -> str:
    """How results tables name a registered agent: its file's top-level `DISPLAY_NAME = '...'` (read as text, nothing
    imported), else its registry name."""
    path = os.path.join(AGENTS_DIR, f'{name}.py')
    if not is_agent_file(path):
        return name
    with open(path, encoding='utf-8') as f:
        match = _DISPLAY_NAME.search(f.read())
    return match.group(1) if match else name


def agent_defaults(agent_class: type) -> Any | None:
    """`get_config()` of the agent file that defines `agent_class`: the agent's defaults (None for a class whose module
    has no get_config)."""
    get_config = getattr(sys.modules.get(agent_class.__module__), 'get_config', None)
    return get_config() if callable(get_config) else None


def get_agent_config(name: str):
    """`get_config()` of the registered agent `name` (agents/NAME.py); ValueError for an unknown name."""
    return load_agent_module(agent_file(name)).get_config()
