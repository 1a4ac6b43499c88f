"""main.py's command line, one job per module (main.py itself is flags -> plan -> run):
- `agent_args`: the --agent file and --agent.KEY flags, checked before absl parses them; `--helpagent`'s table;
- `plan`: every flag checked and every per-task choice made (tasks and their families, presets, frame settings,
  budgets, seeds, run folders) before any data is loaded or anything computed;
- `output`: printing to a pipe whose reader may stop early (`| head`) without a traceback.
Both stop with one `error: ...` line (SystemExit) on bad input.
"""
