"""Evaluate a trained run's checkpoint again, exactly as training evaluated it, and optionally record videos.

    python -m evaluate --run_dir=exp/fql_cube-single-play-singletask-task2-v0/cube-single-play-singletask-task2-v0
    python -m evaluate --run_dir=... --step=1000000 --eval_episodes=100 --video_episodes=2

`--run_dir` is a task's folder (the one holding `seed<k>/`), or a run folder holding a single task. Every seed with a
checkpoint at `--step` (default: the newest step all seeds have) is evaluated. Seeds trained together in one process
are evaluated together, with the env instances per seed, the evaluation keys and the env reset seeds of the
training loop (`training.evaluation`), so with the run's own episode count and `--eval_parallel_envs` the numbers
equal the run's eval.csv row at that step bit for bit on the same machine (other CPUs may differ in the last digits).
Every evaluation step of a run keeps its checkpoint (`--keep_checkpoints` of main.py), so every reported number can
be checked this way.

Writes `<task>/evaluations/step_<step>_episodes<E>.csv` (one row per seed; `runs.evaluation_csv_path`) and prints
one line per seed, saying whether it equals the run's own evaluation at that step. `--video_episodes=V` also renders
V more episodes per seed (the first V evaluation initial states, one env each; not counted in the CSV) with
OGBench's renderer to `<task>/evaluations/videos/` (mp4 with imageio-ffmpeg, else gif); without imageio or a working
renderer it prints one line and skips them.

`load_agent(run_dir, seed, step)` is the library entry point: the agent of one seed's checkpoint, built from the run's
flags.json (agent file and config, observation statistics included) and the task's environment (shapes), with no
dataset.
"""

import functools
import os
from typing import Any

from absl import app, flags

import runs

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines this script's flags (only when run as a script: main.py, imported beside it by the tests, defines
    --eval_episodes and --eval_parallel_envs too)."""
    flags.DEFINE_string('run_dir', None, "A task's folder of a main.py run (holding seed<k>/), or a run folder with "
                        'one task.')
    flags.DEFINE_integer('step', None, 'The checkpoint step to evaluate (default: the newest step every seed has).')
    flags.DEFINE_integer('eval_episodes', None, "Evaluation episodes per seed (default: the run's --eval_episodes).")
    flags.DEFINE_integer('eval_parallel_envs', None, 'Env instances stepped in lock-step, over the seeds trained '
                         "together (default: the run's; another value changes each episode's policy noise, not the "
                         'protocol).')
    flags.DEFINE_integer('video_episodes', 0, 'Episodes per seed to render to video (0 = none).')
    flags.DEFINE_integer('video_frame_skip', 3, "Keep every this many rendered frames in a video (FQL's default 3).")


class EvaluateError(ValueError):
    """A run folder, step or option that cannot be evaluated; the message says what is available."""


def task_folder_of(run_dir: str) -> str:
    """The task folder `run_dir` names: itself when it holds seed folders, else its one task folder."""
    run_dir = os.path.expanduser(run_dir)
    if not os.path.isdir(run_dir):
        raise EvaluateError(f'--run_dir {run_dir} is not a folder')
    if runs.seeds_on_disk(run_dir):
        return run_dir
    tasks = sorted(name for name in os.listdir(run_dir) if runs.seeds_on_disk(os.path.join(run_dir, name)))
    if len(tasks) == 1:
        return os.path.join(run_dir, tasks[0])
    if tasks:
        raise EvaluateError(f'{run_dir} holds {len(tasks)} tasks; pass one of their folders as --run_dir: '
                            f'{", ".join(os.path.join(run_dir, task) for task in tasks)}')
    raise EvaluateError(f'{run_dir} holds no seed<k>/ folder of a main.py run')


def recorded_flags(seed_folder: str) -> dict[str, Any]:
    """The seed's flags.json; EvaluateError when it is missing (a run that never started)."""
    recorded = runs.read_flags(seed_folder)
    if recorded is None or 'agent_config' not in recorded:
        raise EvaluateError(f'{runs.flags_path(seed_folder)} is missing or incomplete; is {seed_folder} a seed folder '
                            'of a main.py run?')
    return recorded


def _agent_file(recorded: dict[str, Any]) -> str:
    """The run's --agent file: as recorded (relative to where main.py ran), else relative to this repository."""
    path = recorded['flags']['agent']
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), path)


def frame_stack_of(recorded: dict[str, Any]) -> int:
    """Frames per observation the run trained with (the agent config's alias, else the flag, else 1)."""
    value = recorded['agent_config'].get('frame_stack', recorded['flags'].get('frame_stack'))
    return int(value) if value is not None else 1


def example_batch(env: Any, config: Any) -> dict[str, Any]:
    """A batch of one transition shaped like the training data, from the env alone (the agent reads shapes, not
    values): observations as the env returns them (states float32, frames uint8), actions float32."""
    import numpy as np

    observation, _ = env.reset(seed=0)
    observations = np.asarray(observation)[None]
    if observations.dtype != np.uint8:
        observations = observations.astype(np.float32)
    actions = np.zeros((1, *env.action_space.shape), np.float32)
    batch = dict(observations=observations, next_observations=observations, actions=actions,
                 rewards=np.zeros((1,), np.float32), masks=np.ones((1,), np.float32),
                 terminals=np.zeros((1,), np.float32))
    if config.get('next_actions', False):
        batch['next_actions'] = actions
    return batch


def load_agents(task_folder: str, seeds: list[int], step: int) -> tuple[Any, Any, dict[str, Any]]:
    """The agents of `seeds` at `step`, stacked along (S, ...); (agents, agent config, seed 0's flags.json).

    Every seed must come from the same run (same agent file and config); the state template is built by the agent's
    own `create` with each seed's creation key, from the task's env, and the checkpoint replaces its values.
    """
    import jax
    import ml_collections
    import numpy as np

    from agents import agent_class_from_file, agent_defaults
    from datasets.families import family_of
    from training.checkpoint import load_checkpoint
    from training.resume import with_added_keys
    from training.fused import create_training_states, stacked_streams

    folders = runs.seed_dirs(task_folder, seeds)
    recorded = recorded_flags(folders[0])
    for folder in folders[1:]:
        other = recorded_flags(folder)
        if other['agent_config'] != recorded['agent_config'] or other['flags']['agent'] != recorded['flags']['agent']:
            raise EvaluateError(f'{folder} was trained with another agent or config than {folders[0]}')
    agent_class = agent_class_from_file(_agent_file(recorded))
    config = ml_collections.ConfigDict(with_added_keys(recorded['agent_config'], agent_defaults(agent_class)))
    env = family_of(recorded['task']).make_env(recorded['task'], frame_stack=frame_stack_of(recorded))
    try:
        batch = example_batch(env, config)
    finally:
        env.close()
    template = create_training_states(agent_class, batch, config, stacked_streams(seeds))
    states = []
    for s, folder in enumerate(folders):
        seed_template = jax.tree.map(lambda x: np.asarray(x)[s], template)
        try:
            state, _ = load_checkpoint(folder, step, seed_template)
        except FileNotFoundError:
            raise EvaluateError(f'{folder} has no checkpoint at step {step}; it has steps '
                                f'{runs.checkpoint_steps(folder) or "none"}') from None
        states.append(state)
    # On the device once: the policy is called at every env step, and host arrays would be copied to it each time.
    stacked = jax.device_put(jax.tree.map(lambda *xs: np.stack(xs), *states))
    return stacked.agent, config, recorded


def load_agent(run_dir: str, seed: int, step: int) -> Any:
    """The trained agent of one seed at `step` (a kept checkpoint), with no dataset: `run_dir` is the task folder
    (or a run folder with one task). Its `sample_actions` acts as in training; evaluation uses the config's
    `evaluation_temperature` (`training.evaluation.evaluation_temperature`)."""
    import jax

    agents, _, _ = load_agents(task_folder_of(run_dir), [seed], step)
    return jax.tree.map(lambda x: x[0], agents)


def seed_groups(task_folder: str, seeds: list[int]) -> list[list[int]]:
    """`seeds` grouped as they were trained (the `seeds` each flags.json records), in order: a group is evaluated
    together, as the training loop evaluated it."""
    groups: list[list[int]] = []
    for seed in seeds:
        trained_with = [s for s in recorded_flags(runs.seed_dir(task_folder, seed)).get('seeds', [seed]) if s in seeds]
        if trained_with not in groups:
            groups.append(trained_with)
    return groups


def evaluate_group(task_folder: str, seeds: list[int], step: int, episodes: int | None,
                   parallel_envs: int | None) -> list[dict[str, Any]]:
    """One CSV row per seed of a group trained together: the evaluation of its checkpoint at `step`, as the
    training loop's at that step (its keys, env seeds and env instances per seed)."""
    from datasets.families import family_of
    from training import evaluation
    from training.fused import stacked_streams
    from training.runner import fold_keys

    agents, config, recorded = load_agents(task_folder, seeds, step)
    task = recorded['task']
    family = family_of(task)
    episodes = recorded.get('eval_episodes', 0) if episodes is None else episodes
    if episodes < 1:
        raise EvaluateError('the run was trained without evaluation (--eval_episodes=0); pass --eval_episodes=N')
    if parallel_envs is None:
        parallel_envs = int(recorded['flags'].get('eval_parallel_envs', 8))
    per_seed = evaluation.envs_per_seed(episodes, parallel_envs, len(seeds))
    make_env = functools.partial(family.make_env, task, frame_stack=frame_stack_of(recorded))
    pool = evaluation.EvalEnvPool(make_env, len(seeds), per_seed)
    policy = functools.partial(evaluation.policy_actions, temperature=evaluation.evaluation_temperature(config))
    keys = fold_keys(stacked_streams(seeds).evaluation, step)
    try:
        results, _ = evaluation.evaluate(agents, pool, policy, keys, seeds, episodes, family.return_to_score(task))
    finally:
        pool.close()
    rows = []
    for seed, result in zip(seeds, results):
        row = dict(seed=seed, step=step, eval_episodes=episodes, **{f'evaluation/{k}': v for k, v in result.items()})
        recorded_row = _recorded_evaluation(runs.seed_dir(task_folder, seed), step)
        if recorded_row is not None and recorded.get('eval_episodes') == episodes:
            row['equals_eval_csv'] = int(all(recorded_row.get(key) == value for key, value in row.items()
                                             if key.startswith('evaluation/')))
        rows.append(row)
    return rows


def _recorded_evaluation(seed_folder: str, step: int) -> dict[str, float] | None:
    """The seed's eval.csv row at `step`, if the run evaluated there."""
    matching = [row for row in runs.read_csv_if_any(runs.eval_csv_path(seed_folder)) if row.get('step') == step]
    return matching[-1] if matching else None


def record_videos(task_folder: str, seeds: list[int], step: int, num_episodes: int, frame_skip: int) -> list[str]:
    """Renders `num_episodes` episodes per seed (the first evaluation initial states, policy noise from the
    evaluation stream) and writes one video each; returns the paths, or [] after printing why it could not."""
    try:
        import imageio
    except ImportError:
        print('videos skipped: imageio is not installed (pip install imageio imageio-ffmpeg)', flush=True)
        return []
    try:
        import imageio_ffmpeg  # noqa: F401  (imageio's mp4 writer)
        extension = 'mp4'
    except ImportError:
        extension = 'gif'  # pillow's writer, always there with matplotlib
    import jax
    import numpy as np

    from datasets.families import family_of
    from training import evaluation
    from training.fused import stacked_streams
    from training.runner import fold_keys

    agents, config, recorded = load_agents(task_folder, seeds, step)
    env = family_of(recorded['task']).make_env(recorded['task'], frame_stack=frame_stack_of(recorded))
    keys = fold_keys(stacked_streams(seeds).evaluation, step)
    temperature = evaluation.evaluation_temperature(config)
    paths = []
    try:
        for s, seed in enumerate(seeds):
            agent = jax.tree.map(lambda x: np.asarray(x)[s:s + 1], agents)
            for episode in range(num_episodes):
                observation, _ = evaluation.seeded_reset(env, evaluation.episode_env_seed(seed, episode))
                try:
                    frames = [np.asarray(env.render()).copy()]
                except Exception as error:  # no OpenGL context, or an env without a renderer: say so once, go on
                    print(f'videos skipped: rendering failed ({type(error).__name__}: {error}); set MUJOCO_GL=egl '
                          'or osmesa', flush=True)
                    return paths
                done, t = False, 0
                while not done:
                    action = evaluation.policy_actions(agent, np.asarray(observation, np.float32)[None, None],
                                                       keys[s:s + 1], t, temperature)
                    observation, _, terminated, truncated, _ = env.step(np.clip(np.asarray(action)[0, 0], -1, 1))
                    done, t = terminated or truncated, t + 1
                    if t % frame_skip == 0 or done:
                        frames.append(np.asarray(env.render()).copy())
                path = runs.video_path(task_folder, seed, step, episode, extension)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                imageio.mimsave(path, frames, **({'fps': 15} if extension == 'mp4' else {'duration': 1 / 15}))
                paths.append(path)
    finally:
        env.close()
    return paths


def evaluate_run(run_dir: str, step: int | None = None, episodes: int | None = None,
                 parallel_envs: int | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Evaluates every seed of a task folder at `step` (default: the newest common checkpoint); writes the CSV and
    returns (its path, its rows)."""
    task_folder = task_folder_of(run_dir)
    seeds = runs.seeds_on_disk(task_folder)
    folders = runs.seed_dirs(task_folder, seeds)
    if step is None:
        step = runs.common_checkpoint_step(folders)
        if step is None:
            raise EvaluateError(f'the seeds of {task_folder} have no checkpoint step in common: '
                                + '; '.join(f'seed{s}: {runs.checkpoint_steps(f) or "none"}'
                                            for s, f in zip(seeds, folders)))
    missing = [f'seed{s} has {runs.checkpoint_steps(f) or "none"}' for s, f in zip(seeds, folders)
               if step not in runs.checkpoint_steps(f)]
    if missing:
        raise EvaluateError(f'no checkpoint at step {step} in {task_folder} ({"; ".join(missing)})')
    rows = []
    for group in seed_groups(task_folder, seeds):
        rows += evaluate_group(task_folder, group, step, episodes, parallel_envs)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path = runs.evaluation_csv_path(task_folder, step, rows[0]['eval_episodes'])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    runs.write_atomically(path, runs.csv_text(columns, rows))
    return path, rows


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise SystemExit(f'error: unexpected arguments {argv[1:]}; flags are --run_dir, --step, --eval_episodes, '
                         '--eval_parallel_envs, --video_episodes, --video_frame_skip')
    if FLAGS.run_dir is None:
        raise SystemExit('error: --run_dir is required (a task folder of a main.py run, e.g. exp/RUN/TASK)')
    for name in ('eval_episodes', 'eval_parallel_envs', 'video_frame_skip'):
        if FLAGS[name].value is not None and FLAGS[name].value < 1:
            raise SystemExit(f'error: --{name} must be >= 1, got {FLAGS[name].value}')
    if FLAGS.video_episodes < 0:
        raise SystemExit(f'error: --video_episodes must be >= 0, got {FLAGS.video_episodes}')
    if not FLAGS['verbosity'].present:
        FLAGS.verbosity = -1  # WARNING: no library INFO lines (as main.py)
    try:
        task_folder = task_folder_of(FLAGS.run_dir)
        # Before MuJoCo is imported: render only when frames are observed or videos asked for (as main.py decides).
        from datasets.families import mujoco_gl
        task = recorded_flags(runs.seed_dir(task_folder, runs.seeds_on_disk(task_folder)[0]))['task']
        os.environ.setdefault('MUJOCO_GL', 'egl' if FLAGS.video_episodes else mujoco_gl([task]))
        path, rows = evaluate_run(task_folder, FLAGS.step, FLAGS.eval_episodes, FLAGS.eval_parallel_envs)
    except (EvaluateError, ValueError) as error:  # load_checkpoint's shape mismatch is a ValueError
        raise SystemExit(f'error: {error}')
    for row in rows:
        metrics = ', '.join(f'{key} {value:.4f}' for key, value in row.items() if key.startswith('evaluation/'))
        same = {1: '; equals eval.csv', 0: '; DIFFERS from eval.csv'}.get(row.get('equals_eval_csv'), '')
        print(f'seed{row["seed"]} step {row["step"]} ({row["eval_episodes"]} episodes): {metrics}{same}')
    print(f'written to {path}')
    if FLAGS.video_episodes:
        step = rows[0]['step']
        for group in seed_groups(task_folder, [row['seed'] for row in rows]):
            for video in record_videos(task_folder, group, step, FLAGS.video_episodes, FLAGS.video_frame_skip):
                print(f'video written to {video}')


if __name__ == '__main__':
    define_flags()
    app.run(main)
