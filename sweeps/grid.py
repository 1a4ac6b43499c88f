"""The grid of a sweep: tasks × agents × the cartesian product of the swept agent keys, as `main.py` jobs.

A job's command is an argument list from the start: it is stored, hashed and compared as a list, never as a
joined string, so a folder or a value with a space in it reads back as it was given. Every flag is checked here,
before anything is launched: main.py's flag names (`run_flags`, no source parsing), the agents' config keys (read
from the agent files' source where the config is a literal, so that no JAX is imported on a login node), path flags
resolved against the directory the command was typed in, and the datasets the jobs will need.
"""

import argparse
import dataclasses
import difflib
import hashlib
import itertools
import json
import os
import re

import run_flags
import runs
from sweeps import SweepError

# main.py flags the sweep sets itself for every job.
SWEEP_OWNED = ('env_name', 'seed', 'num_seeds', 'seeds', 'save_dir', 'run_name', 'resume', 'progress_bar', 'agent')
PRESETS_FLAG = 'presets_file'


@dataclasses.dataclass(frozen=True)
class Job:
    """One main.py run of the sweep.

    `flags` are main.py's arguments in order (without the interpreter and script); `run_dir` is main.py's task
    folder (holding `seed<k>/`), relative to the sweep folder; `overrides` are the swept agent keys of this grid point
    as given on the command line; `config_hash` identifies what the job computes (`config_hash`)."""

    name: str  # '<setting>/<task>', unique within the sweep
    setting: str  # '<agent>[,KEY=VALUE...]': the report's column
    agent: str
    task: str
    seeds: tuple[int, ...]
    overrides: tuple[tuple[str, str], ...]
    flags: tuple[str, ...]
    run_dir: str
    config_hash: str = ''

    @property
    def command(self) -> list[str]:
        return ['python', 'main.py', *self.flags]

    def seed_dirs(self, sweep_dir: str) -> list[str]:
        return runs.seed_dirs(os.path.join(sweep_dir, self.run_dir), self.seeds)


def flag_name(token: str) -> str:
    """'--agent.alpha=3' -> 'agent.alpha'; '--resume' -> 'resume'; '--noresume' stays 'noresume'."""
    return token[2:].split('=', 1)[0] if token.startswith('--') else token


def flag_value(token: str) -> str:
    return token.split('=', 1)[1] if '=' in token else ''


def result_flags(flags: list[str] | tuple[str, ...],
                 ignored: tuple[str, ...] = run_flags.NOT_RESULT_DEFINING) -> list[str]:
    """The flags that define what a run computes (`ignored`, by default `run_flags.NOT_RESULT_DEFINING`, left out),
    in order."""
    return [token for token in flags if flag_name(token).removeprefix('no') not in ignored
            and flag_name(token) not in ignored]


def latest_flag_values(flags: list[str] | tuple[str, ...]) -> dict[str, str]:
    """{name: value} of main.py flags as main.py reads them: the last one given wins (absl's and ml_collections'
    rule), and booleans read 'true' or 'false' however they were spelled (--NAME, --noNAME, --NAME=VALUE)."""
    values = {}
    for token in flags:
        name, value = flag_name(token), flag_value(token)
        if name.startswith('no') and name[2:] in run_flags.BOOLEAN_FLAGS:
            name, value = name[2:], 'false'
        elif name in run_flags.BOOLEAN_FLAGS:
            value = 'true' if value.lower() in ('', 'true', 't', '1') else 'false'
        values[name] = value
    return values


def canonical_flags(flags: list[str] | tuple[str, ...]) -> list[str]:
    """The result-defining flags as main.py reads them (`latest_flag_values`), one --NAME=VALUE each, sorted by name:
    flags typed in another order, or given twice, hash as main.py would run them."""
    values = latest_flag_values(result_flags(flags))
    return [f'--{name}={values[name]}' for name in sorted(values)]


def file_digest(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def hashed(tokens: list[str]) -> str:
    return hashlib.sha256(json.dumps(tokens).encode()).hexdigest()[:16]


def with_presets_digest(tokens: list[str], presets_digest: str | None) -> list[str]:
    return [f'--{PRESETS_FLAG}=sha256:{presets_digest}' if flag_name(token) == PRESETS_FLAG and presets_digest
            else token for token in tokens]


def config_hash(flags: list[str] | tuple[str, ...], presets_digest: str | None = None) -> str:
    """A short hash of the result-defining flags (`canonical_flags`). A presets file counts by its content
    (`presets_digest`, its sha256, which main.py records in flags.json), not by its path: moving the file keeps
    finished jobs done, and editing it makes them differ."""
    return hashed(with_presets_digest(canonical_flags(flags), presets_digest))


def earlier_config_hashes(flags: list[str] | tuple[str, ...], presets_digest: str | None) -> tuple[str, str]:
    """The hashes that earlier sweeps recorded in their manifests for these flags, so that their folders keep their
    finished jobs: the flags in the order given, with save_interval and generate_workers counted; the presets file by
    its content, and, earlier still, by its path."""
    tokens = result_flags(flags, run_flags.EARLIER_NOT_RESULT_DEFINING)
    return hashed(with_presets_digest(tokens, presets_digest)), hashed(tokens)


def recorded_config_hash(flags_json: dict) -> str:
    """`config_hash` of the run a seed's flags.json describes."""
    presets = flags_json.get('presets_file') or {}
    return config_hash(runs.recorded_arguments(flags_json), presets.get('sha256'))


def split_values(text: str) -> list[str]:
    """'30,100' -> ['30', '100']; commas inside brackets stay: '(256,256),(512,512)' -> ['(256,256)', '(512,512)']."""
    values, depth, current = [], 0, ''
    for char in text:
        depth += char in '([{'
        depth -= char in ')]}'
        if char == ',' and depth == 0:
            values.append(current)
            current = ''
        else:
            current += char
    values.append(current)
    return [value.strip() for value in values]


def parse_sweeps(specs: list[str]) -> list[tuple[str, list[str]]]:
    """['agent.alpha=30,100'] -> [('alpha', ['30', '100'])]; SweepError on a malformed or repeated spec."""
    sweeps: list[tuple[str, list[str]]] = []
    for spec in specs:
        match = re.match(r'^agent\.([A-Za-z0-9_.]+)=(.+)$', spec)
        if match is None:
            raise SweepError(f'--sweep={spec}: expected agent.KEY=V1,V2,... (e.g. --sweep=agent.alpha=30,100,300)')
        key, values = match.group(1), split_values(match.group(2))
        if any(not value for value in values):
            raise SweepError(f'--sweep={spec}: empty value in the list')
        if len(set(values)) != len(values):
            raise SweepError(f'--sweep={spec}: repeated value')
        if key in (k for k, _ in sweeps):
            raise SweepError(f'--sweep: agent.{key} is swept twice; give all its values in one --sweep')
        sweeps.append((key, values))
    return sweeps


def folder_safe(text: str) -> str:
    """A setting as a folder name: characters outside [A-Za-z0-9._=,()+-] become '_'."""
    return re.sub(r'[^A-Za-z0-9._=,()+\-]', '_', text)


def setting_name(agent: str, overrides: tuple[tuple[str, str], ...]) -> str:
    return ','.join([agent, *(f'{key}={value.replace(" ", "")}' for key, value in overrides)])


def seed_flags(args: argparse.Namespace) -> tuple[list[str], tuple[int, ...]]:
    """main.py's seed flags for every job and the seeds they give (main.py's rule)."""
    if args.seeds:
        try:
            seeds = tuple(int(seed) for seed in args.seeds.split(','))
        except ValueError:
            raise SweepError(f'--seeds must be comma-separated integers, got {args.seeds}')
        if len(set(seeds)) != len(seeds) or any(seed < 0 for seed in seeds):
            raise SweepError(f'--seeds must be distinct non-negative integers, got {args.seeds}')
        return [f'--seeds={",".join(map(str, seeds))}'], seeds
    if args.num_seeds < 1 or args.seed < 0:
        raise SweepError(f'--num_seeds must be >= 1 and --seed >= 0, got {args.num_seeds} and {args.seed}')
    flags = ([f'--seed={args.seed}'] if args.seed else []) + [f'--num_seeds={args.num_seeds}']
    return flags, tuple(range(args.seed, args.seed + args.num_seeds))


def grid_tasks(args: argparse.Namespace) -> list[str]:
    """The grid's tasks: `--grid` names (configs.paper_tasks) then `--env_name` entries, without duplicates."""
    import configs
    from datasets import names
    tasks: list[str] = []
    for grid in [g.strip() for g in args.grid.split(',') if g.strip()]:
        try:
            tasks += configs.paper_tasks(grid)
        except ValueError as error:
            raise SweepError(f'--grid: {error}')
    if args.env_name:
        try:
            tasks += names.expand_env_names(args.env_name)
        except ValueError as error:
            raise SweepError(f'--env_name: {error}')
    if not tasks:
        raise SweepError('no tasks: give --grid=paper (or another grid of configs.py) and/or --env_name=TASK,FAMILY,...')
    return list(dict.fromkeys(tasks))


def literal_config_keys(source: str) -> set[str] | None:
    """The top-level keys of an agent file's get_config() when it returns a literal
    `ConfigDict(dict(key=value, ...))` (or a `{...}` literal), read from the source without importing it; None
    when the config is built another way."""
    import ast
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == 'get_config':
            returned = [n.value for n in ast.walk(node) if isinstance(n, ast.Return) and n.value is not None]
            if len(returned) != 1 or not isinstance(returned[0], ast.Call) or len(returned[0].args) != 1:
                return None
            literal = returned[0].args[0]
            if isinstance(literal, ast.Call) and getattr(literal.func, 'id', None) == 'dict' and not literal.args:
                keys = [keyword.arg for keyword in literal.keywords]
                return None if None in keys else set(keys)
            if isinstance(literal, ast.Dict) and all(isinstance(k, ast.Constant) for k in literal.keys):
                return {k.value for k in literal.keys}
            return None
    return None


def agent_config_keys(agent: str) -> set[str]:
    """Top-level keys of agents/<agent>.py's get_config(): read from its source when the config is a literal (no JAX
    import on a login node), else by importing the agent. SweepError if there is no such registered agent."""
    from agents import agent_file
    try:
        path = agent_file(agent)
    except ValueError as error:
        raise SweepError(f'--agents: {error}')
    with open(path, encoding='utf-8') as f:
        keys = literal_config_keys(f.read())
    if keys is None:
        from agents import get_agent_config
        keys = set(get_agent_config(agent).keys())
    return keys


def check_agent_values(agents: list[str], values: list[tuple[str, list[str]]]) -> None:
    """Checks every value given to an agent key (`--agent.KEY=V`, and each value of `--sweep=agent.KEY=V1,V2`) for
    each agent that has the key, against the agent file's `CONFIG_RULES` and its defaults' types, read from its source
    (no JAX); SweepError with main.py's message for the first value not allowed."""
    from agents import agent_file
    from agents.config_rules import ConfigValueError, check_flag_text, literal_defaults, rules_from_source
    for agent in agents:
        with open(agent_file(agent), encoding='utf-8') as f:
            source = f.read()
        try:
            rules, defaults = rules_from_source(source), literal_defaults(source)
        except ValueError as error:
            raise SweepError(f'agents/{agent}.py: {error}')
        for key, texts in values:
            for text in texts:
                try:
                    check_flag_text(key, text, rules, defaults)
                except ConfigValueError as error:
                    raise SweepError(f'{error} (agents/{agent}.py)')


def absolute_path(value: str, caller_dir: str) -> str:
    return os.path.normpath(os.path.join(caller_dir, os.path.expanduser(value)))


FLAG_KINDS = {flag.name: flag.kind for flag in run_flags.FLAGS}
BOOLEAN_TEXTS = ('true', 't', '1', 'false', 'f', '0')


def check_flag_value(token: str, name: str) -> None:
    """SweepError if a main.py flag's value is not of its kind (an integer, a number, true/false), as main.py would
    refuse it in every job."""
    kind, value = FLAG_KINDS[name], flag_value(token)
    if kind == 'boolean':
        ok = '=' not in token or value.lower() in BOOLEAN_TEXTS
    elif kind in ('integer', 'float'):
        try:
            (int if kind == 'integer' else float)(value)
            ok = True
        except ValueError:
            ok = False
    else:
        ok = True
    if not ok:
        wanted = {'boolean': 'true or false', 'integer': 'an integer', 'float': 'a number'}[kind]
        raise SweepError(f'{token}: --{name} takes {wanted}')


def passthrough_flags(extra: list[str], caller_dir: str) -> tuple[list[str], list[str]]:
    """Splits the unknown command-line arguments into main.py flags and --agent.KEY flags, checking each name
    against main.py's flags (SweepError with close matches otherwise) and each value against its kind
    (`check_flag_value`). Path flags are made absolute against
    `caller_dir`: jobs run from the repository, not from where the command was typed."""
    allowed = [name for name in run_flags.FLAG_NAMES if name not in SWEEP_OWNED]
    refused = run_flags.refused_flag_error(extra)  # FQL's flags that do not apply here, with what to use instead
    if refused is not None:
        raise SweepError(refused.removeprefix('error: '))
    main_flags, agent_flags = [], []
    for token in extra:
        if token.startswith('--agent.') and '=' in token:
            agent_flags.append(token)
            continue
        name = flag_name(token)
        bare = name[2:] if name.startswith('no') and name[2:] in allowed else name
        if not token.startswith('--') or bare not in allowed:
            if bare in SWEEP_OWNED:
                raise SweepError(f'{token}: sweep.py sets --{bare} for every job itself; see python sweep.py --help')
            close = difflib.get_close_matches(bare, allowed + list(SWEEP_OWNED), n=3)
            hint = f'; did you mean {", ".join("--" + c for c in close)}?' if close else ''
            raise SweepError(f'unknown argument {token!r}: not a sweep.py or main.py flag{hint}')
        check_flag_value(token, bare)
        if name in run_flags.PATH_FLAGS and flag_value(token):
            token = f'--{name}={absolute_path(flag_value(token), caller_dir)}'
        main_flags.append(token)
    return main_flags, agent_flags


def presets_path(main_flags: list[str]) -> str | None:
    """The --presets_file the jobs get (the last one given), or None without one."""
    paths = [flag_value(token) for token in main_flags if flag_name(token) == PRESETS_FLAG and flag_value(token)]
    return paths[-1] if paths else None


def presets_digest(main_flags: list[str]) -> str | None:
    """sha256 of the --presets_file the jobs get, or None without one; SweepError if it cannot be read."""
    path = presets_path(main_flags)
    if path is None:
        return None
    try:
        return file_digest(path)
    except OSError as error:
        raise SweepError(f'--presets_file: cannot read {path} ({error.strerror}); give the path of a file '
                         'written by sweep.py --report --write_presets')


def presets_payload(main_flags: list[str]) -> tuple[str, dict] | None:
    """(path, content) of the --presets_file the jobs get (`configs.read_presets_file`), or None without one."""
    import configs
    path = presets_path(main_flags)
    if path is None:
        return None
    try:
        return path, configs.read_presets_file(path)
    except ValueError as error:
        raise SweepError(f'--presets_file: {error}')


def check_required_keys(agent: str, task: str, given_keys: list[str], presets_file: tuple[str, dict] | None) -> None:
    """SweepError with main.py's line if the job of `agent` on `task` lacks a per-environment key that has no published
    value (ReBRAC's alpha_actor/alpha_critic, IQL's alpha: `configs.REQUIRED_BASELINE_KEYS`) and that neither its
    --agent flags, its swept values (`given_keys`) nor the presets file set: main.py would refuse the job."""
    import configs
    if presets_file is not None:
        given_keys = [*given_keys, *configs.presets_from_file(presets_file[1], presets_file[0], agent, task)]
    missing = configs.missing_required_line(agent, task, given_keys)
    if missing:
        raise SweepError(missing)


def check_unknown_keys(agent_keys: dict[str, set[str]], keys: list[str]) -> None:
    for key in keys:
        if not any(key.split('.')[0] in known for known in agent_keys.values()):
            every_key = sorted(set().union(*agent_keys.values()))
            close = difflib.get_close_matches(key, every_key, n=3)
            hint = f'; did you mean {", ".join(close)}?' if close else ''
            raise SweepError(f"agent config key '{key}' is not a key of "
                             f"{', '.join(f'agents/{a}.py' for a in agent_keys)}{hint}")


def build_jobs(args: argparse.Namespace, extra: list[str], sweep_dir: str, caller_dir: str | None = None) -> list[Job]:
    """The grid: tasks × agents × the cartesian product of the swept values, every flag checked first.

    A `--agent.KEY` flag or a `--sweep=agent.KEY=...` goes to the agents whose config has KEY (sweeping MFQL's
    time_steps with --agents=mfql,fql sweeps MFQL only); a key that no agent has is an error."""
    tasks = grid_tasks(args)
    agents = [a.strip() for a in args.agents.split(',') if a.strip()]
    if not agents or len(set(agents)) != len(agents):
        raise SweepError(f'--agents must be distinct agent names, e.g. mfql,fql; got {args.agents!r}')
    sweeps = parse_sweeps(args.sweep)
    main_flags, agent_flags = passthrough_flags(extra, caller_dir or os.getcwd())
    fixed_keys = [flag_name(token)[len('agent.'):] for token in agent_flags]
    for key, _ in sweeps:
        if key in fixed_keys:
            raise SweepError(f'agent.{key} is both swept (--sweep) and fixed (--agent.{key}); keep one')
    agent_keys = {agent: agent_config_keys(agent) for agent in agents}
    check_unknown_keys(agent_keys, [*fixed_keys, *(k for k, _ in sweeps)])
    check_agent_values(agents, [(key, [flag_value(token)]) for key, token in zip(fixed_keys, agent_flags)] + sweeps)
    digest = presets_digest(main_flags)
    presets_file = presets_payload(main_flags)
    seed_args, seeds = seed_flags(args)
    jobs = []
    for agent in agents:
        # --agent.KEY flags and sweeps go to the agents that have KEY (e.g. actor_arch: MFQL's only).
        has = lambda key: key.split('.')[0] in agent_keys[agent]  # noqa: E731
        own_flags = [token for token, key in zip(agent_flags, fixed_keys) if has(key)]
        own_sweeps = [(key, values) for key, values in sweeps if has(key)]
        for values in itertools.product(*(values for _, values in own_sweeps)):
            overrides = tuple((key, value) for (key, _), value in zip(own_sweeps, values))
            setting = setting_name(agent, overrides)
            for task in tasks:
                check_required_keys(agent, task, [*(key for key in fixed_keys if has(key)),
                                                  *(key for key, _ in overrides)], presets_file)
                save_dir = os.path.join(sweep_dir, 'runs', folder_safe(setting))
                flags = (f'--agent=agents/{agent}.py', f'--env_name={task}', *seed_args, f'--save_dir={save_dir}',
                         f'--run_name={task}', *main_flags, *own_flags,
                         *(f'--agent.{key}={value.replace(" ", "")}' for key, value in overrides),
                         '--resume', '--progress_bar=false')
                run_dir = os.path.relpath(runs.task_dir(runs.run_root(save_dir, task), task), sweep_dir)
                jobs.append(Job(name=f'{setting}/{task}', setting=setting, agent=agent, task=task, seeds=seeds,
                                overrides=overrides, flags=flags, run_dir=run_dir,
                                config_hash=config_hash(flags, digest)))
    folders = [job.run_dir for job in jobs]
    clash = next((folder for folder in folders if folders.count(folder) > 1), None)
    if clash is not None:
        raise SweepError(f'two grid points share the folder {clash} (values that differ only in characters that are '
                         'not allowed in folder names); rename the values')
    return jobs


def missing_data(jobs: list[Job]) -> str | None:
    """One line naming the dataset files the jobs need but will not find, or None. Checked on the submitting machine
    before anything is queued; jobs that fetch missing data themselves (--generate_missing_data,
    --download_missing_data) and families whose data lives in their own store (D4RL's Minari) are not checked."""
    from datasets.families import family_of
    missing = []
    for job in jobs:
        given = latest_flag_values(job.flags)
        if int(given.get('generate_missing_data') or 0) > 0 or given.get('download_missing_data') == 'true':
            continue
        dataset_dir = given.get('dataset_dir') or next(f.default for f in run_flags.FLAGS if f.name == 'dataset_dir')
        for path in family_of(job.task).data_files(job.task, os.path.expanduser(dataset_dir)):
            if not os.path.exists(path) and path not in missing:
                missing.append(path)
    if not missing:
        return None
    return (f'{len(missing)} dataset file(s) are missing, e.g. {missing[0]}: generate them (python -m datasets.generate '
            '--env_name=DATASET --dataset_dir=DIR), point --dataset_dir at them, or pass --generate_missing_data=N')
