"""The ``plugins`` setting: the user's modules that register losses, metric kinds, growth actions, executors or
dataset kinds, imported first wherever a run's settings are read (the driver, every worker, the views)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from ..errors import ConfigError


def import_plugins(names: Iterable[str], source: str = "plugins") -> None:
    """Import the modules named in a ``plugins`` setting, in order, before any other setting is checked: each
    registers its losses, metric kinds or executors at import, so the names it adds work everywhere a built-in
    name does. The driver does this when it reads the settings, every worker before it runs a candidate. A module
    that is not there is one ConfigError naming it; an error raised by the module's own code is its own."""
    for name in names:
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise ConfigError(f"{source}: {name!r} is not a module name; plugins lists importable modules, e.g."
                              ' ["my_losses"] or ["mylab.gan.losses"]')
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise  # a module the plugin imports is missing: the plugin's own error, with its traceback
            raise ConfigError(f"{source}: cannot import the plugin module {name!r} ({exc}); put the folder that holds"
                              " it on PYTHONPATH, or install it") from None
