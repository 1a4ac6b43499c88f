"""The protocol label every table of the report carries: updates, the evaluation steps the score averages, dataset
(and its size where the runs recorded it), network sizes, evaluation episodes, the score's definition and the commit,
all read from the runs' own flags.json (never from today's defaults: a sweep made months ago reports its own).

Where the finished jobs of one table differ (two budgets, two commits), every distinct value is listed.
"""

import dataclasses
import re
from typing import Any

from results import last_three
from sweeps.collect import Group, SweepResults, commit_of, recorded_flags
from sweeps.tables import agent_label
from training.schedule import RunOptions, is_eval_step

# Agent config keys that size the networks ('value_hidden_dims', 'actor_depth', 'actor_arch', 'encoder', ...).
NETWORK_KEYS = re.compile(r'(hidden_dims?|depth|_arch|encoder)$')


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Each field a short phrase; `label` joins them."""

    updates: str
    score: str  # the definition, with the evaluation steps it averages
    evaluation: str
    dataset: str
    networks: str
    commit: str

    def label(self) -> str:
        return (f'Protocol: {self.updates}; score: {self.score}; {self.evaluation}; dataset: {self.dataset}; '
                f'networks: {self.networks}; commit {self.commit}.')


def _distinct(values: list[str], missing: str = 'not recorded', separator: str = ' / ') -> str:
    """The distinct values in first-seen order, joined; `missing` when there are none."""
    return separator.join(dict.fromkeys(values)) if values else missing


def _short_commit(recorded: dict[str, Any]) -> str:
    """The recorded commit's first 12 hex digits, '+dirty' kept (a run from uncommitted code says so)."""
    commit = commit_of(recorded)
    return commit if commit == 'not recorded' else commit[:12] + ('+dirty' if commit.endswith('+dirty') else '')


def _count(number: int) -> str:
    return f'{number:,}'


def evaluation_steps(flags: dict[str, Any], eval_episodes: int) -> list[int]:
    """The steps at which a run evaluated, by the training schedule's rule (`training.schedule.is_eval_step`)."""
    options = RunOptions(offline_steps=int(flags.get('offline_steps', 0)),
                         online_steps=int(flags.get('online_steps', 0)), eval_interval=int(flags['eval_interval']),
                         eval_episodes=eval_episodes)
    total, interval = options.total_steps, options.eval_interval
    candidates = {1, options.offline_steps, total, *range(interval, total + 1, interval)}
    return sorted(step for step in candidates if 1 <= step <= total and is_eval_step(step, options))


def _eval_episodes(recorded: dict[str, Any]) -> int | None:
    """Evaluation episodes per seed as the run recorded them (top level, or among its flags), else None."""
    value = recorded.get('eval_episodes', recorded.get('flags', {}).get('eval_episodes'))
    return None if value is None else int(value)


def scored_steps(group: Group, recorded: dict[str, Any]) -> str:
    """Which evaluations the group's score is of, for one run: 'steps 800,000, 900,000 and 1,000,000' (the last three
    after step 1, OGBench) or 'step 500,000' (the final one, D4RL)."""
    flags, episodes = recorded.get('flags', {}), _eval_episodes(recorded)
    if 'eval_interval' not in flags or 'offline_steps' not in flags or not episodes:
        return 'evaluation steps not recorded'
    steps = evaluation_steps(flags, episodes)
    chosen = last_three(steps) if group.metric.key.endswith('_last3') else steps[-1:]
    words = [_count(step) for step in chosen]
    text = ', '.join(words[:-1]) + f' and {words[-1]}' if len(words) > 1 else words[0]
    return f'step{"s" if len(words) > 1 else ""} {text}'


def _updates(flags: dict[str, Any]) -> str:
    """'1,000,000 offline updates' (+ online ones), from the run's flags."""
    offline, online = int(flags.get('offline_steps', 0)), int(flags.get('online_steps', 0))
    return (f'{_count(offline)} offline updates' + (f' + {_count(online)} online' if online else '')
            if 'offline_steps' in flags else 'updates not recorded')


def _dataset(recorded: dict[str, Any]) -> str:
    """The dataset as the run recorded it: its `dataset` entry (name and size, when main.py records them), the D4RL
    Minari id, else only that the size was not recorded."""
    dataset = recorded.get('dataset')
    if isinstance(dataset, dict):
        return ', '.join(f'{key} {value}' for key, value in dataset.items() if key not in ('md5', 'sha256', 'path'))
    if dataset:
        return str(dataset)
    if isinstance(recorded.get('d4rl'), dict) and 'minari_id' in recorded['d4rl']:
        return f'Minari {recorded["d4rl"]["minari_id"]} (size not recorded)'
    return "each task's OGBench dataset (size not recorded)"


def _dims(value: Any) -> str:
    """(512, 512, 512, 512) -> '4×512'; (256, 128) -> '256-128'; a scalar as it is."""
    if isinstance(value, (list, tuple)):
        if value and len(set(value)) == 1:
            return f'{len(value)}×{value[0]}'
        return '-'.join(str(v) for v in value)
    return str(value)


def _networks(entry: dict[str, Any], recorded: dict[str, Any]) -> str:
    """'FQL: actor_hidden_dims 4×512, value_hidden_dims 4×512': the network-size keys of the run's agent config."""
    config = recorded.get('agent_config', {})
    sizes = ', '.join(f'{key} {_dims(value)}' for key, value in sorted(config.items()) if NETWORK_KEYS.search(key))
    return f'{agent_label(entry["agent"])}: {sizes or "not recorded"}'


def protocol(results: SweepResults, group: Group) -> Protocol:
    """The protocol of a group's finished runs, from every seed's flags.json."""
    pairs = recorded_flags(results, group.tasks)
    records = [recorded for _, recorded in pairs]
    episodes = [_eval_episodes(recorded) for recorded in records]
    return Protocol(
        updates=_distinct([_updates(recorded.get('flags', {})) for recorded in records]),
        score=f'{group.metric.definition} ({_distinct([scored_steps(group, recorded) for recorded in records])})',
        evaluation=_distinct([f'{number} evaluation episodes per seed' for number in episodes if number is not None],
                             'evaluation episodes not recorded'),
        dataset=_distinct([_dataset(recorded) for recorded in records]),
        networks=_distinct([_networks(entry, recorded) for entry, recorded in pairs], separator='; '),
        commit=_distinct([_short_commit(recorded) for recorded in records]))
