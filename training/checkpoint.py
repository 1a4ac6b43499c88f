"""Atomic per-seed checkpoints of the full training state.

A checkpoint of one seed holds: the global step, the whole `TrainingState` (the agent pytree:
params, optimiser state, target params, agent rng, step counters, α state; plus the batch-sampling
key), and in the online phase the seed's replay buffer (its filled rows only, plus size and insert
index). File: `<seed_dir>/checkpoints/step_<step>.msgpack`.

Format and atomicity. We use `flax.serialization` (msgpack of the state dict) rather than orbax:
the state is small, lives in one process, and must round-trip bit for bit; a single file written to
a temp name, fsynced, then `os.replace`d (and the directory fsynced) is atomic on POSIX, has no
background threads (a SIGKILL can only leave a stray `*.tmp`, which is ignored), and its behaviour
does not depend on orbax's fast-changing API. The newest `keep` checkpoints (`--keep_checkpoints`) are kept, older
ones deleted only after a newer one is complete, so the last good checkpoint always survives; checkpoints of the
`protected` steps (the runner passes its evaluation steps) are never deleted, so that every number a run reports can
be evaluated again (`python -m evaluate`).

Resuming S seeds uses the newest step that every seed has (a kill between two seeds' writes
leaves them at different steps; `training.resume.resume_step` handles a kill during the first save).
"""

import os
from typing import Any, Collection

import flax.serialization
import jax
import numpy as np

from runs import checkpoint_dir, checkpoint_path, checkpoint_steps, write_atomically

class ResumeError(ValueError):
    """A run folder cannot be resumed as asked; the message says why and what to do instead."""


def latest_common_step(seed_dirs: list[str]) -> int | None:
    """The newest step that every seed has a checkpoint for; None if no seed has a checkpoint.

    Raises ResumeError if some seeds have checkpoints but no step is common to all of them (e.g. a seed
    added to a trained run's seed list): restarting every seed from 0 would overwrite the trained seeds'
    logs, and their newer checkpoints would outrank (and so prune) the new ones.
    """
    steps = {seed_dir: set(checkpoint_steps(seed_dir)) for seed_dir in seed_dirs}
    if not any(steps.values()):
        return None
    common = set.intersection(*steps.values())
    if not common:
        listing = '; '.join(f'{seed_dir}: {sorted(found) or "none"}' for seed_dir, found in steps.items())
        raise ResumeError(f'cannot resume: the seeds have no checkpoint step in common ({listing}); resume with the '
                          'seed list the run was trained with, or train the other seeds under a new --run_name')
    return max(common)


def write_checkpoint(seed_dir: str, step: int, state: Any, buffer: dict[str, Any] | None = None) -> str:
    """Writes one seed's checkpoint atomically; returns its path.

    Args:
      seed_dir: the seed's run folder.
      step: global step (updates done).
      state: the seed's `TrainingState` (no seed axis).
      buffer: None, or {'data': dict of (size, ...) arrays, 'size': int, 'insert_index': int}.
    """
    directory = checkpoint_dir(seed_dir)
    os.makedirs(directory, exist_ok=True)
    payload = {'step': np.int64(step), 'state': flax.serialization.to_state_dict(jax.device_get(state))}
    if buffer is not None:
        payload['buffer'] = jax.device_get(buffer)
    path = checkpoint_path(seed_dir, step)
    write_atomically(path, flax.serialization.msgpack_serialize(payload))
    return path


def prune_checkpoints(seed_dir: str, newest: int, keep: int = 2, protected: Collection[int] = ()) -> None:
    """Deletes all but the newest `keep` (>= 1) of one seed's checkpoints outside `protected` (the evaluation steps),
    never the one at step `newest` (the one just written).

    A protected checkpoint that falls out of the newest `keep` checkpoints loses its online replay buffer
    (`drop_buffer`): a resume starts from the newest checkpoint, and evaluating a kept one needs its agent only; so the
    buffers on disk are those of the newest `keep` checkpoints, not one more (of a growing buffer) per evaluation."""
    unprotected = [saved for saved in checkpoint_steps(seed_dir) if saved not in protected]
    for old_step in unprotected[:max(0, len(unprotected) - keep)]:
        if old_step != newest:
            os.remove(checkpoint_path(seed_dir, old_step))
    steps = checkpoint_steps(seed_dir)
    if len(steps) > keep and steps[-keep - 1] in protected:  # each save moves at most one out of the newest `keep`
        drop_buffer(seed_dir, steps[-keep - 1])


def drop_buffer(seed_dir: str, step: int) -> None:
    """Rewrites one seed's checkpoint without its replay buffer (atomically; nothing to do without one)."""
    path = checkpoint_path(seed_dir, step)
    with open(path, 'rb') as f:
        payload = flax.serialization.msgpack_restore(f.read())
    if 'buffer' in payload:
        del payload['buffer']
        write_atomically(path, flax.serialization.msgpack_serialize(payload))


def save_checkpoint(seed_dir: str, step: int, state: Any, buffer: dict[str, Any] | None = None,
                    keep: int = 2, protected: Collection[int] = ()) -> str:
    """`write_checkpoint`, then `prune_checkpoints`: one seed's save."""
    path = write_checkpoint(seed_dir, step, state, buffer)
    prune_checkpoints(seed_dir, step, keep, protected)
    return path


def load_checkpoint(seed_dir: str, step: int, template: Any) -> tuple[Any, dict[str, Any] | None]:
    """Reads one seed's checkpoint at `step`; returns (state shaped like `template`, buffer or None).

    Raises ValueError naming the first leaf whose shape or dtype differs from `template` (e.g. a
    resumed run with different network sizes).
    """
    path = checkpoint_path(seed_dir, step)
    with open(path, 'rb') as f:
        payload = flax.serialization.msgpack_restore(f.read())
    if int(payload['step']) != step:
        raise ValueError(f'{path} holds step {int(payload["step"])}, expected {step}')
    state = flax.serialization.from_state_dict(template, payload['state'])
    expected = jax.tree_util.tree_leaves_with_path(template)
    loaded = jax.tree.leaves(state)
    for (key_path, want), got in zip(expected, loaded):
        if np.shape(want) != np.shape(got) or np.asarray(want).dtype != np.asarray(got).dtype:
            raise ValueError(
                f'checkpoint {path} does not match this run at {jax.tree_util.keystr(key_path)}: '
                f'saved {np.asarray(got).dtype}{np.shape(got)}, expected {np.asarray(want).dtype}{np.shape(want)} '
                '(was the run resumed with a different agent config?)')
    return state, payload.get('buffer')
