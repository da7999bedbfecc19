"""The stage graph of a spec: what each reference names, the order, cycles and content keys.

A stage's key is the SHA-256 of everything its output depends on: its kind and settings (with
the spec's seed filled in), the keys of the stages it reads, the models it loads (their source
and loading options), the contents of the data files its settings name, and the steerlab
version. A finished stage whose key is unchanged is not run again; change one setting and that
stage and every stage downstream of it get new keys, nothing else does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steerlab.data.pairs import split_slice
from steerlab.provenance import library_version, sha256_of_file
from steerlab.runner.commands import CommandKind, kinds, settings_of
from steerlab.runner.spec import ModelEntry
from steerlab.runner.yaml_lines import LocatedYaml

KEY_FORMAT = "steerlab-stage-key/1"


@dataclass(frozen=True)
class StageNode:
    """One stage, resolved.

    Attributes:
        name: the stage's name in the spec.
        kind: its command kind.
        settings: its settings as the command takes them (spec seed filled in), JSON-able.
        refs: reference parameter -> the raw value the spec gave (names).
        depends_on: the stages it reads, in spec order.
        models: model names it loads (from ``models:``), in order.
        key: the content key (64 hex digits).
    """

    name: str
    kind: CommandKind
    settings: dict[str, Any]
    refs: dict[str, Any]
    depends_on: tuple[str, ...]
    models: tuple[str, ...]
    key: str = ""
    note: str | None = None

    @property
    def folder(self) -> str:
        """The stage's folder, relative to the run folder."""
        return f"stages/{self.name}-{self.key[:12]}"


@dataclass(frozen=True)
class Plan:
    """A validated spec as stages in run order.

    Attributes:
        spec: the validated spec (the pydantic object).
        located: the YAML it came from.
        models: model name -> its entry.
        stages: the stages in run order (every stage after the ones it reads).
    """

    spec: Any
    located: LocatedYaml
    models: dict[str, ModelEntry]
    stages: tuple[StageNode, ...] = field(default_factory=tuple)

    @property
    def base_dir(self) -> Path:
        """The spec's folder: relative data paths in settings are relative to it."""
        return self.located.path.resolve().parent

    def stage(self, name: str) -> StageNode:
        """The stage called ``name``."""
        return next(node for node in self.stages if node.name == name)

    def upstream(self, names: list[str]) -> list[str]:
        """``names`` and every stage they read, directly or not, in run order."""
        wanted = set(names)
        for node in reversed(self.stages):
            if node.name in wanted:
                wanted.update(node.depends_on)
        return [node.name for node in self.stages if node.name in wanted]


def build_plan(spec: Any, located: LocatedYaml) -> Plan:
    """Resolve every reference of ``spec``, order the stages, and compute their keys.

    Raises:
        SpecError: a reference to a stage or model that does not exist, or of the wrong kind
            (a vector where a model is needed...), a name used for a model and a stage, or a
            cycle; ``FILE:LINE: key: message``.
    """
    models = {
        name: entry if isinstance(entry, ModelEntry) else ModelEntry(source=entry)
        for name, entry in spec.models.items()
    }
    for name in spec.stages:
        if name in models:
            raise located.error(("stages", name), f"{name!r} is also a model's name")
    nodes = {name: _node(name, stage, spec, models, located) for name, stage in spec.stages.items()}
    order = _order(nodes, located)
    keyed: dict[str, StageNode] = {}
    for name in order:
        node = nodes[name]
        keyed[name] = _with_key(node, keyed, models, located.path.resolve().parent)
    return Plan(spec, located, models, tuple(keyed[name] for name in order))


def _node(
    name: str, stage: Any, spec: Any, models: dict[str, ModelEntry], located: LocatedYaml
) -> StageNode:
    """A stage's settings and references, each reference checked against what exists."""
    kind = kinds()[stage.kind]
    values = stage.model_dump()
    settings = {s.name: values[s.name] for s in settings_of(kind)}
    if "seed" in settings and "seed" not in stage.model_fields_set:
        settings["seed"] = spec.seed
    refs: dict[str, Any] = {}
    depends: list[str] = []
    used_models: list[str] = []

    def need(value: str, want: str, path: tuple[str | int, ...]) -> None:
        if want == "model" and value in models:
            used_models.append(value)
            return
        other = spec.stages.get(value)
        if other is None:
            makers = [n for n, s in spec.stages.items() if kinds()[s.kind].produces == want]
            known = sorted({*models, *makers}) if want == "model" else sorted(makers)
            raise located.error(
                path, f"no {want} called {value!r} (known: {', '.join(known) or 'none'})"
            )
        if kinds()[other.kind].produces != want:
            raise located.error(path, f"stage {value!r} ({other.kind}) does not make a {want}")
        if value not in depends:
            depends.append(value)

    base = ("stages", name)
    for parameter, ref in kind.refs.items():
        value = getattr(stage, parameter)
        if value is None:
            continue
        refs[parameter] = value if not hasattr(value, "model_dump") else value.model_dump()
        if ref in ("model", "vector"):
            need(value, ref, (*base, parameter))
        elif ref == "vectors":
            for index, item in enumerate(value):
                need(item, "vector", (*base, parameter, index))
        elif ref == "eval_models":
            items = value.items() if isinstance(value, dict) else ((v, v) for v in value)
            for label, item in items:
                need(item, "model", (*base, parameter, label if isinstance(value, dict) else 0))
        elif ref == "steered":
            refs[parameter] = [row.model_dump() for row in value]
            for index, row in enumerate(value):
                need(row.model, "model", (*base, parameter, index, "model"))
                need(row.vector, "vector", (*base, parameter, index, "vector"))
    return StageNode(
        name,
        kind,
        settings,
        refs,
        tuple(depends),
        tuple(dict.fromkeys(used_models)),
        note=stage.note,
    )


def _order(nodes: dict[str, StageNode], located: LocatedYaml) -> list[str]:
    """Stages in spec order, each moved after what it reads; a cycle is an error."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            cycle = [*trail[trail.index(name) :], name]
            raise located.error(
                ("stages", cycle[0]),
                f"stages depend on each other in a cycle: {' -> '.join(cycle)}",
            )
        state[name] = "open"
        for dependency in nodes[name].depends_on:
            visit(dependency, [*trail, name])
        state[name] = "done"
        order.append(name)

    for name in nodes:
        visit(name, [])
    return order


def _with_key(
    node: StageNode, done: dict[str, StageNode], models: dict[str, ModelEntry], base_dir: Path
) -> StageNode:
    """``node`` with its content key (its inputs' keys are in ``done``)."""
    content = {
        "format": KEY_FORMAT,
        "kind": node.kind.kind,
        "settings": node.settings,
        "refs": node.refs,
        # A mapping's order is the order of the command's rows (eval's models): keep it.
        "ref_order": {k: list(v) for k, v in node.refs.items() if isinstance(v, dict)},
        "stages": {name: done[name].key for name in node.depends_on},
        "models": {name: models[name].model_dump() for name in node.models},
        "files": data_hashes(node.settings, base_dir),
        "steerlab": library_version(),
    }
    text = json.dumps(content, sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()
    return StageNode(
        node.name,
        node.kind,
        node.settings,
        node.refs,
        node.depends_on,
        node.models,
        key,
        node.note,
    )


def data_hashes(settings: dict[str, Any], base_dir: Path) -> dict[str, str]:
    """SHA-256 of every local file a setting names (edit a data file: the stage reruns).

    Any text setting, or any part of one after ``KIND:`` / ``NAME=`` (``pairs:data/x.jsonl``),
    that names an existing file relative to the spec's folder counts. Folders and built-in
    data (``builtin:NAME``, part of the steerlab version) are not hashed.
    """
    found: dict[str, str] = {}
    for value in settings.values():
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str) or not text:
                continue
            for candidate in {
                str(split_slice(part)[0])  # a slice of a file (pairs.jsonl[:48]) is that file
                for part in (text, text.split("=", 1)[-1], text.split(":", 1)[-1])
            }:
                path = base_dir / candidate
                try:
                    if candidate and path.is_file():
                        found[candidate] = sha256_of_file(path)
                except OSError:
                    continue
    return dict(sorted(found.items()))
