"""Parameters + optimiser state in one pytree, and the field helper every agent uses.

Convention (as in FQL): a loss sees gradients only through the `params=grad_params` it passes
explicitly; a call without `params=` uses the current (non-differentiated) parameters.
"""

import functools
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import optax


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
        info = dict(info, grad_norm=optax.global_norm(grads))
        return self.apply_gradients(grads), info


def polyak_update(online: Any, target: Any, tau: float) -> Any:
    """target <- tau * online + (1 - tau) * target, leaf by leaf."""
    return jax.tree_util.tree_map(lambda o, t: tau * o + (1.0 - tau) * t, online, target)
