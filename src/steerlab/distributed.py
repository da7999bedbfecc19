"""Work shared over processes: which process this is, its share of the units, and part files.

One purpose: let a resumable run (a sweep, an evaluation, a matrix) be spread over the
processes that ``accelerate launch`` or ``torchrun`` start. Each process takes every
``world``-th unit of work (:func:`share`), writes what it finishes to its own *part file*
(:func:`part_path`: ``results.part1.jsonl`` next to ``results.jsonl``), and after a
:func:`barrier` the main process (rank 0) merges the parts into the final file and removes
them (:func:`remove_parts`). A rerun reads the merged file *and* every part file as done
(:func:`existing_parts`), so a killed process's finished units are kept and only its missing
ones are redone, whatever the number of processes of the rerun.

A process belongs to a group when the launcher's environment says so (``WORLD_SIZE`` > 1 and
``RANK``); the group is then set up through :class:`accelerate.PartialState` (gloo on CPU,
nccl on GPU) on first use. A single process (no launcher) sets up nothing: :func:`world_size`
is 1, :func:`barrier` does nothing and no part file is ever written.

Work that one process does for all (a stage of an experiment that does not share its work)
runs inside :func:`single_process` on the main process, which then hands its outcome to the
others with :func:`broadcast`.
"""

from __future__ import annotations

import atexit
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

__all__ = [
    "barrier",
    "broadcast",
    "default_device",
    "existing_parts",
    "is_main_process",
    "local_rank",
    "local_world_size",
    "part_path",
    "rank",
    "read_with_parts",
    "remove_parts",
    "share",
    "single_process",
    "world_size",
]

T = TypeVar("T")

WAIT_LIMIT = timedelta(hours=12)
"""How long a process waits at a :func:`barrier` for the others (torch's default, 30 min, is
shorter than one model's evaluation can be: the shares of an evaluation are whole models).
A process that dies does not leave the others waiting that long: the launcher stops them."""

_PART = re.compile(r"\.part(\d+)$")


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


_alone = 0
"""How many :func:`single_process` blocks this process is inside (0: none)."""


def world_size() -> int:
    """How many processes share the work: ``WORLD_SIZE`` from the launcher, else 1.

    1 inside :func:`single_process`, whatever the launcher says.
    """
    return 1 if _alone else max(_env_int("WORLD_SIZE", 1), 1)


@contextmanager
def single_process() -> Iterator[None]:
    """Work as a process of its own inside the block, even under a launcher.

    For work that one process does for all while the others wait (e.g. at a
    :func:`broadcast`): inside, :func:`world_size` is 1, so what it calls that would share its
    units (e.g. the sweep inside a calibration) takes them all, waits for nobody at a
    :func:`barrier` and writes no part file; :func:`default_device` is the loader's default.
    """
    global _alone
    _alone += 1
    try:
        yield
    finally:
        _alone -= 1


def rank() -> int:
    """This process's index among :func:`world_size` processes (0 in a single process)."""
    return _env_int("RANK", 0) if world_size() > 1 else 0


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``; 0 in a single process)."""
    return _env_int("LOCAL_RANK", rank()) if world_size() > 1 else 0


def local_world_size() -> int:
    """How many of the processes run on this machine (``LOCAL_WORLD_SIZE``; 1 alone)."""
    return max(_env_int("LOCAL_WORLD_SIZE", world_size()), 1) if world_size() > 1 else 1


def is_main_process() -> bool:
    """Whether this process prints, plots and merges (rank 0; always true alone)."""
    return rank() == 0


def default_device() -> str | None:
    """The device this process loads its model on when none is given.

    Returns:
        None in a single process (the loader's own default); with several processes,
        ``cuda:LOCAL_RANK`` when CUDA is available (one GPU per process), else ``"cpu"``.
    """
    if world_size() == 1:
        return None
    import torch

    return f"cuda:{local_rank()}" if torch.cuda.is_available() else "cpu"


def _state() -> object | None:
    """The process group (set up once, through accelerate), or None in a single process."""
    if world_size() == 1:
        return None
    # Imported here: accelerate (and its process group) only matter under a launcher.
    import torch
    from accelerate import PartialState

    # cpu=True where there is no GPU: accelerate's default sets up no group at all on a CPU
    # machine (gloo is only chosen for a CPU run).
    state = PartialState(cpu=not torch.cuda.is_available(), timeout=WAIT_LIMIT)
    global _closing_registered
    if not _closing_registered:
        _closing_registered = True
        atexit.register(_close)
    return state


_closing_registered = False


def _close() -> None:
    """Take the process group down at exit (torch warns about one left up)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    state = _state()
    if state is not None:
        state.wait_for_everyone()  # type: ignore[attr-defined]


def broadcast(value: T, source: int = 0) -> T:
    """Process ``source``'s ``value``, on every process (``value`` itself in a single process).

    Every process must call it (the others' ``value`` is ignored, e.g. None); it returns on
    each once ``source`` has sent, so what ``source`` wrote before calling it is there for
    the others to read. The value travels pickled (through
    :func:`accelerate.utils.broadcast_object_list`): keep it small (a message, a list of
    names).
    """
    if _state() is None:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value]
    broadcast_object_list(box, from_process=source)
    return box[0]


def share(units: Sequence[T]) -> list[T]:
    """This process's units: unit ``i`` goes to rank ``i % world_size()``, in order.

    Every process must pass the same sequence (e.g. the units still to do, read before any
    process starts writing), so the shares are disjoint and together cover ``units``.
    """
    world, me = world_size(), rank()
    return [unit for index, unit in enumerate(units) if index % world == me]


def part_path(path: str | os.PathLike[str], index: int | None = None) -> Path:
    """The part file of process ``index`` (default: this one) for the final file ``path``.

    ``results.jsonl`` -> ``results.part1.jsonl`` (next to it, same suffix).
    """
    file = Path(path)
    number = rank() if index is None else index
    return file.with_name(f"{file.stem}.part{number}{file.suffix}")


def existing_parts(path: str | os.PathLike[str]) -> list[Path]:
    """Every part file of ``path`` on disk (left by any number of processes), by index."""
    file = Path(path)
    found: list[tuple[int, Path]] = []
    for candidate in file.parent.glob(f"{file.stem}.part*{file.suffix}"):
        match = _PART.search(candidate.name[: len(candidate.name) - len(file.suffix)])
        if match and candidate.is_file():
            found.append((int(match.group(1)), candidate))
    return [p for _, p in sorted(found)]


def remove_parts(path: str | os.PathLike[str]) -> None:
    """Delete the part files of ``path`` (after the merged file holds their rows)."""
    for part in existing_parts(path):
        part.unlink(missing_ok=True)


def read_with_parts(path: str | os.PathLike[str], read: Callable[[Path], list[T]]) -> list[T]:
    """The rows of ``path`` (when it exists) followed by those of each of its part files.

    Args:
        path: the final (merged) file.
        read: reads one file's rows (e.g. ``lambda p: read_rows(p, SweepRow.from_json)``).

    Returns:
        Every row on disk, the merged file's first, then the parts' by index; a row that is
        in two files appears twice (the caller keys them, the later one winning).
    """
    file = Path(path)
    rows = read(file) if file.is_file() else []
    for part in existing_parts(file):
        rows += read(part)
    return rows
