"""The README runs: every Python and CLI example, in order, on the embedded model.

The README is a tutorial whose blocks build on each other (the quickstart's vector is
calibrated, the CLI's vector is swept...), so the test runs them as a reader would: every
block in one working folder, the Python blocks in one namespace, the CLI lines as
`python -m steerlab ...` subprocesses. The steering examples must also stay fluent: the
perplexity of each steered continuation under the unsteered model is at most
:data:`PERPLEXITY_BOUND` times the unsteered continuation's, and no continuation is one
token repeated (repetition has a low perplexity, so the bound alone would miss it).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import steerlab as sl
from steerlab.evaluate.logprobs import continuation_logprobs
from steerlab.generate import render_prompts

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"
# Stated in the README next to the quickstart. Measured on the quickstart's vector at layer 15
# (2026-12-01): fluent steered continuations at +-0.3 score 1.5-2.0x the unsteered one, +-0.6
# (still fluent, more florid) 3.3-4.4x, +-1.0 (broken sentences, emoji runs) 8-14x.
PERPLEXITY_BOUND = 4.0
# Tokens: fewest distinct tokens among a continuation's tokens ("!!!!!!!!" has one).
MIN_DISTINCT_FRACTION = 0.3
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
# On the line before a fence: the block is not run, for the reason given (e.g. it needs a
# file the reader has and the test cannot have).
SKIP = re.compile(r"<!-- docs-test: skip \((.+)\) -->\n$")
# On the line before a fence: the block is a file the later examples use (an experiment spec),
# written into the working folder under that name.
FILE = re.compile(r"<!-- docs-test: file ([\w.-]+) -->\n$")
# On the line before a fence: the block talks to `steerlab serve` (the first starts it); they
# are run by tests/serve/test_readme_serve.py against a live server, not here.
SERVE = re.compile(r"<!-- docs-test: serve -->\n$")
# On the line before a fence: commands under a launcher (torchrun / accelerate launch), checked
# and run by tests/test_readme_launch.py, not here.
LAUNCH = re.compile(r"<!-- docs-test: launch -->\n$")


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    language: str
    text: str
    line: int  # 1-based line of the opening fence
    skip_reason: str | None = None
    file_name: str | None = None
    serve: bool = False
    launch: bool = False

    @property
    def commands(self) -> list[str]:
        """The block's lines with backslash continuations joined, comments and blanks dropped."""
        joined = self.text.replace("\\\n", " ")
        return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]

    @property
    def is_cli(self) -> bool:
        return self.language in ("", "sh", "bash") and any(
            c.startswith("steerlab ") for c in self.commands
        )


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, in order."""
    blocks = []
    for m in FENCE.finditer(text):
        before = text[text.rfind("\n", 0, max(m.start() - 1, 0)) + 1 : m.start()]
        skip = SKIP.search(before)
        file = FILE.search(before)
        line = text.count("\n", 0, m.start()) + 1
        blocks.append(
            Block(
                m.group(1),
                m.group(2),
                line,
                skip.group(1) if skip else None,
                file.group(1) if file else None,
                SERVE.search(before) is not None,
                LAUNCH.search(before) is not None,
            )
        )
    return blocks


def runnable(blocks: Sequence[Block]) -> list[Block]:
    """The Python and steerlab-CLI blocks; a block mixing steerlab lines with others fails."""
    chosen = []
    for block in blocks:
        if block.skip_reason is not None or block.serve or block.launch:
            continue
        if block.file_name is not None or block.language == "python":
            chosen.append(block)
        elif block.is_cli:
            others = [c for c in block.commands if not c.startswith("steerlab ")]
            assert not others, f"README.md:{block.line}: CLI block mixes in {others}"
            chosen.append(block)
    return chosen


def test_blocks_are_found_and_nothing_steerlab_is_left_out() -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    chosen = runnable(blocks)
    assert sum(b.language == "python" for b in chosen) >= 4
    assert sum(b.is_cli for b in chosen) >= 5
    skipped = [b for b in blocks if b.skip_reason is not None]
    assert len(skipped) <= 1, [f"README.md:{b.line}: {b.skip_reason}" for b in skipped]
    for block in blocks:
        if (
            block not in chosen
            and block.skip_reason is None
            and not block.serve
            and not block.launch
        ):
            # install steps, data formats, the layer diagram
            assert "steerlab " not in block.text or block.text.lstrip().startswith(
                ("make", "pip", "{", "cli")
            ), f"README.md:{block.line}: a steerlab example that the docs test does not run"


def perplexities(model, tokenizer, prompt: str, texts: Sequence[str]) -> list[float]:
    """Perplexity of each continuation after the chat-formatted prompt, unsteered."""
    rendered = render_prompts(tokenizer, [prompt] * len(texts), None, True)
    scores = continuation_logprobs(model, tokenizer, rendered, list(texts), [0.0] * len(texts))
    # Capped: a broken model's text can score beyond what a float's exp holds.
    return [math.exp(min(-total / n, 700.0)) for total, n in scores]


def check_fluent(model, tokenizer, rows: Sequence[tuple[str, float, str]], where: str) -> None:
    """Steered continuations differ from the unsteered one and stay within the bounds."""
    by_prompt: dict[str, dict[float, str]] = {}
    for prompt, coefficient, text in rows:
        by_prompt.setdefault(prompt, {})[coefficient] = text
    for prompt, texts in by_prompt.items():
        assert 0.0 in texts and len(texts) >= 2, (
            f"{where}: needs an unsteered row and a steered one"
        )
        coefficients = sorted(texts)
        ppl = dict(
            zip(
                coefficients,
                perplexities(model, tokenizer, prompt, [texts[c] for c in coefficients]),
                strict=True,
            )
        )
        for c in coefficients:
            ids = tokenizer(texts[c], add_special_tokens=False)["input_ids"]
            distinct = len(set(ids)) / max(len(ids), 1)
            assert distinct >= MIN_DISTINCT_FRACTION, (
                f"{where}: coefficient {c} repeats: {texts[c]!r}"
            )
            if c != 0.0:
                assert texts[c] != texts[0.0], f"{where}: coefficient {c} changed nothing"
                assert ppl[c] <= PERPLEXITY_BOUND * ppl[0.0], (
                    f"{where}: coefficient {c}: perplexity {ppl[c]:.1f} > {PERPLEXITY_BOUND} x "
                    f"{ppl[0.0]:.1f} (unsteered): {texts[c]!r}"
                )


def run_cli(command: str, cwd: Path, where: str) -> str:
    args = shlex.split(command)
    env = dict(os.environ, COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-m", "steerlab", *args[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, (
        f"{where}: `{command}` exited {done.returncode}:\n{done.stderr[-3000:]}"
    )
    return done.stdout


def test_every_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base, base_tokenizer = sl.load_model("default")  # the unsteered judge of fluency
    namespace: dict[str, object] = {"__name__": "readme"}
    checked = 0
    for block in runnable(readme_blocks(README.read_text(encoding="utf-8"))):
        where = f"README.md:{block.line}"
        if block.file_name is not None:
            (tmp_path / block.file_name).write_text(block.text, encoding="utf-8")
            continue
        if block.language == "python":
            exec(compile(block.text, where, "exec"), namespace)
            generations = namespace.pop("generations", None)
            if generations is not None:
                rows = [(g.prompt, g.coefficient, g.text) for g in generations]  # type: ignore[attr-defined]
                check_fluent(base, base_tokenizer, rows, where)
                checked += 1
            continue
        for command in block.commands:
            run_cli(command, tmp_path, where)
            if command.startswith("steerlab generate ") and "--json" not in command:
                # The same command as JSON lines, to judge the texts it printed.
                out = run_cli(command + " --json", tmp_path, where)
                rows = [
                    (row["prompt"], row["coefficient"], row["text"])
                    for row in map(json.loads, out.splitlines())
                ]
                if len({r[1] for r in rows}) > 1:
                    check_fluent(base, base_tokenizer, rows, f"{where} `{command}`")
                    checked += 1
    assert checked >= 2  # the Python quickstart and the CLI generate
