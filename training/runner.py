"""The training loop of one task: S seeds, offline phase (fused), optional online phase, outputs.

Schedule. Steps are counted 1 … N (FQL's convention), N = offline_steps + online_steps; "step k"
means "after k updates". At the end of a call we log training metrics when k % log_interval == 0,
evaluate when k == 1 or k % eval_interval == 0 or k == N (and at the end of the offline phase when an
online phase follows), and checkpoint when k % save_interval == 0 or k == N. The offline phase runs
`steps_per_call` (K) updates per jitted call, shortened so that every boundary is hit exactly; the
logged training metrics are the means over the updates of the call that ends at the log step (the
last min(K, log_interval) updates).

Online phase (offline-to-online). Each update needs one fresh env transition that depends on the
policy after the previous update, so env steps cannot be fused: every step is one host round-trip
(one jitted call that appends the transition to each seed's replay buffer, does one update on a
batch drawn uniformly from dataset ∪ buffer (`sample_union`), and picks the next actions). The
transition is (s, a, r, mask = 1 − terminated, s', terminal = terminated or truncated); the env is
reset after terminated or truncated (the online env comes from `online_env_factory` when given: for
D4RL AntMaze it shifts rewards by −1 like the dataset, while evaluation keeps the raw reward that
D4RL's normalised score expects). Each seed's buffer holds `online_steps` transitions, so for
FQL's budgets nothing is ever overwritten (see `datasets/buffer.py` for the union semantics). A
resumed online phase restarts the interrupted episodes (the simulator state is not checkpointed),
so only offline resumes are bitwise identical to an uninterrupted run. (A run killed in the offline
phase resumes bitwise identically through the online phase too: the online envs are reset with seeds
derived from the seed and step.) Training rows of the online phase also carry
`online/episode_return` and `online/episode_success` of each seed's last finished episode, and
`time/updates_per_sec` there includes the env steps.

NaN guard. After each call the averaged metrics are checked on the host; a NaN/inf stops training
with `NonFiniteLossError` naming the first non-finite key, the seed, and the exact update (the
fused call also returns the index of the first non-finite update). The state of that call is never
checkpointed, so the last good checkpoint stays on disk.
"""

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from datasets.buffer import Dataset, ReplayBuffer, observation_statistics, sample_union
from training import checkpoint, evaluation, logger
from training.fused import (DatasetSampler, FusedUpdater, SeedPlacement, TrainingState, create_training_states,
                            first_nonfinite_key, fused_updates, next_call_size, stacked_streams, validation_losses)


class NonFiniteLossError(RuntimeError):
    """A training metric became NaN/inf; the message names the key, seed, step and last checkpoint."""


class ConfigMismatchError(checkpoint.ResumeError):
    """`--resume` met seeds trained with another agent config or evaluation episode count; the message names
    the differing keys."""


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
    batch_size: int = 256
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
        (options.batch_size >= 1, f'batch_size must be >= 1, got {options.batch_size}'),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


@dataclasses.dataclass
class TaskResult:
    """Final evaluation of one task: per-seed values, in the order of `seeds`."""

    task: str
    seeds: list[int]
    step: int
    success: list[float]
    episode_return: list[float]
    success_last3: list[float]  # mean of the last three evaluations (OGBench's reporting in the paper)
    score: list[float] | None = None  # final normalised score ×100 (D4RL tasks only; the paper's D4RL metric)
    # Offline-to-online runs only: the evaluation at the end of the offline phase (the paper's "1M" of "1M → 2M").
    offline_success: list[float] | None = None
    offline_score: list[float] | None = None  # D4RL tasks only


@dataclasses.dataclass
class TaskInputs:
    """What `train_task` needs from main.py."""

    task: str
    agent_class: type
    config: Any  # ml_collections.ConfigDict (after presets and --agent.* flags)
    train_data: dict[str, np.ndarray]  # numpy transition dict (datasets.ogbench_data.load_datasets)
    val_data: dict[str, np.ndarray] | None
    env_factory: Callable[[], Any]  # builds one evaluation env (and the online env unless online_env_factory)
    seeds: list[int]
    run_dir: str
    metadata: dict[str, Any]  # flags, preset sources, git hash, versions (written to flags.json)
    wandb_project: str | None = None
    online_env_factory: Callable[[], Any] | None = None  # online env if it differs (D4RL AntMaze: reward − 1)
    return_to_score: evaluation.ReturnToScore | None = None  # episode returns -> scores (D4RL normalised ×100)


def seed_dir(run_dir: str, seed: int) -> str:
    return os.path.join(run_dir, f'seed{seed}')


def _per_seed(values: dict[str, Any], index: int) -> dict[str, float]:
    return {k: float(np.asarray(v)[index]) for k, v in values.items()}


def _slice_seed(tree: Any, index: int) -> Any:
    return jax.tree.map(lambda x: np.asarray(x)[index], tree)


def _buffer_payload(buffer: ReplayBuffer, index: int) -> dict[str, Any]:
    """One seed's filled buffer rows (rows [0, size): a buffer that never wrapped is contiguous from 0)."""
    size = int(np.asarray(buffer.size)[index])
    return {'data': {k: np.asarray(v[index, :size]) for k, v in buffer.data.items()}, 'size': size,
            'insert_index': int(np.asarray(buffer.insert_index)[index])}


def _restore_buffer(empty: ReplayBuffer, payloads: list[dict[str, Any]]) -> ReplayBuffer:
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


def is_eval_step(step: int, options: RunOptions) -> bool:
    if options.eval_episodes == 0:
        return False
    end_of_offline = options.online_steps > 0 and step == options.offline_steps
    return step == 1 or step % options.eval_interval == 0 or step == options.total_steps or end_of_offline


def is_save_step(step: int, options: RunOptions) -> bool:
    return (options.save_interval > 0 and step % options.save_interval == 0) or step == options.total_steps


def _online_env_seed(seed: int, step: int) -> int:
    """Reset seed of the online episode that starts after `step` updates."""
    return int(np.random.SeedSequence([seed, step, 0x6F6E6C6E]).generate_state(1)[0])


@jax.jit
def fold_keys(keys: jax.Array, data: int | jax.Array) -> jax.Array:
    """(S, 2) keys -> fold_in(key_s, data) for each seed s."""
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, data)


@dataclasses.dataclass(frozen=True)
class UnionSampler:
    """Uniform batches from dataset ∪ replay buffer; `data` = (Dataset, ReplayBuffer)."""

    batch_size: int

    def __call__(self, data: tuple[Dataset, ReplayBuffer], key: jax.Array) -> dict[str, jax.Array]:
        return sample_union(data[0], data[1], key, self.batch_size)


@jax.jit
def _online_actions(agents: Any, observations: jax.Array, keys: jax.Array) -> jax.Array:
    """(S,…) agents, (S, obs_dim) observations, (S, 2) keys -> (S, action_dim) actions."""
    return jax.vmap(lambda agent, obs, key: agent.sample_actions(obs[None], key)[0])(agents, observations, keys)


@functools.partial(jax.jit, static_argnums=(6,))
def _online_step(state: TrainingState, buffer: ReplayBuffer, dataset: Dataset, transition: dict[str, jax.Array],
                 observations: jax.Array, act_keys: jax.Array, sampler: UnionSampler):
    """One online update for all seeds: append each seed's transition to its buffer, one update on a
    batch from dataset ∪ buffer, then the actions for the next observations (S, obs_dim)."""

    def per_seed(seed_state, seed_buffer, seed_transition, observation, act_key):
        seed_buffer = seed_buffer.add(seed_transition)
        seed_state, info, first_bad = fused_updates(seed_state, (dataset, seed_buffer), 1, sampler)
        action = seed_state.agent.sample_actions(observation[None], act_key)[0]
        return seed_state, seed_buffer, info, first_bad, action

    return jax.vmap(per_seed)(state, buffer, transition, observations, act_keys)


class TaskRun:
    """State and outputs of one task's training (see the module docstring for the schedule)."""

    def __init__(self, inputs: TaskInputs, options: RunOptions):
        validate_options(options)
        self.inputs, self.options = inputs, options
        self.seeds = list(inputs.seeds)
        self.seed_dirs = [seed_dir(inputs.run_dir, s) for s in self.seeds]
        self.placement = SeedPlacement(len(self.seeds))
        if self.placement.note:
            print(self.placement.note, flush=True)
        self.streams = self.placement.place_seeds(stacked_streams(self.seeds))
        self.dataset = self.placement.replicate(_to_device(inputs.train_data))
        self.val_dataset = self.placement.replicate(_to_device(inputs.val_data)) if inputs.val_data else None
        self.batch_size = options.batch_size
        example_batch = {k: v[:1] for k, v in self.dataset.data.items()}
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
        self.wandb = (logger.WandbLogger(inputs.wandb_project, os.path.basename(inputs.run_dir.rstrip('/')),
                                         inputs.metadata) if inputs.wandb_project else None)

    # ---------------------------------------------------------------------------------- setup
    def restore_or_start(self) -> None:
        """Resumes from the newest common checkpoint (with `resume`), opens the logs, writes flags.json."""
        resume_step = None
        if self.options.resume:
            resume_step = checkpoint.latest_common_step(self.seed_dirs)
        if resume_step is not None:
            template = _slice_seed(self.state, 0)
            states, buffers = [], []
            for directory in self.seed_dirs:
                state, buffer = checkpoint.load_checkpoint(directory, resume_step, template)
                states.append(state)
                buffers.append(buffer)
            stacked = jax.tree.map(lambda *xs: np.stack(xs), *states)
            self.state = self.placement.place_seeds(stacked)
            if self.buffer is not None and buffers[0] is not None:
                self.buffer = self.placement.place_seeds(_restore_buffer(_slice_seed(self.buffer, 0), buffers))
            self.step = resume_step
            self.last_checkpoint = checkpoint.checkpoint_path(self.seed_dirs[0], resume_step)
            print(f'{self.inputs.task}: resumed {len(self.seeds)} seed(s) from step {resume_step}', flush=True)
        keep_rows_until = (resume_step or 0) if self.options.resume else None
        self.train_logs, self.eval_logs = [], []
        for s, directory in enumerate(self.seed_dirs):
            os.makedirs(directory, exist_ok=True)
            self.train_logs.append(logger.CsvLogger(os.path.join(directory, 'train.csv'), keep_rows_until))
            self.eval_logs.append(logger.CsvLogger(os.path.join(directory, 'eval.csv'), keep_rows_until))
            flags_payload = dict(self.inputs.metadata, agent_config=agent_config_dict(self.inputs.config),
                                 eval_episodes=self.options.eval_episodes, seed=self.seeds[s], task=self.inputs.task,
                                 num_devices=self.placement.num_devices, resumed_from_step=resume_step)
            logger.write_json(os.path.join(directory, 'flags.json'), flags_payload)

    # ------------------------------------------------------------------------------- boundaries
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

    def _after_call(self, info: dict[str, np.ndarray], num_updates: int, seconds: float) -> None:
        step, options = self.step, self.options
        self.train_seconds_since_log += seconds
        self.updates_since_log += num_updates
        if step % options.log_interval == 0:
            self._log_training(info)
        if is_eval_step(step, options):
            self._evaluate()
        if is_save_step(step, options):
            self._save()

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
            self._eval_pool = evaluation.EvalEnvPool(self.inputs.env_factory, len(self.seeds), per_seed)
        keys = fold_keys(self.streams.evaluation, self.step)
        results, stats = evaluation.evaluate(self.state.agent, self._eval_pool, evaluation.policy_actions, keys, self.seeds,
                                             self.options.eval_episodes, self.inputs.return_to_score)
        for s, result in enumerate(results):
            row = {f'evaluation/{k}': v for k, v in result.items()}
            row.update({'time/eval_env_steps_per_sec': stats['env_steps_per_sec'],
                        'time/eval_seconds': stats['seconds'], 'time/total': time.perf_counter() - self.start_time})
            self.eval_logs[s].log(self.step, row)
            if self.wandb:
                self.wandb.log(self.step, s, row)
        metric = 'score' if self.inputs.return_to_score is not None else 'success'
        mean_metric = np.mean([r[metric] for r in results])
        tqdm.write(f'{self.inputs.task} step {self.step}: evaluation/{metric} {mean_metric:.3f} (mean of '
                   f'{len(self.seeds)} seed(s)), {stats["env_steps_per_sec"]:.0f} env steps/s')
        self.plot()

    def _save(self) -> None:
        host_state = jax.device_get(self.state)
        host_buffer = jax.device_get(self.buffer) if self.buffer is not None else None
        for s, directory in enumerate(self.seed_dirs):
            buffer = _buffer_payload(host_buffer, s) if host_buffer is not None else None
            path = checkpoint.save_checkpoint(directory, self.step, _slice_seed(host_state, s), buffer)
            if s == 0:
                self.last_checkpoint = path

    def plot(self) -> None:
        eval_rows = [log.rows for log in self.eval_logs]
        train_rows = [log.rows for log in self.train_logs]
        as_floats = lambda rows: [{k: float(v) for k, v in r.items() if v not in ('', None)} for r in rows]
        logger.plot_curves(os.path.join(self.inputs.run_dir, 'curves.png'), [as_floats(r) for r in eval_rows],
                           [as_floats(r) for r in train_rows], f'{self.inputs.task} ({self.inputs.config.agent_name})', self.seeds)

    # ----------------------------------------------------------------------------------- phases
    def run_offline(self) -> None:
        options = self.options
        updater = FusedUpdater(DatasetSampler(self.batch_size))
        extra = (1,) if options.eval_episodes > 0 else ()
        bar = tqdm(total=options.total_steps, initial=self.step, disable=not options.progress_bar,
                   desc=self.inputs.task, unit='upd', mininterval=2.0, smoothing=0.1)
        while self.step < options.offline_steps:
            num_updates = next_call_size(self.step, options.offline_steps,
                                         (options.log_interval, options.eval_interval if extra else 0,
                                          options.save_interval), options.steps_per_call, extra)
            call_start, started = self.step, time.perf_counter()
            self.state, info, first_bad = updater(self.state, self.dataset, num_updates)
            info, first_bad = jax.device_get((info, first_bad))
            seconds = time.perf_counter() - started
            self.step += num_updates
            bar.update(num_updates)
            self._check_finite(info, first_bad, call_start)
            self._after_call(info, num_updates, seconds)
        bar.close()
        self.compiled_sizes = updater.compiled_sizes

    def run_online(self) -> None:
        options, num_seeds = self.options, len(self.seeds)
        if self.step >= options.total_steps:
            return
        envs = [(self.inputs.online_env_factory or self.inputs.env_factory)() for _ in self.seeds]
        observations = np.stack([evaluation.seeded_reset(env, _online_env_seed(seed, self.step))[0]
                                 for env, seed in zip(envs, self.seeds)]).astype(np.float32)
        actions = np.asarray(_online_actions(self.state.agent, observations, fold_keys(self.streams.online, self.step)))
        episode_return = np.zeros(num_seeds)
        bar = tqdm(total=options.total_steps, initial=self.step, disable=not options.progress_bar,
                   desc=f'{self.inputs.task} (online)', unit='upd', mininterval=2.0, smoothing=0.1)
        while self.step < options.total_steps:
            started = time.perf_counter()
            transition = {k: [] for k in ('observations', 'actions', 'rewards', 'masks', 'next_observations',
                                          'terminals')}
            next_observations = np.empty_like(observations)
            for s, env in enumerate(envs):
                action = np.clip(actions[s], -1.0, 1.0)
                next_obs, reward, terminated, truncated, env_info = env.step(action)
                episode_return[s] += float(reward)
                for key, value in (('observations', observations[s]), ('actions', action), ('rewards', reward),
                                   ('masks', 1.0 - float(terminated)), ('next_observations', next_obs),
                                   ('terminals', float(terminated or truncated))):
                    transition[key].append(value)
                if terminated or truncated:
                    self.online_episode_stats[s] = {'online/episode_return': episode_return[s],
                                                    'online/episode_success': float(env_info.get('success', np.nan))}
                    episode_return[s] = 0.0
                    next_obs, _ = evaluation.seeded_reset(env, _online_env_seed(self.seeds[s], self.step + 1))
                next_observations[s] = next_obs
            transition = {k: np.asarray(v, np.float32) for k, v in transition.items()}
            call_start = self.step
            act_keys = fold_keys(self.streams.online, self.step + 1)
            self.state, self.buffer, info, first_bad, actions = _online_step(
                self.state, self.buffer, self.dataset, transition, next_observations, act_keys,
                UnionSampler(self.batch_size))
            info, first_bad, actions = jax.device_get((info, first_bad, actions))
            observations = next_observations
            self.step += 1
            bar.update(1)
            self._check_finite(info, first_bad, call_start)
            self._after_call(info, 1, time.perf_counter() - started)
        bar.close()
        for env in envs:
            env.close()

    def finish(self) -> TaskResult:
        """Writes final.json per seed and the curves; returns the final evaluation."""
        finals = []
        for s, directory in enumerate(self.seed_dirs):
            rows = [r for r in self.eval_logs[s].rows if 'evaluation/success' in r and r['evaluation/success'] != '']
            finals.append(dict(task=self.inputs.task, seed=self.seeds[s], step=self.step,
                               **final_evaluation(rows, self.options, self.inputs.return_to_score is not None)))
            logger.write_json(os.path.join(directory, 'final.json'), finals[-1])
        if self.options.eval_episodes > 0:
            self.plot()
        if self._eval_pool is not None:
            self._eval_pool.close()
        if self.wandb:
            self.wandb.close()
        return task_result(self.inputs.task, self.seeds, self.step, finals)


def final_evaluation(rows: list[dict[str, Any]], options: RunOptions, with_score: bool) -> dict[str, float]:
    """A seed's final.json numbers from its evaluation rows (step order): success, return (and D4RL score) at
    the last step, the mean success of the last three evaluations, and, for offline-to-online runs, success
    (and score) at the end of the offline phase. NaN where that evaluation is missing."""
    def at(step: int, key: str) -> float:
        row = next((r for r in rows if int(float(r['step'])) == step), None)
        return float(row[key]) if row is not None else float('nan')

    finished = any(int(float(r['step'])) == options.total_steps for r in rows)
    values = {'evaluation/success': at(options.total_steps, 'evaluation/success'),
              'evaluation/return': at(options.total_steps, 'evaluation/return'),
              'evaluation/success_last3': mean_of_last_three_evaluations(rows) if finished else float('nan')}
    if with_score:
        values['evaluation/score'] = at(options.total_steps, 'evaluation/score')
    if options.online_steps > 0:
        values['evaluation/success_offline'] = at(options.offline_steps, 'evaluation/success')
        if with_score:
            values['evaluation/score_offline'] = at(options.offline_steps, 'evaluation/score')
    return values


def task_result(task: str, seeds: list[int], step: int, finals: list[dict[str, Any]]) -> TaskResult:
    """A TaskResult from the seeds' final.json payloads (`final_evaluation`), in the order of `seeds`."""
    def column(key: str) -> list[float] | None:
        return [final[key] for final in finals] if all(key in final for final in finals) else None

    return TaskResult(task, seeds, step, column('evaluation/success'), column('evaluation/return'),
                      column('evaluation/success_last3'), column('evaluation/score'),
                      column('evaluation/success_offline'), column('evaluation/score_offline'))


def mean_of_last_three_evaluations(rows: list[dict[str, Any]]) -> float:
    """OGBench's reported number: mean `evaluation/success` of the last three evaluations (rows in step order).
    The evaluation of the initial policy (step 1) is never one of them; with fewer than three later
    evaluations, those there are are averaged (a 1-step run: its only evaluation)."""
    later = [row for row in rows if int(float(row['step'])) > 1] or rows[-1:]
    return float(np.mean([float(row['evaluation/success']) for row in later[-3:]]))


def _to_device(arrays: dict[str, np.ndarray]) -> Dataset:
    return Dataset(data={k: jnp.asarray(np.asarray(v, np.float32)) for k, v in arrays.items()})


def completed_result(run_dir: str, task: str, seeds: list[int], total_steps: int) -> TaskResult | None:
    """The result of a task already trained to `total_steps` (every seed has final.json), else None."""
    finals = []
    for seed in seeds:
        path = os.path.join(seed_dir(run_dir, seed), 'final.json')
        if not os.path.exists(path):
            return None
        with open(path) as f:
            final = json.load(f)
        if final['step'] != total_steps:
            return None
        finals.append(final)
    return task_result(task, seeds, total_steps, finals)


def agent_config_dict(config: Any) -> dict[str, Any]:
    """The agent config as stored in flags.json (JSON types: tuples become lists)."""
    plain = config.to_dict() if hasattr(config, 'to_dict') else dict(config)
    return json.loads(json.dumps(plain, default=str))


def check_same_agent_config(run_dir: str, seeds: list[int], config: Any, eval_episodes: int) -> None:
    """Refuses to resume (or reuse) seeds trained with another agent config or evaluated with another number of
    episodes: a resumed run would silently mix two configs (or two evaluation protocols in one eval.csv), and a
    finished one would be reported under the wrong settings. Raises ConfigMismatchError naming each differing
    key with its saved and requested value."""
    current = agent_config_dict(config)
    for seed in seeds:
        path = os.path.join(seed_dir(run_dir, seed), 'flags.json')
        if not os.path.exists(path):
            continue
        with open(path) as f:
            saved_flags = json.load(f)
        saved = saved_flags.get('agent_config')
        if saved is None:
            continue
        differences = [f'{key}: saved {saved.get(key, "<missing>")!r}, requested {current.get(key, "<missing>")!r}'
                       for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
        saved_episodes = saved_flags.get('eval_episodes', eval_episodes)  # absent in runs saved before it was
        if saved_episodes != eval_episodes:
            differences.append(f'eval_episodes: saved {saved_episodes!r}, requested {eval_episodes!r}')
        if differences:
            raise ConfigMismatchError(f'{path} was trained with other settings ({"; ".join(differences)}); '
                                      'use a new --run_name or --save_dir for these settings')


def with_observation_statistics(config: Any, train_observations: np.ndarray) -> Any:
    """A copy of the agent config with `observation_mean`/`observation_std` of the training set filled in, if the
    agent normalises observations (`normalize_observations`) and they are unset; otherwise the config itself
    (statistics given with --agent.* are kept). They stay fixed for the whole run, online phase included."""
    if not config.get('normalize_observations', False) or config.get('observation_mean') is not None \
            or config.get('observation_std') is not None:
        return config
    config = config.copy_and_resolve_references()
    config.observation_mean, config.observation_std = observation_statistics(train_observations)
    return config


def train_task(inputs: TaskInputs, options: RunOptions) -> TaskResult:
    """Trains (or resumes) S seeds on one task and returns the final evaluation."""
    inputs = dataclasses.replace(
        inputs, config=with_observation_statistics(inputs.config, inputs.train_data['observations']))
    if options.resume:
        check_same_agent_config(inputs.run_dir, inputs.seeds, inputs.config, options.eval_episodes)
        done = completed_result(inputs.run_dir, inputs.task, inputs.seeds, options.total_steps)
        if done is not None:
            print(f'{inputs.task}: already trained to step {options.total_steps}; using its final.json', flush=True)
            return done
    run = TaskRun(inputs, options)
    run.restore_or_start()
    run.run_offline()
    run.run_online()
    return run.finish()
