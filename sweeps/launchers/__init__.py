"""Launchers: one module per way of running a sweep's jobs, each defining `LAUNCHER` (a `base.Launcher`).

`--launcher=NAME` picks a module of this package (local, slurm, debug, ...); `--launcher=PATH.py` loads any file that
defines `LAUNCHER`, so a new launcher is one new file.
"""

import importlib
import importlib.util
import os
import re
import sys

from sweeps import SweepError
from sweeps.launchers.base import Launcher

LAUNCHERS_DIR = os.path.dirname(os.path.abspath(__file__))
_NOT_LAUNCHERS = ('__init__', 'base')


def registered_launchers() -> list[str]:
    """The names of the launcher modules of this package, sorted."""
    return sorted(name[:-3] for name in os.listdir(LAUNCHERS_DIR)
                  if name.endswith('.py') and name[:-3] not in _NOT_LAUNCHERS)


def launcher_class(name_or_path: str) -> type[Launcher]:
    """The `LAUNCHER` of a registered launcher module or of a launcher file; SweepError naming the choices."""
    if name_or_path.endswith('.py'):
        path = os.path.abspath(os.path.expanduser(name_or_path))
        if not os.path.isfile(path):
            raise SweepError(f'--launcher={name_or_path}: no such file')
        module_name = '_launcher_file_' + re.sub(r'\W', '_', path)
        if module_name not in sys.modules:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        module = sys.modules[module_name]
    elif name_or_path in registered_launchers():
        module = importlib.import_module(f'sweeps.launchers.{name_or_path}')
    else:
        raise SweepError(f'unknown launcher {name_or_path!r}; launchers: {", ".join(registered_launchers())}, or the '
                         'path of a file defining LAUNCHER (see sweeps/launchers/base.py)')
    found = getattr(module, 'LAUNCHER', None)
    if not (isinstance(found, type) and issubclass(found, Launcher)):
        raise SweepError(f'--launcher={name_or_path} defines no LAUNCHER subclass of sweeps.launchers.base.Launcher')
    return found
