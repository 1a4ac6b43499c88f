"""Success of a uniform random policy (actions ~ U[−1, 1]^d), evaluated as main.py evaluates an agent.

    python -m benchmarks.random_policy --env_name=cube-single-play-singletask-task2-v0 --seeds=0,1,2

The baseline a learning curve should clear: the same env reset seeds as main.py's evaluation of those seeds
(`training.evaluation.evaluate`), `--eval_episodes` episodes per seed. Prints the episodes won per seed and
pooled, with the pooled 95% Wilson interval.
"""

import argparse
import sys

import jax
import numpy as np

from benchmarks.intervals import wilson_interval
from datasets.ogbench_data import make_env
from training import evaluation


def random_policy_successes(env_name: str, seeds: list[int], episodes: int, key: int = 0) -> list[int]:
    """Episodes won of `episodes` per seed by a uniform random policy on `env_name` (OGBench single-task name)."""

    def uniform_actions(_agents, observations, keys, t):
        shape = (*observations.shape[:-1], action_dim)  # (S, M, d)
        return jax.random.uniform(jax.random.fold_in(keys[0], t), shape, minval=-1.0, maxval=1.0)

    pool = evaluation.EvalEnvPool(lambda: make_env(env_name), num_seeds=len(seeds), envs_per_seed=1)
    action_dim = int(np.prod(pool.envs[0][0].action_space.shape))
    keys = jax.random.split(jax.random.PRNGKey(key), len(seeds))
    try:
        metrics, _ = evaluation.evaluate(None, pool, uniform_actions, keys, seeds, episodes)
    finally:
        pool.close()
    return [round(m['success'] * episodes) for m in metrics]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--env_name', required=True, help='OGBench single-task name')
    parser.add_argument('--seeds', default='0', help='comma-separated evaluation seeds (main.py --seeds)')
    parser.add_argument('--eval_episodes', type=int, default=50, help='episodes per seed')
    parser.add_argument('--key', type=int, default=0, help='PRNG key of the random actions')
    args = parser.parse_args(argv)
    try:
        seeds = [int(seed) for seed in args.seeds.split(',')]
    except ValueError:
        parser.error(f'--seeds must be comma-separated integers, got {args.seeds!r}')
    if args.eval_episodes < 1 or min(seeds) < 0:
        parser.error(f'--eval_episodes must be >= 1 and seeds >= 0, got {args.eval_episodes} and {seeds}')
    won = random_policy_successes(args.env_name, seeds, args.eval_episodes, args.key)
    total = args.eval_episodes * len(seeds)
    low, high = wilson_interval(sum(won), total)
    per_seed = ', '.join(f'seed {seed}: {w} / {args.eval_episodes}' for seed, w in zip(seeds, won))
    print(f'{args.env_name}, uniform random policy: {per_seed}; pooled {sum(won)} / {total} '
          f'({sum(won) / total:.2f}; 95% Wilson {low:.2f}–{high:.2f})')


if __name__ == '__main__':
    main(sys.argv[1:])
