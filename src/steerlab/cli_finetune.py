"""Deprecated import path: use :mod:`steerlab.cli.training` (the command),
:mod:`steerlab.cli.common` (``parse_target_modules``, ``model_reference``) and
:mod:`steerlab.cli.app` (the app that registers the commands)."""

import typer

from steerlab.cli.common import parse_target_modules


def register(app: typer.Typer) -> None:
    """Add the ``finetune`` command to ``app``; deprecated, see the module."""
    from steerlab.cli.training import finetune

    app.command()(finetune)


__all__ = ["parse_target_modules", "register"]
