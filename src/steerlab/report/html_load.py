"""Reading a run folder for the HTML report: run.json and each stage's stage.json, checked.

The run folder's layout and both files' formats are the runner's contract (``run.json``:
``steerlab-run/1``; ``stage.json``: ``steerlab-stage/1``). This module only reads them: it
checks every field the report shows and turns a missing or malformed file or field into a
one-line :class:`~steerlab.errors.DataError` naming the file and the field. Keys it does not
know are ignored, so newer runners stay readable.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steerlab.errors import DataError

__all__ = ["RunRecord", "StageRecord", "load_run"]

RUN_FORMAT = "steerlab-run/1"
STAGE_FORMAT = "steerlab-stage/1"
FINISHED = ("ran", "cached")
"""Statuses of a stage whose results exist."""


@dataclass(frozen=True)
class StageRecord:
    """One stage as the report shows it: its run.json entry, and its stage.json if finished.

    Attributes:
        name: the stage's name in the spec.
        kind: the stage kind (extract, sweep...).
        key: its content key (64 hex), or "" when not recorded.
        folder: its output folder, relative to the run folder ("" when not recorded).
        depends_on: names of the stages it reads.
        models: names of the spec's models it uses.
        status: ran, cached, pending, failed or skipped (see :func:`load_run`).
        wall_s: its wall time in seconds, when known.
        error: why it failed or did not finish, when known.
        record: its stage.json (checked), or None when the stage did not finish.
        note: the spec's sentence about the stage (run.json's, the spec as last run), if any.
    """

    name: str
    kind: str
    key: str
    folder: str
    depends_on: list[str]
    models: list[str]
    status: str
    wall_s: float | None
    error: str | None
    record: dict[str, Any] | None = None
    note: str | None = None

    @property
    def summary(self) -> dict[str, Any]:
        """The stage's summary (empty when it did not finish)."""
        return dict(self.record.get("summary") or {}) if self.record else {}


@dataclass(frozen=True)
class RunRecord:
    """A run folder read for the report: run.json's fields and the stages in run order."""

    run_dir: Path
    data: dict[str, Any]
    stages: list[StageRecord] = field(default_factory=list)


class _Checker:
    """Field checks for one JSON file: each failure is one line naming the file and field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> DataError:
        return DataError(f"{self.path}: {where}: {message}" if where else f"{self.path}: {message}")

    def of_type(self, value: Any, types: tuple[type, ...], what: str, where: str) -> Any:
        """``value`` if it is one of ``types`` (bools are not numbers), else a DataError."""
        is_bool = isinstance(value, bool)
        if isinstance(value, types) and not (is_bool and bool not in types):
            return value
        shown = json.dumps(value, ensure_ascii=False, default=str)
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        raise self.fail(where, f"expected {what}, got {shown}")

    def text(self, value: Any, where: str, optional: bool = True) -> str | None:
        if value is None and optional:
            return None
        return str(self.of_type(value, (str,), "a string", where))

    def number(self, value: Any, where: str) -> float | None:
        """A JSON number or null (NaN), as a float or None."""
        if value is None:
            return None
        number = float(self.of_type(value, (int, float), "a number or null", where))
        return None if math.isnan(number) else number

    def items(self, value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        return list(self.of_type(value, (list,), "a list", where))

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        return dict(self.of_type(value, (dict,), "an object", where))

    def inside(self, root: Path, relative: str, where: str) -> Path:
        """``root / relative``, refused when it is absolute or climbs out of the run folder."""
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise self.fail(where, f"{relative!r} is not a path inside the run folder")
        return root / relative


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object read from ``path``; a DataError naming the file if missing or malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got a {type(data).__name__}")
    return data


def load_run(run_dir: Path) -> RunRecord:
    """Read and check ``run_dir``'s run.json and every finished stage's stage.json.

    A stage counts as finished iff its stage.json exists (the runner writes it last). Its
    status is run.json's when that says ran or cached, else "ran" (the run was interrupted
    after the stage finished); a stage without stage.json keeps run.json's status, and one
    that run.json calls finished but lacks stage.json is "pending", with that as its error.

    Raises:
        DataError: ``run_dir`` is not a folder, or run.json or a stage.json is missing,
            malformed, of another format, or has a field of the wrong type.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "not a folder" if run_dir.exists() else "no such folder"
        raise DataError(f"{run_dir}: {what} (expected a run folder written by steerlab run)")
    run_path = run_dir / "run.json"
    if not run_path.is_file():
        raise DataError(f"{run_path}: not found (is {run_dir} a run folder of steerlab run?)")
    data = read_json(run_path)
    check = _Checker(run_path)
    if data.get("format") != RUN_FORMAT:
        raise check.fail("format", f"expected {RUN_FORMAT!r}, got {data.get('format')!r}")
    for key in (
        "name",
        "description",
        "spec_file",
        "spec_text",
        "spec_sha256",
        "started",
        "finished",
    ):
        check.text(data.get(key), key)
    check.mapping(data.get("provenance"), "provenance")
    stages = [
        _stage(run_dir, check, entry, f"stages[{i}]")
        for i, entry in enumerate(check.items(data.get("stages"), "stages"))
    ]
    return RunRecord(run_dir=run_dir, data=data, stages=stages)


def _stage(run_dir: Path, check: _Checker, entry: Any, where: str) -> StageRecord:
    """One run.json stage entry, with its stage.json when the stage finished."""
    entry = check.mapping(entry, where)
    name = check.text(entry.get("name"), f"{where}.name", optional=False) or ""
    folder = check.text(entry.get("folder"), f"{where}.folder") or ""
    status = check.text(entry.get("status"), f"{where}.status") or "pending"
    error = check.text(entry.get("error"), f"{where}.error")
    depends_on = [
        check.text(d, f"{where}.depends_on[{j}]", optional=False) or ""
        for j, d in enumerate(check.items(entry.get("depends_on"), f"{where}.depends_on"))
    ]
    models = [
        check.text(m, f"{where}.models[{j}]", optional=False) or ""
        for j, m in enumerate(check.items(entry.get("models"), f"{where}.models"))
    ]
    record = None
    if folder:
        stage_path = check.inside(run_dir, folder, f"{where}.folder") / "stage.json"
        if stage_path.is_file():
            record = _check_stage(stage_path, read_json(stage_path))
    wall_s = check.number(entry.get("wall_s"), f"{where}.wall_s")
    if record is not None:
        status = status if status in FINISHED else "ran"
        wall_s = record.get("wall_s", wall_s)
        error = None
    elif status in FINISHED:
        status = "pending"
        error = error or f"{folder or 'its folder'}/stage.json is missing: the stage did not finish"
    return StageRecord(
        name=name,
        kind=check.text(entry.get("kind"), f"{where}.kind") or "",
        key=check.text(entry.get("key"), f"{where}.key") or "",
        folder=folder,
        depends_on=depends_on,
        models=models,
        status=status,
        wall_s=wall_s,
        error=error,
        record=record,
        note=check.text(entry.get("note"), f"{where}.note"),
    )


def _check_stage(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """stage.json's fields that the report shows, checked (numbers' NaN as None)."""
    check = _Checker(path)
    if data.get("format") != STAGE_FORMAT:
        raise check.fail("format", f"expected {STAGE_FORMAT!r}, got {data.get('format')!r}")
    for key in ("name", "kind", "key", "library_version", "finished"):
        check.text(data.get(key), key)
    check.mapping(data.get("settings"), "settings")
    check.mapping(data.get("inputs"), "inputs")
    data = {**data, "wall_s": check.number(data.get("wall_s"), "wall_s")}
    summary = check.mapping(data.get("summary"), "summary")
    checked: dict[str, Any] = {"headline": check.text(summary.get("headline"), "summary.headline")}
    numbers = []
    for i, item in enumerate(check.items(summary.get("numbers"), "summary.numbers")):
        at = f"summary.numbers[{i}]"
        item = check.mapping(item, at)
        numbers.append(
            {
                "label": check.text(item.get("label"), f"{at}.label") or "",
                "value": check.number(item.get("value"), f"{at}.value"),
                "low": check.number(item.get("low"), f"{at}.low"),
                "high": check.number(item.get("high"), f"{at}.high"),
                "unit": check.text(item.get("unit"), f"{at}.unit") or "",
            }
        )
    checked["numbers"] = numbers
    tables = []
    for i, item in enumerate(check.items(summary.get("tables"), "summary.tables")):
        at = f"summary.tables[{i}]"
        item = check.mapping(item, at)
        columns = [
            check.of_type(c, (str, int, float), "a column name", f"{at}.columns[{j}]")
            for j, c in enumerate(check.items(item.get("columns"), f"{at}.columns"))
        ]
        rows = []
        for j, row in enumerate(check.items(item.get("rows"), f"{at}.rows")):
            cells = check.items(row, f"{at}.rows[{j}]")
            for k, cell in enumerate(cells):
                if cell is not None:
                    kinds = (str, int, float, bool)
                    check.of_type(cell, kinds, "a string, number or null", f"{at}.rows[{j}][{k}]")
            rows.append(cells)
        tables.append(
            {
                "title": check.text(item.get("title"), f"{at}.title") or "",
                "columns": columns,
                "rows": rows,
            }
        )
    checked["tables"] = tables
    checked["plots"] = _paths(check, summary, "plots")
    generations = []
    for i, item in enumerate(check.items(summary.get("generations"), "summary.generations")):
        at = f"summary.generations[{i}]"
        item = check.mapping(item, at)
        column = check.of_type(
            item.get("column", ""), (str, int, float), "a string", f"{at}.column"
        )
        generations.append(
            {
                "prompt": check.text(item.get("prompt"), f"{at}.prompt") or "",
                "column": column if isinstance(column, str) else f"{column:+g}",
                "text": check.text(item.get("text"), f"{at}.text") or "",
            }
        )
    checked["generations"] = generations
    checked["text"] = [
        check.text(line, f"summary.text[{i}]", optional=False)
        for i, line in enumerate(check.items(summary.get("text"), "summary.text"))
    ]
    checked["files"] = _paths(check, summary, "files")
    return {**data, "summary": checked}


def _paths(check: _Checker, summary: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """A summary's ``plots`` or ``files``: ``{"title"|"label": str, "path": str}`` entries
    (files also ``"bytes"``: the size, or None).

    Paths are relative to the stage folder and may not leave it.
    """
    name = "title" if kind == "plots" else "label"
    entries = []
    for i, item in enumerate(check.items(summary.get(kind), f"summary.{kind}")):
        at = f"summary.{kind}[{i}]"
        item = check.mapping(item, at)
        path = check.text(item.get("path"), f"{at}.path", optional=False) or ""
        check.inside(check.path.parent, path, f"{at}.path")
        entry: dict[str, Any] = {name: check.text(item.get(name), f"{at}.{name}") or ""}
        entry["path"] = path
        if kind == "files":
            entry["bytes"] = check.number(item.get("bytes"), f"{at}.bytes")
        entries.append(entry)
    return entries
