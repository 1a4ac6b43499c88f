"""Agent config values are checked before any compute: each agent's CONFIG_RULES table, the shared checker
(agents/config_rules.py), main.py's one `error:` line before the dataset loads, and sweep.py refusing a bad value
before it launches anything."""

import os

import pytest

import sweep
from agents import agent_file, get_agent_config, registered_agents
from agents.config_rules import (ConfigValueError, check_combinations, check_config, check_flag_text, check_value,
                                 literal_defaults, rules_from_source)
from networks.encoders import ENCODERS
from sweeps import SweepError
from tests.test_main import run_main

TASK = 'cube-single-play-singletask-task1-v0'


def rules_and_defaults(agent: str) -> tuple[dict, dict]:
    with open(agent_file(agent), encoding='utf-8') as f:
        source = f.read()
    return rules_from_source(source), literal_defaults(source)


@pytest.mark.parametrize('agent', registered_agents())
def test_each_agent_table_names_its_keys_and_allows_its_defaults(agent):
    rules, defaults = rules_and_defaults(agent)
    config = get_agent_config(agent)
    assert rules and set(rules) <= set(config.keys())
    check_config(config, rules, defaults)  # the defaults are allowed
    if 'encoder' in rules:  # the choices are the encoders networks/encoders.py builds
        assert set(rules['encoder']) == {None, *ENCODERS}


@pytest.mark.parametrize('agent, key, value, message', [
    ('mfql', 'actor_arch', 'transformer', "--agent.actor_arch='transformer' is not allowed: one of 'dit', 'mlp'"),
    ('mfql', 'q_agg', 'max', "--agent.q_agg='max' is not allowed: one of 'mean', 'min'"),
    ('mfql', 'alpha_mode', 'auto', "--agent.alpha_mode='auto' is not allowed: one of 'adaptive', 'fixed'"),
    ('fql', 'alpha', -1.0, '--agent.alpha=-1.0 is not allowed: a number >= 0'),
    ('fql', 'discount', 0.0, '--agent.discount=0.0 is not allowed: a number in (0, 1]'),
    ('fql', 'discount', 1.5, '--agent.discount=1.5 is not allowed: a number in (0, 1]'),
    ('rebrac', 'tau', 0.0, '--agent.tau=0.0 is not allowed: a number in (0, 1]'),
    ('iql', 'lr', 0.0, '--agent.lr=0.0 is not allowed: a number > 0'),
    ('ifql', 'num_samples', 0, '--agent.num_samples=0 is not allowed: an integer >= 1'),
    ('rebrac', 'actor_hidden_dims', (512, 0), '--agent.actor_hidden_dims=(512, 0) is not allowed: a non-empty tuple '
                                              'of positive integers, e.g. (512, 512)'),
    ('fql', 'layer_norm', 1, '--agent.layer_norm=1 is not allowed: True or False'),
    ('fql', 'encoder', 'resnet', "--agent.encoder='resnet' is not allowed: one of None, 'impala', 'impala_small', "
                                 "'impala_debug'"),
])
def test_a_value_outside_its_rule_is_one_line_naming_key_value_and_what_is_allowed(agent, key, value, message):
    rules, defaults = rules_and_defaults(agent)
    with pytest.raises(ConfigValueError) as error:
        check_value(key, value, rules, defaults)
    assert str(error.value) == message


def test_values_allowed_alone_can_be_refused_together_naming_the_one_to_change():
    with pytest.raises(ConfigValueError) as error:
        check_combinations({'encoder': 'impala', 'normalize_observations': True})
    assert error.value.key == 'normalize_observations' and str(error.value) == (
        "--agent.normalize_observations=True is not allowed: False with a pixel encoder (encoder='impala'): frames are "
        'not z-scored, the encoder scales them to [0, 1]')
    check_combinations({'encoder': None, 'normalize_observations': True})  # states are z-scored
    check_combinations({'encoder': 'impala', 'normalize_observations': False})
    check_combinations({'lr': 1.0})  # an agent without these keys


def test_a_key_without_a_rule_is_checked_for_its_defaults_type():
    with pytest.raises(ConfigValueError, match=r"--agent.depth='deep' is not allowed: an integer"):
        check_value('depth', 'deep', {}, {'depth': 3})
    check_value('depth', 4, {}, {'depth': 3})
    check_value('scale', 2, {}, {'scale': 0.5})  # an int where a float is expected, as ml_collections allows


def test_flag_text_is_parsed_by_the_defaults_type_as_ml_collections_does():
    rules, defaults = rules_and_defaults('mfql')
    check_flag_text('alpha', '300', rules, defaults)
    check_flag_text('value_hidden_dims', '(256,256)', rules, defaults)
    with pytest.raises(ConfigValueError, match=r"--agent.alpha='abc' is not allowed: a number$"):
        check_flag_text('alpha', 'abc', rules, defaults)
    with pytest.raises(ConfigValueError, match=r"--agent.time_steps=0 is not allowed: an integer >= 1"):
        check_flag_text('time_steps', '0', rules, defaults)


def test_an_agent_without_a_table_is_checked_for_types_only():
    assert rules_from_source('def get_config():\n    return dict(x=1)\n') == {}
    with pytest.raises(ValueError, match='unknown config rule'):
        rules_from_source("CONFIG_RULES = {'x': 'positive'}\n")


VISUAL_TASK = 'visual-cube-single-play-singletask-task1-v0'


@pytest.mark.parametrize('task, flag, message', [
    (TASK, '--agent.actor_arch=transformer', "error: --agent.actor_arch='transformer' is not allowed: one of 'dit', "
                                             f"'mlp' (for {TASK}; value from command line)"),
    (TASK, '--agent.discount=1.5', f'error: --agent.discount=1.5 is not allowed: a number in (0, 1] (for {TASK}; '
                                   'value from command line)'),
    # Allowed alone, refused with the visual preset's encoder: frames are never z-scored.
    (VISUAL_TASK, '--agent.normalize_observations=True',
     "error: --agent.normalize_observations=True is not allowed: False with a pixel encoder (encoder='impala_small'): "
     f'frames are not z-scored, the encoder scales them to [0, 1] (for {VISUAL_TASK}; value from command line)'),
])
def test_main_stops_with_one_line_before_the_dataset_loads(task, flag, message, tmp_path):
    # An empty --dataset_dir: had the check come after the data, the error would be about the missing dataset.
    result = run_main([f'--env_name={task}', '--agent=agents/mfql.py', flag, f'--dataset_dir={tmp_path}/none',
                       f'--save_dir={tmp_path}/exp'], str(tmp_path / 'cache'), timeout=120)
    assert result.returncode == 1 and result.stderr.strip() == message
    assert 'Traceback' not in result.stderr and not os.path.exists(tmp_path / 'exp')


@pytest.mark.parametrize('argv, message', [
    (['--agent.q_agg=max'], "--agent.q_agg='max' is not allowed: one of 'mean', 'min' (agents/mfql.py)"),
    (['--sweep=agent.alpha=10,-3'], '--agent.alpha=-3.0 is not allowed: a number >= 0 (agents/mfql.py)'),
    (['--sweep=agent.discount=0.99,abc'], "--agent.discount='abc' is not allowed: a number (agents/mfql.py)"),
])
def test_sweep_refuses_a_bad_value_before_launching(argv, message, tmp_path):
    with pytest.raises(SweepError) as error:
        sweep.run([f'--save_dir={tmp_path}/sweep', f'--env_name={TASK}', '--agents=mfql', '--launcher=local',
                   *argv])
    assert str(error.value) == message and not os.path.exists(tmp_path / 'sweep')


def test_sweep_refuses_a_baseline_job_without_a_published_or_given_alpha(tmp_path, capsys):
    """ReBRAC on a task whose α is unpublished: the dry run stops with main.py's line before anything is written; with
    both α given (flags, or one swept and one fixed), or a presets file setting them, it lists the job."""
    import configs
    base = [f'--save_dir={tmp_path}/sweep', f'--env_name={TASK}', '--agents=rebrac', '--launcher=local', '--dry_run']
    with pytest.raises(SweepError) as error:
        sweep.run(base)
    assert str(error.value) == configs.missing_required_line('rebrac', TASK, ())
    assert str(error.value).startswith(f'{TASK}: rebrac has no published alpha_actor for cube-single-play: give '
                                       '--agent.alpha_actor=VALUE (published values: humanoidmaze-medium-navigate 0.01')
    with pytest.raises(SweepError, match='no published alpha_critic'):
        sweep.run([*base, '--agent.alpha_actor=0.1'])
    assert not os.path.exists(tmp_path / 'sweep')
    for given in (['--agent.alpha_actor=0.1', '--agent.alpha_critic=0.01'],
                  ['--sweep=agent.alpha_actor=0.1,0.3', '--agent.alpha_critic=0']):
        assert sweep.run([*base, *given]) == 0
        assert f'--env_name={TASK}' in capsys.readouterr().out
    presets = tmp_path / 'presets.json'
    configs.write_presets_file(str(presets), {'rebrac': {'cube-single-play': {'alpha_actor': 0.1, 'alpha_critic': 0.0}}},
                               'test')
    assert sweep.run([*base, f'--presets_file={presets}']) == 0
    # A task with published values needs nothing more; main.py refuses the unpublished one with the same line.
    assert sweep.run([*base[:1], '--env_name=humanoidmaze-medium-navigate-singletask-task1-v0', *base[2:]]) == 0
    result = run_main(['--agent=agents/rebrac.py', f'--env_name={TASK}', f'--dataset_dir={tmp_path}/none',
                       f'--save_dir={tmp_path}/exp'], str(tmp_path / 'cache'), timeout=120)
    assert result.returncode == 1 and result.stderr.strip() == 'error: ' + str(error.value)
