"""What an agent config value may be, checked before any compute (standard library only: no JAX, no agent import).

An agent file declares its constraints next to its `get_config()` as one literal table,

    CONFIG_RULES = {'discount': '(0, 1]', 'batch_size': 'int > 0', 'q_agg': ('mean', 'min'), ...}

with one rule per key, in this small vocabulary:
  a tuple of values       one of these values (a choice: `('mean', 'min')`; None may be one of them);
  '> 0', '>= 0'           a number (int or float, not bool) above / at least 0;
  '(0, 1]', '[0, 1]', '(0, 1)', '[0, 1)'   a number in that interval;
  'int > 0', 'int >= 0'   an integer (not bool) above / at least 0;
  'ints > 0'              a non-empty sequence of positive integers (hidden sizes);
  'bool'                  True or False.
The table is a literal so that it is read from the file's text (`rules_from_source`): `sweep.py` checks every job
on a login node without importing JAX, with the same messages as `main.py`. Keys without a rule (and agents without
a table) are checked for their type only, against the type of their `get_config()` default.
"""

import ast
import math
from typing import Any, Mapping

RULES_NAME = 'CONFIG_RULES'
# rule -> (low, low included, high, high included)
_NUMBER_RULES = {'> 0': (0.0, False, math.inf, False), '>= 0': (0.0, True, math.inf, False),
                 '(0, 1]': (0.0, False, 1.0, True), '[0, 1]': (0.0, True, 1.0, True), '(0, 1)': (0.0, False, 1.0, False),
                 '[0, 1)': (0.0, True, 1.0, False)}
_TEXT = {'> 0': 'a number > 0', '>= 0': 'a number >= 0', '(0, 1]': 'a number in (0, 1]', '[0, 1]': 'a number in [0, 1]',
         '(0, 1)': 'a number in (0, 1)', '[0, 1)': 'a number in [0, 1)', 'int > 0': 'an integer >= 1', 'int >= 0': 'an integer >= 0',
         'ints > 0': 'a non-empty tuple of positive integers, e.g. (512, 512)', 'bool': 'True or False'}
RULES = tuple(_TEXT)  # the string rules of the vocabulary


class ConfigValueError(ValueError):
    """A config value that its rule or its default's type does not allow; str() is the one-line message."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f'--agent.{key}={value!r} is not allowed: {allowed}')


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def allowed_text(rule: Any) -> str:
    """What `rule` allows, in words (for messages and --helpagent)."""
    if isinstance(rule, tuple):
        return 'one of ' + ', '.join(repr(choice) for choice in rule)
    if rule not in _TEXT:
        raise ValueError(f'unknown config rule {rule!r}; rules are a tuple of choices or one of {", ".join(RULES)}')
    return _TEXT[rule]


def satisfies(value: Any, rule: Any) -> bool:
    """Whether `value` satisfies `rule` (module docstring)."""
    allowed_text(rule)  # ValueError for a rule outside the vocabulary: a bug in the agent's table
    if isinstance(rule, tuple):
        return any(value == choice and type(value) is type(choice) or (_is_number(value) and _is_number(choice)
                                                                         and value == choice) for choice in rule)
    if rule in _NUMBER_RULES:
        low, low_in, high, high_in = _NUMBER_RULES[rule]
        return _is_number(value) and math.isfinite(value) and (value >= low if low_in else value > low) \
            and (value <= high if high_in else value < high)
    if rule in ('int > 0', 'int >= 0'):
        return _is_int(value) and value >= (1 if rule == 'int > 0' else 0)
    if rule == 'ints > 0':
        return isinstance(value, (tuple, list)) and len(value) > 0 and all(_is_int(v) and v >= 1 for v in value)
    return isinstance(value, bool)  # 'bool'


def type_allows(value: Any, default: Any) -> bool:
    """Whether `value` has the type of its `get_config()` default (an int where a float is expected is fine, as
    ml_collections allows; a None default allows anything)."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return _is_int(value)
    if isinstance(default, float):
        return _is_number(value)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list))
    return isinstance(value, type(default))


def _type_name(default: Any) -> str:
    if isinstance(default, bool):
        return 'True or False'
    if isinstance(default, int):
        return 'an integer'
    if isinstance(default, float):
        return 'a number'
    if isinstance(default, (tuple, list)):
        return 'a tuple, e.g. ' + repr(tuple(default))
    return f'a {type(default).__name__}'


def check_value(key: str, value: Any, rules: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """ConfigValueError if `value` breaks the rule of `key` in `rules`, or (without a rule) its default's type."""
    if key in rules:
        if not satisfies(value, rules[key]):
            raise ConfigValueError(key, value, allowed_text(rules[key]))
    elif key in defaults and not type_allows(value, defaults[key]):
        raise ConfigValueError(key, value, _type_name(defaults[key]))


def check_combinations(config: Mapping[str, Any]) -> None:
    """What no single value's rule can say, for any agent whose config has the keys: frames are never z-scored
    (a pixel `encoder` scales them to [0, 1]), so `normalize_observations` must be off with an encoder.
    ConfigValueError naming the value to change."""
    encoder = config.get('encoder')
    if encoder is not None and config.get('normalize_observations') is True:
        raise ConfigValueError('normalize_observations', True, f'False with a pixel encoder (encoder={encoder!r}): '
                                                               'frames are not z-scored, the encoder scales them to '
                                                               '[0, 1]')


def check_config(config: Mapping[str, Any], rules: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Checks every top-level value of `config` (in its order) against `rules` and the defaults' types, then the
    values together (`check_combinations`); ConfigValueError for the first one that is not allowed."""
    for key, value in config.items():
        check_value(key, value, rules, defaults)
    check_combinations(config)


def rules_from_source(source: str) -> dict[str, Any]:
    """The `CONFIG_RULES` table of an agent file's source ({} when it has none), read as text: nothing is imported.
    ValueError if the table is not a literal or uses a rule outside the vocabulary."""
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        if any(isinstance(target, ast.Name) and target.id == RULES_NAME for target in targets):
            try:
                rules = ast.literal_eval(node.value)
            except ValueError:
                raise ValueError(f'{RULES_NAME} must be a literal dict (it is read without importing the agent)')
            for rule in rules.values():
                allowed_text(rule)
            return rules
    return {}


def literal_defaults(source: str) -> dict[str, Any]:
    """The `get_config()` defaults of an agent file's source that are literals (`key=0.99`, `key=(512, 512)`), read
    as text; keys whose default is built by a call (e.g. `placeholder(str)`) are left out."""
    defaults = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == 'get_config':
            for call in ast.walk(node):
                if isinstance(call, ast.Call):
                    for keyword in call.keywords:
                        if keyword.arg is None:
                            continue
                        try:
                            defaults.setdefault(keyword.arg, ast.literal_eval(keyword.value))
                        except ValueError:
                            pass
    return defaults


def parse_flag_text(text: str, default: Any) -> Any:
    """The value `--agent.KEY=text` gives a key whose default is `default`, as ml_collections parses it (by the
    default's type); ValueError if the text is not of that type. Used by the sweep, which holds flags as text."""
    if isinstance(default, bool):
        if text.lower() in ('true', '1'):
            return True
        if text.lower() in ('false', '0'):
            return False
        raise ValueError(text)
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, str):
        return text
    try:  # tuples and None defaults: a Python literal, else the text itself
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if isinstance(default, (tuple, list)):
            raise ValueError(text)
        return text


def check_flag_text(key: str, text: str, rules: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Checks `--agent.KEY=text` (as given to sweep.py) with `check_value`'s rules and messages; a text that does not
    parse as its default's type is ConfigValueError naming that type."""
    if key not in defaults and key not in rules:
        return  # a default built by a call: only the agent's own checks know it
    default = defaults.get(key)
    try:
        value = parse_flag_text(text, default)
    except ValueError:
        raise ConfigValueError(key, text, _type_name(default))
    check_value(key, value, rules, defaults)
