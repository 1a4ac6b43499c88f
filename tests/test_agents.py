"""Agents as plug-ins (agents/__init__.py): discovery by name, loading an agent file from anywhere, the errors that
list the registered agents, and the proof that a new agent is one new file: a copy of agents/fql.py in a temporary
folder, with only its agent_name changed, trains through main.py with no other file changed."""

import json
import os

import pytest

import agents
import configs
from tests.test_main import REPO_DIR, TASK, compile_cache, dataset_dir, in_repo_dir, plan, run_main  # noqa: F401
from runs import read_csv

REGISTERED = ['fql', 'ifql', 'iql', 'mfql', 'rebrac']


def renamed_fql(directory: str, name: str = 'myfql') -> str:
    """agents/fql.py copied to DIRECTORY/agents/NAME.py with only its agent_name changed: the name is written once, in
    get_config (freeze_config reads it from there)."""
    with open(os.path.join(REPO_DIR, 'agents', 'fql.py')) as f:
        source = f.read()
    assert source.count("'fql'") == 1  # get_config's agent_name
    source = source.replace("agent_name='fql'", f"agent_name='{name}'")
    os.makedirs(os.path.join(directory, 'agents'), exist_ok=True)
    path = os.path.join(directory, 'agents', f'{name}.py')
    with open(path, 'w') as f:
        f.write(source)
    return path


def test_the_registry_discovers_the_agent_files():
    assert agents.registered_agents() == REGISTERED  # train_state.py defines no get_config: a helper, not an agent
    for name in REGISTERED:
        agent_class = agents.get_agent_class(name)
        assert agent_class.__module__ == f'agents.{name}' and agents.get_agent_config(name).agent_name == name
        for method in ('create', 'update', 'sample_actions', 'validation_metrics'):
            assert callable(getattr(agent_class, method)), (name, method)
    with pytest.raises(ValueError, match="^unknown agent 'sac'; registered agents: fql, ifql, iql, mfql, rebrac "):
        agents.get_agent_class('sac')
    with pytest.raises(ValueError, match="unknown agent 'train_state'"):
        agents.agent_file('train_state')


def test_agent_files_load_from_anywhere_and_one_broken_file_breaks_no_other(tmp_path):
    path = renamed_fql(str(tmp_path))
    broken = tmp_path / 'agents' / 'broken.py'
    broken.write_text('import not_a_module\n\n\ndef get_config():\n    return {}\n')
    assert agents.is_agent_file(str(broken)) and not agents.is_agent_file(f'{REPO_DIR}/agents/train_state.py')
    with pytest.raises(ModuleNotFoundError, match='not_a_module'):
        agents.agent_class_from_file(str(broken))
    agent_class = agents.agent_class_from_file(path)
    assert agent_class.__name__ == 'FQLAgent' and agents.agent_class_from_file(path) is agent_class  # loaded once
    assert agent_class is not agents.get_agent_class('fql')  # its own module
    no_class = tmp_path / 'agents' / 'noclass.py'
    no_class.write_text("def get_config():\n    return {'agent_name': 'noclass'}\n")
    with pytest.raises(ValueError, match='defines no AGENT_CLASS'):
        agents.agent_class_from_file(str(no_class))
    misnamed = renamed_fql(str(tmp_path / 'other'), 'myfql')
    os.rename(misnamed, misnamed.replace('myfql.py', 'otherfql.py'))
    with pytest.raises(ValueError, match=r"agent_name='myfql'; an agent's name is its file's stem, 'otherfql'"):
        agents.agent_class_from_file(misnamed.replace('myfql.py', 'otherfql.py'))


def test_unknown_agents_are_errors_listing_the_registered_ones(tmp_path, compile_cache):  # noqa: F811
    listed = ', '.join(f'agents/{name}.py' for name in REGISTERED)
    result = run_main(['--agent=agents/sac.py'], compile_cache, timeout=60)
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert "agent config file 'agents/sac.py' not found" in result.stderr and f'registered agents: {listed}' in \
        result.stderr
    no_class = tmp_path / 'noclass.py'
    no_class.write_text("import ml_collections\n\n\ndef get_config():\n"
                        "    return ml_collections.ConfigDict({'agent_name': 'noclass', 'batch_size': 8})\n")
    with pytest.raises(SystemExit, match=f'defines no AGENT_CLASS .*; registered agents: {listed}'):
        plan(f'--agent={no_class}', f'--save_dir={tmp_path}', f'--env_name={TASK}')
    result = run_main(['--helpfull'], compile_cache, timeout=60)
    assert f'Registered agents: {listed}' in ' '.join(result.stdout.split())
    with pytest.raises(ValueError, match=f'registered agents: {", ".join(REGISTERED)}'):
        configs.paper_commands(agents=('myfql',))  # the grid writes --agent=agents/NAME.py: registered agents only


def test_a_copy_of_fql_with_only_its_agent_name_changed_trains_through_main(dataset_dir, compile_cache, tmp_path):  # noqa: F811
    path = renamed_fql(str(tmp_path / 'plugin'))
    save_dir = tmp_path / 'runs'
    args = [f'--agent={path}', f'--env_name={TASK}', f'--dataset_dir={dataset_dir}', f'--save_dir={save_dir}',
            '--agent.actor_hidden_dims=(8,8)', '--agent.value_hidden_dims=(8,8)', '--agent.batch_size=16',
            '--agent.flow_steps=2', '--offline_steps=20', '--eval_interval=20', '--eval_episodes=1',
            '--log_interval=10', '--save_interval=0', '--steps_per_call=10', '--progress_bar=false']
    result = run_main(args, compile_cache)
    assert result.returncode == 0, result.stderr[-3000:]
    seed_dir = save_dir / f'myfql_{TASK}' / TASK / 'seed0'
    rows = read_csv(str(seed_dir / 'train.csv'))
    assert [row['step'] for row in rows] == [10, 20]
    assert {'training/critic/loss', 'training/actor/distill_loss', 'validation/critic/loss'} <= set(rows[0])
    assert [row['step'] for row in read_csv(str(seed_dir / 'eval.csv'))] == [1, 20]
    info = json.load(open(seed_dir / 'flags.json'))
    assert info['agent_config']['agent_name'] == 'myfql' and info['flags']['agent'] == path
    # configs.py has no presets for it: the run says so, and only the command line set keys.
    assert info['presets'].startswith('no presets: ') and 'myfql' in info['presets']
    assert set(info['preset_sources']) == {'actor_hidden_dims', 'value_hidden_dims', 'batch_size', 'flow_steps'}
    assert set(info['preset_sources'].values()) == {'command line'}
    assert '| cube-single-play-singletask-task2-v0 | 1 | 20 |' in result.stdout


def test_display_names_come_from_the_agent_files():
    assert [agents.display_name(name) for name in REGISTERED] == ['FQL', 'IFQL', 'IQL', 'MeanFlowQL', 'ReBRAC']
    assert agents.display_name('nope') == 'nope'
    from sweeps.tables import agent_label, setting_label
    assert agent_label('mfql') == 'MeanFlowQL' and setting_label('fql', {'alpha': '300'}) == 'FQL (α=300)'
