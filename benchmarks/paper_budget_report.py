"""The report of the paper-budget study (`python -m benchmarks.paper_budget report`): learning curves, a table at
every evaluation, the comparison at the last evaluations with intervals, and the long-run health table, from the run
folders and the driver's health files. The hand-written part of the report (below its marker) is kept on rewrite.
"""

import json
import os
import shlex
from typing import Any

import numpy as np

import runs
from benchmarks import paper_budget
from benchmarks.intervals import newcombe_interval, wilson_interval
from training import tracking

MARKER = '<!-- hand-written below: kept by `paper_budget report` -->'
AGENTS = {'fql': 'FQL', 'mfql': 'MFQL'}
SUCCESS = 'evaluation/success'
SCORED_EVALUATIONS = 2  # the score pools the last two evaluations (900k and 1M updates)


def eval_rows(work_dir: str, agent: str) -> list[list[dict[str, float]]]:
    """Each seed's evaluation rows (step order); [] for a seed without any yet."""
    return [runs.read_csv_if_any(runs.eval_csv_path(d)) for d in paper_budget.seed_dirs(work_dir, agent)]


def train_rows(work_dir: str, agent: str) -> list[list[dict[str, float]]]:
    return [runs.read_csv_if_any(runs.train_csv_path(d)) for d in paper_budget.seed_dirs(work_dir, agent)]


def read_jsonl(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_health(work_dir: str, agent: str) -> list[dict[str, float]]:
    return runs.read_csv_if_any(os.path.join(work_dir, 'health', f'{paper_budget.run_name(agent)}.csv'))


def events(work_dir: str, agent: str) -> list[dict[str, Any]]:
    return read_jsonl(os.path.join(work_dir, 'health', f'{paper_budget.run_name(agent)}.events.jsonl'))


def successes(row: dict[str, float]) -> int:
    """Episodes won in one evaluation row (success is the fraction of EVAL_EPISODES)."""
    return int(round(row[SUCCESS] * paper_budget.EVAL_EPISODES))


def evaluation_table(rows: dict[str, list[list[dict[str, float]]]]) -> list[str]:
    steps = sorted({int(r['step']) for per_seed in rows.values() for seed in per_seed for r in seed})
    header = ['updates'] + [f'{AGENTS[a]} seed {s}' for a in rows for s in paper_budget.SEEDS] + \
             [f'{AGENTS[a]} pooled (Wilson 95%)' for a in rows]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for step in steps:
        cells, pooled = [f'{step:,}'], []
        for agent, per_seed in rows.items():
            found = [next((r for r in seed if int(r['step']) == step), None) for seed in per_seed]
            cells += [f'{r[SUCCESS]:.2f}' if r is not None else '' for r in found]
            cells += [''] * (len(paper_budget.SEEDS) - len(found))
            won = [successes(r) for r in found if r is not None]
            if won:
                trials = len(won) * paper_budget.EVAL_EPISODES
                low, high = wilson_interval(sum(won), trials)
                pooled.append(f'{sum(won)}/{trials} = {sum(won) / trials:.2f} ({low:.2f}–{high:.2f})')
            else:
                pooled.append('')
        lines.append('| ' + ' | '.join(cells + pooled) + ' |')
    return lines


def scored(per_seed: list[list[dict[str, float]]]) -> tuple[int, int] | None:
    """(won, episodes) pooled over the seeds' last two evaluations at the full budget; None before the end."""
    last_steps = [paper_budget.UPDATES - k * paper_budget.EVAL_INTERVAL for k in range(SCORED_EVALUATIONS)]
    won, trials = 0, 0
    for seed in per_seed:
        found = [r for r in seed if int(r['step']) in last_steps]
        if len(found) != SCORED_EVALUATIONS:
            return None
        won += sum(successes(r) for r in found)
        trials += SCORED_EVALUATIONS * paper_budget.EVAL_EPISODES
    return (won, trials) if per_seed else None


def comparison(rows: dict[str, list[list[dict[str, float]]]]) -> list[str]:
    scores = {agent: scored(per_seed) for agent, per_seed in rows.items()}
    if any(score is None for score in scores.values()):
        return ['Not yet: the comparison needs both agents\' evaluations at 900k and 1M updates.']
    lines = []
    for agent, (won, trials) in scores.items():
        low, high = wilson_interval(won, trials)
        lines.append(f'- {AGENTS[agent]}: {won} of {trials} scored episodes, {won / trials:.2f} (Wilson 95% '
                     f'{low:.2f}–{high:.2f}).')
    low, high = newcombe_interval(scores['mfql'], scores['fql'])
    difference = scores['mfql'][0] / scores['mfql'][1] - scores['fql'][0] / scores['fql'][1]
    verdict = 'level (the interval contains 0)' if low <= 0 <= high else \
        ('MFQL ahead' if low > 0 else 'FQL ahead')
    lines.append(f'- MFQL − FQL: {difference:+.2f} (Newcombe 95% {low:+.2f} to {high:+.2f}): {verdict}.')
    return lines


def plot(work_dir: str, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    panels = (('evaluation', SUCCESS, 'success (fraction)'), ('training', 'training/critic/q_mean', 'Q (batch mean)'),
              ('training', 'training/alpha', 'α (MFQL: weight of the MFI loss)'))
    figure, axes = plt.subplots(1, len(panels), figsize=(13, 3.6))
    for ax, (source, key, label) in zip(axes, panels):
        for agent_index, agent in enumerate(AGENTS):
            per_seed = eval_rows(work_dir, agent) if source == 'evaluation' else train_rows(work_dir, agent)
            for seed, rows in zip(paper_budget.SEEDS, per_seed):
                points = [(r['step'], r[key]) for r in rows if key in r]
                if points:
                    steps, values = zip(*points)
                    ax.plot(steps, values, color=f'C{agent_index}', ls='-' if seed == paper_budget.SEEDS[0] else '--',
                            marker='o' if source == 'evaluation' else None, ms=4,
                            label=f'{AGENTS[agent]} seed {seed}')
        ax.set_xlim(0, paper_budget.UPDATES)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f'{x / 1000:.0f}k'))
        ax.set_xlabel('updates')
        ax.set_ylabel(label)
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
        if key == SUCCESS:
            ax.set_ylim(-0.03, 1.03)
    if axes[0].get_legend_handles_labels()[0]:  # nothing to name before the first evaluation
        axes[0].legend(fontsize=7, handlelength=3)  # long enough to show seed 1's dashes
    figure.suptitle(f'{paper_budget.TASK}: 1M updates, 2×256 networks, seeds {paper_budget.SEEDS}', fontsize=10)
    figure.tight_layout()
    runs.save_figure(figure, path, dpi=100)
    plt.close(figure)


def samples_by_launch(health: list[dict[str, float]]) -> list[list[dict[str, float]]]:
    """The health samples of each launch (one process of main.py), in launch order; within a launch the newest
    logged step never decreases, so its first sample holds the step it resumed from."""
    return [[h for h in health if h['launch'] == launch] for launch in dict.fromkeys(h['launch'] for h in health)]


def wall_times(health: list[dict[str, float]], evals: list[dict[str, float]],
               exits: list[dict[str, Any]] = ()) -> list[str]:
    """Wall time of each finished 100k block of updates, summed over the launches that worked on it. A launch's part
    runs from its first health sample at or past the block's start (its first sample, when it resumed inside the
    block: its start-up is counted) to its first sample at or past the block's end, or to its last sample when it
    stopped inside the block; so each part is exact to within one sampling period, and updates that a resume redid
    count twice. A launch's recorded exit (`exits`: time and step reached) is its last point, so the block in which
    a run finishes, between samples, is measured too. Also without the block's closing evaluation (its eval.csv
    `time/eval_seconds`)."""
    ends = {int(e['launch']): {'time': e['time'], 'step': e['reached'], 'launch': e['launch']} for e in exits}
    launches = samples_by_launch(health)
    for samples in launches:
        end = ends.get(int(samples[0]['launch']))
        if end is not None and end['step'] >= samples[-1]['step']:
            samples.append(end)
    cells = []
    for start in range(0, paper_budget.UPDATES, paper_budget.EVAL_INTERVAL):
        end = start + paper_budget.EVAL_INTERVAL
        parts = [samples for samples in launches if samples[0]['step'] < end and samples[-1]['step'] > start]
        if not parts or parts[-1][-1]['step'] < end:
            continue
        seconds = 0.0
        for samples in parts:
            first = next(h for h in samples if h['step'] >= start)
            last = next((h for h in samples if h['step'] >= end), samples[-1])
            seconds += last['time'] - first['time']
        evaluation = next((r.get('time/eval_seconds', 0.0) for r in evals if int(r['step']) == end), 0.0)
        spanned = '' if len(parts) == 1 else \
            f', launches #{int(parts[0][0]["launch"])}–#{int(parts[-1][0]["launch"])} with their start-ups'
        cells.append(f'{start // 1000}k–{end // 1000}k: {seconds / 3600:.2f} h ({(seconds - evaluation) / 3600:.2f} h '
                     f'without evaluation{spanned})')
    return cells


def memory_growth(health: list[dict[str, float]]) -> list[str]:
    """Per launch, the change of resident memory from the first sample after the launch's first evaluation to its
    last sample. The first evaluation builds the evaluation envs (about 2 GB here, once per process), so earlier
    samples would read that one-time cost as growth; a relaunch starts a new process, so launches are kept apart.
    A launch resumed from step r first evaluates at the next evaluation step after r (at step 1 when r = 0); the
    samples whose newest logged step is past that one come after that evaluation ended."""
    cells = []
    for samples in samples_by_launch(health):
        launch, resumed_from = int(samples[0]['launch']), int(samples[0]['step'])
        first_eval = 1 if resumed_from == 0 else (resumed_from // paper_budget.EVAL_INTERVAL + 1) * \
            paper_budget.EVAL_INTERVAL
        after = [h for h in samples if h['step'] > first_eval]
        if len(after) > 1:
            cells.append(f'#{launch}: {after[-1]["rss_mib"] - after[0]["rss_mib"]:+.0f} MiB from update '
                         f'{int(after[0]["step"]):,} to {int(after[-1]["step"]):,}')
    return cells


def health_rows(work_dir: str, agent: str) -> list[tuple[str, str]]:
    health = read_health(work_dir, agent)
    logged = events(work_dir, agent)
    if not health:
        return [('samples', 'none yet')]
    rss = np.array([h['rss_mib'] for h in health])
    steps = np.array([h['step'] for h in health])
    launches = [e for e in logged if e['event'] == 'launch']
    exits = [e for e in logged if e['event'] == 'exit']
    first_seed = paper_budget.seed_dirs(work_dir, agent)[0]
    return [
        ('newest logged step', f'{int(steps[-1]):,}'),
        ('peak resident memory (job and children)', f'{max(h["peak_rss_mib"] for h in health):.0f} MiB'),
        ('resident memory, last sample', f'{rss[-1]:.0f} MiB'),
        ('resident memory growth within a launch, after its first evaluation',
         '; '.join(memory_growth(health)) or 'not measured yet'),
        ('wall time per 100k updates', '; '.join(wall_times(health, runs.read_csv_if_any(runs.eval_csv_path(
            first_seed)), exits)) or 'no complete block yet'),
        ('checkpoints on disk (both seeds), last sample',
         f'{int(health[-1]["checkpoint_count"])} files, {health[-1]["checkpoint_mib"]:.1f} MiB'),
        ('most checkpoints on disk at once', f'{int(max(h["checkpoint_count"] for h in health))}'),
        ('launches (resumed from step)', ', '.join(f'#{e["launch"]}: {e["resumed_from"]:,}' for e in launches)),
        ('exits (status, step reached)', ', '.join(f'#{e["launch"]}: {e["returncode"]}, {e["reached"]:,}'
                                                   for e in exits) or 'none yet'),
        ('NaN-guard trips', str(sum(bool(e.get('nan_guard')) for e in exits))),
        ('load average (1 min) over the samples', f'median {np.median([h["load1"] for h in health]):.1f}, '
                                                  f'max {max(h["load1"] for h in health):.1f}'),
    ]


def health_table(work_dir: str) -> list[str]:
    """The health rows of both agents side by side ('none yet' where an agent has no samples)."""
    per_agent = {agent: dict(health_rows(work_dir, agent)) for agent in AGENTS}
    labels = list(dict.fromkeys(label for rows in per_agent.values() for label in rows if label != 'samples'))
    return [f'| {label} | ' + ' | '.join(rows.get(label, rows.get('samples', '')) for rows in per_agent.values()) + ' |'
            for label in labels]


def generated_part(work_dir: str, results_dir: str) -> list[str]:
    rows = {agent: eval_rows(work_dir, agent) for agent in AGENTS}
    reached = {agent: max((int(r['step']) for seed in per_seed for r in seed), default=0)
               for agent, per_seed in rows.items()}
    plot(work_dir, os.path.join(results_dir, 'paper-budget-cpu.png'))
    data_files = [os.path.join(work_dir, 'data', f'{paper_budget.DATASET}{suffix}.npz') for suffix in ('', '-val')]
    lines = [
        '# MFQL and FQL at the papers\' budget on CPU: 1M updates on cube-single task2', '',
        f'Generated by `python -m benchmarks.paper_budget report --work_dir=DIR --results_dir=benchmarks/results` '
        f'({tracking.cpu_description()}, no GPU). '
        + (f'Both runs finished: evaluated to update {paper_budget.UPDATES:,}.'
         if min(reached.values()) >= paper_budget.UPDATES else
         f'Evaluated so far: FQL to update {reached["fql"]:,}, MFQL to update {reached["mfql"]:,} of '
         f'{paper_budget.UPDATES:,}.'), '',
        '## Learning curves', '', '![learning curves](paper-budget-cpu.png)', '',
        f'## Success at every evaluation ({paper_budget.EVAL_EPISODES} episodes per seed)', '',
        *evaluation_table(rows), '',
        '## MFQL against FQL at 1M (pooled over the 900k and 1M evaluations of both seeds)', '',
        *comparison(rows), '',
        '## Long-run health', '',
        '| | FQL | MFQL |', '|---|---|---|',
        *health_table(work_dir), '',
        '## Data and commands', '',
        'Dataset files: ' + ', '.join(f'`{os.path.basename(p)}` ({os.path.getsize(p) / 2**20:.0f} MiB)'
                                      for p in data_files if os.path.exists(p)) + '.', '',
        '```',
        *[shlex.join(['python', *paper_budget.main_command(agent, 'DIR')[1:]]) for agent in AGENTS],
        '```', '',
        'Versions: ' + ', '.join(f'{k} {v}' for k, v in tracking.library_versions().items()) + '.', '',
    ]
    return lines


def write(work_dir: str, results_dir: str) -> int:
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, 'paper-budget-cpu.md')
    kept = ''
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        if MARKER in text:
            kept = text[text.index(MARKER):]
    runs.write_atomically(path, '\n'.join(generated_part(work_dir, results_dir)) + '\n' + (kept or MARKER + '\n'))
    print(f'wrote {path}')
    return 0
