"""OGBench single-task envs observed as states: `<suite>-<dataset kind>-singletask[-task<k>]-v0` (`datasets.names`).

The default family: it takes every name no other family claims, so an unknown name gets the grammar's error with
close valid names. Data: OGBench's files in --dataset_dir (`datasets.ogbench_data`), downloaded when missing, or
generated locally for the manipulation suites (`datasets.generate`, main.py's --generate_missing_data=N).
Reported metric: OGBench's success (a fraction), per seed the mean of the last three evaluations, as the papers
report it; default budget 1M offline updates (FQL, MeanFlowQL).
"""

import os
from typing import Any

from datasets import names
from datasets.families import Dataset, Family


class OGBenchFamily(Family):
    name = 'ogbench'
    benchmark = 'OGBench'
    metric = 'success'
    metric_key = 'evaluation/success_last3'
    unit = 'fraction'
    default_offline_steps = 1_000_000
    default = True

    def claims(self, name: str) -> bool:  # not consulted: the default family takes what no other family claims
        return '-singletask' in name and not names.is_visual(name)

    def expand(self, entry: str) -> list[str]:
        return names.expand_singletask_entry(entry)

    def environment_of(self, task: str) -> str:
        return names.parse_env_name(task).environment

    def short_name(self, task: str) -> str:
        return f'task{names.parse_env_name(task).effective_task}'

    def ensure_data(self, task: str, dataset_dir: str, generate_missing_episodes: int | None = None,
                    generate_workers: int = 1, show_progress: bool = True) -> None:
        """Both files of the task's dataset: there already, else OGBench's download, else (manipulation suites, with
        `generate_missing_episodes`) generated locally with seed 0; else DatasetError naming the remedies."""
        from datasets import ogbench_data

        spec = names.parse_env_name(task)
        dataset_dir = os.path.expanduser(dataset_dir)
        paths = ogbench_data.dataset_file_paths(spec.dataset_name, dataset_dir)
        if all(os.path.exists(path) for path in paths):
            return
        reason = ogbench_data.download(spec.dataset_name, dataset_dir)
        missing = [path for path in paths if not os.path.exists(path)]
        if not missing:
            return
        failure = f'OGBench dataset file(s) {", ".join(missing)} not found and the download failed ({reason})'
        download_hint = ogbench_data.download_hint(spec.dataset_name, dataset_dir)
        if not spec.is_manipulation:
            raise ogbench_data.DatasetError(
                f'{failure}. {spec.suite} datasets were collected with OGBench\'s pretrained expert policies, which '
                f'the ogbench package does not include, so they cannot be generated here: {download_hint}.')
        if len(missing) < len(paths):
            raise ogbench_data.DatasetError(
                f'{failure}. The other split exists; not generating over it: restore the missing file, or delete '
                'both and generate them together.')
        from datasets import generate

        if generate_missing_episodes is None:
            raise ogbench_data.DatasetError(
                f'{failure}. Generate it locally: rerun main.py with --generate_missing_data=N (N train episodes; '
                f'OGBench\'s file has {generate.PUBLISHED_NUM_EPISODES[spec.suite]}), or run `python -m '
                f'datasets.generate --env_name={spec.dataset_name} --dataset_dir={dataset_dir}`; or {download_hint}.')
        print(f'{spec.dataset_name}: not in {dataset_dir} and the download failed ({reason}); generating '
              f'{generate_missing_episodes} episodes locally (seed 0).', flush=True)
        generate.generate_dataset(spec.dataset_name, generate_missing_episodes, 0, dataset_dir,
                                  workers=generate_workers, show_progress=show_progress)

    def load(self, task: str, dataset_dir: str) -> tuple[Dataset, Dataset]:
        from datasets import ogbench_data
        return ogbench_data.load_datasets(task, dataset_dir)

    def make_env(self, task: str, frame_stack: int = 1, online: bool = False) -> Any:
        from datasets import ogbench_data
        return ogbench_data.make_env(task, frame_stack=frame_stack)  # the online env is the evaluation env


FAMILY = OGBenchFamily()
