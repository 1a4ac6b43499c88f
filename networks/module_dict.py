"""A container that holds several named modules under one parameter tree."""

from typing import Any

import flax.linen as nn


class ModuleDict(nn.Module):
    """Holds named sub-modules; `apply(..., name=key)` runs one of them.

    Init (`name=None`) runs every module on `inputs[key]` (a tuple of positional args) so that
    the whole parameter tree is created at once. Parameters live under `params/modules_<key>`.
    """

    modules: dict[str, nn.Module]

    @nn.compact
    def __call__(self, *args: Any, name: str | None = None, **kwargs: Any) -> Any:
        if name is None:
            inputs = kwargs
            if set(inputs) != set(self.modules):
                raise ValueError(f'init needs inputs for exactly {sorted(self.modules)}, got {sorted(inputs)}')
            return {key: self.modules[key](*inputs[key]) for key in self.modules}
        if name not in self.modules:
            raise KeyError(f'unknown module {name!r}; have {sorted(self.modules)}')
        return self.modules[name](*args, **kwargs)
