"""The honesty suite's data: every dataset loaded once for all models, each facts file on its split.

A facts file is scored whole (``all``) or only on the statements held out of training
(``heldout``); with ``split="auto"`` that depends on whether a model being evaluated was tuned on
it, which its run folder's provenance says (:func:`tuned_on`, through
:func:`steerlab.tuning.read_run`). The cosine metrics read the layers and answer positions of
:func:`~steerlab.evaluate.suite_cosine.cosine_setup`. The hashes of what was loaded (and where
the cosine is read) go into ``suite.json``, so a resumed run can tell that nothing changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.data.evalsets import (
    ABItem,
    Statement,
    TruthfulQAMCItem,
    load_ab,
    load_truthfulqa_mc,
)
from steerlab.data.honesty import held_out, load_facts, statements_sha256
from steerlab.data.registry import is_builtin
from steerlab.errors import DataError
from steerlab.evaluate.model_specs import EvalModel, unique_label
from steerlab.evaluate.specs import perplexity_task, task_name
from steerlab.evaluate.suite_config import (
    COSINE_DATASET,
    COSINE_METRICS,
    TRUTHFULQA,
    HonestySuite,
    cosine_dataset,
)
from steerlab.evaluate.suite_cosine import CosineSetup, cosine_setup
from steerlab.provenance import sha256_of_records
from steerlab.tuning import read_run

__all__ = ["SuiteData", "facts_split", "load_suite_data", "tuned_on", "unique_names"]


@dataclass(frozen=True)
class SuiteData:
    """The items of every dataset, loaded once for all models.

    Attributes:
        facts: per facts file, its dataset name and the statements scored (of its split).
        truthfulqa: the TruthfulQA items, or None when skipped.
        ab: per A/B file, its dataset name and items.
        text: the perplexity dataset's name and texts, or None when skipped.
        cosine: the statements of the cosine metrics.
        hashes: what ``suite.json`` records per dataset (path, split, n, sha256), and for
            the cosine metrics their statements, layers and answer positions.
        cosine_setup: where the cosine metrics read; None when the suite has no vector.
    """

    facts: tuple[tuple[str, tuple[Statement, ...]], ...]
    truthfulqa: tuple[TruthfulQAMCItem, ...] | None
    ab: tuple[tuple[str, tuple[ABItem, ...]], ...]
    text: tuple[str, tuple[str, ...]] | None
    cosine: tuple[Statement, ...]
    hashes: tuple[dict[str, Any], ...]
    cosine_setup: CosineSetup | None = None

    def keys(self, suite: HonestySuite) -> list[tuple[str, str]]:
        """The (metric, dataset) pairs each model gets, in order.

        Each cosine metric has its mean over layers (dataset ``facts``), then a row per
        layer (``facts L12``...).
        """
        out: list[tuple[str, str]] = []
        for name, _ in self.facts:
            out += [("tf_accuracy", name), ("tf_auroc", name)]
        if self.truthfulqa is not None:
            out += [("truthfulqa_mc1", TRUTHFULQA), ("truthfulqa_mc2", TRUTHFULQA)]
        for name, _ in self.ab:
            out += [("ab_honest_rate", name), ("ab_honest_prob", name)]
        if self.text is not None:
            out.append(("perplexity", self.text[0]))
        if self.cosine_setup is not None:
            for metric in COSINE_METRICS:
                out.append((metric, cosine_dataset()))
                out += [(metric, cosine_dataset(layer)) for layer in self.cosine_setup.layers]
        return out


def unique_names(paths: Sequence[str]) -> list[str]:
    """Dataset names of data paths (:func:`~steerlab.evaluate.specs.task_name`), made unique."""
    taken: set[str] = set()
    names = []
    for path in paths:
        name = unique_label(task_name(path), taken)
        taken.add(name)
        names.append(name)
    return names


def tuned_on(entries: Sequence[EvalModel]) -> list[dict[str, Any]]:
    """The facts ``data_source`` records of the tuning runs among the models' sources.

    Each record gets ``"run"``: the source folder it came from. Sources that are no run
    folder (Hub ids, plain checkpoints) have none.
    """
    records = []
    for source in dict.fromkeys(e.source for e in entries if e.source):
        try:
            run = read_run(source)
        except DataError:
            # An unreadable record only means the suite cannot tell what the run was tuned
            # on; loading the model reports the folder's real problem, if any.
            continue
        data = run.data_source if run is not None else None
        if isinstance(data, dict) and data.get("kind") == "facts":
            records.append({**data, "run": source})
    return records


def facts_split(
    suite: HonestySuite, path: str, statements: Sequence[Statement], tuned: Sequence[dict[str, Any]]
) -> tuple[str, str]:
    """The split to score a facts file on, and why."""
    if suite.split != "auto":
        return suite.split, "asked for"
    key = path if is_builtin(path) else str(Path(path).resolve())
    digest = statements_sha256(statements)
    for record in tuned:
        if record.get("source") == key or record.get("items_sha256") == digest:
            return "heldout", f"{record['run']} was tuned on it"
    return "all", "no evaluated model was tuned on it"


def load_suite_data(
    suite: HonestySuite,
    tuned: Sequence[dict[str, Any]] = (),
    representations: Sequence[dict[str, Any]] = (),
) -> SuiteData:
    """Load every dataset of ``suite``, each facts file on its split.

    Args:
        suite: the suite.
        tuned: :func:`tuned_on` records (for ``split="auto"``).
        representations: :func:`~steerlab.evaluate.suite_cosine.tuned_representations`
            records (the cosine metrics' layers and answer positions).

    Raises:
        DataError: a missing or malformed file, or a ``heldout`` split with no statement.
    """
    hashes: list[dict[str, Any]] = []
    facts: list[tuple[str, tuple[Statement, ...]]] = []
    for path, name in zip(suite.facts, unique_names(suite.facts), strict=True):
        statements = load_facts(path)
        split, why = facts_split(suite, path, statements, tuned)
        if split == "heldout":
            statements = [s for s in statements if held_out(s.text)]
            if not statements:
                raise DataError(f"{path}: no held-out statements (split 'heldout')")
        statements = statements[: suite.limit] if suite.limit else statements
        facts.append((name, tuple(statements)))
        hashes.append(
            {
                "kind": "facts",
                "dataset": name,
                "path": path,
                "split": split,
                "split_reason": why,
                "n": len(statements),
                "sha256": sha256_of_records([s.text, s.label] for s in statements),
            }
        )
    truthfulqa = None
    if suite.truthfulqa is not None:
        truthfulqa = tuple(load_truthfulqa_mc(suite.truthfulqa, limit=suite.limit))
        hashes.append(
            {
                "kind": "truthfulqa",
                "dataset": TRUTHFULQA,
                "path": suite.truthfulqa,
                "n": len(truthfulqa),
                "sha256": sha256_of_records(
                    [i.question, i.mc1_choices, i.mc1_labels, i.mc2_choices, i.mc2_labels]
                    for i in truthfulqa
                ),
            }
        )
    ab: list[tuple[str, tuple[ABItem, ...]]] = []
    for path, name in zip(suite.ab, unique_names(suite.ab), strict=True):
        items = tuple(load_ab(path, limit=suite.limit))
        ab.append((name, items))
        hashes.append(
            {
                "kind": "ab",
                "dataset": name,
                "path": path,
                "n": len(items),
                "sha256": sha256_of_records(
                    [i.question, i.matching, i.not_matching] for i in items
                ),
            }
        )
    text = None
    if suite.text is not None:
        task = perplexity_task(suite.text, limit=suite.limit)
        name = task_name(suite.text)
        text = (name, task.texts)
        hashes.append(
            {
                "kind": "text",
                "dataset": name,
                "path": suite.text,
                "n": len(task.texts),
                "sha256": sha256_of_records(task.texts),
            }
        )
    cosine = tuple(s for _, statements in facts for s in statements)[: suite.cosine_prompts]
    setup = cosine_setup(suite, representations)
    if setup is not None:
        hashes.append(
            {
                "kind": "cosine",
                "dataset": COSINE_DATASET,
                "n": len(cosine),
                "sha256": sha256_of_records([s.text, s.label] for s in cosine),
                "layers": list(setup.layers),
                "layers_reason": setup.layers_reason,
                "answer_positions": setup.answer_positions,
                "positions_reason": setup.positions_reason,
            }
        )
    return SuiteData(tuple(facts), truthfulqa, tuple(ab), text, cosine, tuple(hashes), setup)
