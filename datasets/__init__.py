"""OGBench datasets: loading and validation, local generation, device-resident sampling.

This package shadows the Hugging Face `datasets` package when code runs from the project root;
mfql does not use that package.

Modules (import them directly; this package imports nothing heavy):
- `names`: the task-name grammar, OGBench single-task and the paper's D4RL names (`parse_env_name`,
  `is_d4rl_name`, `expand_env_names`); pure Python, it imports no other module of the package.
- `ogbench_data`: `load_datasets(env_name, dataset_dir, generate_missing_episodes)` -> (train, val) numpy
  dicts via OGBench's loader, after validating the files; `make_env(env_name)` for evaluation.
- `d4rl`: optional D4RL AntMaze/Adroit tasks via Minari (`load_dataset(name)`, `make_env(name)`,
  `normalized_score(name, returns)`); needs `pip install -r requirements-d4rl.txt`.
- `generate`: local generation of manipulation datasets (`python -m datasets.generate ...`).
- `buffer`: device-resident `Dataset`, `ReplayBuffer`, `sample_union`, `dataset_from_numpy`.
"""
