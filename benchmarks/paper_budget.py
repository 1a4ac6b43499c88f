"""MFQL and FQL at the papers' budget (1M updates) on CPU, with the health of a long run recorded.

    python -m benchmarks.paper_budget run --agent=fql --work_dir=DIR     # one agent's run; resumes itself
    python -m benchmarks.paper_budget run --agent=mfql --work_dir=DIR
    python -m benchmarks.paper_budget report --work_dir=DIR --results_dir=benchmarks/results

`run` launches (or resumes) one agent's `main.py` job on `cube-single-play-singletask-task2-v0` with 2 vmapped seeds,
1M updates, and relaunches it with `--resume` until its `final.json` files exist. While the job runs it samples,
every `--sample_seconds`, the job's resident memory (current and peak, over the process and its children), the
newest logged step, the load average and the checkpoints on disk, into `health/<run>.csv`. Every launch and exit
(with the step it resumed from and the exit status) goes to `health/<run>.events.jsonl`. Both files are appended,
so a killed driver loses nothing it wrote; start it again and it goes on. To stop without losing updates, send
SIGUSR2 to the `main.py` job (`pkill -USR2 -f 'run_name=fql_task2_1m'`): it checkpoints at its next fused call and
exits with `training.preemption.EXIT_STATUS`, and the driver records the exit and returns instead of relaunching.

`report` reads the run folders and the health files and writes the Markdown report and its PNG (success against
updates for both agents and seeds, with Q and α beside it). The hand-written reading of the results (prediction,
comparison with published numbers) lives below the generated part, in the same file, and is kept on rewrite.

Settings (the one deliberate reduction from the papers: 2×256 MLPs for every actor and critic):
- FQL: its cube-single preset (α = 300, γ = 0.99, lr 3e-4), 2×256 actor and critic.
- MFQL: the paper's cube-double task2 preset (α₀ = 120, T = 50, best-of-5; nothing is published for cube-single),
  the authors' actor learning-rate schedule (1e-4, 5% warm-up, cosine to 1e-5) and α warm-up over the 1M updates,
  their observation z-scoring, and γ = 0.99 (FQL's, and the 40k CPU study's) instead of their OGBench 0.995.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import runs
from training.preemption import EXIT_STATUS

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK = 'cube-single-play-singletask-task2-v0'
DATASET = 'cube-single-play-v0'
NUM_EPISODES = 1000  # OGBench's published size for cube-single (+100 validation episodes)
SEEDS = (0, 1)
UPDATES = 1_000_000
EVAL_INTERVAL = 100_000
EVAL_EPISODES = 50
SAVE_INTERVAL = 25_000
LOG_INTERVAL = 5_000
SMALL_NETS = {
    'fql': ['--agent.actor_hidden_dims=(256,256)', '--agent.value_hidden_dims=(256,256)'],
    'mfql': ['--agent.actor_arch=mlp', '--agent.actor_mlp_hidden_dims=(256,256)',
             '--agent.value_hidden_dims=(256,256)'],
}
AGENT_FLAGS = {
    'fql': [],  # the cube-single preset gives α = 300 and γ = 0.99
    'mfql': ['--agent.alpha=120', '--agent.time_steps=50', '--agent.num_candidates_eval=5',
             '--agent.num_candidates_target=5', '--agent.discount=0.99'],
}
MAX_FAILED_LAUNCHES = 3  # consecutive launches that end without progress before the driver gives up


def run_name(agent: str) -> str:
    return f'{agent}_task2_1m'


def main_command(agent: str, work_dir: str) -> list[str]:
    """The main.py command of one agent's run (relaunched unchanged with --resume)."""
    return [sys.executable, 'main.py', f'--agent=agents/{agent}.py', f'--env_name={TASK}',
            f'--dataset_dir={os.path.join(work_dir, "data")}', f'--save_dir={os.path.join(work_dir, "exp")}',
            f'--run_name={run_name(agent)}', f'--seeds={",".join(map(str, SEEDS))}',
            f'--offline_steps={UPDATES}', f'--eval_interval={EVAL_INTERVAL}', f'--eval_episodes={EVAL_EPISODES}',
            f'--log_interval={LOG_INTERVAL}', f'--save_interval={SAVE_INTERVAL}',
            f'--generate_missing_data={NUM_EPISODES}', '--progress_bar=false', '--resume',
            *SMALL_NETS[agent], *AGENT_FLAGS[agent]]


def task_folder(work_dir: str, agent: str) -> str:
    return runs.task_dir(runs.run_root(os.path.join(work_dir, 'exp'), run_name(agent)), TASK)


def seed_dirs(work_dir: str, agent: str) -> list[str]:
    """The seed folders of an agent's run, in seed order."""
    return runs.seed_dirs(task_folder(work_dir, agent), SEEDS)


def common_checkpoint_step(work_dir: str, agent: str) -> int:
    """The newest step every seed has a checkpoint for (0 when none): where a relaunch resumes."""
    return runs.common_checkpoint_step(seed_dirs(work_dir, agent)) or 0


def last_logged_step(csv_path: str) -> int:
    """The step of the last complete row of a CSV log (0 if none)."""
    try:
        with open(csv_path, 'rb') as f:
            f.seek(max(0, os.path.getsize(csv_path) - 4096))
            lines = f.read().decode(errors='replace').split('\n')[:-1]  # complete lines only
    except OSError:
        return 0
    for line in reversed(lines):
        head = line.split(',', 1)[0]
        if head.isdigit():
            return int(head)
    return 0


def finished(work_dir: str, agent: str) -> bool:
    return all(runs.finished_at(directory) == UPDATES for directory in seed_dirs(work_dir, agent))


def process_tree_memory(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB, summed over a process and its descendants (Linux /proc)."""
    rss = peak = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f'/proc/{current}/status') as f:
                fields = dict(line.split(':', 1) for line in f if ':' in line)
            rss += int(fields.get('VmRSS', '0 kB').split()[0]) / 1024
            peak += int(fields.get('VmHWM', '0 kB').split()[0]) / 1024
            for task in os.listdir(f'/proc/{current}/task'):
                with open(f'/proc/{current}/task/{task}/children') as f:
                    pending.extend(int(child) for child in f.read().split())
        except (OSError, ValueError):
            continue
    return rss, peak


def append_line(path: str, text: str) -> None:
    with open(path, 'a') as f:
        f.write(text + '\n')
        f.flush()
        os.fsync(f.fileno())


HEALTH_COLUMNS = ('time', 'launch', 'step', 'rss_mib', 'peak_rss_mib', 'load1', 'checkpoint_count',
                  'checkpoint_mib')


def sample_health(work_dir: str, agent: str, pid: int, launch: int) -> dict[str, float]:
    rss, peak = process_tree_memory(pid)
    dirs = seed_dirs(work_dir, agent)
    files = [runs.checkpoint_path(d, step) for d in dirs for step in runs.checkpoint_steps(d)]
    sizes = []
    for path in files:
        try:
            sizes.append(os.path.getsize(path))
        except OSError:  # pruned while listed
            pass
    with open('/proc/loadavg') as f:
        load1 = float(f.read().split()[0])
    step = last_logged_step(runs.train_csv_path(dirs[0]))
    return dict(time=round(time.time(), 1), launch=launch, step=step, rss_mib=round(rss, 1),
                peak_rss_mib=round(peak, 1), load1=load1, checkpoint_count=len(files),
                checkpoint_mib=round(sum(sizes) / 2**20, 2))


def run(agent: str, work_dir: str, sample_seconds: float) -> int:
    health_dir = os.path.join(work_dir, 'health')
    os.makedirs(health_dir, exist_ok=True)
    health_csv = os.path.join(health_dir, f'{run_name(agent)}.csv')
    events = os.path.join(health_dir, f'{run_name(agent)}.events.jsonl')
    if not os.path.exists(health_csv):
        append_line(health_csv, ','.join(HEALTH_COLUMNS))
    with open(events) if os.path.exists(events) else open(os.devnull) as f:
        launch = sum(1 for line in f if '"event": "launch"' in line)
    command = main_command(agent, work_dir)
    failures = 0
    while not finished(work_dir, agent):
        launch += 1
        resumed_from = common_checkpoint_step(work_dir, agent)
        append_line(events, json.dumps(dict(event='launch', launch=launch, time=round(time.time(), 1),
                                            resumed_from=resumed_from, command=shlex.join(command[1:]))))
        log_path = os.path.join(health_dir, f'{run_name(agent)}.launch{launch}.log')
        with open(log_path, 'w') as log:
            job = subprocess.Popen(command, cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT)
            while job.poll() is None:
                row = sample_health(work_dir, agent, job.pid, launch)
                append_line(health_csv, ','.join(str(row[c]) for c in HEALTH_COLUMNS))
                try:
                    job.wait(timeout=sample_seconds)
                except subprocess.TimeoutExpired:
                    pass
        with open(log_path, errors='replace') as f:
            tail = f.read()[-2000:]
        progressed = common_checkpoint_step(work_dir, agent) > resumed_from
        append_line(events, json.dumps(dict(event='exit', launch=launch, time=round(time.time(), 1),
                                            returncode=job.returncode, reached=common_checkpoint_step(work_dir, agent),
                                            nan_guard='non-finite training metric' in tail,
                                            tail=tail.strip().splitlines()[-1:] if tail.strip() else [])))
        # Stopped from outside (killed, or asked to stop: SIGUSR2/SIGTERM make main.py checkpoint at its next call
        # and exit with EXIT_STATUS): leave the rest to the next start of the driver.
        if job.returncode in (-2, -9, -15, 130, 137, 143, EXIT_STATUS):
            return job.returncode
        failures = 0 if progressed else failures + 1
        if failures >= MAX_FAILED_LAUNCHES:
            print(f'error: {failures} launches in a row made no progress; see {log_path}', file=sys.stderr)
            return 1
    print(f'{run_name(agent)}: finished ({UPDATES} updates, seeds {SEEDS})')
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)
    run_parser = commands.add_parser('run', help="launch or resume one agent's 1M-update run",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run_parser.add_argument('--agent', choices=sorted(SMALL_NETS), required=True)
    run_parser.add_argument('--work_dir', default='exp/paper_budget', help='data/, exp/ and health/ go here')
    run_parser.add_argument('--sample_seconds', type=float, default=60.0, help='health sampling period')
    report_parser = commands.add_parser('report', help='write the report from the runs so far',
                                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    report_parser.add_argument('--work_dir', default='exp/paper_budget')
    report_parser.add_argument('--results_dir', default=os.path.join('exp', 'benchmarks'),
                               help='where the report goes (the committed one: --results_dir=benchmarks/results)')
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    work_dir = os.path.abspath(args.work_dir)
    if args.command == 'run':
        return run(args.agent, work_dir, args.sample_seconds)
    from benchmarks import paper_budget_report
    return paper_budget_report.write(work_dir, args.results_dir)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
