"""Provenance recorded in every artifact: library version, git revision, hashes, time."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import IO, Any


def library_version() -> str:
    """The installed steerlab version (``0+unknown`` when running from an uninstalled tree)."""
    try:
        return metadata.version("steerlab")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def git_revision() -> str | None:
    """The git commit of the steerlab source tree, when it is a checkout; else None."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = out.stdout.strip()
    return revision if out.returncode == 0 and revision else None


def utc_now() -> str:
    """Current time as an ISO-8601 UTC string with seconds precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def sha256_of_records(records: Iterable[object]) -> str:
    """Stable sha256 of JSON-serialisable records (order matters, key order does not)."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def sha256_of_file(path: str | os.PathLike[str], chunk_size: int = 1 << 22) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _temporary_beside(target: Path) -> Path:
    """A new empty file beside ``target`` with ordinary permissions (0o666 & ~umask).

    mkstemp makes files private to their owner; artifacts should be as readable as files
    written the ordinary way.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def remove_stale_temporaries(folder: str | os.PathLike[str], prefixes: Iterable[str] = ()) -> None:
    """Delete what a killed run left half-written in ``folder``: our hidden temporaries.

    Those are the ``.NAME.*.tmp`` files of :func:`atomic_write` / :func:`atomic_path`, and
    hidden folders whose names start with one of ``prefixes`` (e.g. ``".final."``). A resumed
    run calls this first; two runs writing one folder at once are not supported anyway.
    """
    root = Path(folder)
    if not root.is_dir():
        return
    for entry in root.iterdir():
        name = entry.name
        if entry.is_file() and name.startswith(".") and name.endswith(".tmp"):
            entry.unlink(missing_ok=True)
        elif entry.is_dir() and any(name.startswith(p) for p in prefixes):
            shutil.rmtree(entry, ignore_errors=True)


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    A crash or exception inside the block leaves no partial file behind.
    """
    tmp_name = _temporary_beside(Path(path))
    target = Path(path)
    try:
        encoding = None if "b" in mode else "utf-8"
        with open(tmp_name, mode, encoding=encoding) as handle:
            yield handle
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for libraries that write files themselves.

    The temporary file is renamed over ``path`` only when the block succeeds.
    """
    target = Path(path)
    tmp = _temporary_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
