"""Agent registry. Each agent file defines one `flax.struct.PyTreeNode` agent and `get_config()`.

The interface the training loop relies on (and nothing more):
  Agent.create(rng, example_batch, config) -> agent          (pure; `jax.vmap`-able over rng)
  agent.update(batch) -> (agent, info)                       (pure, jitted; info: dict of scalars; the entries
                                                             whose key ends in 'loss' are checked for NaN/inf at
                                                             every update, the rest only where they are logged)
  agent.sample_actions(observations, rng, temperature=1.0)   ((B, obs_dim) -> (B, action_dim) in [-1, 1]; the
                                                             policy's noise is scaled by temperature)
  agent.total_loss(batch, grad_params, rng) -> (loss, info)  (used for the validation loss)
Optional config key read by the loop: `evaluation_temperature` (default 1), the temperature evaluation acts with
(0 for agents evaluated with their deterministic action, as FQL's code evaluates IQL and ReBRAC).
Imports are lazy so that one agent's import error never breaks another.
"""

import importlib

AGENTS = {
    'mfql': ('agents.mfql', 'MFQLAgent'),
    'fql': ('agents.fql', 'FQLAgent'),
    'rebrac': ('agents.rebrac', 'ReBRACAgent'),
    'iql': ('agents.iql', 'IQLAgent'),
    'ifql': ('agents.ifql', 'IFQLAgent'),
}


def get_agent_class(name: str) -> type:
    """The agent class registered under `name` (the `agent_name` key of its config)."""
    if name not in AGENTS:
        raise ValueError(f'unknown agent {name!r}; registered agents: {sorted(AGENTS)}')
    module_name, class_name = AGENTS[name]
    return getattr(importlib.import_module(module_name), class_name)
