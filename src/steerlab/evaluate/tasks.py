"""Sweep tasks: what is measured at each steering coefficient.

A task turns (items x coefficients) into rows of per-row-coefficient batches and returns
:class:`~steerlab.evaluate.results.SweepRow` values with 95% confidence intervals:

* :class:`ABBehaviorTask`: behaviour expectation from A/B answer-letter likelihoods,
  B = P(matching) - P(not matching), renormalised over the two letters, per item, averaged.
* :class:`SampledBehaviorTask`: B from n sampled responses per prompt, each scored +1/-1.
* :class:`MultipleChoiceTask`: helpfulness, the probability of the correct letter
  renormalised over the choices (the study's measure), argmax accuracy, and optionally the
  accuracy of sampled answers.
* :class:`PerplexityTask`: perplexity on a text set (general capability).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.chat import format_chat, messages_for
from steerlab.data.evalsets import ABItem, MultipleChoiceItem
from steerlab.errors import DataError
from steerlab.evaluate.logprobs import (
    continuation_logprobs,
    letter_token_id,
    next_token_logprobs,
    token_nll,
)
from steerlab.generate import generate
from steerlab.provenance import sha256_of_records
from steerlab.stats.intervals import mean_ci
from steerlab.stats.rows import SweepRow
from steerlab.steer import SCALES, SteerSpec
from steerlab.validation import check_choice, check_int, check_number
from steerlab.vector import SteeringVector

LETTERS = "ABCDEFGHIJ"
"""Answer letters of multiple-choice items, in choice order."""

ANSWER_PREFIX = "("
"""What a prompt ends with, so that the next token is the answer letter."""

ALIGNED = ("matching", "not_matching")
"""Which A/B answer is the aligned one (:attr:`ABBehaviorTask.aligned`)."""

SCORINGS = ("letter", "text")
"""How a multiple-choice item is scored (:attr:`MultipleChoiceTask.scoring`)."""


class ResponseScorer(Protocol):
    """Scores one response +1 (shows the behaviour) or -1 (does not)."""

    name: str

    def score(self, prompt: str, response: str) -> int:
        """+1 or -1."""
        ...


@dataclass(frozen=True)
class RunContext:
    """What every task needs to run: the model, the vector and how to apply it."""

    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    vector: SteeringVector | None
    spec: SteerSpec
    batch_size: int = 16
    seed: int = 0
    progress: bool = False
    system: str | None = None


def scale_arguments(scale: str | None) -> dict[str, Any]:
    """How :class:`~steerlab.steer.SteerSpec` and :func:`~steerlab.generate.generate` are told a
    resolved scale: ``scale=...``, or for the deprecated flags' ``"vector_norm"`` (which has no
    ``scale`` name) the two booleans, without warning twice about them."""
    if scale in SCALES or scale is None:
        return {"scale": scale}
    return {"normalize": False, "scale_by_norm": True, "scale": scale}


def ab_prompt(tokenizer: PreTrainedTokenizerBase, question: str, system: str | None) -> str:
    """Chat prompt for an A/B (or multiple-choice) question, ending where the letter goes."""
    return format_chat(tokenizer, messages_for(question, system)) + ANSWER_PREFIX


def mc_question(item: MultipleChoiceItem) -> str:
    """The user message of a multiple-choice item, choices labelled (A), (B), ..."""
    lines = [item.question.strip(), "", "Choices:"]
    lines += [f" ({LETTERS[i]}) {choice}" for i, choice in enumerate(item.choices)]
    lines += ["", "Answer with the letter of the correct choice."]
    return "\n".join(lines)


def _rows(n_items: int, coefficients: Sequence[float]) -> list[tuple[int, float]]:
    # Coefficient-major, so a chunk of rows shares few coefficients and resumes cleanly.
    return [(i, c) for c in coefficients for i in range(n_items)]


@dataclass(frozen=True)
class ABBehaviorTask:
    """Behaviour expectation from A/B letter likelihoods (metric ``B_likelihood``).

    Attributes:
        name: task name used in results.
        items: A/B items; ``matching`` is the letter showing the behaviour.
        aligned: ``"matching"`` if the behaviour is the aligned one, else ``"not_matching"``
            (B is then P(not matching) - P(matching)).
    """

    name: str
    items: tuple[ABItem, ...]
    aligned: str = "matching"
    kind: str = field(default="behavior", init=False)

    def __post_init__(self) -> None:
        if not self.items:
            raise DataError(f"task {self.name!r} has no items")
        check_choice(self.aligned, "aligned", ALIGNED)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metrics this task writes."""
        return ("B_likelihood",)

    def data_sha256(self) -> str:
        """Hash of the items (recorded with results)."""
        return sha256_of_records(
            [i.question, i.matching, i.not_matching, self.aligned] for i in self.items
        )

    def item_values(
        self, ctx: RunContext, coefficients: Sequence[float]
    ) -> dict[float, np.ndarray]:
        """Per-item B at each coefficient: {coefficient: array of shape (n_items,)}."""
        prompts = [ab_prompt(ctx.tokenizer, item.question, ctx.system) for item in self.items]
        ids = [
            [
                letter_token_id(ctx.tokenizer, prompt, item.matching),
                letter_token_id(ctx.tokenizer, prompt, item.not_matching),
            ]
            for prompt, item in zip(prompts, self.items, strict=True)
        ]
        rows = _rows(len(self.items), coefficients)
        logprobs = next_token_logprobs(
            ctx.model,
            ctx.tokenizer,
            [prompts[i] for i, _ in rows],
            [ids[i] for i, _ in rows],
            [c for _, c in rows],
            vector=ctx.vector,
            spec=ctx.spec,
            batch_size=ctx.batch_size,
            progress=ctx.progress,
            description=f"{self.name}: A/B likelihoods",
        )
        sign = 1.0 if self.aligned == "matching" else -1.0
        out: dict[float, list[float]] = {c: [] for c in coefficients}
        for (_, c), pair in zip(rows, logprobs, strict=True):
            # B_i = (p_m - p_n) / (p_m + p_n) = tanh((log p_m - log p_n) / 2), stable form.
            out[c].append(sign * math.tanh(float(pair[0] - pair[1]) / 2))
        return {c: np.array(v) for c, v in out.items()}

    def evaluate(self, ctx: RunContext, coefficients: Sequence[float]) -> list[SweepRow]:
        """Rows for every coefficient."""
        values = self.item_values(ctx, coefficients)
        return [_row(self.name, self.kind, "B_likelihood", c, values[c]) for c in coefficients]


@dataclass(frozen=True)
class ContinuationBehaviorTask:
    """Behaviour expectation from the likelihood of whole replies (metric ``B_likelihood``).

    For models too small to answer A/B questions, each item is a prompt with a reply that
    shows the behaviour and one that does not (a contrastive pair held out from
    extraction); B_i = (P(pos) - P(neg)) / (P(pos) + P(neg)) with per-token averaged
    log-probabilities, so that reply length does not decide.
    """

    name: str
    prompts: tuple[str, ...]
    positives: tuple[str, ...]
    negatives: tuple[str, ...]
    kind: str = field(default="behavior", init=False)

    def __post_init__(self) -> None:
        if not self.prompts:
            raise DataError(f"task {self.name!r} has no items")
        if not len(self.prompts) == len(self.positives) == len(self.negatives):
            raise DataError(f"task {self.name!r}: prompts and replies differ in number")

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metrics this task writes."""
        return ("B_likelihood",)

    def data_sha256(self) -> str:
        """Hash of the items."""
        return sha256_of_records(zip(self.prompts, self.positives, self.negatives, strict=True))

    def evaluate(self, ctx: RunContext, coefficients: Sequence[float]) -> list[SweepRow]:
        """Rows for every coefficient."""
        prompts = [format_chat(ctx.tokenizer, messages_for(p, ctx.system)) for p in self.prompts]
        rows = _rows(len(prompts), coefficients)
        texts, replies, coefs = [], [], []
        for i, c in rows:
            for reply in (self.positives[i], self.negatives[i]):
                texts.append(prompts[i])
                replies.append(reply)
                coefs.append(c)
        scored = continuation_logprobs(
            ctx.model,
            ctx.tokenizer,
            texts,
            replies,
            coefs,
            vector=ctx.vector,
            spec=ctx.spec,
            batch_size=ctx.batch_size,
            progress=ctx.progress,
            description=f"{self.name}: reply likelihoods",
        )
        values: dict[float, list[float]] = {c: [] for c in coefficients}
        for k, (_, c) in enumerate(rows):
            (lp_pos, n_pos), (lp_neg, n_neg) = scored[2 * k], scored[2 * k + 1]
            values[c].append(math.tanh((lp_pos / n_pos - lp_neg / n_neg) / 2))
        return [
            _row(self.name, self.kind, "B_likelihood", c, np.array(values[c])) for c in coefficients
        ]


@dataclass(frozen=True)
class SampledBehaviorTask:
    """Behaviour expectation from sampled responses (metric ``B_sampling``).

    Attributes:
        name: task name.
        prompts: user prompts.
        scorer: scores each response +1 (behaviour shown / aligned) or -1.
        n_samples: responses per prompt and coefficient.
        temperature: sampling temperature.
        max_new_tokens: response length.
    """

    name: str
    prompts: tuple[str, ...]
    scorer: ResponseScorer
    n_samples: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 48
    kind: str = field(default="behavior", init=False)

    def __post_init__(self) -> None:
        if not self.prompts:
            raise DataError(f"task {self.name!r} has no prompts")
        object.__setattr__(self, "n_samples", check_int(self.n_samples, "n_samples", minimum=1))
        # Checked, not converted: the value as given goes into data_sha256 (resumption).
        check_number(self.temperature, "temperature", low=0.0, low_open=True)
        tokens = check_int(self.max_new_tokens, "max_new_tokens", minimum=1)
        object.__setattr__(self, "max_new_tokens", tokens)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metrics this task writes."""
        return ("B_sampling",)

    def data_sha256(self) -> str:
        """Hash of the prompts and sampling settings."""
        settings = [self.scorer.name, self.n_samples, self.temperature, self.max_new_tokens]
        return sha256_of_records([*self.prompts, settings])

    def evaluate(self, ctx: RunContext, coefficients: Sequence[float]) -> list[SweepRow]:
        """Rows for every coefficient (n = prompts x samples)."""
        repeated = [p for p in self.prompts for _ in range(self.n_samples)]
        results = generate(
            ctx.model,
            ctx.tokenizer,
            repeated,
            ctx.vector,
            list(coefficients) if ctx.vector is not None else [0.0],
            layers=ctx.spec.layers,
            operator=ctx.spec.operator,
            **scale_arguments(ctx.spec.scale),
            positions=ctx.spec.positions,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            seed=ctx.seed,
            system=ctx.system,
            batch_size=ctx.batch_size,
            progress=ctx.progress,
        )
        scores: dict[float, list[int]] = {float(c): [] for c in coefficients}
        for result in results:
            key = float(result.coefficient) if ctx.vector is not None else float(coefficients[0])
            scores[key].append(int(self.scorer.score(result.prompt, result.text)))
        return [
            _row(self.name, self.kind, "B_sampling", c, np.array(scores[float(c)], dtype=float))
            for c in coefficients
        ]


@dataclass(frozen=True)
class MultipleChoiceTask:
    """Helpfulness on multiple-choice items (metrics ``p_correct``, ``accuracy``).

    Attributes:
        name: task name.
        items: multiple-choice items (e.g. MMLU).
        n_samples: if > 0, also sample that many answers per item (``sampled_accuracy``).
        temperature: sampling temperature for sampled answers.
    """

    name: str
    items: tuple[MultipleChoiceItem, ...]
    n_samples: int = 0
    temperature: float = 1.0
    scoring: str = "letter"
    kind: str = field(default="helpfulness", init=False)

    def __post_init__(self) -> None:
        if not self.items:
            raise DataError(f"task {self.name!r} has no items")
        check_choice(self.scoring, "scoring", SCORINGS)
        object.__setattr__(self, "n_samples", check_int(self.n_samples, "n_samples", minimum=0))
        # Checked, not converted: the value as given goes into data_sha256 (resumption).
        check_number(self.temperature, "temperature", low=0.0, low_open=True)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metrics this task writes."""
        base = ("p_correct", "accuracy")
        return (*base, "sampled_accuracy") if self.n_samples > 0 else base

    def data_sha256(self) -> str:
        """Hash of the items."""
        return sha256_of_records(
            [i.question, list(i.choices), i.answer, self.n_samples, self.temperature, self.scoring]
            for i in self.items
        )

    def _choice_scores(self, ctx: RunContext, rows: list[tuple[int, float]]) -> list[torch.Tensor]:
        """Per row, a score per choice whose softmax is the model's choice distribution."""
        if self.scoring == "text":
            # Mean log-probability per token of each answer text after the bare question.
            texts, replies, coefs, owner = [], [], [], []
            for k, (i, c) in enumerate(rows):
                prompt = format_chat(
                    ctx.tokenizer, messages_for(self.items[i].question, ctx.system)
                )
                for choice in self.items[i].choices:
                    texts.append(prompt)
                    replies.append(choice)
                    coefs.append(c)
                    owner.append(k)
            scored = continuation_logprobs(
                ctx.model,
                ctx.tokenizer,
                texts,
                replies,
                coefs,
                vector=ctx.vector,
                spec=ctx.spec,
                batch_size=ctx.batch_size,
                progress=ctx.progress,
                description=f"{self.name}: answer likelihoods",
            )
            grouped: list[list[float]] = [[] for _ in rows]
            for k, (lp, n) in zip(owner, scored, strict=True):
                grouped[k].append(lp / n)
            return [torch.tensor(g, dtype=torch.float64) for g in grouped]
        prompts = [ab_prompt(ctx.tokenizer, mc_question(item), ctx.system) for item in self.items]
        ids = [
            [letter_token_id(ctx.tokenizer, p, LETTERS[k]) for k in range(len(item.choices))]
            for p, item in zip(prompts, self.items, strict=True)
        ]
        return next_token_logprobs(
            ctx.model,
            ctx.tokenizer,
            [prompts[i] for i, _ in rows],
            [ids[i] for i, _ in rows],
            [c for _, c in rows],
            vector=ctx.vector,
            spec=ctx.spec,
            batch_size=ctx.batch_size,
            progress=ctx.progress,
            description=f"{self.name}: answer likelihoods",
        )

    def evaluate(self, ctx: RunContext, coefficients: Sequence[float]) -> list[SweepRow]:
        """Rows for every coefficient and metric."""
        rows = _rows(len(self.items), coefficients)
        logprobs = self._choice_scores(ctx, rows)
        p_correct: dict[float, list[float]] = {c: [] for c in coefficients}
        correct: dict[float, list[float]] = {c: [] for c in coefficients}
        sampled: dict[float, list[float]] = {c: [] for c in coefficients}
        generator = torch.Generator().manual_seed(ctx.seed)
        for (i, c), scores in zip(rows, logprobs, strict=True):
            answer = self.items[i].answer
            probabilities = torch.softmax(scores.double(), dim=0)  # renormalised over letters
            p_correct[c].append(float(probabilities[answer]))
            correct[c].append(float(int(torch.argmax(probabilities)) == answer))
            if self.n_samples > 0:
                tempered = torch.softmax(scores.double() / self.temperature, dim=0)
                draws = torch.multinomial(tempered, self.n_samples, True, generator=generator)
                sampled[c].extend(float(int(d) == answer) for d in draws)
        out = []
        for c in coefficients:
            out.append(_row(self.name, self.kind, "p_correct", c, np.array(p_correct[c])))
            out.append(_row(self.name, self.kind, "accuracy", c, np.array(correct[c])))
            if self.n_samples > 0:
                out.append(_row(self.name, self.kind, "sampled_accuracy", c, np.array(sampled[c])))
        return out


@dataclass(frozen=True)
class PerplexityTask:
    """Perplexity on a set of texts (metric ``perplexity``; lower is better)."""

    name: str
    texts: tuple[str, ...]
    kind: str = field(default="perplexity", init=False)

    def __post_init__(self) -> None:
        if not self.texts:
            raise DataError(f"task {self.name!r} has no texts")

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metrics this task writes."""
        return ("perplexity",)

    def data_sha256(self) -> str:
        """Hash of the texts."""
        return sha256_of_records(self.texts)

    def evaluate(self, ctx: RunContext, coefficients: Sequence[float]) -> list[SweepRow]:
        """Rows for every coefficient; the CI comes from per-text mean NLLs."""
        rows = _rows(len(self.texts), coefficients)
        nll = token_nll(
            ctx.model,
            ctx.tokenizer,
            [self.texts[i] for i, _ in rows],
            [c for _, c in rows],
            vector=ctx.vector,
            spec=ctx.spec,
            batch_size=max(1, ctx.batch_size // 2),
            progress=ctx.progress,
        )
        out = []
        for c in coefficients:
            per_text = [t for (_, rc), t in zip(rows, nll, strict=True) if rc == c]
            total = torch.cat(per_text)
            means = np.array([float(t.mean()) for t in per_text])
            _, low, high = mean_ci(means)
            value = math.exp(float(total.mean()))
            out.append(
                SweepRow(
                    self.name,
                    self.kind,
                    "perplexity",
                    float(c),
                    value,
                    math.exp(low),
                    math.exp(high),
                    int(total.numel()),
                )
            )
        return out


Task = (
    ABBehaviorTask
    | ContinuationBehaviorTask
    | SampledBehaviorTask
    | MultipleChoiceTask
    | PerplexityTask
)


_RANGES = {"B_likelihood": (-1.0, 1.0), "B_sampling": (-1.0, 1.0)}


def _row(task: str, kind: str, metric: str, coefficient: float, values: np.ndarray) -> SweepRow:
    mean, low, high = mean_ci(values)
    # The normal interval can overshoot what the metric can be; clip it to that range.
    lowest, highest = _RANGES.get(metric, (0.0, 1.0))
    low, high = max(low, lowest), min(high, highest)
    return SweepRow(task, kind, metric, float(coefficient), mean, low, high, int(values.size))
