"""Empirical estimates of the trade-off parameters, to set beside the fitted ones.

Both come from finite differences of real forward passes at coefficients ±ε (one batch
with per-row coefficients), in the same units as the sweep's coefficients:

* Δλ (behaviour): half the rate at which the injection moves the logit margin between the
  aligned and the misaligned answer letter. The change of the last hidden state per unit
  coefficient, projected on the difference of the two answers' unembedding rows, is exactly
  that margin's derivative; B = tanh(margin / 2) makes half of it the tanh slope Δλ.
* λσβ (helpfulness): the spread (standard deviation) across the top-T next tokens of
  unrelated queries of the logit change per unit coefficient, i.e. the logit noise the
  injection adds; the parabolic bound's curvature is (λσβ)²/2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from steerlab.chat import format_chat, messages_for
from steerlab.data.evalsets import ABItem, MultipleChoiceItem
from steerlab.errors import SpecError
from steerlab.evaluate.logprobs import (
    continuation_logprobs,
    last_logits,
    letter_token_id,
    steering_context,
)
from steerlab.evaluate.tasks import ContinuationBehaviorTask, RunContext, ab_prompt, mc_question
from steerlab.stats.intervals import mean_ci


@dataclass(frozen=True)
class Estimate:
    """An empirical parameter estimate with a 95% confidence interval over items."""

    name: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    epsilon: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def _logits_pm(
    ctx: RunContext, prompts: Sequence[str], epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Last-position logits at -ε and +ε for every prompt: two (n, vocab) tensors."""
    if ctx.vector is None:
        raise SpecError("estimates need a steering vector")
    minus, plus = [], []
    for start in range(0, len(prompts), max(1, ctx.batch_size // 2)):
        chunk = list(prompts[start : start + max(1, ctx.batch_size // 2)])
        texts = chunk + chunk
        coefficients = [-epsilon] * len(chunk) + [epsilon] * len(chunk)
        with steering_context(ctx.model, ctx.vector, ctx.spec, coefficients):
            logits = last_logits(ctx.model, ctx.tokenizer, texts).double()
        minus.append(logits[: len(chunk)])
        plus.append(logits[len(chunk) :])
    return torch.cat(minus), torch.cat(plus)


def estimate_delta_lambda(
    ctx: RunContext, items: Sequence[ABItem], epsilon: float, aligned: str = "matching"
) -> Estimate:
    """Δλ from the injection's effect on the aligned-vs-misaligned answer logit margin."""
    if epsilon <= 0 or not math.isfinite(epsilon):
        raise SpecError(f"epsilon {epsilon} must be a positive number")
    prompts = [ab_prompt(ctx.tokenizer, item.question, ctx.system) for item in items]
    minus, plus = _logits_pm(ctx, prompts, epsilon)
    sign = 1.0 if aligned == "matching" else -1.0
    slopes = []
    for row, (prompt, item) in enumerate(zip(prompts, items, strict=True)):
        a = letter_token_id(ctx.tokenizer, prompt, item.matching)
        b = letter_token_id(ctx.tokenizer, prompt, item.not_matching)
        margin_change = (plus[row, a] - plus[row, b]) - (minus[row, a] - minus[row, b])
        slopes.append(sign * float(margin_change) / (2 * epsilon) / 2)
    value, low, high = mean_ci(np.array(slopes))
    return Estimate("delta_lambda", value, low, high, len(slopes), epsilon)


def estimate_delta_lambda_replies(
    ctx: RunContext, task: ContinuationBehaviorTask, epsilon: float
) -> Estimate:
    """Δλ for reply-likelihood tasks: half the slope of the per-token log-probability margin."""
    if ctx.vector is None:
        raise SpecError("estimates need a steering vector")
    prompts = [format_chat(ctx.tokenizer, messages_for(p, ctx.system)) for p in task.prompts]
    texts, replies, coefficients = [], [], []
    for sign in (-1.0, 1.0):
        for prompt, pos, neg in zip(prompts, task.positives, task.negatives, strict=True):
            texts += [prompt, prompt]
            replies += [pos, neg]
            coefficients += [sign * epsilon] * 2
    scored = continuation_logprobs(
        ctx.model,
        ctx.tokenizer,
        texts,
        replies,
        coefficients,
        vector=ctx.vector,
        spec=ctx.spec,
        batch_size=ctx.batch_size,
    )
    n = len(prompts)
    margins = [
        scored[2 * k][0] / scored[2 * k][1] - scored[2 * k + 1][0] / scored[2 * k + 1][1]
        for k in range(2 * n)
    ]
    slopes = [(margins[n + i] - margins[i]) / (2 * epsilon) / 2 for i in range(n)]
    value, low, high = mean_ci(np.array(slopes))
    return Estimate("delta_lambda", value, low, high, n, epsilon)


def estimate_lambda_sigma_beta(
    ctx: RunContext, items: Sequence[MultipleChoiceItem], epsilon: float, top_t: int = 10
) -> Estimate:
    """λσβ from the spread of logit changes over each query's top-T tokens."""
    if top_t < 2:
        raise SpecError(f"top_t {top_t} must be at least 2")
    prompts = [ab_prompt(ctx.tokenizer, mc_question(item), ctx.system) for item in items]
    minus, plus = _logits_pm(ctx, prompts, epsilon)
    centre = (minus + plus) / 2  # logits at r = 0 up to O(ε²)
    spreads = []
    for row in range(len(prompts)):
        top = torch.topk(centre[row], top_t).indices
        change = (plus[row, top] - minus[row, top]) / (2 * epsilon)
        spreads.append(float(change.std(unbiased=True)))
    squares = np.array(spreads) ** 2
    mean, low, high = mean_ci(squares)
    root = math.sqrt(max(mean, 0.0))
    return Estimate(
        "lambda_sigma_beta",
        root,
        math.sqrt(max(low, 0.0)),
        math.sqrt(max(high, 0.0)),
        len(spreads),
        epsilon,
    )
