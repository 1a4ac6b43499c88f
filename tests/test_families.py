"""Environment families (datasets/families/): one place decides the family of a task name, each family answers for
its tasks (data, env, metric, budget, frames), looking one up imports nothing heavy, and a new family is one new
module: a stand-in family in a temporary folder trains through main.py with no other file changed."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

import configs
import main  # noqa: F401  (defines main.py's flags for the in-process plan)
from datasets import families, names
from datasets.families import expand_env_names, family_of
from runs import read_csv
from tests.test_main import REPO_DIR, in_repo_dir, parse  # noqa: F401

STATE, VISUAL, D4RL = 'cube-double-play-singletask-task2-v0', 'visual-cube-double-play-singletask-task1-v0', \
    'antmaze-umaze-v2'


def test_every_task_name_has_one_family_with_its_metric_budget_and_frames():
    assert [family.name for family in families.families()] == ['d4rl', 'ogbench', 'ogbench_visual']
    expected = {'ogbench': ('success', 'evaluation/success_last3', 'fraction', 1_000_000, False, True),
                'ogbench_visual': ('success', 'evaluation/success_last3', 'fraction', 500_000, True, False),
                'd4rl': ('score', 'evaluation/score', 'D4RL normalised, ×100', 500_000, False, True)}
    for task, name in ((STATE, 'ogbench'), (VISUAL, 'ogbench_visual'), (D4RL, 'd4rl'), ('pen-cloned-v1', 'd4rl'),
                       ('antmaze-large-navigate-singletask-task1-v0', 'ogbench'),
                       ('cube-double-play-singletask', 'ogbench'), ('visual-scene-play-singletask', 'ogbench_visual')):
        family = family_of(task)
        assert family.name == name, task
        assert (family.metric, family.metric_key, family.unit, family.default_offline_steps, family.observes_frames,
                family.supports_online) == expected[name]
    for task in names.singletask_env_names() + names.d4rl_env_names():  # the claims never overlap
        assert len([f for f in families.families() if not f.default and f.claims(task)]) <= 1
        assert family_of(task).expand(task) == [task]
    assert family_of(STATE).environment_of(STATE) == 'cube-double-play'
    assert family_of(VISUAL).environment_of(VISUAL) == 'visual-cube-double-play'
    assert family_of(D4RL).environment_of(D4RL) == D4RL
    assert [(family_of(t).benchmark, family_of(t).short_name(t)) for t in (STATE, VISUAL, D4RL)] == [
        ('OGBench', 'task2'), ('OGBench', 'task1'), ('D4RL', D4RL)]
    assert family_of(D4RL).return_to_score(D4RL)(np.array([0.0, 1.0])).tolist() == [0.0, 100.0]
    assert family_of(STATE).return_to_score(STATE) is None
    assert family_of(D4RL).provenance(D4RL, '')['d4rl']['minari_id'] == 'D4RL/antmaze/umaze-v1'


def test_expansion_goes_through_each_entrys_family_and_unknown_names_get_the_grammars_errors():
    assert expand_env_names(f'cube-double-play-singletask, {D4RL},{STATE}') == [
        f'cube-double-play-singletask-task{k}-v0' for k in range(1, 6)] + [D4RL]
    with pytest.raises(ValueError, match='Unknown OGBench task family'):
        expand_env_names('cube-dubble-play-singletask')
    with pytest.raises(ValueError, match="Unknown D4RL task name 'antmaze-umze-v2'"):
        expand_env_names('antmaze-umze-v2')
    with pytest.raises(ValueError, match='Unknown OGBench single-task env name'):
        expand_env_names('nothing-like-a-task')
    with pytest.raises(ValueError, match='Empty entry'):
        expand_env_names(f'{STATE},')
    assert families.mujoco_gl(['--env_name=cube-single-play-singletask', f'--env_name={STATE},{VISUAL}']) == 'egl'
    assert families.mujoco_gl([f'--env_name={STATE},{D4RL}', '--agent=agents/fql.py']) == 'disable'


def test_looking_up_a_family_imports_neither_jax_mujoco_ogbench_nor_the_data_modules():
    code = ('import sys; from datasets.families import family_of, expand_env_names; '
            f"tasks = expand_env_names('cube-single-play-singletask,{VISUAL},{D4RL}'); "
            'print([(family_of(t).name, family_of(t).metric_key, family_of(t).environment_of(t)) for t in tasks][-1]); '
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'mujoco', 'ogbench', 'minari', "
            "'dm_control', 'gymnasium') or m in ('datasets.ogbench_data', 'datasets.d4rl', 'datasets.generate')))")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO_DIR, check=True)
    assert result.stdout.splitlines() == [f"('d4rl', 'evaluation/score', '{D4RL}')", '[]']


# A stand-in family: points on a plane that should reach the origin. Its names are `toypoint-task1`, `toypoint-task2`
# (the spec `toypoint` = both); its data is written on first use; it reports success with a default budget of 30.
STAND_IN_FAMILY = '''
import os

import numpy as np

from datasets.families import Family

TASKS = ('toypoint-task1', 'toypoint-task2')


class PointEnv:
    """Observation: the point (2,); action: a step (2,) in [-1, 1]; success: within 0.5 of the origin."""

    def reset(self, seed=None):
        self.point, self.t = np.random.default_rng(seed).uniform(-1, 1, 2).astype(np.float32), 0
        return self.point, {}

    def step(self, action):
        self.point, self.t = (self.point + 0.3 * np.asarray(action, np.float32)).astype(np.float32), self.t + 1
        success = float(np.linalg.norm(self.point) < 0.5)
        return self.point, -float(np.linalg.norm(self.point)), False, self.t >= 5, {'success': success}

    def close(self):
        pass


class ToyPointFamily(Family):
    name = 'toypoint'
    benchmark = 'ToyPoint'
    metric = 'success'
    metric_key = 'evaluation/success_last3'
    unit = 'fraction'
    default_offline_steps = 30

    def claims(self, name):
        return name == 'toypoint' or name.startswith('toypoint-')

    def expand(self, entry):
        if entry == 'toypoint':
            return list(TASKS)
        if entry not in TASKS:
            raise ValueError(f'unknown toypoint task {entry!r}')
        return [entry]

    def environment_of(self, task):
        return 'toypoint'

    def ensure_data(self, task, dataset_dir, generate_missing_episodes=None, generate_workers=1, show_progress=True,
                    download=False):
        path = os.path.join(dataset_dir, f'{task}.npz')
        if not os.path.exists(path):
            rng = np.random.default_rng(0)
            observations = rng.uniform(-1, 1, (64, 2)).astype(np.float32)
            actions = np.clip(-observations + 0.1 * rng.normal(size=(64, 2)), -0.99, 0.99).astype(np.float32)
            next_observations = observations + 0.3 * actions
            os.makedirs(dataset_dir, exist_ok=True)
            np.savez(path, observations=observations, actions=actions, next_observations=next_observations,
                     rewards=-np.linalg.norm(next_observations, axis=1), masks=np.ones(64),
                     terminals=(np.arange(64) % 8 == 7).astype(np.float32))

    def load(self, task, dataset_dir):
        with np.load(os.path.join(dataset_dir, f'{task}.npz')) as arrays:
            data = {key: arrays[key].astype(np.float32) for key in arrays.files}
        return data, None

    def make_env(self, task, frame_stack=1, online=False):
        return PointEnv()


FAMILY = ToyPointFamily()
'''


def test_a_new_family_is_one_module_and_trains_through_mains_plan_and_the_runner(tmp_path, monkeypatch):
    """The stand-in family, added as a module of datasets/families/, is found by name, expands, gets no presets and
    its default budget in main.py's plan, and trains through the runner with its own data, env and metric. (main.py
    ends by writing the results table, whose rules live in results.py.)"""
    from cli.plan import plan_run
    from training.runner import TaskInputs, train_task
    plugin_dir = tmp_path / 'plugin'
    plugin_dir.mkdir()
    (plugin_dir / 'toypoint.py').write_text(STAND_IN_FAMILY)
    monkeypatch.setattr(families, '__path__', [*families.__path__, str(plugin_dir)])  # as if in datasets/families/
    families.families.cache_clear()
    try:
        assert family_of('toypoint-task1').name == 'toypoint' and family_of(STATE).name == 'ogbench'
        assert configs.get_presets('fql', 'toypoint-task1') == {}  # configs.py has no rules for it: agent defaults
        args = ['--env_name=toypoint', f'--dataset_dir={tmp_path}/data', f'--save_dir={tmp_path}/runs',
                '--run_name=r', '--agent=agents/fql.py', '--agent.actor_hidden_dims=(8,8)',
                '--agent.value_hidden_dims=(8,8)', '--agent.batch_size=16', '--agent.flow_steps=2',
                '--eval_interval=30', '--eval_episodes=2', '--log_interval=10', '--steps_per_call=10',
                '--progress_bar=false']
        parse(*args)
        plan = plan_run(flags.FLAGS, args)
        assert plan.tasks == ['toypoint-task1', 'toypoint-task2'] and plan.options.offline_steps == 30  # its budget
        for task, run_dir, (config, sources), frames in zip(plan.tasks, plan.run_dirs, plan.task_configs,
                                                            plan.frames):
            family = family_of(task)
            family.ensure_data(task, f'{tmp_path}/data')
            train, val = family.load(task, f'{tmp_path}/data')
            result = train_task(TaskInputs(task=task, family=family, agent_class=plan.agent_class, config=config,
                                           train_data=train, val_data=val, seeds=plan.seeds, run_dir=run_dir,
                                           metadata={'preset_sources': sources}, frames=frames), plan.options)
            assert result.step == 30 and 0.0 <= result.success_last3[0] <= 1.0
    finally:
        flags.FLAGS.unparse_flags()
        families.families.cache_clear()
    for task in ('toypoint-task1', 'toypoint-task2'):
        seed_dir = f'{tmp_path}/runs/r/{task}/seed0'
        assert [row['step'] for row in read_csv(f'{seed_dir}/train.csv')] == [10, 20, 30]
        assert [row['step'] for row in read_csv(f'{seed_dir}/eval.csv')] == [1, 30]
        final = json.load(open(f'{seed_dir}/final.json'))
        assert final['step'] == 30 and 0.0 <= final['evaluation/success_last3'] <= 1.0
    assert os.path.exists(f'{tmp_path}/data/toypoint-task1.npz')  # its ensure_data wrote it
