"""configs.py: per-task presets with sources, explicit flags win, the paper command grid."""

import re
import subprocess
import sys

import ml_collections
import pytest

import configs
from agents import fql, ifql, iql, mfql, rebrac

AGENT_CONFIGS = {'fql': fql.get_config, 'mfql': mfql.get_config, 'rebrac': rebrac.get_config, 'iql': iql.get_config,
                 'ifql': ifql.get_config}
TUNED_KEYS = {'fql': ('alpha',), 'mfql': ('alpha',), 'rebrac': ('alpha_actor', 'alpha_critic'), 'iql': ('alpha',),
              'ifql': ('num_samples',)}
TASK = 'cube-single-play-singletask-task1-v0'
D4RL_NAMES = [f'antmaze-{m}-v2' for m in ('umaze', 'umaze-diverse', 'medium-play', 'medium-diverse', 'large-play',
                                          'large-diverse')]
D4RL_NAMES += [f'{e}-{k}-v1' for e in ('pen', 'door', 'hammer', 'relocate') for k in ('human', 'cloned', 'expert')]


def values(presets):
    return {key: value for key, (value, _) in presets.items()}


def test_fql_cube_single_task2():
    presets = configs.get_presets('fql', 'cube-single-play-singletask-task2-v0')
    assert values(presets) == {'alpha': 300.0}
    assert presets['alpha'][1].startswith('[FQL README]')


def test_fql_humanoidmaze_medium_without_task_suffix():
    presets = configs.get_presets('fql', 'humanoidmaze-medium-navigate-singletask-v0')
    assert values(presets) == {'alpha': 30.0, 'discount': 0.995}


def test_fql_antmaze_giant_and_o2o_rows():
    assert values(configs.get_presets('fql', 'antmaze-giant-navigate-singletask-task3-v0')) == {
        'alpha': 10.0, 'discount': 0.995, 'q_agg': 'min'}
    online = configs.get_presets('fql', 'humanoidmaze-medium-navigate-singletask-v0', online=True)
    assert values(online) == {'alpha': 100.0, 'discount': 0.995} and 'O2O' in online['alpha'][1]
    # No O2O row for cube-single: the offline flags, and the source says so.
    fallback = configs.get_presets('fql', 'cube-single-play-singletask-task1-v0', online=True)
    assert values(fallback) == {'alpha': 300.0} and 'no O2O row' in fallback['alpha'][1]


def test_fql_d4rl_flags():
    assert values(configs.get_presets('fql', 'antmaze-large-play-v2')) == {'alpha': 3.0}
    assert values(configs.get_presets('fql', 'antmaze-umaze-v2')) == {'alpha': 10.0}
    assert values(configs.get_presets('fql', 'pen-expert-v1')) == {'alpha': 3000.0, 'q_agg': 'min'}
    assert values(configs.get_presets('fql', 'relocate-human-v1')) == {'alpha': 10000.0, 'q_agg': 'min'}
    assert values(configs.get_presets('fql', 'door-cloned-v1')) == {'alpha': 30000.0, 'q_agg': 'min'}
    assert values(configs.get_presets('fql', 'door-cloned-v1', online=True)) == {'alpha': 1000.0, 'q_agg': 'min'}
    assert 'D4RL' in configs.get_presets('fql', 'hammer-cloned-v1')['alpha'][1]


def test_mfql_presets_sources():
    large = configs.get_presets('mfql', 'humanoidmaze-large-navigate-singletask-task1-v0')
    assert values(large) == {'alpha': 6000.0, 'discount': 0.995, 'time_steps': 50, 'num_candidates_eval': 5,
                             'num_candidates_target': 5}
    assert large['alpha'][1].startswith('[MF README]')
    medium = configs.get_presets('mfql', 'humanoidmaze-medium-navigate-singletask-v0')  # default task = task1
    assert medium['alpha'] == (150.0, configs.T7_SRC) and medium['time_steps'][0] == 50
    online = configs.get_presets('mfql', 'humanoidmaze-medium-navigate-singletask-task1-v0', online=True)
    assert values(online)['alpha'] == 2000.0 and values(online)['time_steps'] == 100
    assert online['alpha'][1].startswith('[MF README]')
    # cube-double's row is quoted for task2, the default task; other tasks reuse it and say so.
    assert configs.get_presets('mfql', 'cube-double-play-singletask-v0')['alpha'] == (120.0, configs.T7_SRC)
    task4 = configs.get_presets('mfql', 'cube-double-play-singletask-task4-v0')['alpha']
    assert task4[0] == 120.0 and 'quoted for task2' in task4[1] and 'task4' in task4[1]
    # Unknown: the agent default α₀, marked unknown, not FQL's α (300).
    scene = configs.get_presets('mfql', 'scene-play-singletask-task2-v0')
    assert scene['alpha'][0] == 10.0 and scene['alpha'][1].startswith('unknown')
    assert scene['discount'] == configs.MFQL_OGBENCH_DISCOUNT and '[2nd]' in scene['discount'][1]
    assert values(configs.get_presets('mfql', 'antmaze-giant-navigate-singletask-task2-v0'))[
        'num_candidates_target'] == 1
    assert values(configs.get_presets('mfql', 'door-cloned-v1')) == {
        'discount': 0.99, 'alpha': 9000.0, 'num_candidates_eval': 5, 'num_candidates_target': 5, 'time_steps': 50}
    assert configs.get_presets('mfql', 'pen-human-v1')['alpha'][1].startswith('unknown')


def test_fallback_alpha_is_the_agent_default():
    assert configs.FQL_DEFAULT_ALPHA == fql.get_config().alpha
    assert configs.MFQL_DEFAULT_ALPHA == mfql.get_config().alpha
    assert configs.IFQL_SAMPLES_FALLBACK[0] == ifql.get_config().num_samples
    for agent, keys in configs.REQUIRED_BASELINE_KEYS.items():  # no fallback: published or given
        assert set(keys) == set(TUNED_KEYS[agent])
        assert all(set(keys) <= set(values) for values, _ in configs.BASELINE_PUBLISHED[agent].values())


def test_baseline_presets_and_sources():
    humanoid = 'humanoidmaze-medium-navigate-singletask-task3-v0'
    assert values(configs.get_presets('rebrac', humanoid)) == {'alpha_actor': 0.01, 'alpha_critic': 0.01,
                                                               'discount': 0.995}
    assert values(configs.get_presets('iql', humanoid, online=True)) == {'alpha': 10.0, 'discount': 0.995}
    ifql_presets = configs.get_presets('ifql', humanoid)
    assert values(ifql_presets) == {'num_samples': 32, 'discount': 0.995}
    assert ifql_presets['num_samples'][1].startswith('[FQL README] ifql flags for humanoidmaze-medium-navigate')
    cube = 'cube-single-play-singletask-task2-v0'
    assert configs.get_presets('rebrac', cube) == {}  # no fallback α: a run must give both
    unknown = configs.unpublished_required_keys('rebrac', cube)
    assert set(unknown) == {'alpha_actor', 'alpha_critic'}
    assert unknown['alpha_actor'].startswith('rebrac has no published alpha_actor for cube-single-play: give '
                                             '--agent.alpha_actor=VALUE (published values: humanoidmaze-medium-'
                                             'navigate 0.01; cube-triple-play 0.03; visual-cube-single-play 1;')
    assert configs.unpublished_required_keys('rebrac', humanoid) == {}
    triple = configs.get_presets('rebrac', 'cube-triple-play-singletask-task4-v0')
    assert values(triple) == {'alpha_actor': 0.03, 'alpha_critic': 0.0, 'discount': 0.995}
    assert triple['alpha_actor'][1].startswith('[value-flows README] chongyi-zheng/value-flows README.md @ 817b01a1')
    assert triple['alpha_actor'][1].endswith('rebrac flags for cube-triple-play (tasks 1-5)')
    online_triple = configs.get_presets('rebrac', 'cube-triple-play-singletask-task4-v0', online=True)
    assert online_triple['alpha_actor'][1].endswith('(tasks 1-5); no offline-to-online flags are published: the offline '
                                                    'ones')
    assert ifql_presets['num_samples'][1].endswith('(run on one task; applied to all five, as FQL tunes per '
                                                   'environment)')
    scene = configs.get_presets('ifql', 'visual-scene-play-singletask-task1-v0')['num_samples']
    assert scene == (32, '[value-flows README] chongyi-zheng/value-flows README.md @ 817b01a1 ifql flags for '
                         'visual-scene-play (tasks 1-5)')  # published, not the fallback
    frames = {'encoder': 'impala_small', 'frame_stack': 3, 'p_aug': 0.5}  # on every visual task, published α or not
    assert values(configs.get_presets('iql', 'visual-cube-double-play-singletask-task1-v0')) == {
        'alpha': 0.3, 'discount': 0.995, **frames}
    puzzle = 'visual-puzzle-4x4-play-singletask-task1-v0'
    assert values(configs.get_presets('rebrac', puzzle)) == frames
    assert set(configs.unpublished_required_keys('rebrac', puzzle)) == {'alpha_actor', 'alpha_critic'}
    assert values(configs.get_presets('fql', 'cube-triple-play-singletask-task1-v0')) == {'alpha': 300.0,
                                                                                          'discount': 0.995}
    giant = configs.get_presets('iql', 'antmaze-giant-navigate-singletask-task1-v0')
    assert values(giant) == {'discount': 0.995}  # FQL's own discount for that environment; α must be given
    assert set(configs.unpublished_required_keys('iql', 'antmaze-umaze-v2')) == {'alpha'}
    assert giant['discount'][1].startswith('unknown for iql') and '[FQL README]' in giant['discount'][1]
    assert values(configs.get_presets('ifql', 'pen-cloned-v1')) == {'num_samples': 32}


def test_apply_presets_explicit_keys_win_and_sources_recorded():
    config = fql.get_config()
    config.alpha = 77.0  # as if set by --agent.alpha=77
    new, record = configs.apply_presets(config, 'humanoidmaze-medium-navigate-singletask-task3-v0', {'alpha'})
    assert new.alpha == 77.0 and new.discount == 0.995
    assert record['discount'].startswith('[FQL README]')
    assert record['alpha'].startswith('command line') and '30' in record['alpha']
    assert config.discount == 0.99  # the input config is not modified
    # An explicit key with no preset is still recorded.
    new, record = configs.apply_presets(fql.get_config(), 'cube-single-play-singletask-task2-v0', ['tau'])
    assert new.alpha == 300.0 and record == {'alpha': record['alpha'], 'tau': 'command line'}
    assert isinstance(new.alpha, float)


def test_apply_presets_unknown_key_is_a_clear_error():
    config = ml_collections.ConfigDict(dict(agent_name='fql', alpha=10.0))  # lacks discount
    with pytest.raises(ValueError, match=r"keys \['discount'\] that the agent config lacks"):
        configs.apply_presets(config, 'humanoidmaze-large-navigate-singletask-task1-v0', set())
    with pytest.raises(ValueError, match='agent_name'):
        configs.apply_presets(ml_collections.ConfigDict(dict(alpha=1.0)), 'scene-play-singletask-v0', set())


def test_an_agent_without_presets_gets_none_and_its_runs_say_so():
    assert configs.get_presets('myagent', 'scene-play-singletask-v0') == {}
    assert configs.get_presets('myagent', 'pen-cloned-v1', online=True) == {}
    config = ml_collections.ConfigDict(dict(agent_name='myagent', alpha=1.0, discount=0.99))
    new, record = configs.apply_presets(config, 'cube-single-play-singletask-task2-v0', ['alpha'])
    assert new.to_dict() == config.to_dict() and record == {'alpha': 'command line'}
    assert configs.presets_origin('myagent').startswith('no presets: ')
    assert not configs.presets_origin('fql').startswith('no presets')


def test_bad_names_raise():
    with pytest.raises(ValueError, match='Unknown OGBench'):
        configs.get_presets('myagent', 'cube-singel-play-singletask-task1-v0')  # checked for any agent
    with pytest.raises(ValueError, match='Unknown OGBench'):
        configs.get_presets('fql', 'cube-singel-play-singletask-task1-v0')
    with pytest.raises(ValueError, match="Unknown D4RL task name 'antmaze-umaze-v3'. Close valid names: antmaze-umaze-v2"):
        configs.get_presets('fql', 'antmaze-umaze-v3')  # the D4RL family's name, checked by the D4RL family
    with pytest.raises(ValueError, match="'cube-single-play-singletask' is a family of tasks; presets are per task"):
        configs.get_presets('fql', 'cube-single-play-singletask')


@pytest.mark.parametrize('agent', configs.PRESET_AGENTS)
def test_every_preset_key_exists_in_the_agent_config(agent):
    env_names = [n for f in configs.PAPER_OGBENCH_FAMILIES for n in [f + '-v0', f + '-task3-v0']] + D4RL_NAMES
    for env_name in env_names:
        for online in (False, True):
            new, record = configs.apply_presets(AGENT_CONFIGS[agent](), env_name, set(), online)
            presets = configs.get_presets(agent, env_name, online)
            unpublished = configs.unpublished_required_keys(agent, env_name)
            for key in TUNED_KEYS[agent]:  # each tuned key is preset, or is one a run must give (no fallback)
                assert (key in record and new[key] == presets[key][0]) != (key in unpublished)


def test_paper_commands_grid():
    commands = configs.paper_commands()
    assert len(commands) == 110 and len(set(commands)) == 110
    visual = [c for c in commands if '--env_name=visual-' in c]
    commands = [c for c in commands if c not in visual]
    expected_alpha = {'fql': {'antmaze-large': 10, 'antmaze-giant': 10, 'humanoidmaze-medium': 30,
                              'humanoidmaze-large': 30, 'antsoccer-arena': 10, 'cube-single': 300,
                              'cube-double': 300, 'scene': 300, 'puzzle-3x3': 1000, 'puzzle-4x4': 1000},
                      'mfql': {'humanoidmaze-medium': 150, 'humanoidmaze-large': 6000, 'cube-double': 120}}
    seen = set()
    for command in commands:
        match = re.match(r'python main\.py --env_name=(?P<env>([a-z0-9x-]+?)-(navigate|play)-singletask-task(\d)-v0) '
                         r'--agent=agents/(?P<agent>fql|mfql)\.py --num_seeds=8 --offline_steps=1000000 ', command)
        assert match, command
        suite = match.group(2)
        alpha = int(re.search(r'--agent\.alpha=(\d+)( |$)', command).group(1))
        assert alpha == expected_alpha[match['agent']].get(suite, 10), command
        seen.add((match['agent'], match['env']))
    assert len(seen) == 100
    visual_alpha = {'fql': {'cube-single': 300, 'cube-double': 100, 'scene': 100, 'puzzle-3x3': 300, 'puzzle-4x4': 300},
                    'mfql': {}}
    for command in visual:
        match = re.match(r'python main\.py --env_name=visual-(?P<suite>[a-z0-9x-]+?)-play-singletask-task1-v0 '
                         r'--agent=agents/(?P<agent>fql|mfql)\.py --num_seeds=8 --offline_steps=500000 ', command)
        assert match, command
        assert int(re.search(r'--agent\.alpha=(\d+)( |$)', command).group(1)) == \
            visual_alpha[match['agent']].get(match['suite'], 10), command
        # FQL's pixel settings: the encoder as an agent key, frames as main.py's run flags (FQL's names)
        assert all(flag in command.split() for flag in ('--agent.encoder=impala_small', '--p_aug=0.5',
                                                        '--frame_stack=3')), command
    assert len(visual) == 10 and sum('--agent.normalize_observations=False' in c for c in visual) == 5  # mfql
    fql_lines = [c for c in commands if 'agents/fql.py' in c]
    assert sum('--agent.q_agg=min' in c for c in fql_lines) == 10  # antmaze-large and antmaze-giant
    assert sum('--agent.discount=0.995' in c for c in fql_lines) == 20
    assert configs.paper_commands(agents=('fql',), num_seeds=3)[0].count('--num_seeds=3') == 1
    with pytest.raises(ValueError, match="unknown agent 'sac'; registered agents: fql, ifql, iql, mfql, rebrac"):
        configs.paper_commands(agents=('sac',))
    with pytest.raises(ValueError, match='num_seeds must be a positive int'):
        configs.paper_commands(num_seeds=0)
    with pytest.raises(ValueError, match='seeds must be distinct non-negative integers'):
        configs.paper_commands(seeds=[1, 1])


def test_cli_prints_the_grid_without_importing_jax():
    code = ('import sys, configs; configs.main(["--agents=fql", "--num_seeds=2"]); '
            'assert "jax" not in sys.modules and "ogbench" not in sys.modules, "heavy import"')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 55 and all('--num_seeds=2' in line and 'agents/fql.py' in line for line in lines)
    out = subprocess.run([sys.executable, '-c', 'import configs; configs.main(["--agents=rebrac,ifql"])'],
                         capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    rebrac = [line for line in lines if 'agents/rebrac.py' in line]
    assert len(lines) == 110 and len(rebrac) == 55  # the 50 state tasks and the 5 visual ones
    # humanoidmaze-medium's five tasks and four visual ones have published α; the other 46 commands say what they
    # need, set no α
    assert sum('--agent.alpha_critic=' in line for line in rebrac) == 9
    assert sum(line.endswith('# unpublished: set --agent.alpha_actor, --agent.alpha_critic') and '--agent.alpha'
               not in line.split('#')[0] for line in rebrac) == 46


def test_cli_seed_flags_mean_what_they_mean_in_main(capsys):
    """--num_seeds is a count and --seeds a list, in configs.py as in main.py; giving both is an error."""
    configs.main(['--agents=mfql', '--seeds=3,7'])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 55 and all(' --seeds=3,7 ' in line and '--num_seeds' not in line for line in lines)
    configs.main(['--agents=mfql', '--num_seeds=4'])
    assert all(' --num_seeds=4 ' in line for line in capsys.readouterr().out.splitlines())
    for argv, message in ((['--seeds=4', '--num_seeds=4'], 'not allowed with argument'),
                          (['--seeds=a'], '--seeds must be comma-separated integers'),
                          (['--num_seeds=0'], 'num_seeds must be a positive int')):
        with pytest.raises(SystemExit):
            configs.main(argv)
        assert message in capsys.readouterr().err


def test_visual_agents_are_the_agents_whose_config_has_an_encoder_key():
    """Read from the agent files' source (no JAX), and equal to what their get_config returns."""
    from agents import get_agent_config, registered_agents
    assert configs.visual_agents() == tuple(name for name in registered_agents()
                                            if 'encoder' in get_agent_config(name)) == ('fql', 'ifql', 'iql', 'mfql',
                                                                                        'rebrac')


def test_cli_env_name_shows_each_preset_with_its_source(capsys, monkeypatch):
    """configs.py --env_name: the commands of those tasks, each preset flag followed by its source; an unpublished
    baseline key by the line main.py would stop with; an agent without an encoder on a visual task by one comment."""
    configs.main(['--agents=fql,rebrac', '--num_seeds=2',
                  '--env_name=cube-single-play-singletask-task1-v0,visual-cube-single-play-singletask-task1-v0'])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('python main.py --env_name=cube-single-play-singletask-task1-v0 --agent=agents/fql.py '
                               '--num_seeds=2') and lines[0].endswith(' --agent.alpha=300')
    assert lines[1] == '    # --agent.alpha=300: [FQL README] offline flags for cube-single-play'
    assert '    # --frame_stack=3: [FQL README] pixel-task flags (the same for every visual task)' in lines
    rebrac = next(i for i, line in enumerate(lines) if 'agents/rebrac.py' in line)
    assert lines[rebrac].endswith('# unpublished: set --agent.alpha_actor, --agent.alpha_critic')
    assert lines[rebrac + 1].startswith('    # --agent.alpha_actor: '
                                        + configs.unpublished_required_keys('rebrac', TASK)['alpha_actor'][:40])
    visual_rebrac = next(line for line in lines if line.startswith('python main.py --env_name=visual-cube-single-play-'
                                                                     'singletask-task1-v0 --agent=agents/rebrac.py'))
    assert visual_rebrac.endswith('--offline_steps=500000 --agent.alpha_actor=1 --agent.alpha_critic=0 '
                                  '--agent.encoder=impala_small --frame_stack=3 --p_aug=0.5')
    assert '    # --frame_stack=3: [FQL README] pixel-task flags (the same for every visual task and agent)' in lines
    monkeypatch.setattr(configs, 'visual_agents', lambda: ('fql',))  # as with a user's agent that has no encoder
    configs.main(['--agents=rebrac', '--env_name=visual-cube-single-play-singletask-task1-v0'])
    assert capsys.readouterr().out.splitlines() == [
        '# agents/rebrac.py has no pixel encoder: it cannot run visual-cube-single-play-singletask-task1-v0 (visual '
        'agents: fql)']


def test_cli_piped_to_head_stops_quietly():
    """`python configs.py ... | head -1` ends without a BrokenPipeError traceback (the output, ~75 KB, outgrows the
    pipe's buffer, so the write after head exits does fail)."""
    command = (f'{sys.executable} configs.py --agents=mfql,fql,rebrac,iql,ifql --env_name=' + ','.join(
        configs.PAPER_OGBENCH_FAMILIES[:6]) + ' | head -1')
    result = subprocess.run(['bash', '-o', 'pipefail', '-c', command], capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith('python main.py --env_name=') and result.stdout.count('\n') == 1
    assert result.stderr == '' and result.returncode == 0


def test_helpagent_with_env_name_shows_each_keys_value_and_source(tmp_path):
    """main.py --env_name=TASK --helpagent: every key's value for that task and where it comes from (a preset and its
    table, the command line, the budget flag, the default), or that a run stops for want of it."""
    from tests.test_main import run_main
    result = run_main(['--agent=agents/rebrac.py', f'--env_name={TASK}', '--agent.alpha_actor=0.1', '--helpagent',
                       '--offline_steps=1000'], str(tmp_path / 'cache'), timeout=60)
    assert result.returncode == 0 and result.stderr == ''
    lines = result.stdout.splitlines()
    assert lines[0] == (f'{TASK}: the agent config of agents/rebrac.py a run of this task uses; each value with where '
                        'it comes from')
    row = {line.split('=')[0].strip(): line.split('  # ', 1) for line in lines[1:]}
    assert len(row) == len(rebrac.get_config())
    assert row['--agent.alpha_actor'] == [row['--agent.alpha_actor'][0], 'command line']
    assert row['--agent.alpha_actor'][0].strip() == '--agent.alpha_actor=0.1'
    assert row['--agent.alpha_critic'][1].startswith('NOT SET, a run stops: rebrac has no published alpha_critic')
    assert row['--agent.tau'][1] == 'default of agents/rebrac.py'
    result = run_main(['--agent=agents/fql.py', f'--env_name={TASK}', '--agent.discount=0.9', '--helpagent'],
                      str(tmp_path / 'cache'), timeout=60)
    row = {line.split('=')[0].strip(): line.split('  # ', 1) for line in result.stdout.splitlines()[1:]}
    assert row['--agent.alpha'][0].strip() == '--agent.alpha=300.0'
    assert row['--agent.alpha'][1] == '[FQL README] offline flags for cube-single-play'
    assert row['--agent.discount'][1] == 'command line'
