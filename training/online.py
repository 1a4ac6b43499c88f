"""The online phase of offline-to-online training: env steps on the host, one update per jitted call.

Each update needs one fresh env transition that depends on the policy after the previous update, so env
steps cannot be fused: every step is one host round-trip (`online_step`: one jitted call that appends
the transition to each seed's replay buffer, does one update on a batch drawn uniformly from
dataset ∪ buffer (`sample_union`), and picks the next actions). The transition is
(s, a, r, mask = 1 − terminated, s', terminal = terminated or truncated); the env is reset after
terminated or truncated. The online env may differ from the evaluation env (for D4RL AntMaze it shifts
rewards by −1 like the dataset, while evaluation keeps the raw reward that D4RL's normalised score
expects). Each seed's buffer holds `online_steps` transitions, so for FQL's budgets nothing is ever
overwritten (see `datasets/buffer.py` for the union semantics).

Resuming. The simulator state is not checkpointed, so a resumed online phase restarts the interrupted
episodes and only offline resumes are bitwise identical to an uninterrupted run. A run killed in the
offline phase resumes bitwise identically through the online phase too: the online envs are reset with
seeds derived from the seed and step (`online_env_seed`).
"""

import dataclasses
import functools
from typing import Any, Callable

import jax
import numpy as np

from datasets.buffer import Dataset, ReplayBuffer, sample_union
from training import evaluation
from training.fused import TrainingState, distinct_buffers, fused_updates


def online_env_seed(seed: int, step: int) -> int:
    """Reset seed of the online episode that starts after `step` updates."""
    return int(np.random.SeedSequence([seed, step, 0x6F6E6C6E]).generate_state(1)[0])


@dataclasses.dataclass(frozen=True)
class UnionSampler:
    """Uniform batches from dataset ∪ replay buffer; `data` = (Dataset, ReplayBuffer)."""

    batch_size: int

    def __call__(self, data: tuple[Dataset, ReplayBuffer], key: jax.Array) -> dict[str, jax.Array]:
        return sample_union(data[0], data[1], key, self.batch_size)


@jax.jit
def online_actions(agents: Any, observations: jax.Array, keys: jax.Array) -> jax.Array:
    """(S,…) agents, (S, obs_dim) observations, (S, 2) keys -> (S, action_dim) actions."""
    return jax.vmap(lambda agent, obs, key: agent.sample_actions(obs[None], key)[0])(agents, observations, keys)


def online_step(state: TrainingState, buffer: ReplayBuffer, dataset: Dataset, transition: dict[str, jax.Array],
                observations: jax.Array, act_keys: jax.Array, sampler: UnionSampler):
    """One online update for all seeds: append each seed's transition to its buffer, one update on a
    batch from dataset ∪ buffer, then the actions for the next observations (S, obs_dim).

    Consumes `state` and `buffer` (their buffers are donated: appending a row would otherwise copy each seed's whole
    replay buffer at every step). Returns (state, buffer, mean info, first non-finite update index, (S, action_dim)
    actions)."""
    state, buffer = distinct_buffers((state, buffer))
    return _online_step(state, buffer, dataset, transition, observations, act_keys, sampler)


@functools.partial(jax.jit, static_argnums=(6,), donate_argnums=(0, 1))
def _online_step(state: TrainingState, buffer: ReplayBuffer, dataset: Dataset, transition: dict[str, jax.Array],
                 observations: jax.Array, act_keys: jax.Array, sampler: UnionSampler):

    def per_seed(seed_state, seed_buffer, seed_transition, observation, act_key):
        seed_buffer = seed_buffer.add(seed_transition)
        seed_state, info, first_bad = fused_updates(seed_state, (dataset, seed_buffer), 1, sampler)
        action = seed_state.agent.sample_actions(observation[None], act_key)[0]
        return seed_state, seed_buffer, info, first_bad, action

    return jax.vmap(per_seed)(state, buffer, transition, observations, act_keys)


class OnlineEnvs:
    """One online env per seed, stepped on the host.

    Attributes:
      observations: (S, obs_dim) float32, the current observation of each seed's env.
      last_episodes: per seed, `online/episode_return` and `online/episode_success` of its last finished
        episode (empty until one finishes); the training rows of the online phase carry them.
    """

    def __init__(self, env_factory: Callable[[], Any], seeds: list[int], step: int):
        self.seeds = list(seeds)
        self.envs = [env_factory() for _ in self.seeds]
        self.observations = np.stack([evaluation.seeded_reset(env, online_env_seed(seed, step))[0]
                                      for env, seed in zip(self.envs, self.seeds)]).astype(np.float32)
        self.episode_return = np.zeros(len(self.seeds))
        self.last_episodes: list[dict[str, float]] = [{} for _ in self.seeds]

    def step(self, actions: np.ndarray, step: int) -> dict[str, np.ndarray]:
        """Steps each seed's env with its action (clipped to [−1, 1]) after `step` updates; returns the (S, ...)
        float32 transitions and moves `observations` on (an env whose episode ended is reset with the seed of
        the episode that starts after `step + 1` updates)."""
        transition = {k: [] for k in ('observations', 'actions', 'rewards', 'masks', 'next_observations',
                                      'terminals')}
        next_observations = np.empty_like(self.observations)
        for s, env in enumerate(self.envs):
            action = np.clip(actions[s], -1.0, 1.0)
            next_obs, reward, terminated, truncated, env_info = env.step(action)
            self.episode_return[s] += float(reward)
            for key, value in (('observations', self.observations[s]), ('actions', action), ('rewards', reward),
                               ('masks', 1.0 - float(terminated)), ('next_observations', next_obs),
                               ('terminals', float(terminated or truncated))):
                transition[key].append(value)
            if terminated or truncated:
                self.last_episodes[s] = {'online/episode_return': self.episode_return[s],
                                         'online/episode_success': float(env_info.get('success', np.nan))}
                self.episode_return[s] = 0.0
                next_obs, _ = evaluation.seeded_reset(env, online_env_seed(self.seeds[s], step + 1))
            next_observations[s] = next_obs
        self.observations = next_observations
        return {k: np.asarray(v, np.float32) for k, v in transition.items()}

    def close(self) -> None:
        for env in self.envs:
            env.close()
