"""Resume and compatibility checks: what `--resume` may continue, and restoring the seeds' saved state.

A task is resumed from the newest checkpoint step that every seed has (`resume_step`); the offline phase then
continues bitwise identically. A larger --offline_steps extends a run with the schedules it started with
(`extension_schedule_length`). Before that, `check_same_agent_config` refuses
seeds trained with another agent config or another number of evaluation episodes, so that one run never
mixes two settings. The online replay buffer is checkpointed with each seed's state (its filled rows).
"""

import json
import os
from typing import Any, Collection

import jax
import numpy as np

from datasets.buffer import ReplayBuffer
from training import checkpoint
from runs import flags_path, read_flags, seed_dir


class ConfigMismatchError(checkpoint.ResumeError):
    """`--resume` met seeds trained with another agent config or evaluation episode count; the message names
    the differing keys."""


def agent_config_dict(config: Any) -> dict[str, Any]:
    """The agent config as stored in flags.json (JSON types: tuples become lists)."""
    plain = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
    return json.loads(json.dumps(plain, default=str))


def with_added_keys(saved: dict[str, Any], defaults: Any | None) -> dict[str, Any]:
    """A saved agent config with the keys it lacks but the agent's defaults (`defaults`, its get_config) have, at
    their default values: an agent gains keys whose defaults keep what it computed before (the baselines' `encoder`,
    `frame_stack` and `p_aug`), so a run saved before a key existed is the same run with that key at its default."""
    if defaults is None:
        return saved
    return {**{key: value for key, value in agent_config_dict(defaults).items() if key not in saved}, **saved}


def check_same_agent_config(run_dir: str, seeds: list[int], config: Any, eval_episodes: int,
                            defaults: Any | None = None) -> None:
    """Refuses to resume (or reuse) seeds trained with another agent config or evaluated with another number of
    episodes: a resumed run would silently mix two configs (or two evaluation protocols in one eval.csv), and a
    finished one would be reported under the wrong settings. A key the saved config lacks counts at its value in
    `defaults` (the agent's get_config; `with_added_keys`). Raises ConfigMismatchError naming each differing key
    with its saved and requested value."""
    current = agent_config_dict(config)
    for seed in seeds:
        path = flags_path(seed_dir(run_dir, seed))
        saved_flags = read_flags(seed_dir(run_dir, seed))
        if saved_flags is None:
            continue
        saved = saved_flags.get('agent_config')
        if saved is None:
            continue
        saved = with_added_keys(saved, defaults)
        differences = [f'{key}: saved {saved.get(key, "<missing>")!r}, requested {current.get(key, "<missing>")!r}'
                       for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
        saved_episodes = saved_flags.get('eval_episodes', eval_episodes)  # absent in runs saved before it was
        if saved_episodes != eval_episodes:
            differences.append(f'eval_episodes: saved {saved_episodes!r}, requested {eval_episodes!r}')
        if differences:
            raise ConfigMismatchError(f'{path} was trained with other settings ({"; ".join(differences)}); '
                                      'use a new --run_name or --save_dir for these settings')


def saved_flags(run_dir: str, seeds: list[int]) -> dict[str, Any] | None:
    """The flags.json of the first of `seeds` that has one in `run_dir` (None for a run not started yet)."""
    for seed in seeds:
        saved = read_flags(seed_dir(run_dir, seed))
        if saved is not None:
            return saved
    return None


def extension_schedule_length(run_dir: str, seeds: list[int], offline_steps: int, online_steps: int) -> int | None:
    """`--resume` with budgets `offline_steps` / `online_steps`: the `offline_steps` the agent config must keep.

    The agent config's `offline_steps` is the length of the agent's schedules (MFQL's actor-LR warm-up and cosine
    decay, its α warm-up), fixed when the run started. Resuming with a larger --offline_steps extends the run: it
    trains on from its newest checkpoint with the schedules it has, so past their end MFQL's actor LR stays at
    its final value (FQL has no schedule). A new run with the larger budget is a different computation.

    Returns the saved schedule length (None when no seed has a flags.json). Raises ResumeError for what cannot
    be continued: a smaller --offline_steps, a change of --online_steps, or a longer offline phase for a run
    with an online phase.
    """
    saved = saved_flags(run_dir, seeds)
    if saved is None or 'offline_steps' not in saved.get('flags', {}):
        return None
    saved_offline, saved_online = saved['flags']['offline_steps'], saved['flags'].get('online_steps', 0)
    new_run = 'use a new --run_name or --save_dir to start a new run'
    if offline_steps < saved_offline:
        raise checkpoint.ResumeError(f'{run_dir} was trained with --offline_steps={saved_offline}; a run cannot be '
                                     f'shortened: pass --offline_steps={saved_offline} or more, or {new_run}')
    if online_steps != saved_online:
        raise checkpoint.ResumeError(f'{run_dir} was trained with --online_steps={saved_online}, not {online_steps}; '
                                     f'an online phase cannot be changed on --resume: {new_run}')
    if offline_steps > saved_offline and saved_online > 0:
        raise checkpoint.ResumeError(f'{run_dir} has an online phase after its {saved_offline} offline steps, so its '
                                     f'offline phase cannot be extended: {new_run}')
    return saved.get('agent_config', {}).get('offline_steps', saved_offline)


def resume_step(seed_dirs: list[str], seeds: list[int]) -> int | None:
    """The step `--resume` continues `seeds` from: the newest checkpoint every seed has, or None to start at 0.

    Seeds are checkpointed one after another, so a kill during a save can leave them at different steps, and a kill
    during the first save leaves them no step in common. `first_save_interrupted` recognises that case: the seeds
    start over from step 0 (training is deterministic, so the restart recomputes what the lone checkpoints held),
    and those checkpoints are removed first so that the restarted run never finds them beside its own. Any other
    seed set without a common step raises checkpoint.ResumeError (a seed added to a trained run, for example).
    """
    try:
        return checkpoint.latest_common_step(seed_dirs)
    except checkpoint.ResumeError:
        if not first_save_interrupted(seed_dirs, seeds):
            raise
    for directory in seed_dirs:
        for step in checkpoint.checkpoint_steps(directory):
            os.remove(checkpoint.checkpoint_path(directory, step))
    return None


def first_save_interrupted(seed_dirs: list[str], seeds: list[int]) -> bool:
    """Whether seeds without a common checkpoint step are one launch killed while its first checkpoints were
    written: every seed's flags.json names exactly `seeds`, and the seeds that have checkpoints have one each,
    all at the same step."""
    steps: set[int] = set()
    for directory in seed_dirs:
        saved = read_flags(directory)
        if saved is None or saved.get('seeds') != list(seeds):
            return False
        found = checkpoint.checkpoint_steps(directory)
        if len(found) > 1:
            return False
        steps.update(found)
    return len(steps) == 1


def slice_seed(tree: Any, index: int) -> Any:
    """Seed `index` of a stacked (S, ...) pytree, as numpy arrays."""
    return jax.tree.map(lambda x: np.asarray(x)[index], tree)


def buffer_payload(buffer: ReplayBuffer, index: int) -> dict[str, Any]:
    """One seed's filled buffer rows (rows [0, size): a buffer that never wrapped is contiguous from 0)."""
    size = int(np.asarray(buffer.size)[index])
    return {'data': {k: np.asarray(v[index, :size]) for k, v in buffer.data.items()}, 'size': size,
            'insert_index': int(np.asarray(buffer.insert_index)[index])}


def restore_buffer(empty: ReplayBuffer, payloads: list[dict[str, Any]]) -> ReplayBuffer:
    """Stacks per-seed buffer payloads back into an (S, capacity, ...) buffer."""
    data = {}
    for key, rows in empty.data.items():
        stacked = np.zeros((len(payloads), *rows.shape), np.asarray(rows).dtype)
        for s, payload in enumerate(payloads):
            filled = np.asarray(payload['data'][key])
            stacked[s, :len(filled)] = filled
        data[key] = stacked
    return ReplayBuffer(data=data, size=np.array([int(p['size']) for p in payloads], np.int32),
                        insert_index=np.array([int(p['insert_index']) for p in payloads], np.int32))


def save_seeds(seed_dirs: list[str], step: int, state: Any, buffer: ReplayBuffer | None, keep: int = 2,
               protected: Collection[int] = ()) -> str:
    """Checkpoints every seed of the stacked (S, ...) state (and online buffer) at `step`; returns seed 0's path.
    Older checkpoints are pruned to the newest `keep`, never those at the `protected` steps
    (`checkpoint.prune_checkpoints`), and only once every seed's new one is complete: a kill between two seeds' writes
    leaves them a step in common to resume from, even with keep = 1."""
    host_state = jax.device_get(state)
    host_buffer = jax.device_get(buffer) if buffer is not None else None
    paths = []
    for s, directory in enumerate(seed_dirs):
        payload = buffer_payload(host_buffer, s) if host_buffer is not None else None
        paths.append(checkpoint.write_checkpoint(directory, step, slice_seed(host_state, s), payload))
    for directory in seed_dirs:
        checkpoint.prune_checkpoints(directory, step, keep, protected)
    return paths[0]


def load_seeds(seed_dirs: list[str], step: int, state: Any,
               empty_buffer: ReplayBuffer | None) -> tuple[Any, ReplayBuffer | None]:
    """Every seed's checkpoint at `step`, stacked along (S, ...) as host arrays: (state, online buffer), the
    buffer None when the run has none or none was saved (a checkpoint of the offline phase). The freshly
    created stacked `state` and `empty_buffer` give the structure."""
    template = slice_seed(state, 0)
    states, payloads = [], []
    for directory in seed_dirs:
        seed_state, payload = checkpoint.load_checkpoint(directory, step, template)
        states.append(seed_state)
        payloads.append(payload)
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *states)
    if empty_buffer is None or payloads[0] is None:
        return stacked, None
    return stacked, restore_buffer(slice_seed(empty_buffer, 0), payloads)
