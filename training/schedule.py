"""The schedule of one task: budgets, intervals, and the steps at which a call must end.

Steps are counted 1 … N (FQL's convention), N = offline_steps + online_steps; "step k" means "after k
updates". After the call that ends at step k the loop
- logs training metrics when k % log_interval == 0 (the metrics of update k, as FQL logs them),
- evaluates when k == 1, k % eval_interval == 0 or k == N, and at the end of the offline phase when an
  online phase follows,
- checkpoints when k % save_interval == 0, k == N, or k is an evaluation step (so that every evaluation can be
  repeated from its checkpoint: `python -m evaluate`); the newest `keep_checkpoints` checkpoints that are not at an
  evaluation step are kept, those at evaluation steps always.
An offline call runs `steps_per_call` (K) updates, shortened by `offline_call_size` so that every one of
these boundaries is hit exactly; an online call is always one update.
"""

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Budgets and intervals of one task (all counts are updates, i.e. steps).

    eval_episodes = 0 disables evaluation; save_interval = 0 saves only at the end.
    eval_parallel_envs: total env instances used for evaluation, split over the seeds (memory-bound:
    an OGBench manipulation env costs ~100–230 MB of RAM and ~1–2 s to build; measured 1.85 GB for 8
    cube-single envs).
    """

    offline_steps: int = 1_000_000
    online_steps: int = 0
    steps_per_call: int = 100
    log_interval: int = 5_000
    eval_interval: int = 100_000
    eval_episodes: int = 50
    eval_parallel_envs: int = 8
    save_interval: int = 1_000_000
    keep_checkpoints: int = 2
    resume: bool = False
    progress_bar: bool = True

    @property
    def total_steps(self) -> int:
        return self.offline_steps + self.online_steps


def validate_options(options: RunOptions) -> None:
    """Raises ValueError naming the first bad value."""
    checks = [
        (options.offline_steps >= 0, f'offline_steps must be >= 0, got {options.offline_steps}'),
        (options.online_steps >= 0, f'online_steps must be >= 0, got {options.online_steps}'),
        (options.total_steps >= 1, 'offline_steps + online_steps must be >= 1 (nothing to train)'),
        (options.steps_per_call >= 1, f'steps_per_call must be >= 1, got {options.steps_per_call}'),
        (options.log_interval >= 1, f'log_interval must be >= 1, got {options.log_interval}'),
        (options.eval_episodes >= 0, f'eval_episodes must be >= 0 (0 = no evaluation), got {options.eval_episodes}'),
        (options.eval_episodes == 0 or options.eval_interval >= 1,
         f'eval_interval must be >= 1 when evaluating (eval_episodes={options.eval_episodes}), '
         f'got {options.eval_interval}; use --eval_episodes=0 to turn evaluation off'),
        (options.eval_parallel_envs >= 1, f'eval_parallel_envs must be >= 1, got {options.eval_parallel_envs}'),
        (options.save_interval >= 0, f'save_interval must be >= 0 (0 = only at the end), got {options.save_interval}'),
        (options.keep_checkpoints >= 1, f'keep_checkpoints must be >= 1, got {options.keep_checkpoints}'),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def batch_size_of(config: Any) -> int:
    """The agent config's `batch_size` (transitions per update), its only source; ValueError unless a positive int."""
    batch_size = config.get('batch_size')
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'the agent config must set batch_size (transitions per update) to a positive int, got '
                         f'{batch_size!r}')
    return batch_size


def is_log_step(step: int, options: RunOptions) -> bool:
    return step % options.log_interval == 0


def is_eval_step(step: int, options: RunOptions) -> bool:
    if options.eval_episodes == 0:
        return False
    end_of_offline = options.online_steps > 0 and step == options.offline_steps
    return step == 1 or step % options.eval_interval == 0 or step == options.total_steps or end_of_offline


def is_save_step(step: int, options: RunOptions) -> bool:
    """Whether a checkpoint is written after `step`: every `save_interval`, at the end, and at every evaluation step
    (the checkpoint behind each reported number, kept by the pruning)."""
    return ((options.save_interval > 0 and step % options.save_interval == 0) or step == options.total_steps
            or is_eval_step(step, options))


def next_call_size(step: int, end_step: int, intervals: tuple[int, ...], max_updates: int,
                   extra_boundaries: tuple[int, ...] = ()) -> int:
    """The number of updates of the next call, so that calls land exactly on every boundary.

    After `step` updates (steps are counted 1 … N), the next boundary is the smallest of `end_step`,
    the next multiple of each positive interval, and any `extra_boundaries` after `step`. The call
    runs min(max_updates, boundary − step) updates.
    """
    if step >= end_step:
        raise ValueError(f'no updates left: step {step} >= end step {end_step}')
    boundary = end_step
    for interval in intervals:
        if interval > 0:
            boundary = min(boundary, (step // interval + 1) * interval)
    for extra in extra_boundaries:
        if extra > step:
            boundary = min(boundary, extra)
    return min(max_updates, boundary - step)


def offline_call_size(step: int, options: RunOptions) -> int:
    """The size of the offline call that starts after `step` updates: it ends at the next log, evaluation or
    save step, or at the end of the offline phase (which is an evaluation step when an online phase follows)."""
    evaluating = options.eval_episodes > 0
    return next_call_size(step, options.offline_steps,
                          (options.log_interval, options.eval_interval if evaluating else 0, options.save_interval),
                          options.steps_per_call, (1,) if evaluating else ())
