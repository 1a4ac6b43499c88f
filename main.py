"""Train an agent (MeanFlowQL, FQL, or FQL's baselines ReBRAC, IQL and IFQL) on OGBench single-task environments, or
on D4RL AntMaze / Adroit via Minari.

    python main.py --env_name=cube-double-play-singletask-task2-v0 --agent=agents/mfql.py
    python main.py --env_name=cube-double-play-singletask --agent=agents/fql.py --agent.alpha=300 --num_seeds=4
    python main.py --env_name=antmaze-umaze-v2 --agent=agents/mfql.py   # needs requirements-d4rl.txt
    python main.py --agent=agents/fql.py --helpagent   # the agent's config keys, defaults and meanings
    python main.py --agent=path/to/myagent.py ...      # any agent file (the convention: agents/__init__.py)

Flags -> plan (`cli.plan.plan_run`: tasks and their environment families, per-task presets from configs.py with
explicit `--agent.KEY` flags winning, frame settings, seeds, folders; all checked before anything runs) -> each
task's family ensures and loads its data -> `training.runner.train_task` (which builds `AGENT_CLASS` of the --agent
file). No algorithm logic lives here.

Outputs: `<save_dir>/<run_name>/<task>/seed<k>/{train.csv, eval.csv, flags.json, final.json, checkpoints/}`,
`<save_dir>/<run_name>/<task>/curves.png`, and `<save_dir>/<run_name>/summary.{csv,md}` (final success per
task and per environment, mean ± std over seeds; D4RL tasks add the normalised score ×100). `--resume` continues
every task from its newest checkpoint and skips finished tasks.

Exit status: 0 when every task finished; 1 with one `error:` line on bad input or a failed run; 3
(`training.preemption.EXIT_STATUS`) after SIGUSR2 or SIGTERM (SLURM's `--signal=USR2@90` before a time limit, or a
preemption): training stopped at the next call boundary with a checkpoint there, and the same command with --resume
continues it (bitwise in the offline phase). A requeued job should rerun with --resume.
"""

import hashlib
import os
import sys

from absl import app, flags
from ml_collections import config_flags

import run_flags
import runs
from cli.agent_args import DEFAULT_AGENT_FILE, available_agents_text, check_agent_argv
from cli.plan import RunPlan, generate_workers, plan_run

REPO_DIR = os.path.dirname(os.path.abspath(__file__))

if __name__ == '__main__':
    from datasets.families import mujoco_gl

    refused = run_flags.refused_flag_error(sys.argv[1:])  # FQL flags with no counterpart here: say what to use
    if refused:
        raise SystemExit(refused)
    # Before anything imports MuJoCo: render with EGL only for tasks observed as frames (`mujoco_gl` says why);
    # MUJOCO_GL=egl/glfw/osmesa in the environment wins.
    os.environ.setdefault('MUJOCO_GL', mujoco_gl(sys.argv[1:]))
    check_agent_argv(sys.argv[1:])  # before DEFINE_config_file, which parses --agent.* from sys.argv

FLAGS = flags.FLAGS
flags.DEFINE_boolean('helpagent', False, 'Print every key of the --agent config file (e.g. --agent=agents/fql.py) '
                     'with its default and its meaning, then exit.')
run_flags.define(flags, module_name=sys.argv[0])  # absl's name for the main module's flags, listed by --help
config_flags.DEFINE_config_file('agent', DEFAULT_AGENT_FILE, lock_config=False,
                                help_string=f'Agent file (its get_config() is the agent config; --agent.KEY=VALUE sets '
                                            f'a key). Registered agents: {available_agents_text()}; any file following '
                                            'the convention of agents/__init__.py works too.')


def show_warnings_only() -> None:
    """Logs WARNING and above unless --verbosity was given (--verbosity=0 shows INFO lines).

    absl's app.run raises the default verbosity to INFO, which prints every library's INFO lines (dm_control's
    renderer choice and MuJoCo version, JAX's failed probe of a TPU backend); mfql logs nothing itself.
    """
    if not FLAGS['verbosity'].present:
        FLAGS.verbosity = -1  # absl's WARNING


def run_metadata(plan: RunPlan) -> dict:
    """What every seed's flags.json records about the whole run (the runner adds the per-task entries)."""
    import configs
    from training import tracking

    flag_values = {name: FLAGS[name].value for name in run_flags.FLAG_NAMES}
    flag_values['agent'] = plan.agent_file
    metadata = dict(flags=flag_values, explicit_agent_keys=plan.explicit_keys, seeds=plan.seeds,
                    presets=configs.presets_origin(plan.agent_name), **tracking.run_metadata(REPO_DIR))
    if FLAGS.presets_file:  # the file's content, so that a later edit of it cannot pass for the values used
        with open(FLAGS.presets_file, 'rb') as f:
            metadata['presets_file'] = dict(path=os.path.abspath(FLAGS.presets_file),
                                            sha256=hashlib.sha256(f.read()).hexdigest())
    return metadata


def main(_argv: list[str]) -> None:
    if FLAGS.helpagent:  # with --env_name (without it, check_agent_argv printed the defaults and exited)
        from cli.agent_args import print_task_settings
        print_task_settings(FLAGS, sys.argv[1:])
        return
    from datasets.families import family_of
    from datasets.frames import DatasetTooLargeError
    from training import preemption
    from training.checkpoint import ResumeError
    from training.runner import NonFiniteLossError, TaskInputs, train_task
    from training.summary import write_summary
    from training.tracking import WandbError, WandbSettings

    show_warnings_only()
    plan = plan_run(FLAGS, sys.argv[1:])
    problem = runs.unwritable(plan.run_root)
    if problem is not None:  # found now, not after the data is loaded (or generated)
        raise SystemExit(f'error: cannot write the run folder {plan.run_root} ({problem}); choose another --save_dir')
    try:  # a stop signal here ends the process at once: there is nothing to checkpoint yet
        for task in plan.tasks:
            family_of(task).ensure_data(task, FLAGS.dataset_dir, FLAGS.generate_missing_data or None,
                                        generate_workers(FLAGS), FLAGS.progress_bar,
                                        download=FLAGS.download_missing_data)
    except ValueError as error:  # DatasetError is a ValueError
        raise SystemExit(f'error: {error}')
    with preemption.StopHandler() as stop:
        base_metadata = run_metadata(plan)
        # FQL's grouping: every seed's run of this command in one group, by default the run folder's name.
        wandb = (WandbSettings(project=FLAGS.wandb_project, entity=FLAGS.wandb_entity or None,
                               group=FLAGS.run_group or os.path.basename(plan.run_root.rstrip('/')))
                 if FLAGS.wandb else None)
        results = []
        for task, run_dir, (config, sources), frames in zip(plan.tasks, plan.run_dirs, plan.task_configs,
                                                            plan.frames):
            family = family_of(task)
            try:
                train, val = family.load(task, FLAGS.dataset_dir)
            except ValueError as error:  # DatasetError: a file failed validation (the message names its remedy)
                raise SystemExit(f'error: {error}')
            metadata = dict(base_metadata, preset_sources=sources,  # + agent_config
                            **family.provenance(task, FLAGS.dataset_dir))
            inputs = TaskInputs(task=task, family=family, agent_class=plan.agent_class, config=config,
                                train_data=train, val_data=val, seeds=plan.seeds, run_dir=run_dir, metadata=metadata,
                                frames=frames, wandb=wandb, stop=stop)
            try:
                results.append(train_task(inputs, plan.options))
            except preemption.StopRequested as stopped:
                print(stopped, file=sys.stderr, flush=True)
                raise SystemExit(preemption.EXIT_STATUS)
            # ResumeError includes ConfigMismatchError
            except (NonFiniteLossError, ResumeError, WandbError, DatasetTooLargeError) as error:
                raise SystemExit(f'error: {error}')
    csv_path, md_path = write_summary(plan.run_root, results, plan.agent_name)
    with open(md_path) as f:
        print(f.read())
    print(f'summary written to {csv_path} and {md_path}')


if __name__ == '__main__':
    app.run(main)
