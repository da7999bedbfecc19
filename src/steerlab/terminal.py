"""Terminal output that stays readable in a log file or a CI log.

rich lays tables out for 80 columns whenever the output is not a terminal, and cuts long
words in narrow columns to ``name…``. The CLI prints through a :class:`LogConsole`, which
keeps the terminal's width on a terminal but lays out for :data:`LOG_WIDTH` columns when
the output goes to a file or a pipe (``$COLUMNS`` still wins when set), and every table it
prints goes through :func:`fold`, so a name that does not fit its column wraps onto the
next line instead of being cut.

Tables built by the library (the suite's, the sweep's) fold their columns themselves, so they
stay whole on any console.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.table import Table

LOG_WIDTH = 200
"""Columns a table may use when the output is not a terminal."""


class LogConsole(Console):
    """A rich console as wide as :data:`LOG_WIDTH` when writing to a file or a pipe.

    Takes rich's ``Console`` arguments; an explicit ``width`` (or a size set later) wins.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fixed_width = kwargs.get("width") is not None

    @property
    def size(self) -> ConsoleDimensions:
        """The terminal's size on a terminal (or with ``$COLUMNS``, or when set); else at
        least :data:`LOG_WIDTH` columns."""
        dimensions = super().size
        fixed = self._fixed_width or os.environ.get("COLUMNS", "").strip().isdigit()
        if fixed or self.is_terminal:
            return dimensions
        return ConsoleDimensions(max(dimensions.width, LOG_WIDTH), dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]
        self._fixed_width = True

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """rich's ``print``, with every table's columns folded (see :func:`fold`)."""
        for item in objects:
            if isinstance(item, Table):
                fold(item)
        super().print(*objects, **kwargs)


def fold(table: Table) -> Table:
    """Make every column of ``table`` wrap words that do not fit (never ``name…``).

    Returns:
        The same table.
    """
    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = False
    return table
