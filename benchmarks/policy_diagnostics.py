"""What a trained policy does on held-out data: fit to the data actions, action bounds, and Q improvement.

    python -m benchmarks.policy_diagnostics --run_dir=exp/reproduce/mfql_task2 [--step=40000]

For every seed folder of a main.py run (`<run_dir>/<task>/seed<k>`), it rebuilds the agent from
`flags.json`, loads the checkpoint at `--step` (default: the newest) and, on `--num_samples` transitions of
the task's validation split, reports (means over the samples, then mean ± std over seeds):
- `mse_to_data`: mean over samples and action dims of (a_policy − a_data)², with a_policy the one-step action
  from one noise draw (MFQL: g(s, e, b=0, t=1); FQL: μ(s, z)), before clipping. A pure behaviour-cloning policy
  on this data scores about twice the data's conditional action variance; a policy that ignores the data
  scores much more.
- `out_of_bounds`: fraction of one-step action entries outside [−1, 1] (before clipping).
- `action_spread`: how random the policy is: the standard deviation of the one-step action over
  `SPREAD_DRAWS` noise draws at the same state, averaged over states and action dims. With `--data_spread`,
  the same quantity is estimated for the data (`neighbour_action_spread`), the value a generator that
  reproduces the behaviour policy would have.
- `q_data`, `q_one_step`, `q_policy`: ensemble-mean Q of the online critic at the data action, at the clipped
  one-step action, and at the action `sample_actions` returns (MFQL: best of N by the target critic).
  `q_policy − q_data` > 0 says the policy picks actions its critic prefers to the behaviour policy's.
These separate "the generator does not fit the data" from "the Q term does not move the policy" when an agent
does not learn.
"""

import argparse
import glob
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import runs
from agents import get_agent_class
from agents.train_state import normalize_observations
from datasets.families import family_of
from training import checkpoint
from training.fused import TrainingState

BATCH_KEYS = ('observations', 'actions', 'rewards', 'masks', 'next_observations', 'terminals')
SPREAD_DRAWS = 8  # noise draws per state for `action_spread`


def one_step_actions(agent, observations: jax.Array, noise: jax.Array) -> jax.Array:
    """The agent's single-sample action before clipping (its `one_step_actions`; MFQL: g(s, e, 1), FQL: μ(s, z)):
    (B, o) as the networks see them (z-scored if the agent normalises), (B, d) -> (B, d)."""
    if not hasattr(agent, 'one_step_actions'):
        raise SystemExit(f"error: agent {agent.config['agent_name']!r} has no one_step_actions(features, noise) "
                         'method, the single-sample action these diagnostics measure')
    return agent.one_step_actions(observations, noise)


def validation_sample(val: dict[str, np.ndarray], num_samples: int) -> np.ndarray:
    """Indices of the validation transitions every measurement here uses (a fixed draw of up to num_samples)."""
    return np.random.default_rng(0).choice(len(val['actions']), min(num_samples, len(val['actions'])), replace=False)


def run_task_dirs(run_dir: str) -> list[str]:
    """The <task> folders (holding seed<k> folders) of a main.py run folder; exits with an error if none."""
    task_dirs = sorted(d for d in glob.glob(os.path.join(run_dir, '*')) if runs.seeds_on_disk(d))
    if not task_dirs:
        raise SystemExit(f'error: {run_dir} has no <task>/seed<k> folders')
    return task_dirs


def task_flags(task_dir: str) -> tuple[list[str], dict[str, Any]]:
    """(seed folders sorted by seed number, the first seed's main.py flags) of one task folder of a run."""
    seed_dirs = runs.seed_dirs(task_dir, runs.seeds_on_disk(task_dir))
    flags = runs.read_flags(seed_dirs[0]) if seed_dirs else None
    if flags is None:
        raise SystemExit(f'error: {task_dir} has no seed<k> folder with a readable flags.json')
    return seed_dirs, flags['flags']


def action_spread(agent, observations: jax.Array, noises: jax.Array) -> jax.Array:
    """Std of the one-step action over noise draws at each state, averaged over states and action dims:
    observations (B, o) as the networks see them, noises (K, B, d) -> scalar."""
    actions = jax.vmap(lambda noise: one_step_actions(agent, observations, noise))(noises)  # (K, B, d)
    return jnp.mean(jnp.std(actions, axis=0))


def neighbour_action_spread(train: dict[str, np.ndarray], val: dict[str, np.ndarray], num_samples: int,
                            closest_fraction: float = 0.5, block: int = 256) -> float:
    """The data's action spread at a state, estimated from near-duplicate states: each of `num_samples`
    validation states is paired with its nearest training state (Euclidean, after dividing every observation
    dim by its training std), and over the `closest_fraction` closest pairs the spread is
    sqrt(mean (a − a')² / 2) over pairs and action dims. Validation episodes are not in the training split, so
    a pair is two independent draws of the behaviour policy at nearly the same state; the residual state
    difference makes this an upper bound (if it barely changes with `closest_fraction`, a tight one)."""
    scale = train['observations'].std(axis=0) + 1e-3
    points = (train['observations'] / scale).astype(np.float32)
    index = validation_sample(val, num_samples)
    queries = (val['observations'][index] / scale).astype(np.float32)
    squared_norms = np.sum(points ** 2, axis=1)
    distances, neighbours = [], []
    for start in range(0, len(queries), block):
        query = queries[start:start + block]
        squared = np.sum(query ** 2, axis=1)[:, None] + squared_norms[None] - 2.0 * query @ points.T
        nearest = np.argmin(squared, axis=1)
        distances.append(squared[np.arange(len(query)), nearest])
        neighbours.append(nearest)
    distances, neighbours = np.concatenate(distances), np.concatenate(neighbours)
    closer = distances <= np.quantile(distances, closest_fraction)
    differences = val['actions'][index][closer] - train['actions'][neighbours[closer]]
    return float(np.sqrt(np.mean(differences ** 2) / 2.0))


@jax.jit
def _measure(agent, observations: jax.Array, data_actions: jax.Array, rng: jax.Array) -> dict[str, jax.Array]:
    noise_rng, policy_rng, spread_rng = jax.random.split(rng, 3)
    noise = jax.random.normal(noise_rng, data_actions.shape)
    policy = agent.sample_actions(observations, policy_rng)  # takes raw observations
    observations = normalize_observations(agent.config, observations)  # what the networks see
    raw = one_step_actions(agent, observations, noise)
    spread_noises = jax.random.normal(spread_rng, (SPREAD_DRAWS, *data_actions.shape))
    critic = agent.network.select('critic')

    def q(actions):
        return critic(observations, actions).mean(axis=0).mean()

    return {'mse_to_data': jnp.mean((raw - data_actions) ** 2),
            'out_of_bounds': jnp.mean(jnp.abs(raw) > 1.0),
            'action_spread': action_spread(agent, observations, spread_noises),
            'q_data': q(data_actions), 'q_one_step': q(jnp.clip(raw, -1.0, 1.0)), 'q_policy': q(policy)}


def load_agent(seed_dir: str, step: int | None, val: dict[str, np.ndarray]) -> tuple[Any, int]:
    """The agent saved in a main.py seed folder at checkpoint `step` (None: the newest), rebuilt from its
    flags.json; `val` gives the example batch. Returns (agent, step)."""
    flags = runs.read_flags(seed_dir)
    if flags is None:
        raise SystemExit(f'error: {seed_dir} has no readable flags.json')
    config = ml_collections.ConfigDict(flags['agent_config'])
    agent_class = get_agent_class(config.agent_name)
    example = {key: jnp.asarray(val[key][:1]) for key in BATCH_KEYS}
    template = TrainingState(agent=agent_class.create(jax.random.PRNGKey(0), example, config),
                             sample_key=jax.random.PRNGKey(0))
    steps = runs.checkpoint_steps(seed_dir)
    if not steps:
        raise SystemExit(f'error: no checkpoints in {seed_dir}')
    step = steps[-1] if step is None else step
    if step not in steps:
        raise SystemExit(f'error: no checkpoint at step {step} in {seed_dir}; saved steps: {steps}')
    state, _ = checkpoint.load_checkpoint(seed_dir, step, template)
    return state.agent, step


def seed_metrics(seed_dir: str, step: int | None, val: dict[str, np.ndarray], num_samples: int) -> dict:
    agent, step = load_agent(seed_dir, step, val)
    index = validation_sample(val, num_samples)
    metrics = _measure(agent, jnp.asarray(val['observations'][index]), jnp.asarray(val['actions'][index]),
                       jax.random.PRNGKey(1))
    return {'step': step, **{key: float(value) for key, value in metrics.items()}}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--run_dir', required=True, help='a main.py run folder (<save_dir>/<run_name>)')
    parser.add_argument('--step', type=int, default=None, help='checkpoint step (default: the newest)')
    parser.add_argument('--num_samples', type=int, default=4096, help='validation transitions used')
    parser.add_argument('--dataset_dir', default=None, help="dataset folder (default: the run's own)")
    parser.add_argument('--data_spread', action='store_true',
                        help="also estimate the data's action spread from near-duplicate states")
    args = parser.parse_args(argv)
    for task_dir in run_task_dirs(args.run_dir):
        seed_dirs, flags = task_flags(task_dir)
        dataset_dir = args.dataset_dir or flags['dataset_dir']
        task = os.path.basename(task_dir)
        train, val = family_of(task).load(task, dataset_dir)
        if val is None:
            raise SystemExit(f'error: {task} has no validation split, which these diagnostics measure on')
        per_seed = [seed_metrics(d, args.step, val, args.num_samples) for d in seed_dirs]
        print(f'{task_dir} (step {per_seed[0]["step"]}, {len(per_seed)} seeds, '
              f'{min(args.num_samples, len(val["actions"]))} val transitions)')
        if args.data_spread:
            estimates = [neighbour_action_spread(train, val, args.num_samples, fraction) for fraction in (0.1, 0.5)]
            print(f'  data spread    {estimates[1]:9.4f}   (nearest-neighbour upper bound from the closest half of '
                  f'the pairs; closest tenth: {estimates[0]:.4f})')
        for key in ('mse_to_data', 'out_of_bounds', 'action_spread', 'q_data', 'q_one_step', 'q_policy'):
            values = [m[key] for m in per_seed]
            print(f'  {key:14s} {np.mean(values):9.4f} ± {np.std(values):.4f}   per seed: '
                  + ', '.join(f'{v:.4f}' for v in values))


if __name__ == '__main__':
    main(sys.argv[1:])
