"""``steerlab run SPEC -o DIR``: run an experiment's stages in order, skipping finished ones.

Each stage runs in its own folder ``DIR/stages/NAME-KEY12`` (the key: :mod:`.graph`), by
calling the ``steerlab`` command of its kind with the stage's settings. The stage is finished
when its ``stage.json`` exists (written last, atomically); a rerun skips finished stages, and
a stage that was killed halfway starts again in its folder (the resumable commands, sweep,
matrix, finetune, tune and eval, continue from what they wrote; the others start afresh).
``DIR/run.json`` records the plan, provenance and every stage's status and wall time, and
``DIR/report.html`` is rebuilt at the end (:func:`steerlab.report.html.write_report`).

Under ``accelerate launch`` / ``torchrun`` (:mod:`steerlab.distributed`) every process runs
the same plan: a stage whose command shares its work (sweep, matrix, eval, finetune, tune)
runs on every process, any other on the main process alone, and after each stage every
process goes on or fails alike; the main process alone writes the records and the report
and prints. The files are those of a single process (times and provenance aside), byte for
byte but for what training writes (data parallel: the same loss curve within tolerance).
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from steerlab import distributed
from steerlab.errors import SpecError, SteerlabError
from steerlab.provenance import (
    git_revision,
    library_version,
    remove_stale_temporaries,
    sha256_of_file,
    utc_now,
)
from steerlab.report.html_load import read_json
from steerlab.runner.graph import Plan, StageNode, build_plan
from steerlab.runner.records import write_json
from steerlab.runner.spec import ModelEntry, read_spec
from steerlab.terminal import LogConsole

RUN_FORMAT = "steerlab-run/1"
STAGE_FORMAT = "steerlab-stage/1"
STAGE_FILE = "stage.json"
RUN_FILE = "run.json"
REPORT_FILE = "report.html"


class StageFailed(SteerlabError):
    """A stage's command refused its input (the message names the stage and the problem)."""


@dataclass(frozen=True)
class RunResult:
    """What :func:`run_experiment` did.

    Attributes:
        output: the run folder.
        plan: the validated plan.
        statuses: stage name -> ``ran``, ``cached``, ``skipped`` (not selected by ``only``)
            or ``pending`` (a dry run).
        report: the report's path (None for a dry run).
    """

    output: Path
    plan: Plan
    statuses: dict[str, str]
    report: Path | None

    def stage_dir(self, name: str) -> Path:
        """The folder of stage ``name``."""
        return self.output / self.plan.stage(name).folder


def plan_experiment(spec_path: str | os.PathLike[str]) -> Plan:
    """Read, validate and resolve a spec (nothing runs; errors are one line).

    ``builtin:NAME`` names a spec shipped with steerlab (``builtin:demo``; the repository's
    ``examples/`` folder holds the same files).
    """
    spec, located = read_spec(spec_file(spec_path))
    return build_plan(spec, located)


def spec_file(spec_path: str | os.PathLike[str]) -> Path:
    """The file a spec argument names: a path, or ``builtin:NAME`` for a shipped example."""
    text = os.fspath(spec_path)
    if not text.startswith("builtin:"):
        return Path(text)
    from importlib import resources

    folder = Path(str(resources.files("steerlab") / "examples"))
    name = text.removeprefix("builtin:")
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise SpecError(f"{text}: no such built-in spec (built-in: {', '.join(known)})")
    return path


def run_experiment(
    spec_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    only: Sequence[str] | None = None,
    dry_run: bool = False,
    console: Console | None = None,
) -> RunResult:
    """Run the experiment ``spec_path`` into ``output``.

    Under ``accelerate launch`` / ``torchrun`` every process calls this: each plans the run,
    the stages that share their work (sweep, matrix, eval, finetune, tune) run on every
    process, the others on the main process only, and after each stage every process goes on
    or fails with the main process's one-line error; only the main process writes the
    records and the report, and prints (see :func:`run_stage`).

    Args:
        spec_path: the YAML spec.
        output: the run folder (created; a rerun continues it).
        only: run just these stages (and the unfinished stages they read).
        dry_run: print the plan (cached / will run, in order) and run nothing.
        console: where progress goes (default: steerlab's log console; nowhere on a process
            other than the main one).

    Returns:
        What ran, what was cached, and the report.

    Raises:
        SpecError: an invalid spec (``FILE:LINE: key: message``) or an unknown ``only`` stage.
        StageFailed: a stage's command refused its input; the stages before it are kept.
    """
    main = distributed.is_main_process()
    console = (console or LogConsole()) if main else Console(quiet=True)
    # Every process plans (errors are alike on each, before any process waits for another).
    plan = plan_experiment(spec_path)
    out = Path(output).resolve()
    if out.exists() and not out.is_dir():
        raise SpecError(f"{output}: exists and is not a folder (the run folder)")
    selected = _selected(plan, only)
    finished = [node.name for node in plan.stages if (out / node.folder / STAGE_FILE).is_file()]
    if not dry_run:
        # The main process's view, on every process: one that starts late must not see a
        # stage.json the main process has written since as a stage to skip.
        finished = distributed.broadcast(finished)
    statuses = {
        node.name: (
            "cached"
            if node.name in finished
            else ("pending" if node.name in selected else "skipped")
        )
        for node in plan.stages
    }
    if dry_run:
        console.print(plan_table(plan, statuses, out))
        if plan.spec.cost is not None:
            console.print(cost_line(plan.spec.cost), highlight=False)
        return RunResult(out, plan, statuses, None)
    record = _run_record(plan, out, statuses) if main else {"stages": []}
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / RUN_FILE, record)
    started = time.perf_counter()
    to_run = [n for n in plan.stages if statuses[n.name] == "pending"]
    console.print(
        f"[bold]{_name(plan)}[/]: {len(plan.stages)} stages, {len(to_run)} to run, "
        f"{sum(s == 'cached' for s in statuses.values())} cached; output {out}" + _processes_note(),
        highlight=False,
    )
    try:
        for index, node in enumerate(to_run, 1):
            console.rule(
                f"[bold]{index}/{len(to_run)}[/] {node.name} ({node.kind.kind}) · "
                f"{time.perf_counter() - started:.0f} s so far"
            )
            entry: dict[str, Any] = next(
                (e for e in record["stages"] if e["name"] == node.name), {}
            )
            entry["status"] = "running"
            if main:
                write_json(out / RUN_FILE, record)
            try:
                wall = run_stage(plan, node, out)
            except StageFailed as exc:
                entry.update(status="failed", error=str(exc))
                raise
            except BaseException as exc:
                entry.update(status="interrupted", error=type(exc).__name__)
                raise
            finally:
                if main:
                    write_json(out / RUN_FILE, record)
            entry.update(status="ran", wall_s=round(wall, 3), error=None)
            statuses[node.name] = "ran"
            console.print(f"{node.name}: done in {wall:.0f} s", highlight=False)
    finally:
        if main:
            record["finished"] = (
                utc_now()
                if all(e["status"] in ("ran", "cached") for e in record["stages"])
                else None
            )
            write_json(out / RUN_FILE, record)
            _write_report(out)
    # Reached only by a run that went through, on every process: the others return once the
    # records and the report are there.
    distributed.barrier()
    report = out / REPORT_FILE
    if main:
        console.print(summary_table(record))
        console.print(f"report: {report}", highlight=False)
    return RunResult(out, plan, statuses, report)


def run_stage(plan: Plan, node: StageNode, out: Path) -> float:
    """Run one stage into its folder and write its ``stage.json``; returns the wall time.

    With several processes (:mod:`steerlab.distributed`) every process calls this for every
    stage: the main process prepares the folder; a stage whose command shares its work
    (``shared``: sweep, matrix, eval, finetune, tune) runs on every process, any other on the
    main process alone (as a single process: a calibration's sweep is not shared); the main
    process summarizes it and writes ``stage.json``; then every process learns the main
    process's outcome and returns, or raises the same :class:`StageFailed`.

    Raises:
        StageFailed: the command refused the stage's settings or data.
    """
    main = distributed.is_main_process()
    folder = out / node.folder
    target = folder / node.kind.output_name
    if main:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        if not node.kind.resumable and target.exists():
            # A killed non-resumable command may have left a partial folder: start it afresh.
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    arguments = command_arguments(plan, node, out)
    arguments[node.kind.output] = target
    wall = 0.0
    if node.kind.shared:
        distributed.barrier()  # the folder is ready before any process writes into it
        # A refusal is alike on every process (the commands check before they share), so
        # each raises it here without waiting for the others.
        wall = _call(plan, node, arguments)
    if not main:
        _outcome(None)
        return wall
    try:
        if not node.kind.shared:
            with distributed.single_process():
                wall = _call(plan, node, arguments)
        _write_stage_record(plan, node, folder, wall)
    except StageFailed as exc:
        _outcome(str(exc))
        raise
    except Exception as exc:
        _outcome(
            f"stage {node.name!r} ({node.kind.kind}): {type(exc).__name__} on the main process"
        )
        raise
    _outcome(None)
    return wall


def _call(plan: Plan, node: StageNode, arguments: dict[str, Any]) -> float:
    """Call the stage's command with ``arguments``; returns its wall time.

    Raises:
        StageFailed: the command refused its input (its one-line error, naming the stage).
    """
    command = getattr(node.kind.command, "__wrapped__", node.kind.command)  # raw errors
    started = time.perf_counter()
    try:
        with working_directory(plan.base_dir):
            command(**arguments)
    except SteerlabError as exc:
        raise StageFailed(f"stage {node.name!r} ({node.kind.kind}): {exc}") from exc
    return time.perf_counter() - started


def _outcome(error: str | None) -> None:
    """Hand the main process's outcome of a stage (None: it finished) to every process.

    The main process calls it with its own; the others raise it as :class:`StageFailed`, so
    that all go on, or all fail with the same line (nothing else reaches them).
    """
    error = distributed.broadcast(error)
    if error is not None and not distributed.is_main_process():
        raise StageFailed(error)


def _write_stage_record(plan: Plan, node: StageNode, folder: Path, wall: float) -> None:
    """Summarize the finished stage and write its ``stage.json`` (last: it marks it done)."""
    from steerlab.runner.summaries import summarize

    summary = summarize(node.kind.kind, folder, {**node.settings, **node.refs})
    stage_record = {
        "format": STAGE_FORMAT,
        "name": node.name,
        "kind": node.kind.kind,
        "key": node.key,
        "settings": node.settings,
        "refs": node.refs,
        "inputs": {name: {"stage": name, "key": plan.stage(name).key} for name in node.depends_on},
        "models": {name: plan.models[name].model_dump() for name in node.models},
        "note": node.note,
        "library_version": library_version(),
        "finished": utc_now(),
        "wall_s": round(wall, 3),
        "summary": summary,
    }
    write_json(folder / STAGE_FILE, stage_record)


def _processes_note() -> str:
    """``; N processes`` under a launcher, else nothing."""
    world = distributed.world_size()
    return f"; {world} processes" if world > 1 else ""


def command_arguments(plan: Plan, node: StageNode, out: Path) -> dict[str, Any]:
    """The keyword arguments of the stage's command: settings, resolved references, options."""
    from steerlab.runner.commands import model_parameters, settings_of

    arguments: dict[str, Any] = dict(node.kind.fixed)
    for setting in settings_of(node.kind):
        value = node.settings[setting.name]
        if setting.is_path and value is not None:
            value = Path(value)
        arguments[setting.parameter] = value
    first_model: ModelEntry | None = None
    for parameter, ref in node.kind.refs.items():
        value = node.refs.get(parameter)
        if value is None:
            continue
        if ref == "model":
            entry = model_entry(plan, value, out)
            first_model = first_model or entry
            arguments[parameter] = entry.source
        elif ref == "vector":
            arguments[parameter] = vector_path(plan, value, out)
        elif ref == "vectors":
            paths = [vector_path(plan, name, out) for name in value]
            if parameter == "vectors" and node.kind.kind == "matrix":
                arguments[parameter] = ",".join(
                    f"{n}={p}" for n, p in zip(value, paths, strict=True)
                )
            else:
                arguments[parameter] = paths
        elif ref == "eval_models":
            labelled = value.items() if isinstance(value, dict) else ((v, v) for v in value)
            sources = []
            for label, name in labelled:
                entry = model_entry(plan, name, out)
                first_model = first_model or entry
                sources.append(f"{label}={entry.source}")
            arguments[parameter] = ",".join(sources)
        elif ref == "steered":
            arguments[parameter] = [
                (f"{row['label']}=" if row.get("label") else "")
                + f"{model_entry(plan, row['model'], out).source}:"
                + f"{vector_path(plan, row['vector'], out)}:{row['coefficient']!r}"
                for row in value
            ]
    for option in model_parameters(node.kind):
        arguments[option] = getattr(first_model, option) if first_model is not None else None
    return arguments


def model_entry(plan: Plan, name: str, out: Path) -> ModelEntry:
    """The model ``name`` names: an entry of ``models:``, or a stage's output folder.

    A model a stage made (finetune, tune, fold) loads with the options of the model it was
    made from.
    """
    if name in plan.models:
        return plan.models[name]
    node = plan.stage(name)
    parent = next(
        (node.refs[p] for p, ref in node.kind.refs.items() if ref == "model" and p in node.refs),
        None,
    )
    options = model_entry(plan, parent, out) if parent is not None else ModelEntry(source="")
    return options.model_copy(update={"source": str(out / node.folder / node.kind.output_name)})


def vector_path(plan: Plan, name: str, out: Path) -> Path:
    """The vector file stage ``name`` wrote."""
    node = plan.stage(name)
    return out / node.folder / node.kind.output_name


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run with ``path`` as the working directory: relative data paths mean the spec's folder."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _selected(plan: Plan, only: Sequence[str] | None) -> set[str]:
    """The stages to consider: all, or ``only`` and what they read."""
    if not only:
        return {node.name for node in plan.stages}
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    known = {node.name for node in plan.stages}
    for name in names:
        if name not in known:
            raise SpecError(f"--only {name!r}: no such stage (stages: {', '.join(sorted(known))})")
    return set(plan.upstream(names))


def _name(plan: Plan) -> str:
    """The experiment's name: the spec's, else the file's."""
    return str(plan.spec.name or plan.located.path.stem)


def _run_record(plan: Plan, out: Path, statuses: dict[str, str]) -> dict[str, Any]:
    """The initial ``run.json``: spec, resolved settings, provenance and the plan."""
    stages = []
    for node in plan.stages:
        wall = None
        if statuses[node.name] == "cached":  # its stage.json holds the wall time it took
            wall = read_json(out / node.folder / STAGE_FILE).get("wall_s")
        stages.append(
            {
                "name": node.name,
                "kind": node.kind.kind,
                "key": node.key,
                "folder": node.folder,
                "depends_on": list(node.depends_on),
                "models": list(node.models),
                "note": node.note,
                "status": statuses[node.name],
                "wall_s": wall,
                "error": None,
            }
        )
    return {
        "format": RUN_FORMAT,
        "name": _name(plan),
        "description": plan.spec.description,
        "spec_file": str(plan.located.path),
        "spec_text": plan.located.text,
        "spec_sha256": sha256_of_file(plan.located.path),
        "resolved": plan.spec.model_dump(mode="json"),
        "seed": plan.spec.seed,
        "provenance": machine_provenance(),
        "started": utc_now(),
        "finished": None,
        "stages": stages,
    }


def machine_provenance() -> dict[str, Any]:
    """Versions, git revision and machine of this run."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for package in ("torch", "transformers", "peft", "accelerate", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "library_version": library_version(),
        "git_revision": git_revision(),
        "python": platform.python_version(),
        **versions,
        "machine": f"{platform.system()} {platform.machine()}",
        "cpu_count": os.cpu_count(),
        "hostname": socket.gethostname(),
        "processes": distributed.world_size(),  # of accelerate launch / torchrun, else 1
        "created": utc_now(),
    }


def _write_report(out: Path) -> Path:
    """Rebuild ``out/report.html`` from what is finished."""
    from steerlab.report.html import write_report

    return write_report(out)


def cost_line(cost: Any) -> str:
    """The spec's stated cost, in one line."""
    disk = f", {cost.disk_gb:g} GiB of disk" if cost.disk_gb is not None else ""
    basis = f" ({cost.basis})" if cost.basis else ""
    return (
        f"expected cost: about {cost.hours:g} h on {cost.hardware}, "
        f"{cost.memory_gb:g} GiB peak memory{disk}{basis}"
    )


def plan_table(plan: Plan, statuses: dict[str, str], out: Path) -> Table:
    """The plan of a dry run: every stage in order, and whether it is cached or will run."""
    words = {"cached": "cached", "pending": "will run", "skipped": "not selected"}
    table = Table(title=f"{_name(plan)}: plan for {out}")
    for column in ("#", "stage", "kind", "status", "key", "reads"):
        table.add_column(column)
    for index, node in enumerate(plan.stages, 1):
        table.add_row(
            str(index),
            node.name,
            node.kind.kind,
            words[statuses[node.name]],
            node.key[:12],
            ", ".join((*node.models, *node.depends_on)) or "-",
        )
    return table


def summary_table(record: dict[str, Any]) -> Table:
    """Every stage's status and wall time, at the end of a run."""
    table = Table(title=f"{record['name']}: stages")
    for column in ("stage", "kind", "status", "wall time"):
        table.add_column(column, justify="right" if column == "wall time" else "left")
    for entry in record["stages"]:
        wall = entry.get("wall_s")
        table.add_row(
            entry["name"],
            entry["kind"],
            entry["status"],
            "-" if wall is None else f"{wall:.1f} s",
        )
    return table
