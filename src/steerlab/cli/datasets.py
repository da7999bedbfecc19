"""``steerlab dataset qa`` and ``dataset pairs``: honest / deceptive Q/A data and its pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steerlab.cli.common import (
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    check_count,
    check_number,
    check_output,
    console,
    friendly_errors,
    parse_device_map,
)
from steerlab.errors import DataError, SpecError

GROUP_HELP = "Build honest / deceptive short-answer Q/A data and contrastive pairs."


@friendly_errors
def qa(
    questions: Annotated[
        Path,
        typer.Option(
            "--questions", "-q", help="Questions: text (a line each), JSONL or JSON chats."
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output JSONL of user/assistant chats.")
    ],
    model: ModelOpt = "default",
    style: Annotated[
        str, typer.Option(help="honest or deceptive (picks the default system prompt).")
    ] = "honest",
    system: Annotated[
        str | None, typer.Option(help="System prompt replacing the style's default.")
    ] = None,
    expand: Annotated[
        int, typer.Option(help="Ask the model for up to N new similar questions first.")
    ] = 0,
    dedupe: Annotated[
        bool, typer.Option(help="Drop near-duplicate input questions first.")
    ] = False,
    save_questions: Annotated[
        Path | None,
        typer.Option(help="Also write the final question list here (text, a line each)."),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N questions.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per answer.")] = 24,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Prompts per generate call.")] = 16,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    device_map: DeviceMapOpt = None,
) -> None:
    """Answer questions under an honest or deceptive system prompt; write chat JSONL."""
    from steerlab.data.qa import (
        answer_questions,
        dedupe_questions,
        expand_questions,
        read_questions,
        system_prompt,
        write_chat_jsonl,
        write_questions,
    )
    from steerlab.models import load_model

    system_prompt(style, system)  # validate the style before any loading
    if expand < 0:
        raise SpecError(f"--expand {expand} must be >= 0")
    check_count(max_new_tokens, "--max-new-tokens")
    check_count(batch_size, "--batch-size")
    check_count(limit, "--limit")
    check_number(temperature, "--temperature")
    parsed_device_map = parse_device_map(device_map)
    check_output(output)
    if save_questions is not None:
        check_output(save_questions, "--save-questions")
    items = read_questions(questions, limit=limit)  # bad input fails before loading
    if dedupe:
        items = dedupe_questions(items)
    loaded, tokenizer = load_model(model, dtype=dtype, device=device, device_map=parsed_device_map)
    new: list[str] = []
    if expand:
        new = expand_questions(
            loaded, tokenizer, items, expand, batch_size=batch_size, seed=seed, progress=True
        )
        items = [*items, *new]
    examples = answer_questions(
        loaded,
        tokenizer,
        items,
        style,
        system,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        temperature=temperature,
        seed=seed,
        progress=True,
    )
    if save_questions is not None:
        write_questions(items, save_questions)
    write_chat_jsonl(examples, output)
    empty = sum(1 for e in examples if not e.answer)
    console.print(
        f"wrote {output}: {len(examples)} {style} answers"
        + (f" ({len(new)} new questions)" if expand else "")
        + (f", {empty} empty" if empty else "")
    )


@friendly_errors
def pairs(
    honest: Annotated[
        Path, typer.Option("--honest", help="Honest Q/A: chat JSONL or the study's JSON.")
    ],
    deceptive: Annotated[
        Path, typer.Option("--deceptive", help="Deceptive Q/A: chat JSONL or study JSON.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output pairs JSONL.")],
) -> None:
    """Pair honest and deceptive answers by question: + deceptive, - honest."""
    from steerlab.data.qa import pair_honest_deceptive, read_qa, write_pairs_jsonl

    check_output(output)
    result = pair_honest_deceptive(read_qa(honest), read_qa(deceptive))
    if not result.pairs:
        raise DataError(f"{honest} and {deceptive} share no question answered on both sides")
    write_pairs_jsonl(result.pairs, output)
    console.print(
        f"wrote {output}: {len(result.pairs)} pairs (positive = deceptive, negative = honest);"
        f" left out {result.unmatched_honest} honest-only and {result.unmatched_deceptive}"
        f" deceptive-only questions, {result.duplicates} repeats, {result.empty} with an"
        f" empty answer, {result.identical} with identical answers"
    )
