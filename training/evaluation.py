"""Batched policy evaluation: many episodes in lock-step, all seeds in one policy call.

Protocol (FQL's, with deterministic seeding):
- a separate evaluation env per running episode, built by `env_factory` (the task family's `make_env`);
- episode e of seed s starts from `seeded_reset(env, episode_env_seed(s, e))`, so every evaluation of a
  seed sees the same E initial states (common random numbers across evaluation steps) and a run is
  reproducible from `--seed`;
- per episode: success = `info['success']` at the final step (OGBench), return = Σ rewards, length,
  and, when a `return_to_score` map is given (D4RL), score = return_to_score(return) (D4RL's
  normalised score ×100); the reported numbers are their means over the E episodes. Nothing is
  selected or stopped on them.

Batching. An `EvalEnvPool` keeps S × M env instances (M = episodes run at once per seed). Each round
resets M episodes per seed, then steps all live episodes together: one jitted call
`sample_actions` (vmapped over the S agents) gives (S, M, action_dim) actions for the (S, M, obs_dim)
observations; finished episodes keep their last observation as padding and are not stepped, so the
shapes (and the compiled function) never change. E episodes take ceil(E / M) rounds.
"""

import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

PolicyFn = Callable[[Any, jax.Array, jax.Array, jax.Array], jax.Array]
ReturnToScore = Callable[[np.ndarray], np.ndarray]  # (E,) episode returns -> (E,) scores


def episode_env_seed(seed: int, episode: int) -> int:
    """A 32-bit env reset seed for episode `episode` of run seed `seed` (independent across both)."""
    return int(np.random.SeedSequence([seed, episode, 0x6576616C]).generate_state(1)[0])


def seeded_reset(env: Any, seed: int) -> tuple[Any, dict]:
    """`env.reset(seed=seed)` with numpy's global generator seeded from `seed` too. OGBench's maze envs draw
    the start-position noise at reset (and teleports at steps) from `np.random`, not from the env's own
    generator, so `reset(seed=...)` alone does not fix their start state. The global generator is left in
    the seeded state, which also makes those later draws depend on the seeds alone."""
    np.random.seed(seed)
    return env.reset(seed=seed)


def evaluation_temperature(config: Any) -> float:
    """The temperature evaluation acts with: the agent config's `evaluation_temperature` where it has one (0 for
    agents that FQL's code evaluates with their deterministic action: IQL, ReBRAC), else 1 (sample the policy)."""
    return float(config.get('evaluation_temperature', 1.0))


@jax.jit
def policy_actions(agents: Any, observations: jax.Array, keys: jax.Array, t: jax.Array,
                   temperature: float = 1.0) -> jax.Array:
    """(agents (S,…), observations (S, M, obs_dim), keys (S, 2), t ()) -> actions (S, M, act_dim).

    Seed s acts with `agent_s.sample_actions(obs_s, fold_in(key_s, t), temperature)`; t is the env-step
    counter of the evaluation (a traced scalar, so no recompilation per step). Training evaluates at the agent's
    `evaluation_temperature`; other values are for diagnostics (`benchmarks/temperature.py`).
    """

    def per_seed(agent: Any, seed_observations: jax.Array, key: jax.Array) -> jax.Array:
        return agent.sample_actions(seed_observations, jax.random.fold_in(key, t), temperature)

    return jax.vmap(per_seed)(agents, observations, keys)


def envs_per_seed(num_episodes: int, parallel_envs: int, num_seeds: int) -> int:
    """M, the episodes of each seed run at once: `parallel_envs` env instances split over the seeds (at
    least one each), and no more than the episodes asked for."""
    return max(1, min(num_episodes, parallel_envs // num_seeds))


class EvalEnvPool:
    """S × M evaluation envs, created once per run and reused by every evaluation."""

    def __init__(self, env_factory: Callable[[], Any], num_seeds: int, envs_per_seed: int):
        if envs_per_seed < 1:
            raise ValueError(f'envs_per_seed must be >= 1, got {envs_per_seed}')
        self.num_seeds = num_seeds
        self.envs_per_seed = envs_per_seed
        self.envs = [[env_factory() for _ in range(envs_per_seed)] for _ in range(num_seeds)]

    def close(self) -> None:
        for row in self.envs:
            for env in row:
                env.close()


def evaluate(agents: Any, pool: EvalEnvPool, policy_fn: PolicyFn, policy_keys: jax.Array,
             seeds: list[int], num_episodes: int,
             return_to_score: ReturnToScore | None = None) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Runs `num_episodes` episodes per seed; returns (per-seed metrics, timing stats).

    Args:
      agents: the S stacked agents (leading (S,) axis).
      pool: S × M envs (M episodes of each seed run at once).
      policy_fn: `policy_actions` (or any function with its signature).
      policy_keys: (S, 2) keys for this evaluation (e.g. the evaluation stream folded with the step).
      seeds: the S seed values (for the env reset seeds).
      num_episodes: E episodes per seed (>= 1).
      return_to_score: optional map from episode returns to scores (e.g. D4RL's normalised score ×100),
        applied per episode before averaging.

    Returns:
      per seed: {'success': mean final-step info['success'], 'return': mean Σ reward,
                 'episode_length': mean length, and 'score': mean per-episode score if
                 `return_to_score` is given}; stats: {'env_steps', 'seconds', 'env_steps_per_sec'}.
    """
    if num_episodes < 1:
        raise ValueError(f'num_episodes must be >= 1, got {num_episodes}')
    num_seeds, per_seed = pool.num_seeds, pool.envs_per_seed
    if len(seeds) != num_seeds:
        raise ValueError(f'{len(seeds)} seeds for an env pool of {num_seeds}')
    successes = np.zeros((num_seeds, num_episodes))
    returns = np.zeros((num_seeds, num_episodes))
    lengths = np.zeros((num_seeds, num_episodes))
    env_steps, t_global, start = 0, 0, time.perf_counter()
    for first in range(0, num_episodes, per_seed):
        episodes = list(range(first, min(first + per_seed, num_episodes)))
        observations, alive = None, np.zeros((num_seeds, per_seed), bool)
        for s in range(num_seeds):
            for j, episode in enumerate(episodes):
                obs, _ = seeded_reset(pool.envs[s][j], episode_env_seed(seeds[s], episode))
                if observations is None:
                    observations = np.zeros((num_seeds, per_seed, *np.shape(obs)), np.float32)
                observations[s, j] = obs
                alive[s, j] = True
        while alive.any():
            actions = np.asarray(policy_fn(agents, jnp.asarray(observations), policy_keys, jnp.int32(t_global)))
            actions = np.clip(actions, -1.0, 1.0)
            t_global += 1
            for s, j in zip(*np.nonzero(alive)):
                episode = episodes[j]
                obs, reward, terminated, truncated, info = pool.envs[s][j].step(actions[s, j])
                observations[s, j] = obs
                returns[s, episode] += float(reward)
                lengths[s, episode] += 1
                env_steps += 1
                if terminated or truncated:
                    alive[s, j] = False
                    successes[s, episode] = float(info.get('success', np.nan))
    seconds = time.perf_counter() - start
    per_seed_metrics = [{'success': float(successes[s].mean()), 'return': float(returns[s].mean()),
                         'episode_length': float(lengths[s].mean())} for s in range(num_seeds)]
    if return_to_score is not None:
        for s in range(num_seeds):
            per_seed_metrics[s]['score'] = float(np.mean(return_to_score(returns[s])))
    stats = {'env_steps': env_steps, 'seconds': seconds, 'env_steps_per_sec': env_steps / max(seconds, 1e-9)}
    return per_seed_metrics, stats
