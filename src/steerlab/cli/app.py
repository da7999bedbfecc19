"""The ``steerlab`` command: builds the typer app and registers every command on it.

Each command lives in one module of this package, by group (:mod:`~steerlab.cli.vectors`,
:mod:`~steerlab.cli.generation`, :mod:`~steerlab.cli.evaluation`,
:mod:`~steerlab.cli.calibration`, :mod:`~steerlab.cli.training`,
:mod:`~steerlab.cli.datasets`, :mod:`~steerlab.cli.exporting`, :mod:`~steerlab.cli.folding`,
:mod:`~steerlab.cli.demo`, :mod:`~steerlab.cli.running`, :mod:`~steerlab.cli.reporting`,
:mod:`~steerlab.cli.serving`);
those modules import only :mod:`steerlab.cli.common` and the library, and this one is the
only place that knows them all. A new command is a function in one of them (or a new module)
plus one line below.
"""

from __future__ import annotations

import typer

from steerlab.cli import (
    calibration,
    datasets,
    demo,
    evaluation,
    exporting,
    folding,
    generation,
    reporting,
    running,
    serving,
    training,
    vectors,
)
from steerlab.cli.common import (
    EXIT_BAD_INPUT,
    DebugOpt,
    OneLineErrorGroup,
    ThreadsOpt,
    VersionOpt,
    one_line,
    print_error,
    set_debug,
)
from steerlab.errors import SteerlabError


def root(
    version: VersionOpt = False,
    debug: DebugOpt = False,
    threads: ThreadsOpt = None,
) -> None:
    """steerlab: extract, apply and measure steering vectors."""
    from steerlab.threads import set_threads

    set_debug(debug)
    try:
        set_threads(threads)
    except SteerlabError as exc:
        print_error(one_line(str(exc)))
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    from transformers.utils import logging as hf_logging

    # steerlab shows its own progress; transformers' bars would clutter stderr and errors.
    hf_logging.disable_progress_bar()


def dataset_app() -> typer.Typer:
    """The ``steerlab dataset`` group: ``qa`` and ``pairs``."""
    group = typer.Typer(help=datasets.GROUP_HELP, no_args_is_help=True)
    group.command("qa")(datasets.qa)
    group.command("pairs")(datasets.pairs)
    return group


def export_app() -> typer.Typer:
    """The ``steerlab export`` group: ``gguf``."""
    group = typer.Typer(help=exporting.EXPORT_HELP, no_args_is_help=True)
    group.callback()(_group)  # with one command typer would otherwise merge it into the group
    group.command("gguf")(exporting.export_gguf)
    return group


def import_app() -> typer.Typer:
    """The ``steerlab import`` group: ``gguf``."""
    group = typer.Typer(help=exporting.IMPORT_HELP, no_args_is_help=True)
    group.callback()(_group)
    group.command("gguf")(exporting.import_gguf)
    return group


def _group() -> None:
    """A command group (its help is the group's)."""


app = typer.Typer(
    name="steerlab",
    cls=OneLineErrorGroup,
    help="Steer language models through their internal representations; measure the cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.callback()(root)
# The order of `steerlab --help`.
app.command()(vectors.extract)
app.command()(vectors.info)
app.command()(generation.generate)
app.command()(evaluation.sweep)
app.command()(calibration.calibrate)
app.command()(vectors.diff)
app.command()(vectors.compare)
app.add_typer(export_app(), name="export")
app.add_typer(import_app(), name="import")
app.command()(folding.fold)
app.command()(evaluation.matrix)
app.command()(demo.demo)
app.add_typer(dataset_app(), name="dataset")
app.command()(training.finetune)
app.command()(training.tune)
app.command(name="eval")(evaluation.eval_models)
app.command()(running.run)
app.command()(reporting.report)
app.command()(running.schema)
app.command()(serving.serve)


def main() -> None:
    """Console-script entry point (``steerlab = "steerlab.cli.app:main"``)."""
    app(prog_name="steerlab")


if __name__ == "__main__":  # pragma: no cover
    main()
