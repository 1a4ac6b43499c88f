"""How much a trained policy's randomness costs: success of its checkpoints with the noise scaled.

    python -m benchmarks.temperature --run_dir=exp/reproduce/mfql_a120_task2 --temperatures=1,0.5,0
    python -m benchmarks.temperature --run_dir=exp/reproduce/mfql_a120_task2 --steps=30000,40000  # scored as the study

Both agents act through noise: MFQL a = best-of-N over g_θ(s, e_n, 1), FQL a = μ_ω(s, z), with e, z ~ N(0, I).
At temperature τ the noise is drawn from N(0, τ² I) instead (`sample_actions(..., temperature=τ)`): τ = 1 is the
trained policy, τ = 0 its deterministic action (MFQL: g_θ(s, 0, 1), the N candidates then coincide). This is a
diagnostic, not a method setting: if success rises as τ falls, the policy's own action noise is what costs it.

For every task folder of a main.py run (OGBench tasks), all seeds are loaded at each of `--steps` (default: the
newest checkpoint) and evaluated together exactly as training evaluates them (`training.evaluation.evaluate`: the
run's `eval_episodes` and `eval_parallel_envs`, the same env reset seeds and the same per-step keys), so
temperature 1 reproduces the run's own logged evaluation at that step; the script checks that it does when the
step was evaluated. Prints success per temperature and step (mean ± std over seeds, and per seed). With several
steps it also prints each temperature's score as the reproduction study scores a run: per seed the mean over the
steps, then mean ± std over seeds, and the episodes won in all of them with their 95% Wilson interval.
"""

import argparse
import functools
import os
import sys
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.intervals import seed_t_interval, wilson_interval
from benchmarks.policy_diagnostics import load_agent, run_task_dirs, task_flags
from datasets.families import family_of
import runs
from training import evaluation
from training.fused import stacked_streams
from training.runner import fold_keys


def stack_agents(agents: list[Any]) -> Any:
    """Agents of one run, rebuilt separately, stacked along a new leading (S,) axis on the first one's
    structure: each rebuilt agent holds its own (equal) optimiser closures, which `jax.tree.map` would refuse
    to match."""
    leaves = zip(*[jax.tree.leaves(agent) for agent in agents])
    return jax.tree.unflatten(jax.tree.structure(agents[0]), [jnp.stack(seed_leaves) for seed_leaves in leaves])


def evaluate_at_temperatures(agents: Any, seeds: list[int], step: int, eval_episodes: int, eval_parallel_envs: int,
                             env_factory: Callable[[], Any],
                             temperatures: list[float]) -> dict[float, list[dict[str, float]]]:
    """Evaluates the stacked agents (leading (S,) axis; seed values `seeds`) saved at `step` as the runner
    evaluates them there (its env pool size, env reset seeds and policy keys), once per temperature.
    Returns {τ: per-seed metrics of `training.evaluation.evaluate`}."""
    pool = evaluation.EvalEnvPool(env_factory, len(seeds),
                                  evaluation.envs_per_seed(eval_episodes, eval_parallel_envs, len(seeds)))
    keys = fold_keys(stacked_streams(seeds).evaluation, step)  # as training.runner.TaskRun._evaluate
    try:
        return {temperature: evaluation.evaluate(
                    agents, pool, functools.partial(evaluation.policy_actions, temperature=temperature), keys,
                    seeds, eval_episodes)[0]
                for temperature in temperatures}
    finally:
        pool.close()


def task_success(task_dir: str, steps: list[int | None], temperatures: list[float], dataset_dir: str | None
                 ) -> tuple[int, dict[int, tuple[dict[float, list[float]], list[float] | None]]]:
    """Per-seed success at each temperature for one task folder of a run, at each of `steps` (None: the newest
    checkpoint). Returns (eval_episodes, {step: ({τ: per-seed success}, the run's own logged per-seed success at
    that step, or None if it did not evaluate there)})."""
    task = os.path.basename(task_dir)
    family = family_of(task)
    if family.metric != 'success':
        raise SystemExit(f'error: {task} is a {family.name} task, scored by {family.metric}; this diagnostic reads '
                         'success only')
    seed_dirs, flags = task_flags(task_dir)
    _, val = family.load(task, dataset_dir or flags['dataset_dir'])
    seeds = [runs.seed_of(d) for d in seed_dirs]
    results = {}
    for requested in steps:
        first, step = load_agent(seed_dirs[0], requested, val)  # every seed at the first seed's step
        agents = stack_agents([first, *[load_agent(directory, step, val)[0] for directory in seed_dirs[1:]]])
        per_temperature = evaluate_at_temperatures(agents, seeds, step, flags['eval_episodes'],
                                                   flags['eval_parallel_envs'],
                                                   lambda: family.make_env(task),
                                                   temperatures)
        success = {temperature: [r['success'] for r in per_seed] for temperature, per_seed in per_temperature.items()}
        logged = []
        for directory in seed_dirs:
            rows = [row for row in runs.read_csv(runs.eval_csv_path(directory)) if int(row['step']) == step]
            logged.append(rows[-1]['evaluation/success'] if rows else None)
        results[step] = (success, None if None in logged else logged)
    return flags['eval_episodes'], results


def score_lines(success_by_step: dict[int, dict[float, list[float]]], eval_episodes: int) -> list[str]:
    """The study's score of each temperature over several evaluated steps: per seed the mean success over the
    steps, then mean ± std over seeds and its 95% t interval (2+ seeds); plus the episodes won in all of them and
    their 95% Wilson interval."""
    steps = sorted(success_by_step)
    lines = [f'  score over steps {", ".join(map(str, steps))} (per seed the mean over steps; episodes won of all):']
    for temperature in success_by_step[steps[0]]:
        per_seed = np.mean([success_by_step[step][temperature] for step in steps], axis=0)
        won = int(round(sum(sum(success_by_step[step][temperature]) for step in steps) * eval_episodes))
        trials = len(steps) * len(per_seed) * eval_episodes
        low, high = wilson_interval(won, trials)
        seeds = '   seeds t ' + '–'.join(f'{x:.2f}' for x in seed_t_interval(per_seed)) if len(per_seed) > 1 else ''
        lines.append(f'  temperature {temperature:<5g} score {np.mean(per_seed):.3f} ± {np.std(per_seed):.3f}   '
                     f'per seed: {", ".join(f"{v:.2f}" for v in per_seed)}   won {won} / {trials} '
                     f'({low:.2f}–{high:.2f}){seeds}')
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--run_dir', required=True, help='a main.py run folder (<save_dir>/<run_name>)')
    parser.add_argument('--temperatures', default='1,0.5,0', help='comma-separated noise scales (>= 0)')
    parser.add_argument('--steps', default='', help='comma-separated checkpoint steps (default: the newest)')
    parser.add_argument('--dataset_dir', default=None, help="dataset folder (default: the run's own)")
    args = parser.parse_args(argv)
    temperatures = [float(value) for value in args.temperatures.split(',') if value]
    if not temperatures or any(not np.isfinite(t) or t < 0 for t in temperatures):
        parser.error(f'--temperatures must be finite values >= 0, got {args.temperatures!r}')
    try:
        steps = [int(value) for value in args.steps.split(',') if value] or [None]
    except ValueError:
        parser.error(f'--steps must be comma-separated integers, got {args.steps!r}')
    if len(set(steps)) != len(steps):
        parser.error(f'--steps has repeated values: {args.steps!r}')
    for task_dir in run_task_dirs(args.run_dir):
        eval_episodes, results = task_success(task_dir, steps, temperatures, args.dataset_dir)
        for step, (success, logged) in results.items():
            print(f'{task_dir} (step {step}, {len(next(iter(success.values())))} seeds)')
            for temperature, values in success.items():
                print(f'  temperature {temperature:<5g} success {np.mean(values):.3f} ± {np.std(values):.3f}   '
                      f'per seed: ' + ', '.join(f'{v:.2f}' for v in values))
            if logged is not None and 1.0 in success:
                same = np.allclose(success[1.0], logged, rtol=0.0, atol=1e-9)
                print(f'  temperature 1 {"reproduces" if same else "DOES NOT reproduce"} the run\'s logged '
                      f'evaluation at step {step}: ' + ', '.join(f'{v:.2f}' for v in logged))
        if len(results) > 1:
            print('\n'.join(score_lines({step: success for step, (success, _) in results.items()}, eval_episodes)))


if __name__ == '__main__':
    main(sys.argv[1:])
