"""Read a YAML experiment spec and remember the line of every key, for one-line errors.

PyYAML's ``safe_load`` forgets where things were and silently keeps the last of two equal
keys; a spec error must instead say ``FILE:LINE: stages.sweep.coefficients: ...``. This module
composes the YAML node tree (which carries positions), refuses duplicate keys and non-string
keys, and builds plain Python data plus a table from key paths to line numbers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from steerlab.errors import SpecError

KeyPath = tuple[str | int, ...]


class SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with YAML 1.2's floats: ``1e-4`` is a number, not text.

    PyYAML follows YAML 1.1, where an exponent needs a dot (``1.0e-4``); a spec's ``lr: 1e-4``
    would otherwise be refused as "not a number".
    """


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass(frozen=True)
class LocatedYaml:
    """A YAML document as plain data, with the 1-based line of every mapping key and item.

    Attributes:
        path: the file it was read from.
        text: the file's text, as written.
        data: the document as dicts, lists, strings, numbers, booleans and None.
        lines: key path (e.g. ``("stages", "sweep", "coefficients")``) -> line number.
    """

    path: Path
    text: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int:
        """The line of ``path``, or of its nearest ancestor that has one (1 for the root)."""
        keys = tuple(path)
        while keys:
            if keys in self.lines:
                return self.lines[keys]
            keys = keys[:-1]
        return 1

    def error(self, path: Sequence[str | int], message: str) -> SpecError:
        """A one-line error naming the file, the line and the dotted key path."""
        where = ".".join(str(key) for key in path)
        return SpecError(
            f"{self.path}:{self.line_of(path)}: {where + ': ' if where else ''}{message}"
        )


def load_yaml(path: str | os.PathLike[str]) -> LocatedYaml:
    """Read ``path`` as one YAML document whose top level is a mapping.

    Raises:
        SpecError: the file cannot be read, is not valid YAML (with the line of the problem),
            has a duplicate or non-string key, or its top level is not a mapping.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{file}: no such spec file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{file}: cannot read the spec ({exc})") from None
    return parse_yaml(text, file)


def parse_yaml(text: str, file: Path) -> LocatedYaml:
    """:func:`load_yaml` on a text already read (``file`` names it in errors)."""
    try:
        documents = list(yaml.compose_all(text, Loader=SpecLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"{file}:{line}: not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{file}:1: not valid YAML: {' '.join(str(exc).split())}") from None
    if len(documents) != 1 or documents[0] is None:
        raise SpecError(f"{file}:1: expected one YAML document (a mapping), found {len(documents)}")
    root = documents[0]
    if not isinstance(root, yaml.MappingNode):
        raise SpecError(f"{file}:{root.start_mark.line + 1}: the spec must be a mapping of keys")
    lines: dict[KeyPath, int] = {}
    data = _build(root, (), lines, file)
    return LocatedYaml(file, text, data, lines)


def _build(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], file: Path) -> Any:
    """Plain data from ``node``, recording the line of each key and list item in ``lines``."""
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SpecError(f"{file}:{line}: YAML merge keys (<<) are not supported in specs")
            key = _scalar(key_node, file)
            if not isinstance(key, str):
                raise SpecError(f"{file}:{line}: key {key!r} must be text")
            where = ".".join(str(part) for part in (*path, key))
            if key in result:
                raise SpecError(f"{file}:{line}: {where}: duplicate key")
            key_path: KeyPath = (*path, key)
            lines[key_path] = line
            result[key] = _build(value_node, (*path, key), lines, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            item_path: KeyPath = (*path, index)
            lines[item_path] = item.start_mark.line + 1
            items.append(_build(item, (*path, index), lines, file))
        return items
    return _scalar(node, file)


def _scalar(node: yaml.Node, file: Path) -> Any:
    """The Python value of a scalar node, resolved as ``yaml.safe_load`` would."""
    if not isinstance(node, yaml.ScalarNode):
        raise SpecError(f"{file}:{node.start_mark.line + 1}: expected a plain value here")
    loader = SpecLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise SpecError(
            f"{file}:{node.start_mark.line + 1}: {' '.join(str(exc).split())}"
        ) from None
    finally:
        loader.dispose()
