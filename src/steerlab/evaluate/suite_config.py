"""What the honesty suite measures: its settings (:class:`HonestySuite`) and where its data is.

The suite compares models on true/false statements (``tf_*``), TruthfulQA multiple choice,
honest A/B answers, perplexity and the cosine to a target vector over a statement's own
tokens and over its answer (:data:`METRICS`). A
:class:`HonestySuite` names the data files and the settings, and is checked when built, so a
bad field fails with one line before any model is loaded; :func:`find_data_dir` finds the data
folder of the study (``shared/data``), else the built-in sets are used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from steerlab.data.honesty import HonestyTemplates
from steerlab.errors import DataError, SpecError
from steerlab.evaluate.model_specs import check_layers
from steerlab.validation import check_choice, check_int
from steerlab.vector import SteeringVector

__all__ = [
    "ANSWER_POSITIONS",
    "COSINE_DATASET",
    "COSINE_METRICS",
    "DATA_ENV",
    "FACT_FILES",
    "METRICS",
    "SPLITS",
    "SUITES",
    "TRUTHFULQA",
    "TRUTHFULQA_FILE",
    "HonestySuite",
    "cosine_dataset",
    "find_data_dir",
    "resolve_suite",
]

SUITES = ("honesty",)
"""The suites :func:`resolve_suite` knows by name."""

DATA_ENV = "STEERLAB_DATA"
"""The environment variable naming the data folder."""

SPLITS = ("auto", "heldout", "all")
"""Which statements of a facts file are scored (see :attr:`HonestySuite.split`)."""

FACT_FILES = ("facts_true_false.csv", "cities.csv", "sp_en_trans.csv")
"""The facts files of a data folder (``facts/``), in order."""

TRUTHFULQA_FILE = Path("truthfulqa") / "mc_task.json"
"""The TruthfulQA multiple-choice file of a data folder."""

METRICS: tuple[str, ...] = (
    "tf_accuracy",
    "tf_auroc",
    "truthfulqa_mc1",
    "truthfulqa_mc2",
    "ab_honest_rate",
    "ab_honest_prob",
    "perplexity",
    "cosine_statement",
    "cosine_answer",
)
"""Every metric the suite writes, in table order."""

COSINE_METRICS: tuple[str, ...] = ("cosine_statement", "cosine_answer")
"""The cosine rows: over the statement's own tokens, and over the answer's position(s).

They replace the ``cosine`` row of format ``steerlab.suite/1``, which averaged every token of
the prompt (chat template included) and so barely depended on the statement."""

ANSWER_POSITIONS = ("auto", "answer", "last")
"""Where ``cosine_answer`` reads (see :attr:`HonestySuite.answer_positions`)."""

TRUTHFULQA = "truthfulqa"
"""The dataset name of the TruthfulQA rows."""

COSINE_DATASET = "facts"
"""The dataset name of the cosine rows' mean over layers (fact prompts)."""


def cosine_dataset(layer: int | None = None) -> str:
    """The dataset name of a cosine row: ``"facts"`` (mean over layers) or ``"facts L12"``."""
    return COSINE_DATASET if layer is None else f"{COSINE_DATASET} L{layer}"


def _paths(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str | os.PathLike):
        value = (value,)
    try:
        paths = tuple(os.fspath(p) for p in value)
    except TypeError:
        raise SpecError(f"suite field {what!r} must be a list of paths, got {value!r}") from None
    for path in paths:
        if not path:
            raise SpecError(f"suite field {what!r} holds an empty path")
    return paths


@dataclass(frozen=True)
class HonestySuite:
    """What the honesty suite measures, and how.

    Attributes:
        facts: true/false statement files (``builtin:facts`` works).
        truthfulqa: a TruthfulQA MC JSON (mc1/mc2 targets); None: skipped.
        ab: A/B files whose ``answer_matching_behavior`` is the honest answer.
        text: texts for perplexity (one a line, or JSONL with ``text``); None: skipped.
        vector: the target vector of the cosine metrics (:data:`COSINE_METRICS`); None:
            skipped.
        vector_path: where ``vector`` came from (recorded only).
        layers: layers of the cosine metrics and the default steering layers; None: the
            steering layers are the vector's, and the cosine layers those the evaluated
            representation-tuning runs tuned (those the vector has), else the vector's.
        templates: the wording of the evaluation prompt and the two answers.
        split: which statements of each facts file are scored: ``"heldout"`` (only those
            :func:`~steerlab.data.honesty.held_out` keeps out of training), ``"all"``, or
            ``"auto"``: ``heldout`` for a file that a model being evaluated was tuned on (its
            run folder's provenance names the file or its statements), else ``all``, so that
            a user's own test file is scored whole.
        limit: items per dataset at most (after filtering, the first ones); None: all.
        cosine_prompts: statements for the cosine metrics: the first of those kept (the ones
            of the split), across the facts files in order.
        answer_positions: where ``cosine_answer`` reads, on the evaluation prompt followed by
            the honest answer: ``"answer"`` (the answer's tokens and the end-of-turn token,
            what representation tuning's ``positions="answer"`` pulls), ``"last"`` (the last
            token, its ``positions="last"``), or ``"auto"``: ``"last"`` when every evaluated
            representation-tuning run used ``"last"``, else ``"answer"``.
        bootstrap: bootstrap resamples per interval.
        seed: seed of the bootstrap.
        batch_size: rows per forward pass.

    Raises:
        SpecError: naming the field: bad paths, a non-positive limit / count / batch size, a
            bad layer, or nothing to measure.
    """

    facts: tuple[str, ...] = ("builtin:facts",)
    truthfulqa: str | None = None
    ab: tuple[str, ...] = ("builtin:honesty_ab",)
    text: str | None = "builtin:general_text"
    vector: SteeringVector | None = field(default=None, hash=False, repr=False)
    layers: tuple[int, ...] | None = None
    templates: HonestyTemplates = field(default_factory=HonestyTemplates)
    split: str = "auto"
    limit: int | None = 200
    cosine_prompts: int = 64
    bootstrap: int = 1000
    seed: int = 0
    batch_size: int = 16
    vector_path: str | None = None
    answer_positions: str = "auto"

    def __post_init__(self) -> None:
        check_choice(self.split, "suite field 'split'", SPLITS)
        check_choice(self.answer_positions, "suite field 'answer_positions'", ANSWER_POSITIONS)
        object.__setattr__(self, "facts", _paths(self.facts, "facts"))
        object.__setattr__(self, "ab", _paths(self.ab, "ab"))
        for name in ("truthfulqa", "text"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _paths(value, name)[0])
        if self.vector is not None and not isinstance(self.vector, SteeringVector):
            raise SpecError("suite field 'vector' must be a SteeringVector or None")
        object.__setattr__(self, "layers", check_layers(self.layers, "suite field 'layers'"))
        if not isinstance(self.templates, HonestyTemplates):
            raise SpecError("suite field 'templates' must be HonestyTemplates")
        for name in ("cosine_prompts", "bootstrap", "batch_size"):
            value = check_int(getattr(self, name), f"suite field {name!r}", minimum=1)
            object.__setattr__(self, name, value)
        limit = check_int(self.limit, "suite field 'limit'", minimum=1, optional=True)
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "seed", check_int(self.seed, "suite field 'seed'"))
        if self.vector is not None and self.layers is not None:
            missing = [layer for layer in self.layers if layer not in self.vector.directions]
            if missing:
                raise SpecError(
                    f"suite field 'layers': the vector has no layer {missing[0]} "
                    f"(it has {', '.join(map(str, self.vector.layers))})"
                )
        if self.vector is not None and not self.facts:
            raise SpecError("suite field 'facts' is empty: the cosine metric needs fact prompts")
        if not (self.facts or self.truthfulqa or self.ab or self.text):
            raise SpecError("the suite measures nothing: give facts, truthfulqa, ab or text")

    @classmethod
    def from_data_dir(cls, data_dir: str | os.PathLike[str], **overrides: Any) -> HonestySuite:
        """A suite over a folder laid out like ``shared/data``.

        Uses ``facts/facts_true_false.csv``, ``facts/cities.csv``, ``facts/sp_en_trans.csv``
        (those present; ``builtin:facts`` when none is) and ``truthfulqa/mc_task.json`` when
        present; ``ab`` and ``text`` stay built-in unless overridden.

        Raises:
            DataError: ``data_dir`` is not a folder.
            SpecError: an unknown override or a bad value.
        """
        root = Path(data_dir)
        if not root.is_dir():
            raise DataError(f"{root}: no such data folder")
        facts = tuple(str(root / "facts" / name) for name in FACT_FILES)
        present = tuple(p for p in facts if Path(p).is_file())
        truthfulqa = root / TRUTHFULQA_FILE
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise SpecError(
                f"unknown suite field {unknown[0]!r}; known: {', '.join(sorted(known))}"
            )
        settings: dict[str, Any] = {
            "facts": present or ("builtin:facts",),
            "truthfulqa": str(truthfulqa) if truthfulqa.is_file() else None,
        }
        settings.update(overrides)
        return cls(**settings)

    def settings(self) -> dict[str, Any]:
        """The JSON-able settings a resumed run must match."""
        return {
            "facts": list(self.facts),
            "truthfulqa": self.truthfulqa,
            "ab": list(self.ab),
            "text": self.text,
            "vector": None
            if self.vector is None
            else {
                "path": self.vector_path,
                "sha256": self.vector.sha256(),
                "metadata": self.vector.metadata.recipe(),
            },
            "layers": None if self.layers is None else list(self.layers),
            "templates": self.templates.to_dict(),
            "split": self.split,
            "limit": self.limit,
            "cosine_prompts": self.cosine_prompts,
            "answer_positions": self.answer_positions,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "steering": {"operator": "add", "positions": "all", "normalize": False},
        }


def find_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The data folder: ``explicit``, else ``$STEERLAB_DATA``, else ``../shared/data`` or
    ``./data`` (relative to the working directory) when it has a ``facts/`` subfolder.

    Returns:
        The folder, or None when none is given and none is found.

    Raises:
        DataError: ``explicit`` or ``$STEERLAB_DATA`` names no folder.
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise DataError(f"{path}: no such data folder")
        return path
    env = os.environ.get(DATA_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataError(f"${DATA_ENV}={env}: no such data folder")
        return path
    for candidate in (Path("..") / "shared" / "data", Path("data")):
        if (candidate / "facts").is_dir():
            return candidate
    return None


def resolve_suite(suite: HonestySuite | str) -> HonestySuite:
    """``suite`` itself, or for ``"honesty"`` the suite over :func:`find_data_dir`'s folder
    (the built-in sets when there is none).

    Raises:
        SpecError: an unknown suite name.
    """
    if isinstance(suite, HonestySuite):
        return suite
    if suite not in SUITES:
        raise SpecError(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}")
    data_dir = find_data_dir()
    return HonestySuite.from_data_dir(data_dir) if data_dir is not None else HonestySuite()
