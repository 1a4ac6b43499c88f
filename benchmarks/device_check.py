"""One command that checks a machine with an accelerator end to end, and reports what a user needs to plan GPU-hours.

    python -m benchmarks.device_check            # on the accelerator machine: within 8 min on one data-centre GPU
    python -m benchmarks.device_check --quick    # any machine, CPU included (~2 min on 2 CPU cores); CI runs this

In order:
1. Machine: the devices, the library versions, the XLA flags and the JAX settings in effect.
2. Reference: the comparisons of `tests/test_reference.py` (its own functions, at the matmul precision it sets)
   on the default device, that is the accelerator. Every quantity outside tolerance is named; the check goes on.
3. Training speed: the runner's fused training call (`training.fused.FusedUpdater`, K updates per call,
   batches drawn on the device) for MFQL and FQL at their default sizes and with 2×256 nets, with 1 and 8
   vmapped seeds: updates/s, compile seconds, peak device memory; and FQL's plain loop at 1 seed (one jitted
   update per Python iteration, batches drawn on the host), for the fused ÷ plain ratio. The cases, their
   compilation and their timing windows are `benchmarks/throughput.py`'s. From the 8-seed rates at default size
   it projects the GPU-hours of the paper's grid.
4. End to end: `main.py` on a small locally generated cube-single dataset: MFQL (2×256 MLP nets) trains 3,000
   updates for 2 seeds, evaluates, writes checkpoints, is killed (SIGKILL) after the one at step 1,000 and resumed
   with `--resume` to the end; then an uninterrupted run of the same command shows whether the resumed run ended in
   the same state (bit for bit on CPU; an accelerator need not reduce deterministically). Skipped with one line when
   ogbench or mujoco is missing (parts 1–3 need only jax, flax, optax, numpy and the project).

Every section runs even when an earlier one failed (its error goes into the report). The exit status is 1 when a
reference quantity is outside tolerance or a section failed, else 0.

`--quick` runs sections 3 and 4 with stand-in networks (2×16, batch 16, K = 10) and fewer updates: its figures
show that the code runs, not what the machine can do. Section 2 is the same in both modes.

Writes `benchmarks/results/device-<device kind>.md`; with `--quick`, `exp/benchmarks/device-<device kind>-quick.md`
(so a quick run, CI's included, never overwrites a committed report); `--out` chooses.
"""

import dataclasses
import datetime
import gc
import importlib.metadata
import importlib.util
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable

import flax.serialization
import jax
import numpy as np
from absl import app, flags

import configs
import runs
from benchmarks import throughput
from benchmarks.throughput import Case, agent_config, small_overrides, synthetic_dataset
from tests import test_reference
from training import tracking

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
# `throughput` defines --quick and --out too; these replace them (same types), and throughput's helpers read them.
flags.DEFINE_bool('quick', False, 'Stand-in sizes and fewer updates, for a CPU (~2 min on 2 cores); the tests run '
                  'this.', allow_override=True)
flags.DEFINE_string('out', None, 'Markdown report path (default benchmarks/results/device-<device kind>.md; with '
                    '--quick exp/benchmarks/device-<device kind>-quick.md).', allow_override=True)

SEED_COUNTS = (1, 8)
PAPER_UPDATES = 1_000_000  # the budget of each run of the paper's state-based grid (main.py's OGBench default)
# Section 3 at stand-in sizes under --quick: tiny nets keep 8 seeds and both agents within seconds on a CPU.
QUICK_OVERRIDES = {'mfql': dict(actor_arch='mlp', actor_mlp_hidden_dims=(16, 16), value_hidden_dims=(16, 16),
                                batch_size=16),
                   'fql': dict(actor_hidden_dims=(16, 16), value_hidden_dims=(16, 16), batch_size=16)}

# Section 4: a small cube-single dataset (generated here, so no download) and a short MFQL run on it.
E2E_DATASET, E2E_TASK, E2E_SEEDS = 'cube-single-play-v0', 'cube-single-play-singletask-task2-v0', 2


@dataclasses.dataclass
class E2ESize:
    """The size of section 4's run: dataset episodes, updates, and the run's intervals."""

    episodes: int
    updates: int
    save_interval: int
    log_interval: int
    steps_per_call: int
    eval_episodes: int
    agent_flags: tuple[str, ...]
    nets: str  # the networks, as the report names them
    timeout_seconds: float  # per process; generous, as a loaded machine can be several times slower


# 2×256 MLP nets in full mode too: sections 2 and 3 run the default networks on the device, and the run's three
# compilations (K = 1 for the step-1 evaluation, 99 and 100) at default size would not fit the 8 minutes.
E2E_FULL = E2ESize(episodes=20, updates=3000, save_interval=1000, log_interval=500, steps_per_call=100,
                   eval_episodes=10, agent_flags=('--agent.actor_arch=mlp', '--agent.actor_mlp_hidden_dims=(256,256)',
                                                  '--agent.value_hidden_dims=(256,256)'),
                   nets='2×256 MLP nets', timeout_seconds=600)
E2E_QUICK = E2ESize(episodes=2, updates=300, save_interval=100, log_interval=100, steps_per_call=50, eval_episodes=2,
                    agent_flags=('--agent.actor_arch=mlp', '--agent.actor_mlp_hidden_dims=(16,16)',
                                 '--agent.value_hidden_dims=(16,16)', '--agent.batch_size=16'),
                    nets='stand-in 2×16 MLP nets, batch 16', timeout_seconds=600)


@dataclasses.dataclass
class Section:
    """One part of the report: its Markdown lines and the problems it found (empty: passed)."""

    title: str
    lines: list[str]
    problems: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def run_section(title: str, body: Callable[[], Section]) -> Section:
    """Runs one section; an exception becomes a problem of that section (with its traceback in the report), so the
    sections after it still run: on a machine lent for a few minutes, one failure must not cost the rest."""
    print(f'\n== {title}', flush=True)
    start = time.perf_counter()
    try:
        section = body()
    except Exception as error:  # noqa: BLE001  (reported, not swallowed: the exit status says it failed)
        section = Section(title, ['```', traceback.format_exc().rstrip(), '```'],
                          [f'{title}: {type(error).__name__}: {error}'])
    section.title, section.seconds = title, time.perf_counter() - start
    for line in section.lines:
        print(line, flush=True)
    return section


# ------------------------------------------------------------------------------------------------ 1. machine

def device_kind() -> str:
    """The default device's kind as a file-name part, e.g. 'nvidia-h100-80gb-hbm3' or 'cpu'."""
    return re.sub(r'[^a-z0-9]+', '-', jax.devices()[0].device_kind.lower()).strip('-') or 'unknown'


def memory_stats(device: Any) -> dict[str, int] | None:
    """`device.memory_stats()`, or None where the backend reports none (the CPU backend does not)."""
    try:
        return device.memory_stats() or None
    except (AttributeError, NotImplementedError, RuntimeError):
        return None


def mebibytes(count: float) -> str:
    """A byte count as whole MiB, e.g. '1,024 MiB'."""
    return f'{count / 2 ** 20:,.0f} MiB'


def machine_section() -> Section:
    """Section 1: what ran the check (devices, versions, XLA flags, JAX settings), so reports can be compared."""
    devices = jax.devices()
    stats = memory_stats(devices[0])
    plugins = sorted(f'{d.metadata["Name"]} {d.version}' for d in importlib.metadata.distributions()
                     if re.match(r'jax[-_](cuda|rocm|tpu|metal|oneapi)', d.metadata['Name'] or '', re.I))
    libraries = ['jax', 'jaxlib', 'flax', 'optax', 'numpy', 'orbax-checkpoint', 'ogbench', 'mujoco']
    environment = {name: os.environ[name] for name in sorted(os.environ)
                   if name.startswith(('XLA_', 'JAX_', 'TF_CPP_', 'CUDA_', 'NVIDIA_', 'LIBTPU', 'MUJOCO_GL'))
                   and name != 'XLA_FLAGS'}
    settings = ('jax_default_matmul_precision', 'jax_enable_x64', 'jax_platforms', 'jax_compilation_cache_dir',
                'jax_default_prng_impl', 'jax_threefry_partitionable')
    lines = [
        f'- Device: **{devices[0].device_kind}** (platform `{devices[0].platform}`); {len(devices)} device(s) '
        f'visible: {", ".join(str(d) for d in devices)}',
        '- Device memory: ' + (f'{mebibytes(stats["bytes_limit"])} usable by JAX (`memory_stats()["bytes_limit"]`)'
                              if stats and 'bytes_limit' in stats else 'not reported by this backend'),
        f'- Host: {platform.platform()}; {os.cpu_count()} logical CPU cores; load averages '
        f'{" ".join(f"{x:.2f}" for x in os.getloadavg())} at the start',
        '- ' + ', '.join(f'{"Python" if name == "python" else name} {value}'
                         for name, value in tracking.library_versions(tuple(libraries)).items())
        + (f'; plugins: {", ".join(plugins)}' if plugins else '; no accelerator plugin installed'),
        '- XLA_FLAGS: ' + (f'`{os.environ["XLA_FLAGS"]}`' if os.environ.get('XLA_FLAGS')
                           else "not set (XLA's defaults)"),
        '- Other XLA/JAX/CUDA environment variables: ' + (
            '; '.join(f'`{name}={value}`' for name, value in environment.items()) or 'none set'),
        '- JAX settings: ' + ', '.join(f'`{name}={getattr(jax.config, name, "n/a")}`' for name in settings),
        '',
        '<details><summary>jax.print_environment_info()</summary>',
        '',
        '```',
        jax.print_environment_info(return_string=True).rstrip(),
        '```',
        '</details>',
    ]
    return Section('1. Machine', lines)


# ---------------------------------------------------------------------------------------------- 2. reference

def reference_section(comparisons: dict[str, Callable] | None = None) -> Section:
    """Runs `tests/test_reference.py`'s comparisons (all of them, by default) on the default device."""
    comparisons = test_reference.COMPARISONS if comparisons is None else comparisons
    lines = [f'`tests/test_reference.py`\'s comparisons on `{jax.devices()[0]}`, matmul precision '
             f'`{test_reference.PRECISION}` (as the test sets it); tolerance rtol {test_reference.RTOL:g}, atol '
             f'{test_reference.ATOL:g} elementwise, atol {test_reference.STEP_ATOL:g} on parameter steps '
             '(after − before).', '']
    problems = []
    for agent, compare in comparisons.items():
        start = time.perf_counter()
        try:
            comparison = compare(None)
        except Exception as error:  # noqa: BLE001  (the other agent's comparison still runs)
            lines.append(f'- {agent.upper()}: the comparison raised {type(error).__name__}: {error}')
            problems.append(f'reference {agent}: {type(error).__name__}: {error}')
            continue
        failures = comparison.failures
        lines.append(f'- {agent.upper()}: {len(comparison.results)} quantities compared, '
                     f'**{len(failures)} outside tolerance** ({time.perf_counter() - start:.1f} s, compilation '
                     'included)')
        for name, problem in failures.items():
            lines.append(f'  - outside tolerance: `{name}`: {problem}')
            problems.append(f'reference {agent}: `{name}` outside tolerance')
    return Section('2. Reference values', lines, problems)


# ------------------------------------------------------------------------------------------ 3. training speed

@dataclasses.dataclass
class SpeedGroup:
    """One agent at one size: its fused call at each seed count and its plain loop, timed in the same rounds."""

    label: str
    agent: str
    config: Any
    num_updates: int
    default_size: bool = False  # the agent's own defaults: the size of the paper's runs

    def cases(self) -> list[Case]:
        """Plain loop first, then the seed counts: from the smallest device footprint to the largest, so each case's
        rise of the process's peak memory is its own (see `speed_section`)."""
        plain = Case(f'{self.label}, plain loop', self.agent, self.config, self.num_updates, plain=True)
        return [plain] + [Case(self.label, self.agent, self.config, self.num_updates, seeds) for seeds in SEED_COUNTS]


def speed_groups(quick: bool) -> list[SpeedGroup]:
    """The 2×256 groups before the default-size ones (ascending memory); K = 100 is the runner's default."""
    if quick:
        return [SpeedGroup(f'{agent.upper()} 2×16, batch 16 (quick stand-in)', agent,
                           agent_config(agent, **QUICK_OVERRIDES[agent]), 10) for agent in ('mfql', 'fql')]
    return ([SpeedGroup(f'{agent.upper()} 2×256', agent, agent_config(agent, **small_overrides(agent)), 100)
             for agent in ('mfql', 'fql')]
            + [SpeedGroup('FQL default (4×512, 10 Euler steps)', 'fql', agent_config('fql'), 100, True),
               SpeedGroup('MFQL default (DiT actor, best-of-5 target)', 'mfql', agent_config('mfql'), 100, True)])


def peak_memory_text(previous_peak: int | None, stats: dict[str, int] | None) -> tuple[str, int | None]:
    """The process's peak device memory after a case, as a table cell, and the new running peak."""
    if stats is None or 'peak_bytes_in_use' not in stats:
        return 'not reported by this backend', None
    peak = stats['peak_bytes_in_use']
    if previous_peak is not None and peak <= previous_peak:
        return f'≤ {mebibytes(previous_peak)} (no new peak)', peak
    return mebibytes(peak), peak


def grid_projection(per_seed_rates: dict[str, float]) -> list[str]:
    """GPU-hours of the paper's state-based grid from the measured per-seed updates/s of each agent at default size
    with `max(SEED_COUNTS)` vmapped seeds (one job = one task and one agent, its seeds in one process)."""
    tasks = len(configs.paper_tasks('paper'))
    hours = {agent: PAPER_UPDATES / per_seed_rates[agent] / 3600 for agent in configs.PAPER_GRID_AGENTS}
    return ['', f'Projection for the paper\'s grid (`sweep.py --grid=paper`: {tasks} tasks × '
            f'{", ".join(agent.upper() for agent in hours)}, {max(SEED_COUNTS)} seeds vmapped per job, '
            f'{PAPER_UPDATES:,} updates), training only, from the {max(SEED_COUNTS)}-seed rows above: '
            + '; '.join(f'{agent.upper()} {value:.1f} h per job' for agent, value in hours.items())
            + f'; **{tasks * sum(hours.values()):,.0f} GPU-hours** for the grid. Evaluation (on the CPUs, between '
            'calls), logging and validation come on top; see `docs/reproducing.md`.']


def speed_section(quick: bool) -> Section:
    """Section 3: one agent-and-size group at a time (`speed_groups`), its cases compiled, warmed up and timed in
    interleaved rounds; then the fused ÷ plain ratios and, at full size, the paper grid's GPU-hours."""
    rounds = 1 if quick else 2
    dataset = synthetic_dataset()
    device = jax.devices()[0]
    rows, ratios, running_peak, per_seed_rates = [], [], None, {}
    for group in speed_groups(quick):
        cases = group.cases()
        memory = {}
        for case in cases:
            throughput.prepare(case, dataset)  # builds the states, compiles (timed), one warm-up call
            memory[case.label, case.num_seeds], running_peak = peak_memory_text(running_peak, memory_stats(device))
            print(f'compiled {case.label} (S={case.num_seeds}, K={case.num_updates}, plain={case.plain}) in '
                  f'{case.compile_seconds:.1f} s', flush=True)
        for _ in range(rounds):  # interleaved, as throughput.py does: slow drifts hit every case alike
            for case in cases:
                throughput.time_window(case)
        for case in cases:
            rate = case.updates_per_second
            rows.append(f'| {case.label} | {case.num_seeds} | '
                        f'{"—" if case.plain else case.num_updates} | {case.compile_seconds:.1f} | {rate:,.1f} | '
                        f'{rate / case.num_seeds:,.1f} | {", ".join(f"{r:,.1f}" for r in case.rates)} | '
                        f'{case.flops_per_update / 1e9:.3g} | {memory[case.label, case.num_seeds]} |')
        plain, fused = cases[0], cases[1]
        per_round = [f / p for f, p in zip(fused.rates, plain.rates)]
        ratios.append(f'- {group.label}, fused (K = {group.num_updates}) ÷ plain at 1 seed: '
                      f'**{fused.updates_per_second / plain.updates_per_second:.2f}×** '
                      f'({fused.updates_per_second:,.1f} vs {plain.updates_per_second:,.1f} updates/s; per round '
                      f'{min(per_round):.2f}–{max(per_round):.2f}×)')
        if group.default_size:
            per_seed_rates[group.agent] = cases[-1].updates_per_second / cases[-1].num_seeds
        for case in cases:  # free the group's device memory before the next, larger one
            case._state = case._call = None
        gc.collect()
    lines = [f'Synthetic data with cube-single shapes (observations 28, actions 5, {throughput.NUM_ROWS:,} rows on '
             f'the device); {rounds} interleaved timing round(s) of ~{throughput.window_seconds():g} s per case, '
             'median reported. Fused: the runner\'s call (K updates per call, batches drawn on the device, S seeds '
             'vmapped). Plain: FQL\'s `main.py` loop (one seed, the jitted `agent.update` once per Python iteration, '
             'batches drawn on the host).',
             'Peak device memory is the process\'s peak (`memory_stats()["peak_bytes_in_use"]`) after the case\'s '
             'first call; cases run from the smallest footprint to the largest and each group\'s memory is freed '
             'before the next, so a new peak is the case\'s own (dataset included).', '']
    if quick:
        lines += ['**Quick mode: stand-in networks; these figures show that the code runs, not what the machine can '
                  'do.**', '']
    lines += ['| case | S | K | compile (s) | updates/s (all seeds) | updates/s per seed | rounds | '
              'GFLOP / update (XLA) | peak device memory |', '|---|---|---|---|---|---|---|---|---|', *rows, '',
              *ratios]
    if set(per_seed_rates) == set(configs.PAPER_GRID_AGENTS):
        lines += grid_projection(per_seed_rates)
    return Section('3. Training speed', lines)


# -------------------------------------------------------------------------------------------- 4. end to end

def checkpoint_difference(path_a: str, path_b: str) -> str:
    """'identical' if two checkpoint files are byte-equal, else the largest absolute difference over their arrays."""
    with open(path_a, 'rb') as f:
        a = f.read()
    with open(path_b, 'rb') as f:
        b = f.read()
    if a == b:
        return 'identical'
    leaves_a = jax.tree.leaves(flax.serialization.msgpack_restore(a))
    leaves_b = jax.tree.leaves(flax.serialization.msgpack_restore(b))
    worst = max((float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
                 for x, y in zip(leaves_a, leaves_b) if np.size(x) and np.asarray(x).dtype.kind == 'f'), default=0.0)
    return f'differ (largest absolute difference over the arrays: {worst:.3g})'


class MainRun:
    """One `main.py` process of section 4, its folders and its output."""

    def __init__(self, work_dir: str, run_name: str, size: E2ESize, env: dict[str, str]):
        self.run_dir = runs.task_dir(runs.run_root(os.path.join(work_dir, 'exp'), run_name), E2E_TASK)
        self.seed_dirs = runs.seed_dirs(self.run_dir, range(E2E_SEEDS))
        self.log = os.path.join(work_dir, f'{run_name}.log')
        self.command = [sys.executable, 'main.py', f'--env_name={E2E_TASK}', '--agent=agents/mfql.py',
                        f'--dataset_dir={work_dir}/data', f'--save_dir={work_dir}/exp', f'--run_name={run_name}',
                        f'--num_seeds={E2E_SEEDS}', f'--offline_steps={size.updates}',
                        f'--eval_interval={size.updates}', f'--eval_episodes={size.eval_episodes}',
                        f'--log_interval={size.log_interval}', f'--save_interval={size.save_interval}',
                        f'--steps_per_call={size.steps_per_call}', '--progress_bar=false', *size.agent_flags]
        self.env, self.timeout = env, size.timeout_seconds

    def start(self, *extra: str) -> subprocess.Popen:
        with open(self.log, 'a') as log:  # the child keeps its own descriptor
            return subprocess.Popen(self.command + list(extra), cwd=REPO_DIR, env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT)

    def run(self, *extra: str) -> tuple[int, float]:
        """Runs to the end; (exit status, seconds). A timeout kills it and returns status None."""
        start = time.perf_counter()
        process = self.start(*extra)
        try:
            return process.wait(timeout=self.timeout), time.perf_counter() - start
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None, time.perf_counter() - start

    def log_text(self) -> str:
        with open(self.log, errors='replace') as f:
            return f.read()

    def log_tail(self, lines: int = 15) -> str:
        return '\n'.join(self.log_text().splitlines()[-lines:])

    def final(self) -> list[dict[str, Any]]:
        """Each seed's final.json (or {} where it is missing)."""
        return [runs.read_final(seed_dir) or {} for seed_dir in self.seed_dirs]


def wait_for_checkpoint(process: subprocess.Popen, seed_dirs: list[str], first_step: int,
                        timeout: float) -> int | None:
    """The first step ≥ `first_step` at which every seed has a checkpoint, polled while `process` runs; None if it
    ended or `timeout` seconds passed first. (The runner also saves at step 1, after the first evaluation: waiting
    for a later step makes the resume start in the middle of training.)"""
    deadline = time.perf_counter() + timeout
    while process.poll() is None and time.perf_counter() < deadline:
        step = runs.common_checkpoint_step(seed_dirs)  # None while one seed has a checkpoint and the other not yet
        if step is not None and step >= first_step:
            return step
        time.sleep(0.02)
    return None


def end_to_end_section(quick: bool) -> Section:
    """Section 4: generate a dataset, run main.py, kill it after a mid-run checkpoint, resume it, and compare its
    final checkpoints with an uninterrupted run's; stops at the first step that fails, with that step's log."""
    missing = [name for name in ('ogbench', 'mujoco') if importlib.util.find_spec(name) is None]
    if missing:
        return Section('4. End to end', [f'Skipped: {" and ".join(missing)} not installed '
                                         '(`pip install -r requirements.txt` installs both).'])
    size = E2E_QUICK if quick else E2E_FULL
    lines, problems = [], []
    with tempfile.TemporaryDirectory(prefix='device_check-') as work_dir:
        # Headless MuJoCo; a compilation cache of this check's own, so the resumed and the uninterrupted runs reuse
        # the first run's compilations; and on a GPU no preallocation: this process already holds JAX's default
        # share (75%) of the device's memory, so a child that asked for 75% too would fail at its start.
        env = dict(os.environ, MUJOCO_GL=os.environ.get('MUJOCO_GL', 'egl'),
                   JAX_COMPILATION_CACHE_DIR=os.path.join(work_dir, 'jax_cache'),
                   XLA_PYTHON_CLIENT_PREALLOCATE=os.environ.get('XLA_PYTHON_CLIENT_PREALLOCATE', 'false'))
        workers = max(1, min(size.episodes, os.cpu_count() or 1, 8))
        generate = [sys.executable, '-m', 'datasets.generate', f'--env_name={E2E_DATASET}',
                    f'--num_episodes={size.episodes}', f'--dataset_dir={work_dir}/data', f'--workers={workers}']
        start = time.perf_counter()
        generated = subprocess.run(generate, cwd=REPO_DIR, env=env, capture_output=True, text=True,
                                   timeout=size.timeout_seconds)
        if generated.returncode != 0:
            return Section('4. End to end', ['Dataset generation failed:', '```', generated.stderr[-3000:], '```'],
                           ['end to end: dataset generation failed'])
        lines.append(f'- Dataset: {size.episodes} + validation episodes of `{E2E_DATASET}` (1,001 steps each) '
                     f'generated in {time.perf_counter() - start:.1f} s with {workers} worker(s) '
                     '(`python -m datasets.generate`)')

        # Kill a run once every seed has a checkpoint, then resume it to the end.
        killed = MainRun(work_dir, 'killed', size, env)
        shown = shlex.join(killed.command[1:]).replace(work_dir, '$WORK')
        lines.append(f'- Command (`$WORK`: a temporary folder): `{shown}`: MFQL with its cube-single presets and '
                     f'{size.nets}; run with `XLA_PYTHON_CLIENT_PREALLOCATE={env["XLA_PYTHON_CLIENT_PREALLOCATE"]}`')
        start = time.perf_counter()
        process = killed.start()
        try:
            killed_at = wait_for_checkpoint(process, killed.seed_dirs, size.save_interval, size.timeout_seconds)
        finally:  # also when the wait raises: no run may outlive the check, nor write into its deleted folder
            process.send_signal(signal.SIGKILL)
            status = process.wait()
        if status != -signal.SIGKILL or killed_at is None:
            problems.append('end to end: the run was not killed after a checkpoint')
            return Section('4. End to end', lines + [
                f'- The first run ended with status {status} before it was killed after a checkpoint:', '', '```',
                killed.log_tail(), '```'], problems)
        lines.append(f'- Killed (SIGKILL) {time.perf_counter() - start:.1f} s after its start (start, compilation, '
                     f'evaluation at step 1, training), once every seed had its checkpoint at step {killed_at:,} of '
                     f'{size.updates:,}')
        status, seconds = killed.run('--resume')
        final = killed.final()
        resumed = f'resumed {E2E_SEEDS} seed(s) from step {killed_at}' in killed.log_text()
        if status != 0 or not resumed or any(f.get('step') != size.updates for f in final):
            problems.append('end to end: the resumed run did not finish')
            return Section('4. End to end', lines + [f'- `--resume` ended with status {status}:', '', '```',
                                                     killed.log_tail(), '```'], problems)
        lines.append(f'- Resumed with `--resume` from step {killed_at:,} and finished in {seconds:.1f} s (start, '
                     'compilation from the cache, training, evaluation); final success per seed: '
                     + ', '.join(f'{f["evaluation/success"]:.2f}' for f in final))

        straight = MainRun(work_dir, 'straight', size, env)
        status, seconds = straight.run()
        if status != 0:
            problems.append('end to end: the uninterrupted run failed')
            return Section('4. End to end', lines + [f'- The uninterrupted run ended with status {status}:', '', '```',
                                                     straight.log_tail(), '```'], problems)
        rate = runs.read_csv(runs.train_csv_path(straight.seed_dirs[0]))[-1]['time/updates_per_sec']
        lines.append(f'- Uninterrupted run: {seconds:.1f} s from start to end (compilation from the cache), '
                     f'{rate:,.1f} updates/s per call at its last log step, final success per seed: '
                     + ', '.join(f'{f["evaluation/success"]:.2f}' for f in straight.final()))
        differences = [checkpoint_difference(runs.checkpoint_path(a, size.updates),
                                             runs.checkpoint_path(b, size.updates))
                       for a, b in zip(killed.seed_dirs, straight.seed_dirs)]
        lines.append('- Final checkpoints, killed-and-resumed against uninterrupted: '
                     + '; '.join(f'seed {seed}: {text}' for seed, text in enumerate(differences)))
        if jax.default_backend() == 'cpu' and any(text != 'identical' for text in differences):
            # On CPU the project promises bitwise-equal resumes; accelerators need not reduce deterministically.
            problems.append('end to end: a resumed run differs from the uninterrupted run on CPU')
    return Section('4. End to end', lines, problems)


# ---------------------------------------------------------------------------------------------------- report

def default_out(quick: bool) -> str:
    """The report's path without --out: committed results for a full run, exp/ for a quick one."""
    if quick:
        return os.path.join(REPO_DIR, 'exp', 'benchmarks', f'device-{device_kind()}-quick.md')
    return os.path.join(REPO_DIR, 'benchmarks', 'results', f'device-{device_kind()}.md')


def verdict(sections: list[Section], shown: int = 10) -> str:
    """One line: every check passed, or the number of problems and the first `shown` of them."""
    problems = [problem for section in sections for problem in section.problems]
    if not problems:
        return '**Result: every check passed.**'
    more = f'; and {len(problems) - shown} more (below)' if len(problems) > shown else ''
    return f'**Result: {len(problems)} problem(s):** ' + '; '.join(problems[:shown]) + more


def report(command: str, sections: list[Section], seconds: float) -> list[str]:
    """The Markdown report: the command, the verdict, then each section with its duration."""
    lines = [f'# Device check: {jax.devices()[0].device_kind}', '',
             f'Command: `{command}` ({seconds / 60:.1f} min in all; {datetime.date.today().isoformat()}).', '',
             verdict(sections), '']
    for section in sections:
        lines += [f'## {section.title} ({section.seconds:.0f} s)', '', *section.lines, '']
    return lines


def main(argv: list[str]) -> None:
    """Checks the flags and the output path first (one `error:` line each), then runs the four sections."""
    if len(argv) > 1:
        raise SystemExit(f'error: unexpected arguments {argv[1:]}; the flags are --quick and --out')
    try:
        jax.devices()
    except RuntimeError as error:  # e.g. JAX_PLATFORMS=cuda without a GPU
        raise SystemExit(f'error: JAX found no usable device: {error}') from None
    out = FLAGS.out or default_out(FLAGS.quick)
    out_dir = os.path.dirname(os.path.abspath(out))
    try:  # before minutes of work: an unwritable --out should fail now, not at the end
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise SystemExit(f'error: cannot create the folder of --out={out}: {error.strerror}') from None
    if not os.access(out_dir, os.W_OK) or os.path.isdir(out):
        raise SystemExit(f'error: cannot write the report to --out={out}')

    command = shlex.join(['python', '-m', 'benchmarks.device_check', *sys.argv[1:]])
    start = time.perf_counter()
    sections = [run_section('1. Machine', machine_section),
                run_section('2. Reference values', reference_section),
                run_section('3. Training speed', lambda: speed_section(FLAGS.quick)),
                run_section('4. End to end', lambda: end_to_end_section(FLAGS.quick))]
    lines = report(command, sections, time.perf_counter() - start)
    runs.write_atomically(out, '\n'.join(lines) + '\n')
    print(f'\n{verdict(sections)}\nwrote {out}', flush=True)
    if any(section.problems for section in sections):
        sys.exit(1)


if __name__ == '__main__':
    app.run(main)
