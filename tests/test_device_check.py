"""benchmarks/device_check.py on CPU: the quick run and its report, a reference quantity outside tolerance named
in the report, and seeds sharded over two forced host devices training exactly as on one device."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from benchmarks import device_check
from tests import test_reference

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_run_writes_a_report_with_every_section(tmp_path):
    out = tmp_path / 'report.md'
    env = dict(os.environ, JAX_PLATFORMS='cpu', MUJOCO_GL='egl')
    result = subprocess.run([sys.executable, '-m', 'benchmarks.device_check', '--quick', f'--out={out}'],
                            cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    report = out.read_text()
    assert f'Command: `python -m benchmarks.device_check --quick --out={out}`' in report
    assert '**Result: every check passed.**' in report
    for heading in ('## 1. Machine', '## 2. Reference values', '## 3. Training speed', '## 4. End to end'):
        assert heading in report
    assert "- XLA_FLAGS: not set (XLA's defaults)" in report or '- XLA_FLAGS: `' in report
    assert '- MFQL: 195 quantities compared, **0 outside tolerance**' in report
    assert '- FQL: 103 quantities compared, **0 outside tolerance**' in report
    for agent in ('MFQL', 'FQL'):
        label = f'{agent} 2×16, batch 16 (quick stand-in)'
        for row in (f'| {label}, plain loop | 1 | — |', f'| {label} | 1 | 10 |', f'| {label} | 8 | 10 |'):
            assert row in report
        assert f'- {label}, fused (K = 10) ÷ plain at 1 seed: **' in report
    assert report.count('| not reported by this backend |') == 6  # the CPU backend reports no memory statistics
    # The end-to-end run: killed after a checkpoint, resumed, and bitwise equal to the uninterrupted run (CPU).
    assert 'once every seed had its checkpoint at step 100 of 300' in report
    assert '- Resumed with `--resume` from step 100 and finished' in report
    assert 'seed 0: identical; seed 1: identical' in report


def test_a_reference_quantity_outside_tolerance_is_reported_by_name(monkeypatch):
    recorded = test_reference.load_reference('fql')
    grad_key = sorted(key for key in recorded if key.startswith('grad/'))[0]
    perturbed = dict(recorded)
    perturbed['critic/loss'] = recorded['critic/loss'] * np.float32(1.001)  # 1e-3 relative: 100× the tolerance
    perturbed[grad_key] = recorded[grad_key] + np.float32(1e-4)
    monkeypatch.setattr(test_reference, 'load_reference', lambda agent: perturbed)

    section = device_check.reference_section({'fql': test_reference.compare_fql})
    assert sorted(section.problems) == sorted(f'reference fql: `{key}` outside tolerance'
                                              for key in (grad_key, 'critic/loss'))
    assert any(line.startswith('- FQL: 103 quantities compared, **2 outside tolerance**') for line in section.lines)
    named = [line for line in section.lines if line.startswith('  - outside tolerance: `critic/loss`: ')]
    assert len(named) == 1 and named[0].endswith('1 of 1 entries off')


def test_seeds_sharded_over_two_forced_host_devices_train_exactly_as_on_one_device():
    """Four seeds sharded 2 + 2 over two forced CPU devices against the same four seeds on one device.

    The toy agent ends in bit for bit the same state and metrics: the sharding changes where seeds run, not their
    batches, keys or updates. A real agent (FQL, 2×16 nets) agrees to float32 rounding only: XLA compiles the
    partitioned program (2 seeds per device) into other kernels than the 4-seed one, and these sum in another order
    (measured: up to 6e-8 after 6 updates, the same with XLA's CPU threading off; vmapped groups of other sizes
    differ likewise, see test_training's group test)."""
    script = textwrap.dedent('''
        import jax, jax.numpy as jnp, numpy as np
        from agents.fql import FQLAgent
        from benchmarks.throughput import agent_config
        from datasets.buffer import Dataset
        from training.fused import DatasetSampler, FusedUpdater, SeedPlacement, create_training_states, stacked_streams
        from tests.test_training import sample8, toy_data, toy_states
        assert len(jax.devices()) == 2, jax.devices()
        data = Dataset(data={k: jnp.asarray(v) for k, v in toy_data().items()})
        fql_config = agent_config('fql', actor_hidden_dims=(16, 16), value_hidden_dims=(16, 16), batch_size=8)

        def fql_states(placement):  # as the runner builds them: the key streams are placed first
            streams = placement.place_seeds(stacked_streams([0, 1, 2, 3]))
            example = {k: v[:1] for k, v in data.data.items()}
            return placement.place_seeds(create_training_states(FQLAgent, example, fql_config, streams))

        for name, states, sampler in (('toy', lambda p: toy_states([0, 1, 2, 3], data, p), sample8),
                                      ('fql', fql_states, DatasetSampler(8))):
            runs = []
            for placement in (SeedPlacement(4), SeedPlacement(4, devices=jax.devices()[:1])):
                state, info, first_nonfinite = FusedUpdater(sampler)(states(placement), placement.replicate(data), 6)
                runs.append(jax.tree.leaves(jax.device_get((state, info, first_nonfinite))))
                print(name, 'devices', len(state.sample_key.sharding.device_set))
            sharded, single = runs
            assert len(sharded) == len(single) > 10
            unequal = [i for i, (a, b) in enumerate(zip(sharded, single)) if not np.array_equal(a, b)]
            largest = max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                          for a, b in zip(sharded, single))
            print(name, 'unequal leaves', unequal if name == 'toy' else len(unequal), 'largest difference', largest)
            assert largest < 1e-6
    ''')
    env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2', JAX_PLATFORMS='cpu',
               PYTHONPATH=REPO_DIR)
    result = subprocess.run([sys.executable, '-c', script], cwd=REPO_DIR, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'toy devices 2\ntoy devices 1\n' in result.stdout and 'fql devices 2\nfql devices 1\n' in result.stdout
    assert 'toy unequal leaves [] largest difference 0.0' in result.stdout


def test_grid_projection_divides_the_budget_by_the_per_seed_rate_of_each_agent():
    text = '\n'.join(device_check.grid_projection({'fql': 200.0, 'mfql': 100.0}))
    # 1M updates at 100 and 200 updates/s per seed: 2.78 h and 1.39 h per job; 50 tasks × 4.17 h = 208 GPU-hours.
    assert '50 tasks × MFQL, FQL, 8 seeds vmapped per job, 1,000,000 updates' in text
    assert 'MFQL 2.8 h per job; FQL 1.4 h per job; **208 GPU-hours** for the grid' in text
