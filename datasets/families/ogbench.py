"""OGBench single-task envs observed as states: `<suite>-<dataset kind>-singletask[-task<k>]-v0` (`datasets.names`).

The default family: it takes every name no other family claims, so an unknown name gets the grammar's error with
close valid names. Data: OGBench's files in --dataset_dir (`datasets.ogbench_data`); when missing, downloaded only with main.py's
--download_missing_data, or generated locally for the manipulation suites only with --generate_missing_data=N
(`datasets.generate`); the source is recorded beside the files and each run's flags.json names the files' md5.
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

    def data_files(self, task: str, dataset_dir: str) -> list[str]:
        from datasets import ogbench_data
        return list(ogbench_data.dataset_file_paths(names.parse_env_name(task).dataset_name, dataset_dir))

    def ensure_data(self, task: str, dataset_dir: str, generate_missing_episodes: int | None = None,
                    generate_workers: int = 1, show_progress: bool = True, download: bool = False) -> None:
        """Both files of the task's dataset: there already; else, as asked, OGBench's download (`download`) or
        `generate_missing_episodes` episodes generated locally with seed 0 (manipulation suites), never one as a
        fallback of the other, so that one command gives the same data with or without network; else
        DatasetError naming the remedies. The source is recorded beside the files (`ogbench_data.record_source`)."""
        from datasets import ogbench_data

        spec = names.parse_env_name(task)
        dataset_dir = os.path.expanduser(dataset_dir)
        paths = ogbench_data.dataset_file_paths(spec.dataset_name, dataset_dir)
        missing = [path for path in paths if not os.path.exists(path)]
        if not missing:
            return
        download_hint = ogbench_data.download_hint(spec.dataset_name, dataset_dir)
        if len(missing) < len(paths):
            raise ogbench_data.DatasetError(
                f'OGBench dataset file {missing[0]} not found, but the other split exists; not fetching over it: '
                'restore the missing file, or delete both and fetch them together.')
        if download:
            reason = ogbench_data.download(spec.dataset_name, dataset_dir)
            if all(os.path.exists(path) for path in paths):
                ogbench_data.record_source(spec.dataset_name, dataset_dir, dict(
                    source='downloaded', url=f'{ogbench_data.OGBENCH_DATASET_URL}/{spec.dataset_name}.npz'))
                return
            raise ogbench_data.DatasetError(
                f'OGBench dataset file(s) {", ".join(missing)} not found and --download_missing_data failed '
                f'({reason or "no files written"}); {download_hint}')
        found = f'OGBench dataset file(s) {", ".join(missing)} not found'
        if not spec.is_manipulation:
            raise ogbench_data.DatasetError(
                f'{found}. {spec.suite} datasets were collected with OGBench\'s pretrained expert policies, which '
                f'the ogbench package does not include, so they cannot be generated here: rerun with '
                f'--download_missing_data, or {download_hint}.')
        from datasets import generate

        if generate_missing_episodes is None:
            raise ogbench_data.DatasetError(
                f'{found}. Rerun main.py with --download_missing_data (OGBench\'s file, '
                f'{generate.PUBLISHED_NUM_EPISODES[spec.suite]} episodes), or generate it locally with '
                f'--generate_missing_data=N (N train episodes), or run `python -m datasets.generate '
                f'--env_name={spec.dataset_name} --dataset_dir={dataset_dir}`; or {download_hint}.')
        print(f'{spec.dataset_name}: not in {dataset_dir}; generating {generate_missing_episodes} episodes locally '
              '(seed 0; --download_missing_data fetches OGBench\'s file instead).', flush=True)
        generate.generate_dataset(spec.dataset_name, generate_missing_episodes, 0, dataset_dir,
                                  workers=generate_workers, show_progress=show_progress)

    def load(self, task: str, dataset_dir: str) -> tuple[Dataset, Dataset]:
        from datasets import ogbench_data
        return ogbench_data.load_datasets(task, dataset_dir)

    def make_env(self, task: str, frame_stack: int = 1, online: bool = False) -> Any:
        from datasets import ogbench_data
        return ogbench_data.make_env(task, frame_stack=frame_stack)  # the online env is the evaluation env

    def provenance(self, task: str, dataset_dir: str) -> dict[str, Any]:
        """The dataset a run trained on: name, where it came from, and each file's size and md5."""
        from datasets import ogbench_data
        return {'dataset': ogbench_data.dataset_provenance(names.parse_env_name(task).dataset_name, dataset_dir)}


FAMILY = OGBenchFamily()
