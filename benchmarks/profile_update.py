"""Where the time of a training update goes: a jax.profiler trace of the fused update, split by kind of XLA op.

    python -m benchmarks.profile_update              # MFQL default, FQL default (fused and plain), 2×256 cases
    python -m benchmarks.profile_update --match="FQL default"   # only the cases whose label holds the text
    taskset -c 1 python -m benchmarks.profile_update --profile_out=/tmp/profile-1core.md   # one core

For each case the fused K-update call (or, for "plain loop" cases, FQL's loop of K jitted single updates on host
batches) is built and compiled exactly as in `benchmarks/throughput.py`, warmed up, then `--calls` calls are traced
with `jax.profiler`. The trace has one line per XLA thread; nested events
are reduced to their exclusive time, and every microsecond of every compute thread in the traced window is
put in one bucket:
- matmul kernels: `dot` / `convolution` ops and fusions whose fused computation contains a dot (on CPU, XLA
  hands these to its matmul library together with the bias/activation it fused in);
- other ops: elementwise and reduction fusions (activations, LayerNorm, Adam, RNG, clipping), copies,
  gathers, scatters, while-loop control;
- not computing: the rest of (traced window × cores): thread-pool synchronisation, the executor waiting for
  its workers, Python and runtime work around the calls, and cores with nothing to run.
Only events named after an instruction of the compiled module count as ops; on one core XLA may run ops on
the calling (Python) thread, nested inside Python events, which is why nesting is resolved first.
It also reports XLA's FLOPs per update divided by the thread-seconds spent in matmul kernels: the rate per
core inside those kernels (an upper bound, since the FLOP count also holds the few non-matmul FLOPs), to compare
with the dense matmul ceiling per core, measured as in `throughput.py`. Writes `benchmarks/results/profile-<backend>.md`.
The trace itself slows the run slightly; the shares, not the absolute times, are the result.
"""

import collections
import glob
import os
import re
import tempfile
import time
from dataclasses import dataclass
from typing import Any


import jax
from absl import app, flags

from benchmarks import throughput
from benchmarks.throughput import Case, agent_config, machine_description, prepare, small_overrides
from runs import write_atomically

FLAGS = flags.FLAGS
flags.DEFINE_integer('calls', 3, 'Least number of traced calls per case (more if one call is under a second).')
flags.DEFINE_string('profile_out', None, 'Markdown output (default exp/benchmarks/profile-<backend>.md; the committed '
                    'results are in benchmarks/results/).')

BUCKETS = ('matmul kernels', 'other ops', 'not computing')


@dataclass
class Breakdown:
    """Thread-time of a traced window, by bucket and by op."""

    seconds: float  # wall time of the traced window
    cores: int
    buckets: dict[str, float]  # bucket -> thread-seconds
    ops: collections.Counter  # op name -> exclusive thread-seconds (compute buckets only)


def op_sources(hlo_text: str) -> dict[str, str]:
    """Instruction name -> the tail of its `op_name` metadata (which model op it came from), where present."""
    sources = {}
    for line in hlo_text.splitlines():
        match = re.match(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*op_name="([^"]+)"', line)
        if match:
            parts = [p for p in match.group(2).split('/') if not p.startswith(('jit(', 'vmap(', 'while', 'closed'))]
            sources[match.group(1)] = '/'.join(parts[-3:])
    return sources


def instruction_names(hlo_text: str) -> set[str]:
    """Every instruction name of an optimised HLO module: the names XLA's CPU runtime gives its op events."""
    return set(re.findall(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=', hlo_text, flags=re.MULTILINE))


def op_group(source: str) -> str:
    """Coarse origin of a non-matmul op from its `op_sources` entry."""
    if 'LayerNorm' in source or 'RMSNorm' in source:
        return 'normalisation layers'
    if 'modules_' in source:
        return 'other network ops'
    return 'optimiser, losses, sampling'


def matmul_ops(hlo_text: str) -> set[str]:
    """Names of the instructions of an optimised HLO module that are, or fuse, a dot or a convolution."""
    computations: dict[str, str] = {}
    current, body = None, []
    for line in hlo_text.splitlines():
        header = re.match(r'^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$', line)
        if header and not line.startswith(' '):
            current, body = header.group(1), []
        elif line.startswith('}') and current is not None:
            computations[current] = '\n'.join(body)
            current = None
        elif current is not None:
            body.append(line)
    is_matmul = lambda text: re.search(r'\s(dot|convolution)\(', text) is not None  # noqa: E731
    names = set()
    for text in computations.values():
        for line in text.splitlines():
            match = re.match(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?\s(\w+)\(', line)
            if not match:
                continue
            name, opcode = match.groups()
            called = re.search(r'calls=%?([\w.\-]+)', line)
            if opcode in ('dot', 'convolution') or (opcode == 'fusion' and called
                                                     and is_matmul(computations.get(called.group(1), ''))):
                names.add(name)
    return names


def exclusive_times(events: list[tuple[int, int, str]]) -> collections.Counter:
    """Per event name, its duration minus that of the events nested inside it (events of one thread)."""
    totals: collections.Counter = collections.Counter()
    stack: list[list] = []  # open events: [end_ns, name, nested_ns, duration_ns]

    def close(entry: list) -> None:
        _, name, nested_ns, duration = entry
        totals[name] += max(duration - nested_ns, 0)
        if stack:
            stack[-1][2] += duration
    for start, duration, name in sorted(events, key=lambda e: (e[0], -e[1])):
        while stack and stack[-1][0] <= start:
            close(stack.pop())
        stack.append([start + duration, name, 0, duration])
    while stack:
        close(stack.pop())
    return totals


def breakdown(trace_dir: str, instructions: set[str], matmuls: set[str], cores: int) -> Breakdown:
    from jax.profiler import ProfileData
    paths = glob.glob(os.path.join(trace_dir, '**', '*.xplane.pb'), recursive=True)
    if not paths:
        raise RuntimeError(f'jax.profiler wrote no trace under {trace_dir}')
    data = ProfileData.from_file(max(paths, key=os.path.getmtime))
    plane = data.find_plane_with_name('/host:CPU')
    if plane is None:
        raise RuntimeError(f'no /host:CPU plane in the trace; planes: {[p.name for p in data.planes]}')
    per_op: collections.Counter = collections.Counter()
    starts, ends = [], []
    for line in plane.lines:
        events = [(e.start_ns, e.duration_ns, e.name) for e in line.events]
        if not events:
            continue
        ops = [e for e in events if e[2].split(' ')[0] in instructions]
        if ops:
            starts.append(min(e[0] for e in ops))
            ends.append(max(e[0] + e[1] for e in ops))
        per_op.update(exclusive_times(events))
    if not starts:
        raise RuntimeError('the trace holds no XLA thread events')
    seconds = (max(ends) - min(starts)) / 1e9
    buckets = dict.fromkeys(BUCKETS, 0.0)
    compute_ops: collections.Counter = collections.Counter()
    for name, ns in per_op.items():
        if name.split(' ')[0] not in instructions:  # Python, dispatch, executor and thread-pool events
            continue
        bucket = 'matmul kernels' if name.split(' ')[0] in matmuls else 'other ops'
        buckets[bucket] += ns / 1e9
        compute_ops[name] += ns / 1e9
    buckets['not computing'] = max(seconds * cores - buckets['matmul kernels'] - buckets['other ops'], 0.0)
    return Breakdown(seconds, cores, buckets, compute_ops)


def profile_case(case: Case, dataset: Any) -> tuple[Breakdown, set[str], dict[str, str], int]:
    prepare(case, dataset)
    throughput.time_window(case)  # warm-up window, also settles the thread pool
    hlo = case.hlo
    matmuls = matmul_ops(hlo)
    state = case._state
    calls = max(FLAGS.calls, case.window_calls)  # at least ~1 s of work
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        for _ in range(calls):
            state = case._call(state)
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
        result = breakdown(trace_dir, instruction_names(hlo), matmuls, len(os.sched_getaffinity(0)))
    case._state = state
    return result, matmuls, op_sources(hlo), calls


def main(_: Any) -> None:
    throughput.FLAGS.quick = True  # one-second timing windows for the warm-up
    start = time.perf_counter()
    dataset = throughput.synthetic_dataset()
    cases = [
        Case('MFQL default (DiT actor, best-of-5 target)', 'mfql', agent_config('mfql'), 10),
        Case('FQL default (4×512, 10 Euler steps)', 'fql', agent_config('fql'), 10),
        # FQL's own loop (one jitted update per Python iteration, host batches), to show what fusing changes.
        Case('MFQL default, plain loop', 'mfql', agent_config('mfql'), 10, plain=True),
        Case('FQL default, plain loop', 'fql', agent_config('fql'), 10, plain=True),
        # Small nets: unfused (K = 1) vs fused, and 4 vmapped seeds, to show what bounds those two gains.
        Case('MFQL 2×256 (MLP actor), K = 1', 'mfql', agent_config('mfql', **small_overrides('mfql')), 1),
        Case('MFQL 2×256 (MLP actor)', 'mfql', agent_config('mfql', **small_overrides('mfql')), 100),
        Case('MFQL 2×256 (MLP actor), S = 4 seeds', 'mfql', agent_config('mfql', **small_overrides('mfql')), 100, 4),
        Case('FQL 2×256', 'fql', agent_config('fql', **small_overrides('fql')), 100),
    ]
    cases = [case for case in cases if FLAGS.match in case.label]
    ceiling = throughput.MatmulCeiling()
    for _ in range(3):
        ceiling.time_window()
    cores = len(os.sched_getaffinity(0))
    lines = [
        f'# Profile of one fused training call ({jax.default_backend()})',
        '',
        f'Command: `python -m benchmarks.profile_update` (≥ {FLAGS.calls} traced calls and ≥ 1 s per case, after a '
        f'warm-up window; {cores} core(s) usable by this process). Batch 256, synthetic cube-single-shaped data.',
        '',
        *machine_description(),
        f'- Dense float32 matmul ceiling (2048², median of 3): **{ceiling.gflops:.0f} GFLOP/s**',
        '',
        'Share of core-time (traced window × cores): matmul kernels / other XLA ops / not computing.',
        '"In-kernel rate per core" = XLA FLOPs of the traced updates ÷ thread-seconds inside matmul kernels (an upper '
        'bound, see the docstring), against the ceiling per core (the 2048² rate ÷ cores).',
        '',
        '| case | K | updates/s (traced, all seeds) | matmul kernels | other ops | not computing | '
        'in-kernel rate per core | '
        'other ops by origin (share of core-time) |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for case in cases:
        result, matmuls, sources, calls = profile_case(case, dataset)
        total = result.seconds * result.cores
        share = {bucket: result.buckets[bucket] / total for bucket in BUCKETS}
        updates = calls * case.num_updates * case.num_seeds
        kernel_rate = case.flops_per_update * updates / max(result.buckets['matmul kernels'], 1e-9) / 1e9
        groups: collections.Counter = collections.Counter()
        for name, seconds in result.ops.items():
            if name.split(' ')[0] not in matmuls:
                groups[op_group(sources.get(name.split(' ')[0], ''))] += seconds
        top_name, top_seconds = max(((n, t) for n, t in result.ops.items() if n.split(' ')[0] not in matmuls),
                                    key=lambda item: item[1])
        split = ', '.join(f'{group} {seconds / total:.0%}' for group, seconds in groups.most_common())
        split += f'; largest: `{top_name}` ({sources.get(top_name.split(" ")[0], "?")}) {top_seconds / total:.0%}'
        lines.append(f'| {case.label} | {case.num_updates} | {updates / result.seconds:.1f} | '
                     f'{share["matmul kernels"]:.0%} | {share["other ops"]:.0%} | {share["not computing"]:.0%} | '
                     f'{kernel_rate:.0f} GFLOP/s ({kernel_rate / (ceiling.gflops / cores):.0%}) | '
                     f'{split} |')
        print(lines[-1], flush=True)
    lines += ['', f'Total time {time.perf_counter() - start:.0f} s.']
    out = FLAGS.profile_out or os.path.join('exp', 'benchmarks',
                                            f'profile-{jax.default_backend()}.md')
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_atomically(out, '\n'.join(lines) + '\n')
    print('\n'.join(lines))
    print(f'wrote {out}')


if __name__ == '__main__':
    app.run(main)
