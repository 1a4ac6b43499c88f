"""The papers' 18 D4RL tasks through Minari: `antmaze-<dataset>-v2` and `<hand task>-<dataset>-v1` (`datasets.d4rl`).

Needs the optional extra (`pip install -r requirements-d4rl.txt`). Data: Minari's store, downloaded when missing;
no validation split. Reported metric: D4RL's normalised score ×100 of the final evaluation (FQL, MeanFlowQL); each
task is its own environment. Default budget 500K offline updates. The online env of AntMaze shifts rewards by −1, as
the training data.
"""

import dataclasses
import functools
from typing import Any, Callable

import numpy as np

from datasets import names
from datasets.families import Dataset, Family


class D4RLFamily(Family):
    name = 'd4rl'
    benchmark = 'D4RL'
    metric = 'score'
    metric_key = 'evaluation/score'
    unit = 'D4RL normalised, ×100'
    # FQL's README: D4RL offline commands pass --offline_steps=500000; its offline-to-online ones keep main.py's 1M
    # (MeanFlowQL runs 1M + 1M too).
    default_offline_steps = 500_000
    default_offline_steps_before_online = 1_000_000

    def claims(self, name: str) -> bool:
        return names.looks_like_d4rl_name(name) and not names.is_family_spec(name)

    def expand(self, entry: str) -> list[str]:
        return [names.check_d4rl_name(entry)]

    def environment_of(self, task: str) -> str:
        return names.check_d4rl_name(task)

    def check_installed(self, task: str) -> None:
        from datasets import d4rl
        d4rl.check_extra(task)

    def ensure_data(self, task: str, dataset_dir: str, generate_missing_episodes: int | None = None,
                    generate_workers: int = 1, show_progress: bool = True, download: bool = False) -> None:
        """Minari's own store holds the data, and Minari's download is its only source (`dataset_dir`, generation
        and `download` do not apply)."""
        from datasets import d4rl
        d4rl.ensure_dataset(task)

    def load(self, task: str, dataset_dir: str) -> tuple[Dataset, None]:
        from datasets import d4rl
        return d4rl.load_dataset(task)

    def make_env(self, task: str, frame_stack: int = 1, online: bool = False) -> Any:
        from datasets import d4rl
        return d4rl.make_env(task, online=online)

    def return_to_score(self, task: str) -> Callable[[np.ndarray], np.ndarray]:
        from datasets import d4rl
        return functools.partial(d4rl.normalized_score, task)

    def provenance(self, task: str, dataset_dir: str) -> dict[str, Any]:
        from datasets import d4rl
        return {'d4rl': dataclasses.asdict(d4rl.parse_d4rl_name(task))}


FAMILY = D4RLFamily()
