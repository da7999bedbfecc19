"""A run folder on disk: its file names, its provenance record, its loss log, its checkpoints.

A run folder is what :func:`steerlab.tuning.finetune` (and :func:`~steerlab.tuning.tune`)
write into::

    steerlab_finetune.json      provenance: versions, seed, data hash, config, base model
    loss_log.jsonl              one row per logged step (step, loss, learning_rate, ...)
    checkpoint-N/               the last two Trainer checkpoints (resumption)
    merged/                     a plain transformers checkpoint, when asked for

:func:`read_run` is the one typed reader of the provenance record (the CLI and
``evaluate`` read the tuned layers and the training data from it); the rest serves
:func:`~steerlab.tuning.finetune`: writing the record and the loss log, finding the
checkpoint to resume from and refusing to resume a run made with other settings.

Nothing here needs torch; a record is plain JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steerlab.errors import DataError, SpecError
from steerlab.provenance import atomic_write
from steerlab.validation import is_int

PROVENANCE_FILE = "steerlab_finetune.json"
LOSS_LOG_FILE = "loss_log.jsonl"
MERGED_DIR = "merged"
CHECKPOINT_PREFIX = "checkpoint-"


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class RunRecord:
    """The provenance record of a fine-tune or representation-tuning run, typed.

    Attributes:
        folder: the run folder.
        kind: ``"finetune"`` or ``"represent"`` (what wrote the run).
        status: ``"running"`` (or killed) or ``"complete"``.
        base_model: the model the run started from (``"default"`` for the embedded one).
        method: ``"lora"`` or ``"layers"`` (full fine-tune of some decoder layers).
        trained_layers: the decoder layers trained (empty for LoRA runs).
        target_modules: the modules LoRA adapted (empty for layer fine-tunes).
        representation_layers: for representation tuning, the layers of the cosine loss
            (the ``"layers"`` of the ``"representation"`` section); None otherwise.
        data_source: where the training data came from (``source``, ``kind``,
            ``items_sha256``...), when the run recorded it; None otherwise.
        raw: the whole record as read.
    """

    folder: Path
    kind: str
    status: str
    base_model: str
    method: str
    trained_layers: tuple[int, ...]
    target_modules: tuple[str, ...]
    representation_layers: tuple[int, ...] | None
    data_source: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)


def read_run(folder: str | os.PathLike[str]) -> RunRecord | None:
    """The provenance record of the run in ``folder``; None when it holds none.

    Args:
        folder: a run folder (``~`` is expanded), or any folder.

    Returns:
        The :class:`RunRecord`, or None when ``folder`` has no ``steerlab_finetune.json``
        (not a run folder, or no folder at all).

    Raises:
        DataError: one line naming the file when it is not readable JSON or a field has
            the wrong type.
    """
    path = Path(folder).expanduser() / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    representation = raw.get("representation")
    if representation is not None and not isinstance(representation, dict):
        raise DataError(f"{path}: field 'representation' is not an object")
    data_source = raw.get("data_source")
    if data_source is not None and not isinstance(data_source, dict):
        raise DataError(f"{path}: field 'data_source' is not an object")
    rep_layers = None if representation is None else representation.get("layers")
    return RunRecord(
        folder=path.parent,
        kind=_text(raw, "kind", path, "finetune"),
        status=_text(raw, "status", path, "complete"),
        base_model=_text(raw, "base_model", path),
        method=_text(raw, "method", path),
        trained_layers=_layers(raw.get("trained_layers"), "trained_layers", path) or (),
        target_modules=_names(raw.get("target_modules"), "target_modules", path),
        representation_layers=_layers(rep_layers, "representation.layers", path),
        data_source=data_source,
        raw=raw,
    )


def _text(raw: Mapping[str, Any], key: str, path: Path, default: str | None = None) -> str:
    value = raw.get(key, default)
    if value is None:
        raise DataError(f"{path}: missing field '{key}'")
    if not isinstance(value, str):
        raise DataError(f"{path}: field '{key}' is not a string: {value!r}")
    return value


def _layers(value: Any, key: str, path: Path) -> tuple[int, ...] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and all(is_int(v) and v >= 0 for v in value)
    if not ok:
        raise DataError(f"{path}: field '{key}' is not a list of layer indices: {value!r}")
    return tuple(value)


def _names(value: Any, key: str, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{path}: field '{key}' is not a list of names: {value!r}")
    return tuple(value)


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    """Write a provenance record atomically (indented, keys sorted)."""
    with atomic_write(path) as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.write("\n")


# --------------------------------------------------------------------------- the loss log


def log_rows(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The loss-log rows of a Trainer's ``log_history`` (training and evaluation losses)."""
    # Keys in one canonical order (step first, then sorted): a row logged live and the same
    # row restored from a checkpoint's trainer_state.json (saved with sorted keys) must be
    # written identically, so a resumed run's log equals an uninterrupted run's.
    rows = []
    for entry in history:
        if "loss" in entry or "eval_loss" in entry:
            row = {"step": int(entry.get("step", 0))}
            row.update({k: entry[k] for k in sorted(entry) if k != "step"})
            rows.append(row)
    return rows


def write_loss_log(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """Write the loss log atomically from a Trainer's ``log_history``."""
    with atomic_write(path) as handle:
        for row in log_rows(history):
            handle.write(json.dumps(row) + "\n")


def read_loss_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a ``loss_log.jsonl`` (a run folder's path works too)."""
    source = Path(path)
    if source.is_dir():
        source = source / LOSS_LOG_FILE
    rows = []
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


# --------------------------------------------------------------------------- checkpoints


def _complete_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` is a whole checkpoint: the Trainer writes ``trainer_state.json``
    last, and not atomically, so a process killed while writing it leaves it cut short."""
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(state, dict)


def last_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The complete ``checkpoint-N`` folder with the highest N in ``output_dir``, if any.

    A checkpoint that a killed process left half-written is skipped (training resumes from
    the one before, and the Trainer writes that step's checkpoint again).
    """
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found: list[tuple[int, Path]] = []
    for child in folder.iterdir():
        suffix = child.name[len(CHECKPOINT_PREFIX) :]
        if child.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit() and child.is_dir():
            found.append((int(suffix), child))
    for _, child in sorted(found, reverse=True):
        if _complete_checkpoint(child):
            return child
    return None


def checkpoints(folder: Path) -> Iterator[Path]:
    """Every ``checkpoint-*`` folder in ``folder``, complete or not."""
    if folder.is_dir():
        for child in folder.iterdir():
            if child.is_dir() and child.name.startswith(CHECKPOINT_PREFIX):
                yield child


# --------------------------------------------------------------------------- resumption

_FINGERPRINT_KEYS = ("kind", "method", "base_model", "data_sha256", "target_modules")
_FINGERPRINT_TRAINED = "trained_layers"
_FINGERPRINT_CONFIG_KEYS = ("rank", "alpha", "max_length")
# Record fields whose dict value (when present) is part of the fingerprint, key by key.
_FINGERPRINT_SECTIONS = ("representation",)


def fingerprint(record: Mapping[str, Any]) -> dict[str, Any]:
    """What must not change for a run to resume: method, model, data, adapter shape."""
    config = record.get("config") or {}
    out = {key: record.get(key) for key in (*_FINGERPRINT_KEYS, _FINGERPRINT_TRAINED)}
    out.update({key: config.get(key) for key in _FINGERPRINT_CONFIG_KEYS})
    if out.get("method") == "layers":
        out.pop("rank")
        out.pop("alpha")
    # Sections a feature adds (e.g. representation tuning's settings and vector hash);
    # runs recorded without them compare on the keys above only.
    for section in _FINGERPRINT_SECTIONS:
        value = record.get(section)
        if isinstance(value, Mapping):
            out.update({f"{section}.{key}": item for key, item in value.items()})
    return out


def check_output_dir(folder: Path) -> None:
    """Refuse a folder holding a model checkpoint that steerlab did not write.

    Raises:
        SpecError: ``config.json`` without a provenance record.
    """
    if (folder / "config.json").is_file() and not (folder / PROVENANCE_FILE).is_file():
        raise SpecError(
            f"{folder}: holds a model checkpoint that is not a steerlab fine-tune; "
            "choose another output folder"
        )


def _raw_record(folder: Path) -> dict[str, Any] | None:
    """The earlier record as JSON, or None when there is none or it is unreadable."""
    path = folder / PROVENANCE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def check_resumable(folder: Path, record: Mapping[str, Any]) -> None:
    """Refuse to resume the run in ``folder`` with a new record of other settings.

    An unreadable earlier record is not checked (the run rewrites its record).

    Raises:
        SpecError: naming the first setting that differs, old and new.
    """
    previous = _raw_record(folder)
    if previous is None:
        return
    old, new = fingerprint(previous), fingerprint(record)
    for key, value in new.items():
        if key in old and old[key] != value:
            raise SpecError(
                f"{folder}: holds a run with another {key} ({old[key]!r}, now {value!r}); "
                "use another output folder or resume=False"
            )
