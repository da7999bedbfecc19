"""Running the honesty suite: :func:`evaluate_models` measures every model, writes and resumes.

Models are untuned, fine-tuned or representation-tuned checkpoints, or a model steered online
(an :class:`~steerlab.evaluate.model_specs.EvalModel` with a vector). Every model is measured
on the same data (:mod:`~steerlab.evaluate.suite_data`) by the same metrics
(:mod:`~steerlab.evaluate.suite_metrics`). Results go to ``results.jsonl`` (rewritten
atomically after each model), with ``suite.json``, ``table.csv``, ``table.md`` and
``bars.png`` / ``bars.svg`` (:class:`~steerlab.evaluate.suite_result.SuiteResult`). A re-run
with the same settings skips models whose rows are all there, without loading them; the final
files equal those of an uninterrupted run.

Under ``accelerate launch`` / ``torchrun`` (:mod:`steerlab.distributed`) each process measures
every ``world``-th model still to do, on its own device, writing its rows to its own part file
(``results.part1.jsonl``); the main process merges them and writes the same files as one
process. A rerun counts the rows of every part file as done.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab import distributed
from steerlab.errors import SpecError
from steerlab.evaluate.jsonl import read_rows, write_rows
from steerlab.evaluate.model_specs import EvalModel, check_sources, model_entries
from steerlab.evaluate.suite_config import HonestySuite, resolve_suite
from steerlab.evaluate.suite_cosine import tuned_representations
from steerlab.evaluate.suite_data import load_suite_data, tuned_on
from steerlab.evaluate.suite_metrics import SuiteRunner
from steerlab.evaluate.suite_result import (
    CONFIG,
    RESULTS,
    SuiteResult,
    read_config,
    write_config,
)
from steerlab.evaluate.suite_rows import SuiteRow
from steerlab.models import load_model
from steerlab.progress import track
from steerlab.provenance import git_revision, library_version, remove_stale_temporaries
from steerlab.steer import SteerSpec

__all__ = ["FORMAT", "evaluate_models"]

FORMAT = "steerlab.suite/2"
"""The ``format`` of ``suite.json``.

Format 2: the cosine rows read the statement's tokens and the answer position(s), per layer
and over layers (``cosine_statement``, ``cosine_answer``); format 1 had one ``cosine`` row
averaged over every token of the prompt. A folder of another format is not resumed."""


def _release() -> None:
    """Give back the memory of a model no longer used (before the next one loads)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """The model in eval mode for the block, its training mode restored after."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def evaluate_models(
    models: Sequence[EvalModel | str] | str,
    output_dir: str | os.PathLike[str] | None,
    suite: HonestySuite | str = "honesty",
    *,
    progress: bool = True,
    resume: bool = True,
    device: str | None = None,
    device_map: str | dict[str, Any] | None = None,
) -> SuiteResult:
    """Run the suite on every model; write and resume ``output_dir``.

    Args:
        models: :class:`EvalModel` entries or sources (``"LABEL=SOURCE"`` works; a string
            is read as a comma-separated list).
        output_dir: folder for ``results.jsonl``, ``suite.json``, ``table.csv``,
            ``table.md``, ``bars.png`` and ``bars.svg``; None keeps everything in memory.
        suite: a :class:`HonestySuite`, or ``"honesty"``: the data folder
            :func:`~steerlab.evaluate.suite_config.find_data_dir` finds (``shared/data``),
            else the built-in sets.
        progress: show progress bars.
        resume: skip models whose rows are all in ``output_dir`` (not even loading them);
            False starts afresh.
        device: where the models given as sources load (default: the loader's, or this
            process's own device under a launcher: :func:`steerlab.distributed.default_device`).
        device_map: spread each loaded model over devices (see
            :func:`steerlab.models.load_model`); overrides ``device``.

    Returns:
        The :class:`SuiteResult`, models in the given order.

    Raises:
        SpecError: ``output_dir`` holds a run with other settings, data or a model of the
            same label set up otherwise (use another folder or ``resume=False``).
        ModelLoadError: a model reference that cannot be a model (checked for every model
            still to evaluate before ``output_dir`` is created), or a model that fails to load.
        DataError / VectorError: bad data, a vector that does not fit the model.
    """
    entries = model_entries(models)
    suite = resolve_suite(suite)
    data = load_suite_data(suite, tuned_on(entries), tuned_representations(entries))
    keys = data.keys(suite)
    config: dict[str, Any] = {
        "format": FORMAT,
        "suite": "honesty",
        "settings": suite.settings(),
        "data": list(data.hashes),
        "models": [e.describe() for e in entries],
        "provenance": {"library_version": library_version(), "git_revision": git_revision()},
    }
    out = Path(output_dir) if output_dir is not None else None
    world, main = distributed.world_size(), distributed.is_main_process()
    if world > 1 and out is None:
        raise SpecError(f"an evaluation spread over {world} processes needs an output folder")
    device = device if device is not None else distributed.default_device()
    done: dict[str, list[SuiteRow]] = {}
    if out is not None:
        config_path = out / CONFIG
        if resume and config_path.is_file():
            previous = read_config(config_path)
            if previous.get("format") != FORMAT:
                raise SpecError(
                    f"{out} holds a suite run of format {previous.get('format')!r}, not "
                    f"{FORMAT!r} (its rows differ); use another output folder or resume=False"
                )
            if (previous.get("settings"), previous.get("data")) != (
                config["settings"],
                config["data"],
            ):
                raise SpecError(
                    f"{out} holds a suite run with other settings or data; "
                    "use another output folder or resume=False"
                )
            before = {m.get("label"): m for m in previous.get("models", []) if isinstance(m, dict)}
            for entry in entries:
                if entry.label in before and before[entry.label] != entry.describe():
                    raise SpecError(
                        f"{out}: model {entry.label!r} was evaluated set up otherwise; "
                        "use another output folder or resume=False"
                    )
            # The rows of every process of an earlier run count as done (a killed one's too).
            for label, rows_on_disk in _rows_on_disk(out / RESULTS).items():
                if label in before:
                    done[label] = rows_on_disk
        labels = {e.label for e in entries}
        done = {label: rows for label, rows in done.items() if label in labels}
    todo = [
        e for e in entries if {(r.metric, r.dataset) for r in done.get(e.label, [])} != set(keys)
    ]
    # Every model still to load must exist before anything is created (a resumed run does
    # not need the models it skips).
    check_sources(todo)
    # Every process has read the same files and found them good: only now may they change.
    distributed.barrier()
    if out is not None and main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
        write_config(out / CONFIG, config)
        write_rows(out / RESULTS, [r for e in entries for r in done.get(e.label, [])])
        distributed.remove_parts(out / RESULTS)  # their rows are in RESULTS now
    distributed.barrier()
    part = distributed.part_path(out / RESULTS) if out is not None and world > 1 else None
    # Units of work: an entry, or online-steered entries differing only in their coefficient
    # (measured in the same passes). Formed before sharing, so every process count runs the
    # same units and writes the same numbers.
    units = distributed.share(sibling_groups(todo))
    mine: list[str] = []

    loaded: tuple[str, nn.Module, PreTrainedTokenizerBase] | None = None
    for position, unit in enumerate(
        track(units, "honesty suite", total=len(units), enabled=progress and main)
    ):
        entry = unit[0]
        if entry.model is not None and entry.tokenizer is not None:
            model, tokenizer = entry.model, entry.tokenizer
        else:
            assert entry.source is not None
            if loaded is None or loaded[0] != entry.source:
                loaded = None
                _release()
                model_, tokenizer_ = load_model(entry.source, device=device, device_map=device_map)
                loaded = (entry.source, model_, tokenizer_)
            _, model, tokenizer = loaded
        layers = entry.layers if entry.layers is not None else suite.layers
        spec = SteerSpec(coefficient=0.0, layers=layers) if entry.vector is not None else None
        runner = SuiteRunner(
            entry.label,
            model,
            tokenizer,
            entry.vector,
            spec,
            entry.coefficient,
            suite,
            progress and main,
            tuple((e.label, e.coefficient) for e in unit[1:]),
        )
        with _eval_mode(model):
            rows = runner.run(data)
        for member in unit:
            # Round-trip through the file format so fresh and resumed runs hold equal values.
            done[member.label] = [
                SuiteRow.from_json(r.to_json(), member.label)
                for r in rows
                if r.model == member.label
            ]
        del model, tokenizer, runner
        following = units[position + 1][0] if position + 1 < len(units) else None
        if loaded is not None and (
            following is None or following.source != loaded[0] or following.model is not None
        ):
            loaded = None
            _release()
        if part is not None:
            mine.extend(e.label for e in unit)
            write_rows(part, [r for label in mine for r in done[label]])
        elif out is not None:
            write_rows(out / RESULTS, [r for e in entries for r in done.get(e.label, [])])
    if part is not None:
        assert out is not None
        distributed.barrier()  # every process's part is complete
        for label, rows_on_disk in _rows_on_disk(out / RESULTS).items():
            if label not in mine:  # the others' models (and those done before)
                done[label] = rows_on_disk
        distributed.barrier()  # every process has read the parts before they go
    rows = [r for e in entries for r in _ordered(done.get(e.label, []), keys)]
    result = SuiteResult(rows, [e.label for e in entries], config)
    if out is not None and main:
        result.save(out)
        distributed.remove_parts(out / RESULTS)
    return result


def sibling_groups(entries: Sequence[EvalModel]) -> list[list[EvalModel]]:
    """Entries in units of work: online-steered entries of one model, vector and layers
    (differing only in coefficient) form one unit, in the order of their first entry.

    Their likelihood passes then hold every coefficient's rows, which share the blocks below
    the first steered layer (:class:`~steerlab.evaluate.suite_metrics.SuiteRunner`'s
    ``siblings``); every other entry is a unit of its own.
    """
    units: list[list[EvalModel]] = []
    by_key: dict[tuple[Any, ...], list[EvalModel]] = {}
    for entry in entries:
        if entry.vector is None:
            units.append([entry])
            continue
        model = entry.source if entry.model is None else id(entry.model)
        vector = entry.vector_path if entry.vector_path is not None else id(entry.vector)
        key = (model, vector, entry.layers)
        if key in by_key:
            by_key[key].append(entry)
        else:
            by_key[key] = [entry]
            units.append(by_key[key])
    return units


def _rows_on_disk(results: Path) -> dict[str, list[SuiteRow]]:
    """Each model's rows from the last file holding them: ``results``, then its parts.

    A model's rows are taken from one file, never mixed: a process killed between writing
    the merged file and removing the parts leaves a model in both.
    """
    files = ([results] if results.is_file() else []) + distributed.existing_parts(results)
    by_model: dict[str, list[SuiteRow]] = {}
    for file in files:
        here: dict[str, list[SuiteRow]] = {}
        for row in read_rows(file, SuiteRow.from_json):
            here.setdefault(row.model, []).append(row)
        by_model.update(here)
    return by_model


def _ordered(rows: Sequence[SuiteRow], keys: Sequence[tuple[str, str]]) -> list[SuiteRow]:
    index = {(r.metric, r.dataset): r for r in rows}
    return [index[k] for k in keys if k in index]
