"""Deprecated import path: use :mod:`steerlab.cli.training` (``tune``),
:mod:`steerlab.cli.evaluation` (``eval``) and :mod:`steerlab.cli.app` (the app)."""

import typer

from steerlab.cli.training import default_completions, parse_layer_weights


def register(app: typer.Typer) -> None:
    """Add the ``tune`` and ``eval`` commands to ``app``; deprecated, see the module."""
    from steerlab.cli.evaluation import eval_models
    from steerlab.cli.training import tune

    app.command()(tune)
    app.command(name="eval")(eval_models)


__all__ = ["default_completions", "parse_layer_weights", "register"]
