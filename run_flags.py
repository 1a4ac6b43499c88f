"""main.py's own flags, declared once: names, kinds, defaults and help. Standard library only, so that sweep.py and
the tests read the flag names without defining absl flags or importing JAX; main.py defines them from this table
(`define`). The agent's config (`--agent=FILE`, `--agent.KEY=VALUE`) is not in the table: it is ml_collections'.
"""

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    kind: str  # 'string' | 'integer' | 'boolean' | 'list' | 'float'
    default: Any
    help: str


FLAGS: tuple[Flag, ...] = (
    Flag('env_name', 'string', 'cube-double-play-singletask-v0',
         'One task, a comma-separated list, or a family (e.g. cube-double-play-singletask = its 5 tasks).'),
    Flag('seed', 'integer', 0, 'Seed of the first run; with --num_seeds=S the seeds are seed, ..., seed+S-1.'),
    Flag('num_seeds', 'integer', 1, 'Number of seeds trained together in one process (vmapped).'),
    Flag('seeds', 'list', [], 'Explicit comma-separated seeds (overrides --seed/--num_seeds), e.g. 0,1,2.'),
    Flag('offline_steps', 'integer', 1_000_000, "Offline updates. Default: the task family's, the papers' budget (1M "
         'for OGBench state tasks, 500K for visual and D4RL tasks, 1M for D4RL before an online phase); tasks whose '
         'defaults differ need this flag.'),
    Flag('online_steps', 'integer', 0, 'Online updates after the offline phase (one env step each).'),
    Flag('eval_interval', 'integer', 100_000, 'Evaluate every this many updates (also at step 1 and at the end).'),
    Flag('eval_episodes', 'integer', 50, 'Evaluation episodes per seed (0 = no evaluation).'),
    Flag('eval_parallel_envs', 'integer', 8, 'Env instances stepped in lock-step during evaluation, over all seeds '
         '(each OGBench manipulation env costs ~100-230 MB of RAM and ~1 s to build).'),
    Flag('log_interval', 'integer', 5_000, 'Log training metrics every this many updates.'),
    Flag('save_interval', 'integer', 1_000_000, 'Checkpoint every this many updates (always at the end and at every '
         'evaluation step; 0 = only there).'),
    Flag('keep_checkpoints', 'integer', 2, 'Checkpoints kept per seed besides those at evaluation steps, which are '
         'always written and kept (so `python -m evaluate` can repeat every reported number); older ones are '
         'deleted once a newer one is complete. Default 2.'),
    Flag('steps_per_call', 'integer', 100, 'K: offline updates fused into one jitted call (lax.scan).'),
    Flag('frame_stack', 'integer', None, "Visual tasks: frames stacked per observation (FQL's flag). Default: the "
         "task's preset (FQL's 3 for mfql and fql), else the agent's default (1). The agent config key "
         '--agent.frame_stack is the same setting.'),
    Flag('p_aug', 'float', None, "Visual tasks: probability of FQL's random-shift augmentation of a training batch "
         "(FQL's flag). Default: the task's preset (FQL's 0.5 for mfql and fql), else the agent's default (0). The "
         'agent config key --agent.p_aug is the same setting.'),
    Flag('save_dir', 'string', 'exp/', 'Root folder of the run folders.'),
    Flag('run_name', 'string', '', 'Run folder name under save_dir (default: <agent_name>_<env_name>).'),
    Flag('dataset_dir', 'string', '~/.ogbench/data', "Folder of OGBench's dataset files (OGBench's default). D4RL "
         "tasks read Minari's store instead ($MINARI_DATASETS_PATH, default ~/.minari/datasets)."),
    Flag('generate_missing_data', 'integer', 0, 'If a manipulation dataset is missing, generate this many train '
         'episodes locally (seed 0; never downloads). 0 = do not generate.'),
    Flag('download_missing_data', 'boolean', False, "If an OGBench dataset is missing, download OGBench's file (never "
         'generates). Where the files came from is recorded beside them and in flags.json.'),
    Flag('presets_file', 'string', '', 'JSON file of per-environment agent settings (written by sweep.py --report '
         '--write_presets), applied after the built-in presets; explicit --agent.KEY flags still win.'),
    Flag('generate_workers', 'integer', 0, 'Processes generating a missing dataset (0 = one per available core); the '
         'files do not depend on it.'),
    Flag('resume', 'boolean', False, 'Continue from the newest checkpoints in the run folder.'),
    Flag('wandb', 'boolean', False, 'Also log to Weights & Biases (needs the wandb package).'),
    Flag('wandb_project', 'string', 'mfql', 'wandb project name (with --wandb).'),
    Flag('wandb_entity', 'string', '', 'wandb entity (team or user) of the runs (with --wandb; default: your default '
         'entity).'),
    Flag('run_group', 'string', '', "wandb group of the runs (FQL's flag; with --wandb one wandb run per task and seed, "
         'named <run_group>_<task>_sd<seed>). Default: the run folder name (--run_name). Recorded in flags.json.'),
    Flag('progress_bar', 'boolean', True, 'Show a tqdm progress bar.'),
)
FLAG_NAMES: tuple[str, ...] = tuple(flag.name for flag in FLAGS)
# Flags whose values are paths: a launcher resolves them against the directory the user typed the command in.
PATH_FLAGS = ('save_dir', 'dataset_dir', 'presets_file')
# Flags that name places, switch logging or set how often a run checkpoints, not what is computed: a sweep leaves them
# out of a job's config hash, so that a sweep folder moved to another machine (or its data to another path) still
# recognises its finished runs, and a rerun may add --save_interval (resumes are bitwise, and generated datasets do
# not depend on --generate_workers).
NOT_RESULT_DEFINING = ('save_dir', 'run_name', 'dataset_dir', 'resume', 'progress_bar', 'wandb', 'wandb_project',
                       'eval_parallel_envs', 'generate_missing_data', 'keep_checkpoints',
                       'download_missing_data', 'wandb_entity', 'run_group', 'save_interval', 'generate_workers')
# What sweeps left out of the hash before save_interval and generate_workers joined, with the flags hashed in the
# order given (`sweeps.grid.earlier_config_hashes`).
EARLIER_NOT_RESULT_DEFINING = NOT_RESULT_DEFINING[:-2]
BOOLEAN_FLAGS = tuple(flag.name for flag in FLAGS if flag.kind == 'boolean')

# FQL's main.py flags (seohongpark/fql) that have no counterpart here, each with what to use instead. Every other FQL
# flag is ours under the same name (docs/running.md, "Differences from FQL's command line"). Checked on the raw
# argv before absl parses it, so that the user reads the remedy instead of absl's "Unknown command line flag".
RESUME_OR_EVALUATE = ('use --resume with the same --save_dir and --run_name to continue a run, or '
                      '`python -m evaluate --run_dir=<save_dir>/<run_name>/<task> --step=N` to evaluate a checkpoint')
REFUSED_FQL_FLAGS: dict[str, str] = {
    'restore_path': RESUME_OR_EVALUATE,
    'restore_epoch': RESUME_OR_EVALUATE,
    'buffer_size': 'drop it: the online replay buffer holds every one of the --online_steps transitions (nothing is '
                   'overwritten, as with FQL\'s default 2M for its budgets)',
    'balanced_sampling': 'drop it: online batches are drawn uniformly from the dataset and the replay buffer together, '
                         'FQL\'s default (--balanced_sampling=0); half-and-half sampling is not implemented',
    'video_episodes': 'training does not record videos; after the run, `python -m evaluate '
                      '--run_dir=<save_dir>/<run_name>/<task> --step=N --video_episodes=V` renders V episodes of a '
                      'kept checkpoint',
    'video_frame_skip': 'training does not record videos; pass it to `python -m evaluate --run_dir=... '
                        '--video_episodes=V --video_frame_skip=K`',
    # Names of the fork zhouzypaul/fql, which users of that fork will type.
    'wandb_run_group': 'use --run_group (upstream FQL\'s name)',
    'wandb_offline': 'set WANDB_MODE=offline in the environment, with --wandb',
    'eval_batch_size': 'use --eval_parallel_envs (env instances stepped together during evaluation)',
}


def refused_flag_error(argv: list[str]) -> str | None:
    """The `error:` line for the first FQL flag of `argv` (main.py's arguments) that does not apply here, or None.

    Recognises absl's spellings: --name=value, --name value, -name, and --noname for booleans; stops at `--`.
    """
    for arg in argv:
        if arg == '--':
            break
        if not arg.startswith('-'):
            continue
        name = arg.lstrip('-').split('=', 1)[0]
        if name not in REFUSED_FQL_FLAGS and name.startswith('no') and name[2:] in REFUSED_FQL_FLAGS:
            name = name[2:]
        if name in REFUSED_FQL_FLAGS:
            return f'error: --{name} (an FQL flag) does not apply here: {REFUSED_FQL_FLAGS[name]}'
    return None


def define(flags_module: Any, module_name: str) -> None:
    """Defines every flag of `FLAGS` with absl (`flags_module` is `absl.flags`) as flags of `module_name`: main.py
    passes its own, so that `python main.py --help` lists them (absl's --help shows the main module's flags)."""
    definers = {'string': flags_module.DEFINE_string, 'integer': flags_module.DEFINE_integer,
                'boolean': flags_module.DEFINE_boolean, 'list': flags_module.DEFINE_list,
                'float': flags_module.DEFINE_float}
    for flag in FLAGS:
        definers[flag.kind](flag.name, flag.default, flag.help, module_name=module_name)
