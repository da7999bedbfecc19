"""The ``steerlab`` command line: a package of command modules over the public Python API.

:mod:`steerlab.cli.app` builds the typer app and registers the commands;
:mod:`steerlab.cli.common` holds the shared options, console, error handling and parsers;
one module per command group holds its plain typer command functions. Nothing in the
library imports this package.

``steerlab.cli.app`` (and ``steerlab.cli.main``) re-export the app and the console-script
entry point, so ``steerlab.cli:main`` and ``steerlab.cli.app:main`` both work. Because of
that re-export, the attribute ``steerlab.cli.app`` is the typer app, not the module: reach
the module with ``from steerlab.cli.app import ...``.
"""

from steerlab.cli.app import app, main, root

__all__ = ["app", "main", "root"]
