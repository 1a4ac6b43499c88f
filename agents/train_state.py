"""Parameters + optimiser state in one pytree, and the helpers every agent uses (fields, Polyak
averaging, observation z-scoring).

Convention (as in FQL): a loss sees gradients only through the `params=grad_params` it passes
explicitly; a call without `params=` uses the current (non-differentiated) parameters.
"""

import functools
import math
from typing import Any, Callable, Mapping

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from agents.config_rules import check_config


def nonpytree_field(**kwargs: Any) -> Any:
    """A dataclass field that is static (part of the treedef, not a leaf): configs, modules, optimisers."""
    return flax.struct.field(pytree_node=False, **kwargs)


class TrainState(flax.struct.PyTreeNode):
    """`params` and `opt_state` are leaves; the module and optimiser are static."""

    step: jax.Array
    module: nn.Module = nonpytree_field()
    params: Any
    tx: optax.GradientTransformation = nonpytree_field()
    opt_state: Any

    @classmethod
    def create(cls, module: nn.Module, params: Any, tx: optax.GradientTransformation) -> 'TrainState':
        return cls(step=jax.numpy.zeros((), jax.numpy.int32), module=module, params=params, tx=tx,
                   opt_state=tx.init(params))

    def __call__(self, *args: Any, params: Any = None, method: Callable | None = None, **kwargs: Any) -> Any:
        variables = {'params': self.params if params is None else params}
        return self.module.apply(variables, *args, method=method, **kwargs)

    def select(self, name: str) -> Callable[..., Any]:
        """The sub-module `name` of a `ModuleDict`, as a function taking the same `params=` keyword."""
        return functools.partial(self, name=name)

    def apply_gradients(self, grads: Any) -> 'TrainState':
        updates, new_opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                            opt_state=new_opt_state)

    def apply_loss_fn(self, loss_fn: Callable[[Any], tuple[jax.Array, dict]]) -> tuple['TrainState', dict]:
        """One gradient step on `loss_fn(params) -> (loss, info)`; adds the gradient norm to `info`."""
        grads, info = jax.grad(loss_fn, has_aux=True)(self.params)
        info = dict(info, grad_norm=optax.tree.norm(grads))
        return self.apply_gradients(grads), info


def polyak_update(online: Any, target: Any, tau: float) -> Any:
    """target <- tau * online + (1 - tau) * target, leaf by leaf."""
    return jax.tree_util.tree_map(lambda o, t: tau * o + (1.0 - tau) * t, online, target)


def check_observation_statistics(config: Mapping[str, Any], observation_dim: int) -> None:
    """With `normalize_observations`, `observation_mean` and `observation_std` must be sequences of
    `observation_dim` finite floats (std > 0). The training loop fills them from the training set
    (`datasets.buffer.observation_statistics`); raises ValueError naming the problem otherwise."""
    if not config.get('normalize_observations', False):
        return
    for key in ('observation_mean', 'observation_std'):
        values = config[key]
        if values is None:
            raise ValueError(f'normalize_observations=True needs {key}: the training loop sets it from the training '
                             'set (datasets.buffer.observation_statistics); set it yourself when building an agent '
                             'outside the loop')
        if len(values) != observation_dim:
            raise ValueError(f'{key} has {len(values)} entries but observations have {observation_dim} dimensions')
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f'{key} has non-finite entries: {values}')
    if min(config['observation_std']) <= 0.0:
        raise ValueError(f"observation_std must be positive, got {config['observation_std']}")


def normalize_observations(config: Mapping[str, Any], observations: jax.Array) -> jax.Array:
    """(s − μ) / σ with the training set's statistics if `normalize_observations`, else s unchanged (the
    computation is then skipped entirely, not multiplied by 1; agents without the key never normalise).
    observations (..., obs_dim)."""
    if not config.get('normalize_observations', False):
        return observations
    mean = jnp.asarray(config['observation_mean'], observations.dtype)
    std = jnp.asarray(config['observation_std'], observations.dtype)
    return (observations - mean) / std


def normalize_batch(config: Mapping[str, Any], batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """`batch` with its `observations` and `next_observations` passed through `normalize_observations`."""
    return batch | {key: normalize_observations(config, batch[key]) for key in ('observations', 'next_observations')}


def freeze_config(config: Mapping[str, Any], defaults: Mapping[str, Any], example_batch: Mapping[str, jax.Array],
                  batch_keys: tuple[str, ...] = ('observations', 'actions', 'rewards', 'masks', 'next_observations'),
                  rules: Mapping[str, Any] | None = None) -> flax.core.FrozenDict:
    """The agent's config checked against its `get_config()` (`defaults`) and the example batch, with `action_dim`
    added, lists made tuples, and frozen (hashable, so jit can key on it).

    `rules` is the agent file's `CONFIG_RULES`: every value is checked with `agents.config_rules.check_config`, the
    checker main.py and sweep.py run before any compute, so that an agent built directly (tests, benchmarks, a
    notebook) refuses the same values with the same message (ConfigValueError, a ValueError).

    The agent's name is read from `defaults['agent_name']`, so it is written once, in get_config (a copied agent file
    with only its agent_name changed works). Raises ValueError naming the problem: a missing key, another agent's
    `agent_name`, a batch key the losses read but `example_batch` lacks, observations not (B, dim) (states) or
    (B, H, W, C) (frames, with an `encoder`), actions not (B, dim), or bad observation statistics.
    """
    config = dict(config.to_dict() if hasattr(config, 'to_dict') else config)
    agent_name = defaults['agent_name']
    missing = sorted(set(defaults) - set(config))
    if missing:
        raise ValueError(f'{agent_name} config is missing keys {missing}')
    if rules is not None:
        check_config(config, rules, defaults)
    if config['agent_name'] != agent_name:
        raise ValueError(f"{agent_name} config has agent_name={config['agent_name']!r}, expected {agent_name!r}")
    absent = [key for key in batch_keys if key not in example_batch]
    if absent:
        raise ValueError(f'example_batch lacks keys {absent}')
    observation_shape = '(B, dim)' if config.get('encoder') is None else '(B, H, W, C) frames'
    if example_batch['observations'].ndim != (2 if config.get('encoder') is None else 4) \
            or example_batch['actions'].ndim != 2:
        raise ValueError(f'example_batch observations must be {observation_shape} and actions (B, dim), got shapes '
                         f"{example_batch['observations'].shape} and {example_batch['actions'].shape}")
    config['action_dim'] = int(example_batch['actions'].shape[-1])
    config = {key: tuple(value) if isinstance(value, list) else value for key, value in config.items()}
    check_observation_statistics(config, example_batch['observations'].shape[-1])
    return flax.core.FrozenDict(config)
