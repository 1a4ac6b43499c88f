"""The training loop of one task: S seeds, an offline phase (fused), an optional online phase, outputs.

`train_task` checks a resumed run (`training.resume`), then `TaskRun` restores or starts it and runs
the two phases. The offline phase runs K updates per jitted call (`training.fused`), each call shortened
so that it ends exactly on the next log, evaluation or save step (`training.schedule`, which also
documents the step convention); the online phase runs one env step and one update per call
(`training.online`). After every call, `_after_call` checks the metrics and does what the schedule asks
at that step; this is the only place where logging, evaluation and checkpoints happen. The reported
numbers (final.json, `TaskResult`) come from `training.summary`.

Training rows carry the metrics of the update at the log step (FQL's convention; the fused call computes
metrics only for its last update, see `training.fused`); rows of the online phase also carry `online/episode_return` and `online/episode_success` of each seed's last
finished episode, and their `time/updates_per_sec` includes the env steps.

Stop requests. With a `training.preemption.StopHandler` (main.py installs one for SLURM's SIGUSR2 and SIGTERM), the
call boundary after a signal does its scheduled work, checkpoints (if the schedule did not), and raises
`StopRequested`; nothing else is written (no final.json), and `--resume` continues bitwise.

The task's environment family (`datasets.families`) builds its envs and gives its scoring rule; the loop never
asks what kind of task it trains on.

NaN guard. After each call the metrics of its last update are checked on the host; a NaN/inf stops training
with `NonFiniteLossError` naming the first non-finite key, the seed, and the exact update (the fused
call also returns the index of the first update whose losses were non-finite). The state of that call is never
checkpointed, so the last good checkpoint stays on disk.
"""

import dataclasses
import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from agents import agent_defaults
from datasets.buffer import ReplayBuffer, dataset_from_numpy, observation_statistics
from datasets.families import Family, FrameSettings
from datasets.frames import FrameDataset, check_fits, frame_dataset_from_numpy
import runs
from training import checkpoint, evaluation, online, preemption, resume, schedule, tracking
from training.fused import (DatasetSampler, FusedUpdater, SeedPlacement, create_training_states, first_nonfinite_key,
                            stacked_streams, validation_losses)
from training.schedule import RunOptions
from training.summary import TaskResult, completed_result, final_evaluation, task_result


class NonFiniteLossError(RuntimeError):
    """A training metric became NaN/inf; the message names the key, seed, step and last checkpoint."""


@dataclasses.dataclass
class TaskInputs:
    """What `train_task` needs from main.py."""

    task: str
    family: Family  # the task's environment family: its envs and its scoring rule
    agent_class: type
    config: Any  # ml_collections.ConfigDict (after presets and --agent.* flags)
    train_data: dict[str, np.ndarray]  # numpy transition (or frame) dict (`family.load`)
    val_data: dict[str, np.ndarray] | None
    seeds: list[int]
    run_dir: str
    metadata: dict[str, Any]  # flags, preset sources, git hash, versions (written to flags.json)
    frames: FrameSettings = FrameSettings()  # frame families: --frame_stack / --p_aug (the config keys mirror them)
    wandb: tracking.WandbSettings | None = None  # with --wandb: project, entity, group
    stop: preemption.StopHandler | None = None  # stop at the next call boundary once it records a signal


@jax.jit
def fold_keys(keys: jax.Array, data: int | jax.Array) -> jax.Array:
    """(S, 2) keys -> fold_in(key_s, data) for each seed s."""
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, data)


def _per_seed(values: dict[str, Any], index: int) -> dict[str, float]:
    return {k: float(np.asarray(v)[index]) for k, v in values.items()}


class TaskRun:
    """State and outputs of one task's training (see the module docstring)."""

    def __init__(self, inputs: TaskInputs, options: RunOptions):
        schedule.validate_options(options)
        self.inputs, self.options = inputs, options
        self.seeds = list(inputs.seeds)
        self.batch_size = schedule.batch_size_of(inputs.config)
        self.seed_dirs = [runs.seed_dir(inputs.run_dir, s) for s in self.seeds]
        self.placement = SeedPlacement(len(self.seeds))
        if self.placement.note:
            print(self.placement.note, flush=True)
        self.streams = self.placement.place_seeds(stacked_streams(self.seeds))
        if inputs.family.observes_frames:
            check_fits(inputs.task, [inputs.train_data] + ([inputs.val_data] if inputs.val_data else []),
                       self.placement.devices[0])
        self.dataset = self.placement.replicate(device_dataset(inputs.train_data, inputs))
        self.val_dataset = (self.placement.replicate(device_dataset(inputs.val_data, inputs))
                            if inputs.val_data else None)
        self.return_to_score = inputs.family.return_to_score(inputs.task)
        example_batch = (self.dataset.example_batch() if isinstance(self.dataset, FrameDataset)
                         else {k: v[:1] for k, v in self.dataset.data.items()})
        self.state = self.placement.place_seeds(
            create_training_states(inputs.agent_class, example_batch, inputs.config, self.streams))
        self.buffer = None
        if options.online_steps > 0:
            example_transition = {k: v[0] for k, v in example_batch.items()}
            empty = ReplayBuffer.create(example_transition, capacity=options.online_steps)
            self.buffer = self.placement.place_seeds(
                jax.tree.map(lambda x: jnp.broadcast_to(x, (len(self.seeds), *x.shape)), empty))
        self.step = 0
        self.start_time = time.perf_counter()
        self.train_seconds_since_log = 0.0
        self.updates_since_log = 0
        self.last_checkpoint: str | None = None
        self.online_episode_stats: list[dict[str, float]] = [{} for _ in self.seeds]
        self._eval_pool = None
        self.wandb: tracking.WandbLogger | None = None  # opened by restore_or_start, which knows whether it resumes

    # ---------------------------------------------------------------------------------- setup
    def restore_or_start(self) -> None:
        """Resumes from the newest common checkpoint (with `resume`), opens the logs, writes flags.json."""
        resume_step = None
        if self.options.resume:
            had_checkpoints = any(checkpoint.checkpoint_steps(directory) for directory in self.seed_dirs)
            resume_step = resume.resume_step(self.seed_dirs, self.seeds)
            if resume_step is None and had_checkpoints:
                print(f'{self.inputs.task}: the run was killed while writing its first checkpoints (not every seed '
                      'has one); training starts again from step 0', flush=True)
        if resume_step is not None:
            state, buffer = resume.load_seeds(self.seed_dirs, resume_step, self.state, self.buffer)
            self.state = self.placement.place_seeds(state)
            if buffer is not None:
                self.buffer = self.placement.place_seeds(buffer)
            elif resume_step > self.options.offline_steps:  # an evaluation checkpoint whose buffer was dropped
                raise checkpoint.ResumeError(
                    f'cannot resume the online phase from step {resume_step}: its checkpoint has no replay buffer '
                    '(only the newest --keep_checkpoints checkpoints keep theirs); restore the newer checkpoints, or '
                    'evaluate this one with python -m evaluate')
            self.step = resume_step
            self.last_checkpoint = checkpoint.checkpoint_path(self.seed_dirs[0], resume_step)
            print(f'{self.inputs.task}: resumed {len(self.seeds)} seed(s) from step {resume_step}', flush=True)
        keep_rows_until = (resume_step or 0) if self.options.resume else None
        logged_through = [  # read before the logs below drop the rows that the resumed process redoes
            {'train': runs.last_step(runs.train_csv_path(directory)),
             'eval': runs.last_step(runs.eval_csv_path(directory))} if self.options.resume else {}
            for directory in self.seed_dirs]
        self.train_logs, self.eval_logs = [], []
        for s, directory in enumerate(self.seed_dirs):
            os.makedirs(directory, exist_ok=True)
            self.train_logs.append(runs.CsvLogger(runs.train_csv_path(directory), keep_rows_until))
            self.eval_logs.append(runs.CsvLogger(runs.eval_csv_path(directory), keep_rows_until))
            flags_payload = dict(self.inputs.metadata, agent_config=resume.agent_config_dict(self.inputs.config),
                                 eval_episodes=self.options.eval_episodes, seed=self.seeds[s], seeds=list(self.seeds),
                                 task=self.inputs.task, num_devices=self.placement.num_devices,
                                 resumed_from_step=resume_step)
            runs.write_json(runs.flags_path(directory), flags_payload)
        if resume_step is not None:  # time/total goes on from the launches before: the wall time of the whole run
            self.start_time -= runs.logged_total_seconds(
                row for logger in self.train_logs + self.eval_logs for row in logger.rows)
        if self.inputs.wandb:
            run_ids = [runs.wandb_run_id(directory, reuse=self.options.resume) for directory in self.seed_dirs]
            config = dict(self.inputs.metadata, agent_config=resume.agent_config_dict(self.inputs.config))
            self.wandb = tracking.WandbLogger(self.inputs.wandb, self.inputs.task, self.seeds, config, run_ids,
                                              logged_through)

    # ----------------------------------------------------------------------------------- phases
    def run_offline(self) -> None:
        """Fused calls of K updates up to `offline_steps`."""
        updater = FusedUpdater(DatasetSampler(self.batch_size))
        progress = self._progress(self.inputs.task)
        while self.step < self.options.offline_steps:
            num_updates = schedule.offline_call_size(self.step, self.options)
            compiles = num_updates not in updater.compiled_sizes
            started = time.perf_counter()
            self.state, info, first_bad = updater(self.state, self.dataset, num_updates)
            info, first_bad = jax.device_get((info, first_bad))
            self._after_call(info, first_bad, num_updates, time.perf_counter() - started, progress, compiles)
        progress.close()
        self.compiled_sizes = updater.compiled_sizes

    def run_online(self) -> None:
        """One env step and one update per call, from the end of the offline phase to `total_steps`."""
        if self.step >= self.options.total_steps:
            return
        envs = online.OnlineEnvs(functools.partial(self._make_env, online=True), self.seeds, self.step)
        if self.step > self.options.offline_steps:  # resumed inside the online phase: the envs start new episodes
            self.buffer = self.placement.place_seeds(jax.vmap(ReplayBuffer.end_episode)(self.buffer))
        self.online_episode_stats = envs.last_episodes
        actions = np.asarray(online.online_actions(self.state.agent, envs.observations,
                                                   fold_keys(self.streams.online, self.step)))
        sampler = online.UnionSampler(self.batch_size)
        progress = self._progress(f'{self.inputs.task} (online)')
        compiles = True  # the first online call compiles online_step
        while self.step < self.options.total_steps:
            started = time.perf_counter()
            transition = envs.step(actions, self.step)
            act_keys = fold_keys(self.streams.online, self.step + 1)
            self.state, self.buffer, info, first_bad, actions = online.online_step(
                self.state, self.buffer, self.dataset, transition, envs.observations, act_keys, sampler)
            info, first_bad, actions = jax.device_get((info, first_bad, actions))
            self._after_call(info, first_bad, 1, time.perf_counter() - started, progress, compiles)
            compiles = False
        progress.close()
        envs.close()

    def finish(self) -> TaskResult:
        """Writes final.json per seed and the curves; returns the final evaluation."""
        finals = []
        for s, directory in enumerate(self.seed_dirs):
            rows = [r for r in self.eval_logs[s].rows if 'evaluation/success' in r and r['evaluation/success'] != '']
            finals.append(dict(task=self.inputs.task, seed=self.seeds[s], step=self.step,
                               **final_evaluation(rows, self.options, self.return_to_score is not None)))
            runs.write_json(runs.final_path(directory), finals[-1])
        self.plot()  # without evaluation too: the training panels
        self.close()
        return task_result(self.inputs.task, self.seeds, self.step, finals)

    def close(self) -> None:
        """Closes the evaluation envs and the wandb run."""
        if self._eval_pool is not None:
            self._eval_pool.close()
        if self.wandb:
            self.wandb.close()

    def _make_env(self, online: bool = False) -> Any:
        """One env of the task: for evaluation, or with `online` for the online phase."""
        return self.inputs.family.make_env(self.inputs.task, frame_stack=self.inputs.frames.frame_stack, online=online)

    # ------------------------------------------------------------------------------- boundaries
    def _after_call(self, info: dict[str, np.ndarray], first_bad: np.ndarray, num_updates: int, seconds: float,
                    progress: 'Progress', compiled: bool = False) -> None:
        """After a call of `num_updates` updates that took `seconds` (`compiled`: its first call of this size, which
        compiled it): advance the step, stop on a non-finite metric, then log, evaluate and checkpoint where the
        schedule says so."""
        call_start = self.step
        self.step += num_updates
        progress.advance(num_updates, compiled)
        self._check_finite(info, first_bad, call_start)
        self.train_seconds_since_log += seconds
        self.updates_since_log += num_updates
        if schedule.is_log_step(self.step, self.options):
            self._log_training(info)
        if schedule.is_eval_step(self.step, self.options):
            first_evaluation = self._eval_pool is None
            self._evaluate()
            if first_evaluation:  # it built the envs and compiled the policy: keep that out of the rate too
                progress.restart()
        saved = schedule.is_save_step(self.step, self.options)
        if saved:
            self._save()
        stop = self.inputs.stop.requested if self.inputs.stop is not None else None
        if stop is not None and self.step < self.options.total_steps:  # at the last step the run just finishes
            if not saved:
                self._save()
            progress.close()
            self.close()
            raise preemption.StopRequested(self.inputs.task, self.step, stop, self.last_checkpoint)

    def _save(self) -> None:
        """Checkpoints every seed at the current step, pruning to --keep_checkpoints but never a checkpoint at a step
        in eval.csv (evaluation steps; a resumed run's earlier ones included), so every reported number can be
        evaluated again."""
        evaluated = {int(float(row['step'])) for row in self.eval_logs[0].rows}
        self.last_checkpoint = resume.save_seeds(self.seed_dirs, self.step, self.state, self.buffer,
                                                 self.options.keep_checkpoints, evaluated)

    def _check_finite(self, info: dict[str, np.ndarray], first_bad: np.ndarray, call_start: int) -> None:
        found = first_nonfinite_key(info)
        if found is None:
            return
        key, seed_index = found
        bad_update = int(np.asarray(first_bad)[seed_index])
        exact_step = call_start + bad_update + 1 if bad_update >= 0 else self.step
        raise NonFiniteLossError(
            f"non-finite training metric '{key}' ({float(np.asarray(info[key])[seed_index])}) for seed "
            f'{self.seeds[seed_index]} at step {exact_step} (task {self.inputs.task}; the fused call covered steps '
            f'{call_start + 1}..{self.step}); training stopped. Last good checkpoint: '
            f'{self.last_checkpoint or "none (no checkpoint was written yet)"}.')

    def _log_training(self, info: dict[str, np.ndarray]) -> None:
        values = {f'training/{k}': v for k, v in info.items()}
        if self.val_dataset is not None:
            keys = fold_keys(self.streams.validation, self.step)
            val_info = jax.device_get(validation_losses(self.state, self.val_dataset, keys,
                                                        DatasetSampler(self.batch_size)))
            values.update({f'validation/{k}': v for k, v in val_info.items()})
        updates_per_sec = self.updates_since_log / max(self.train_seconds_since_log, 1e-9)
        timing = {'time/updates_per_sec': updates_per_sec, 'time/total': time.perf_counter() - self.start_time}
        for s in range(len(self.seeds)):
            row = dict(_per_seed(values, s), **timing, **self.online_episode_stats[s])
            self.train_logs[s].log(self.step, row)
            if self.wandb:
                self.wandb.log(self.step, s, row)
        self.train_seconds_since_log, self.updates_since_log = 0.0, 0

    def _evaluate(self) -> None:
        if self._eval_pool is None:
            per_seed = evaluation.envs_per_seed(self.options.eval_episodes, self.options.eval_parallel_envs,
                                                len(self.seeds))
            self._eval_pool = evaluation.EvalEnvPool(self._make_env, len(self.seeds), per_seed)
        keys = fold_keys(self.streams.evaluation, self.step)
        policy = functools.partial(evaluation.policy_actions,
                                   temperature=evaluation.evaluation_temperature(self.inputs.config))
        results, stats = evaluation.evaluate(self.state.agent, self._eval_pool, policy, keys,
                                             self.seeds, self.options.eval_episodes, self.return_to_score)
        for s, result in enumerate(results):
            row = {f'evaluation/{k}': v for k, v in result.items()}
            row.update({'time/eval_env_steps_per_sec': stats['env_steps_per_sec'],
                        'time/eval_seconds': stats['seconds'], 'time/total': time.perf_counter() - self.start_time})
            self.eval_logs[s].log(self.step, row)
            if self.wandb:
                self.wandb.log(self.step, s, row, log='eval')
        metric, unit = self.inputs.family.metric, self.inputs.family.unit
        mean_metric = np.mean([r[metric] for r in results])
        tqdm.write(f'{self.inputs.task} step {self.step}: evaluation/{metric} {mean_metric:.3f} ({unit}, mean of '
                   f'{len(self.seeds)} seed(s)), {stats["env_steps_per_sec"]:.0f} env steps/s')
        self.plot()

    def plot(self) -> None:
        eval_rows = [log.rows for log in self.eval_logs]
        train_rows = [log.rows for log in self.train_logs]
        as_floats = lambda rows: [{k: float(v) for k, v in r.items() if v not in ('', None)} for r in rows]
        tracking.plot_curves(runs.curves_path(self.inputs.run_dir), [as_floats(r) for r in eval_rows],
                           [as_floats(r) for r in train_rows], f'{self.inputs.task} ({self.inputs.config.agent_name})',
                           self.seeds)

    def _progress(self, description: str) -> 'Progress':
        return Progress(self.step, total=self.options.total_steps, disable=not self.options.progress_bar,
                        desc=description, unit='upd', mininterval=2.0, smoothing=0.1)


class Progress:
    """The progress bar of one phase. Its clock, rate and ETA restart after a call that compiled and after the first
    evaluation (a fresh tqdm bar at the same count replaces the old one), so that they measure training, not
    compilation: a first call of a minute over one update would otherwise show an ETA of days."""

    def __init__(self, initial: int, **tqdm_kwargs: Any):
        self._kwargs = tqdm_kwargs
        self.bar = tqdm(initial=initial, **tqdm_kwargs)

    def advance(self, num_updates: int, compiled: bool = False) -> None:
        if compiled:
            self.restart(self.bar.n + num_updates)
        else:
            self.bar.update(num_updates)

    def restart(self, count: int | None = None) -> None:
        """Replaces the bar by a new one at `count` (default: the current count) whose clock starts now."""
        count = self.bar.n if count is None else count
        self.bar.leave = False  # closing clears the old bar's line
        self.bar.close()
        self.bar = tqdm(initial=count, **self._kwargs)

    def close(self) -> None:
        self.bar.close()


def device_dataset(data: dict[str, np.ndarray], inputs: TaskInputs) -> Any:
    """The device dataset of a numpy split: for a frame family a `FrameDataset` (stacking `frame_stack` frames,
    shifting batches with probability `p_aug`: `inputs.frames`), else a `Dataset`."""
    # Agent-specific data is requested by the agent's config, never chosen by its name.
    next_actions = bool(inputs.config.get('next_actions', False))
    if inputs.family.observes_frames:
        return frame_dataset_from_numpy(data, inputs.frames.frame_stack, inputs.frames.p_aug, next_actions)
    return dataset_from_numpy(data, next_actions)


def with_observation_statistics(config: Any, train_observations: np.ndarray) -> Any:
    """A copy of the agent config with `observation_mean`/`observation_std` of the training set filled in, if the
    agent's config asks for it (`normalize_observations`) and they are unset; otherwise the config itself
    (statistics given with --agent.* are kept). They stay fixed for the whole run, online phase included."""
    if not config.get('normalize_observations', False) or config.get('observation_mean') is not None \
            or config.get('observation_std') is not None:
        return config
    config = config.copy_and_resolve_references()
    config.observation_mean, config.observation_std = observation_statistics(train_observations)
    return config


def train_task(inputs: TaskInputs, options: RunOptions) -> TaskResult:
    """Trains (or resumes) S seeds on one task and returns the final evaluation."""
    if not inputs.family.observes_frames:  # frames are never z-scored (the agents check it)
        inputs = dataclasses.replace(
            inputs, config=with_observation_statistics(inputs.config, inputs.train_data['observations']))
    if options.resume:
        resume.check_same_agent_config(inputs.run_dir, inputs.seeds, inputs.config, options.eval_episodes,
                                       agent_defaults(inputs.agent_class))
        done = completed_result(inputs.run_dir, inputs.task, inputs.seeds, options.total_steps)
        if done is not None:
            print(f'{inputs.task}: already trained to step {options.total_steps}; using its final.json', flush=True)
            return done
    run = TaskRun(inputs, options)
    run.restore_or_start()
    run.run_offline()
    run.run_online()
    return run.finish()
