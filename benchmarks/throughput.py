"""Training and acting throughput of MFQL, FQL and the baselines, measured side by side in one process.

    python -m benchmarks.throughput --quick      # ~7 min on 2 idle CPU cores
    python -m benchmarks.throughput              # more windows, more K and S values

What it measures (all cases share one process and are timed in interleaved rounds, so slow drifts of
the machine hit every case alike; each figure is the median over rounds):
- compile time of the fused training call (`training.fused.FusedUpdater`, the runner's own call);
- updates/s (aggregate over seeds) of that call, with batches sampled on the device;
- the same for the **plain** loop that FQL's `main.py` runs: one seed, the agent's jitted `update` called
  from Python once per update, on batches drawn on the host (NumPy row indices into host arrays), its
  metrics left unread; fused ÷ plain is what our loop gains (or loses) over it;
- FLOPs per update from XLA's own cost analysis of the compiled call. XLA's cost analysis counts the
  body of a while loop (our `lax.scan`) once, so the figure of a K-update call is the cost of two updates
  of every seed (the scanned one and the last, which runs after the scan); we divide by 2S;
- achieved GFLOP/s = FLOPs/update × updates/s, and its ratio to the dense float32 matmul ceiling of
  this machine, measured in the same rounds (a 2048² @ 2048² product);
- fusion gain (K = 1 vs larger K) and vmapped-seed gain (S = 1, 4, 8) at the small size (2×256);
- single-observation action latency (`sample_actions`, best-of-N for MFQL) and the env-steps/s of
  the batched evaluation (OGBench cube-single, all episodes in lock-step, one policy call per step).
Training data is synthetic (random arrays with cube-single's shapes): throughput does not depend
on the values. Writes a Markdown table to `benchmarks/results/throughput-<backend>.md`.
"""

import os
import sys
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from agents import get_agent_class
from datasets.buffer import Dataset
from datasets.frames import FrameDataset, frame_dataset_from_numpy
from training.fused import DatasetSampler, FusedUpdater, create_training_states, stacked_streams
from runs import write_atomically

FLAGS = flags.FLAGS
flags.DEFINE_bool('quick', False, 'Fewer rounds and K/S values (~7 min on 2 idle CPU cores).')
flags.DEFINE_string('out', None, 'Markdown output path (default benchmarks/results/throughput-<backend>.md).')
flags.DEFINE_integer('rounds', None, 'Interleaved timing rounds (default 3 quick, 5 full).')
flags.DEFINE_string('match', '', 'Only the training cases whose label contains this text (e.g. "visual"); also '
                    'read by profile_update. throughput.py then skips the acting and evaluation timings (use --out).')

OBS_DIM, ACTION_DIM, NUM_ROWS = 28, 5, 100_000  # cube-single shapes; 100 episodes' worth of rows
SMALL = (256, 256)


def agent_config(agent: str, **overrides: Any) -> Any:
    config = sys.modules[get_agent_class(agent).__module__].get_config()
    if config.get('normalize_observations', False):  # the z-scoring still runs; identity statistics suffice
        config.update(observation_mean=(0.0,) * OBS_DIM, observation_std=(1.0,) * OBS_DIM)
    config.update(overrides)
    return config


def small_overrides(agent: str) -> dict:
    if agent == 'mfql':  # the small MFQL uses the MLP actor: a 2×256 DiT is not a meaningful "small" net
        return dict(actor_arch='mlp', actor_mlp_hidden_dims=SMALL, value_hidden_dims=SMALL)
    return dict(actor_hidden_dims=SMALL, value_hidden_dims=SMALL)


@dataclass
class Case:
    """One timed configuration: an agent config, K updates per call, S seeds; `plain`: FQL's loop instead (S = 1,
    one jitted update per Python iteration; K then only sets how many updates make one timed unit)."""

    label: str
    agent: str
    config: Any
    num_updates: int
    num_seeds: int = 1
    plain: bool = False
    compile_seconds: float = 0.0
    flops_per_update: float = 0.0
    window_calls: int = 1
    dataset: Any = None  # the case's own data (visual cases); None: the shared synthetic state dataset
    rates: list = field(default_factory=list)  # aggregate updates/s, one per round
    hlo: str = ''  # the optimised HLO of the compiled call (for the profiler)
    _call: Callable | None = None
    _state: Any = None

    @property
    def updates_per_second(self) -> float:
        return statistics.median(self.rates)


def synthetic_dataset() -> Dataset:
    rng = np.random.default_rng(0)
    arrays = dict(
        observations=rng.standard_normal((NUM_ROWS, OBS_DIM), dtype=np.float32),
        actions=rng.uniform(-1, 1, (NUM_ROWS, ACTION_DIM)).astype(np.float32),
        rewards=-rng.integers(0, 2, NUM_ROWS).astype(np.float32),
        masks=np.ones(NUM_ROWS, np.float32),
        next_observations=rng.standard_normal((NUM_ROWS, OBS_DIM), dtype=np.float32),
        terminals=np.zeros(NUM_ROWS, np.float32),
    )
    return Dataset(data={k: jnp.asarray(v) for k, v in arrays.items()})


def synthetic_frame_dataset(frame_stack: int, p_aug: float) -> FrameDataset:
    """Random 64×64×3 uint8 frames laid out as a visual OGBench dataset (20 episodes of 1001 frames, 1000
    transitions each); batches stack `frame_stack` frames and are shifted with probability `p_aug` when drawn."""
    rng = np.random.default_rng(0)
    episodes, frames_per_episode = 20, 1001
    frame_index = np.concatenate([e * frames_per_episode + np.arange(frames_per_episode - 1) for e in range(episodes)])
    num_rows = len(frame_index)
    arrays = dict(
        frames=rng.integers(0, 256, (episodes * frames_per_episode, 64, 64, 3), dtype=np.uint8),
        actions=rng.uniform(-1, 1, (num_rows, ACTION_DIM)).astype(np.float32),
        rewards=-rng.integers(0, 2, num_rows).astype(np.float32),
        masks=np.ones(num_rows, np.float32),
        terminals=np.zeros(num_rows, np.float32),
        frame_index=frame_index.astype(np.int32),
        episode_start=(frame_index // frames_per_episode * frames_per_episode).astype(np.int32),
    )
    return frame_dataset_from_numpy(arrays, frame_stack, p_aug)


def xla_flops(compiled: Any) -> float:
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis.get('flops', 0.0))


def prepare(case: Case, dataset: Dataset) -> None:
    """Builds S agents, compiles the training call (timed), reads its FLOPs, sizes a window."""
    if case.plain:
        return prepare_plain(case, dataset)
    dataset = case.dataset if case.dataset is not None else dataset
    batch_size = case.config.batch_size
    example = (dataset.example_batch() if isinstance(dataset, FrameDataset)
               else jax.tree.map(lambda x: x[:batch_size], dataset.data))
    agent_class = get_agent_class(case.agent)
    state = create_training_states(agent_class, example, case.config, stacked_streams(list(range(case.num_seeds))))
    updater = FusedUpdater(DatasetSampler(batch_size))
    start = time.perf_counter()
    compiled = updater.lower(state, dataset, case.num_updates).compile()
    case.compile_seconds = time.perf_counter() - start
    # XLA's cost analysis counts a while loop's body once: a K > 1 call is then the scanned update plus the last
    # update, which runs after the scan (`fused_updates`), i.e. two updates of each seed.
    case.flops_per_update = xla_flops(compiled) / case.num_seeds / (2 if case.num_updates > 1 else 1)
    case.hlo = compiled.as_text()
    call = lambda state: updater(state, dataset, case.num_updates)[0]  # noqa: E731
    case._call, case._state = call, state
    size_window(case)


class HostBatches:
    """FQL's `main.py` sampling: row indices drawn with NumPy, rows gathered from host (NumPy) arrays."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int = 0):
        self.arrays = {k: np.asarray(v) for k, v in dataset.data.items()}
        self.num_rows = len(next(iter(self.arrays.values())))
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> dict[str, np.ndarray]:
        indices = self.rng.integers(0, self.num_rows, self.batch_size)
        return {k: v[indices] for k, v in self.arrays.items()}


def prepare_plain(case: Case, dataset: Dataset) -> None:
    """The plain loop: one agent, `agent.update` (jitted by the agent) called once per update on host batches."""
    batches = HostBatches(dataset, case.config.batch_size)
    agent_class = get_agent_class(case.agent)
    agent = agent_class.create(stacked_streams([0]).create[0], batches(), case.config)
    start = time.perf_counter()
    compiled = agent_class.update.lower(agent, batches()).compile()
    case.compile_seconds = time.perf_counter() - start
    case.flops_per_update = xla_flops(compiled)
    case.hlo = compiled.as_text()

    def call(agent: Any) -> Any:
        for _ in range(case.num_updates):
            agent, _ = agent.update(batches())  # the metrics stay unread, as between FQL's log steps
        return agent

    case._call, case._state = call, agent
    size_window(case)  # its first call compiles `agent.update` again, through the jit cache this time


def size_window(case: Case) -> None:
    """A warm-up call, which also sizes the timing window to about `window_seconds()`."""
    start = time.perf_counter()
    case._state = jax.block_until_ready(case._call(case._state))
    one_call = time.perf_counter() - start
    case.window_calls = max(1, int(round(window_seconds() / max(one_call, 1e-6))))


def time_window(case: Case) -> None:
    state = case._state
    start = time.perf_counter()
    for _ in range(case.window_calls):
        state = case._call(state)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
    case._state = state
    case.rates.append(case.window_calls * case.num_updates * case.num_seeds / seconds)


class MatmulCeiling:
    """float32 dense matmul rate of this machine: 2·n³ FLOPs per product."""

    def __init__(self, n: int = 2048):
        self.n = n
        key_a, key_b = jax.random.split(jax.random.PRNGKey(0))
        self.a = jax.random.normal(key_a, (n, n))
        self.b = jax.random.normal(key_b, (n, n))
        self.product = jax.jit(lambda a, b: a @ b)
        jax.block_until_ready(self.product(self.a, self.b))
        start = time.perf_counter()
        jax.block_until_ready(self.product(self.a, self.b))
        self.reps = max(1, int(window_seconds() / (time.perf_counter() - start)))
        self.rates: list[float] = []

    def time_window(self) -> None:
        start = time.perf_counter()
        for _ in range(self.reps):
            out = self.product(self.a, self.b)
        jax.block_until_ready(out)
        self.rates.append(2 * self.n ** 3 * self.reps / (time.perf_counter() - start) / 1e9)

    @property
    def gflops(self) -> float:
        return statistics.median(self.rates)


def layer_matmul_rates(repeats: int = 200) -> dict[str, float]:
    """GFLOP/s of single matmuls at the layer shapes of a batch-256 update (the work the updates consist of)."""
    rates = {}
    for rows, inner, outer in ((256, 512, 512), (1280, 512, 512), (256, 256, 256), (256, 256, 1024)):
        a = jax.random.normal(jax.random.PRNGKey(0), (rows, inner))
        b = jax.random.normal(jax.random.PRNGKey(1), (inner, outer))
        product = jax.jit(lambda x, y: x @ y)
        jax.block_until_ready(product(a, b))
        start = time.perf_counter()
        for _ in range(repeats):
            out = product(a, b)
        jax.block_until_ready(out)
        rates[f'({rows}×{inner}) @ ({inner}×{outer})'] = 2 * rows * inner * outer * repeats / (
            time.perf_counter() - start) / 1e9
    return rates


def window_seconds() -> float:
    return 1.0 if FLAGS.quick else 3.0


def action_latency(agent: str, config: Any, dataset: Dataset, calls: int, slim: bool = False) -> float:
    """Median seconds of `sample_actions` on ONE observation (obs_dim,), including the transfer back."""
    example = jax.tree.map(lambda x: x[:config.batch_size], dataset.data)
    agent_state = get_agent_class(agent).create(jax.random.PRNGKey(0), example, config)
    observation = np.asarray(dataset.data['observations'][0])
    key = jax.random.PRNGKey(1)
    if slim:  # without the optimiser state: shows what flattening the full agent pytree per call costs
        agent_state = agent_state.replace(network=agent_state.network.replace(opt_state=()))
    np.asarray(agent_state.sample_actions(observation, key))  # compile
    times = []
    for i in range(calls):
        start = time.perf_counter()
        np.asarray(agent_state.sample_actions(observation, jax.random.fold_in(key, i)))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def evaluation_rate(agent: str, config: Any, episodes: int) -> tuple[float, int]:
    """Env steps/s of one batched evaluation on cube-single (all `episodes` in lock-step)."""
    from datasets.ogbench_data import make_env
    from training.evaluation import EvalEnvPool, evaluate, policy_actions

    env_name = 'cube-single-play-singletask-task2-v0'
    probe = make_env(env_name)
    observation, _ = probe.reset(seed=0)
    example = dict(observations=jnp.zeros((config.batch_size, observation.shape[-1]), jnp.float32),
                   actions=jnp.zeros((config.batch_size, probe.action_space.shape[-1]), jnp.float32))
    probe.close()
    agents = jax.vmap(lambda k: get_agent_class(agent).create(k, example, config))(
        jax.random.split(jax.random.PRNGKey(0), 1))
    pool = EvalEnvPool(lambda: make_env(env_name), num_seeds=1, envs_per_seed=episodes)
    policy = policy_actions
    keys = jax.random.split(jax.random.PRNGKey(1), 1)
    evaluate(agents, pool, policy, keys, seeds=[0], num_episodes=min(episodes, 2))  # compile + warm the envs
    _, stats = evaluate(agents, pool, policy, keys, seeds=[0], num_episodes=episodes)
    pool.close()
    return stats['env_steps_per_sec'], int(stats['env_steps'])


def machine_description() -> list[str]:
    from training.tracking import cpu_description, library_versions
    versions = library_versions(('jax', 'flax', 'optax', 'ogbench'))
    return [
        f'- CPU: {cpu_description()}; backend `{jax.default_backend()}`; '
        f'devices: {", ".join(str(d) for d in jax.devices())}',
        '- ' + ', '.join(f'{"Python" if name == "python" else name} {value}' for name, value in versions.items()),
    ]


def main(_: Any) -> None:
    os.environ.setdefault('MUJOCO_GL', 'egl')  # headless rendering for the evaluation env (before mujoco loads)
    quick = FLAGS.quick
    rounds = FLAGS.rounds or (3 if quick else 5)
    dataset = synthetic_dataset()
    default_k = 10  # default-size updates take 0.1–0.3 s each on 2 CPU cores: K = 10 keeps windows short
    fused_k = (100,) if quick else (10, 100, 1000)
    seed_counts = (4, 8)

    small_k = fused_k[-1] if quick else 100
    cases = [
        Case('MFQL default (DiT actor, best-of-5 target)', 'mfql', agent_config('mfql'), default_k),
        Case('MFQL default, plain loop', 'mfql', agent_config('mfql'), default_k, plain=True),
        Case('FQL default (4×512, 10 Euler steps)', 'fql', agent_config('fql'), default_k),
        Case('FQL default, plain loop', 'fql', agent_config('fql'), default_k, plain=True),
        Case('MFQL, MLP actor 4×512, N_target = 1', 'mfql',
             agent_config('mfql', actor_arch='mlp', num_candidates_target=1), default_k),
        Case('ReBRAC default (4×512)', 'rebrac', agent_config('rebrac'), default_k),
        Case('IQL default (4×512)', 'iql', agent_config('iql'), default_k),
        Case('IFQL default (4×512, 10 Euler steps)', 'ifql', agent_config('ifql'), default_k),
    ]
    for agent in ('mfql', 'fql'):
        small = agent_config(agent, **small_overrides(agent))
        cases.append(Case(f'{agent.upper()} 2×256, plain loop', agent, small, small_k, plain=True))
        for k in (1, *fused_k):
            cases.append(Case(f'{agent.upper()} 2×256, K = {k}', agent, small, k))
        for s in seed_counts:
            cases.append(Case(f'{agent.upper()} 2×256, K = {small_k}, S = {s}', agent, small, small_k, s))

    visual = dict(encoder='impala_small', frame_stack=3, p_aug=0.5)  # FQL's pixel-task settings
    cases.append(Case('FQL visual default (impala_small, 3 frames, p_aug 0.5)', 'fql', agent_config('fql', **visual),
                      1, dataset=synthetic_frame_dataset(visual['frame_stack'], visual['p_aug'])))
    if FLAGS.match:
        cases = [case for case in cases if FLAGS.match in case.label]
        if not cases:
            raise SystemExit(f'error: --match={FLAGS.match!r} selects no training case')

    total_start = time.perf_counter()
    loads = [('start', os.getloadavg())]
    for case in cases:
        prepare(case, dataset)
        print(f'compiled {case.label} (S={case.num_seeds}, K={case.num_updates}) in {case.compile_seconds:.1f} s',
              flush=True)
    ceiling = MatmulCeiling()
    for r in range(rounds):
        ceiling.time_window()
        for case in cases:
            time_window(case)
        loads.append((f'after round {r + 1}', os.getloadavg()))
        print(f'round {r + 1}/{rounds} done ({time.perf_counter() - total_start:.0f} s; load averages '
              f'{" ".join(f"{x:.2f}" for x in loads[-1][1])})', flush=True)

    if FLAGS.match:  # the selected training cases only
        loads.append(('end', os.getloadavg()))
        lines = report(cases, ceiling, {}, {}, None, rounds, time.perf_counter() - total_start, loads)
        return write_report(lines)

    latency_calls = 100 if quick else 500
    latencies = {
        'MFQL default (DiT, best-of-5)': action_latency('mfql', agent_config('mfql'), dataset, latency_calls),
        'MFQL default, N = 1': action_latency('mfql', agent_config('mfql', num_candidates_eval=1), dataset,
                                              latency_calls),
        'MFQL default (DiT, best-of-5), optimiser state not passed': action_latency(
            'mfql', agent_config('mfql'), dataset, latency_calls, slim=True),
        'FQL default': action_latency('fql', agent_config('fql'), dataset, latency_calls),
    }
    layer_rates = layer_matmul_rates()
    eval_episodes = 10 if quick else 50
    eval_rate, eval_steps = evaluation_rate('mfql', agent_config('mfql'), eval_episodes)

    loads.append(('end', os.getloadavg()))
    lines = report(cases, ceiling, layer_rates, latencies, (eval_rate, eval_steps, eval_episodes), rounds,
                   time.perf_counter() - total_start, loads)
    write_report(lines)


def write_report(lines: list[str]) -> None:
    print('\n'.join(lines))
    out = FLAGS.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results',
                                    f'throughput-{jax.default_backend()}.md')
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_atomically(out, '\n'.join(lines) + '\n')
    print(f'wrote {out}')


def report(cases: list[Case], ceiling: MatmulCeiling, layer_rates: dict, latencies: dict, evaluation: tuple,
           rounds: int, seconds: float, loads: list[tuple[str, tuple[float, float, float]]]) -> list[str]:
    command = 'python -m benchmarks.throughput' + (' --quick' if FLAGS.quick else '') + (
        f' --rounds={FLAGS.rounds}' if FLAGS.rounds else '') + (f' --match="{FLAGS.match}"' if FLAGS.match else '') + (
        f' --out={os.path.relpath(FLAGS.out)}' if FLAGS.out else '')
    load_text = '; '.join(f'{when} {" ".join(f"{x:.2f}" for x in values)}' for when, values in loads)
    lines = [f'# Throughput ({jax.default_backend()})', '', f'Command: `{command}` ({rounds} interleaved rounds, '
             f'{seconds / 60:.1f} min in all). Batch 256, synthetic data with cube-single shapes.', '',
             *machine_description(),
             f'- Load averages (1, 5, 15 min; {os.cpu_count()} cores; this benchmark alone adds up to ~2): {load_text}',
             f'- Dense float32 matmul ceiling (2048², median of rounds): '
             f'**{ceiling.gflops:.0f} GFLOP/s** (rounds: {", ".join(f"{r:.0f}" for r in ceiling.rates)})', '',
             *(['- Single matmuls at the layer shapes of a batch-256 update (GFLOP/s, % of the ceiling): ' + '; '.join(
                 f'{shape}: {rate:.0f} ({100 * rate / ceiling.gflops:.0f}%)' for shape, rate in layer_rates.items()),
                ''] if layer_rates else []),
             '## Training updates', '',
             'Fused: `training.fused.FusedUpdater` (K updates per call, batches sampled on the device). Plain: FQL\'s '
             'loop (one seed, the jitted `agent.update` once per Python iteration, batches drawn on the host).', '',
             '| case | S | K | compile (s) | updates/s (aggregate; median) | rounds | GFLOP / update (XLA) | GFLOP/s | '
             '% of matmul ceiling |',
             '|---|---|---|---|---|---|---|---|---|']
    for c in cases:
        achieved = c.flops_per_update * c.updates_per_second / 1e9
        lines.append(f'| {c.label} | {c.num_seeds} | {"—" if c.plain else c.num_updates} | {c.compile_seconds:.1f} | '
                     f'{c.updates_per_second:.1f} | {", ".join(f"{r:.1f}" for r in c.rates)} | '
                     f'{c.flops_per_update / 1e9:.2f} | {achieved:.0f} | {100 * achieved / ceiling.gflops:.0f}% |')
    if FLAGS.match:
        return lines
    by_label = {c.label: c for c in cases}
    rate = lambda label: by_label[label].updates_per_second  # noqa: E731

    def paired(fused: str, plain: str) -> str:
        """fused ÷ plain of the medians, and the range of the per-round ratios (the cases alternate in each round)."""
        per_round = [f / p for f, p in zip(by_label[fused].rates, by_label[plain].rates)]
        return (f'**{rate(fused) / rate(plain):.3f}×** ({rate(fused):.2f} vs {rate(plain):.2f} updates/s; per round '
                f'{min(per_round):.3f}–{max(per_round):.3f}×)')

    mfql_default, fql_default = by_label['MFQL default (DiT actor, best-of-5 target)'], by_label[
        'FQL default (4×512, 10 Euler steps)']
    mfql_equal = by_label['MFQL, MLP actor 4×512, N_target = 1']
    lines += ['', '## Ratios (same run)', '',
              f'- MFQL default, fused ÷ plain: {paired(mfql_default.label, "MFQL default, plain loop")}',
              f'- FQL default, fused ÷ plain: {paired(fql_default.label, "FQL default, plain loop")}']
    small = {c.agent: {} for c in cases if '2×256' in c.label}
    for c in cases:
        if '2×256' in c.label and not c.plain:
            small[c.agent][(c.num_updates, c.num_seeds)] = c.updates_per_second
    for agent, rates in small.items():
        label = f'{agent.upper()} 2×256'
        largest_k = max(k for k, s in rates if s == 1)
        lines.append(f'- {label}, fused (K = {largest_k}) ÷ plain: '
                     f'{paired(f"{label}, K = {largest_k}", f"{label}, plain loop")}')
    lines += [f'- MFQL default ÷ FQL default, fused: **{rate(mfql_default.label) / rate(fql_default.label):.2f}×** '
              f'updates/s ({mfql_default.flops_per_update / 1e9:.2f} vs {fql_default.flops_per_update / 1e9:.2f} '
              'GFLOP/update); plain loops: '
              f'**{rate("MFQL default, plain loop") / rate("FQL default, plain loop"):.2f}×**',
              f'- MFQL (MLP actor 4×512, N_target = 1) ÷ FQL default: '
              f'**{rate(mfql_equal.label) / rate(fql_default.label):.2f}×** updates/s '
              f'({mfql_equal.flops_per_update / 1e9:.2f} vs {fql_default.flops_per_update / 1e9:.2f} GFLOP/update)']
    for agent, rates in small.items():
        single = {k: v for (k, s), v in rates.items() if s == 1}
        best_k = max(single, key=single.get)
        lines.append(f'- {agent.upper()} 2×256 fusion: K = {best_k} gives **{single[best_k] / single[1]:.2f}×** '
                     f'the updates/s of K = 1 ({single[best_k]:.0f} vs {single[1]:.0f})')
        for (k, s), v in sorted(rates.items()):
            if s > 1:
                lines.append(f'- {agent.upper()} 2×256, {s} vmapped seeds (K = {k}): **{v / single[k]:.2f}×** the '
                             f'aggregate updates/s of one seed ({v:.0f} vs {single[k]:.0f})')
    lines += ['', '## Acting', '', '| policy | single-observation latency (ms, median) |', '|---|---|']
    lines += [f'| {name} | {1e3 * value:.2f} |' for name, value in latencies.items()]
    rate, steps, episodes = evaluation
    lines += ['', f'Batched evaluation (MFQL default, best-of-5, cube-single, {episodes} episodes in lock-step, '
              f'{steps} env steps): **{rate:.0f} env steps/s**.']
    return lines


if __name__ == '__main__':
    app.run(main)
