"""Deprecated import path: use :mod:`steerlab.cli.datasets` (the commands) and
:mod:`steerlab.cli.app` (the app that registers them)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the ``dataset`` group (``qa``, ``pairs``) to ``app``; deprecated, see the module."""
    from steerlab.cli.app import dataset_app

    app.add_typer(dataset_app(), name="dataset")


__all__ = ["register"]
