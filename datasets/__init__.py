"""Task data and envs: environment families, OGBench and D4RL loading, local generation, device-resident sampling.

This package shadows the Hugging Face `datasets` package when code runs from the project root;
mfql does not use that package.

Modules (import them directly; this package imports nothing heavy):
- `families`: what kind of task a name is (OGBench states, OGBench frames, D4RL) and everything that depends on it:
  data (`ensure_data`, `load`), the evaluation env, the reported metric, the default budget, frames
  (`family_of(task)`, `expand_env_names(spec)`); one module per family, imported without JAX, MuJoCo or OGBench.
- `names`: the task-name grammar, OGBench single-task and the paper's D4RL names (`parse_env_name`,
  `is_d4rl_name`); pure Python.
- `ogbench_data`: `load_datasets(env_name, dataset_dir)` -> (train, val) numpy dicts via OGBench's loader, after
  validating the files; `download`; `make_env(env_name)` for evaluation.
- `d4rl`: optional D4RL AntMaze/Adroit tasks via Minari (`load_dataset(name)`, `make_env(name)`,
  `normalized_score(name, returns)`); needs `pip install -r requirements-d4rl.txt`.
- `generate`: local generation of manipulation datasets (`python -m datasets.generate ...`).
- `frames`: frame stacking and augmentation of visual datasets on the device.
- `buffer`: device-resident `Dataset`, `ReplayBuffer`, `sample_union`, `dataset_from_numpy`.
"""
