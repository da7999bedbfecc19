"""Chat-template helper: every prompt steerlab builds goes through :func:`format_chat`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from steerlab.errors import DataError

Message = Mapping[str, str]
ROLES = ("system", "user", "assistant")


def messages_for(
    user: str, system: str | None = None, history: Sequence[Message] | None = None
) -> list[dict[str, str]]:
    """Build a message list: optional system prompt, earlier turns, then the user message."""
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.extend(dict(m) for m in history or ())
    messages.append({"role": "user", "content": user})
    return messages


def validate_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """Check a chat message list and return it as plain dicts.

    Raises:
        DataError: naming ``where`` (e.g. ``FILE:LINE``) and the first bad message.
    """
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}}")
    out: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise DataError(f"{where}: messages[{i}] is not an object")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise DataError(f"{where}: messages[{i}].role is {role!r}; expected one of {ROLES}")
        if not isinstance(content, str):
            raise DataError(f"{where}: messages[{i}].content must be a string")
        out.append({"role": role, "content": content})
    return out


def format_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[Message],
    *,
    add_generation_prompt: bool = True,
) -> str:
    """Render messages (system / user / assistant) to the model's prompt text.

    Uses the tokenizer's chat template; a tokenizer without one (base models) gets a plain
    ``System:/User:/Assistant:`` layout so that prompts stay comparable across models.

    Args:
        tokenizer: the model's tokenizer.
        messages: ``[{"role": ..., "content": ...}, ...]``.
        add_generation_prompt: end with the header of an assistant turn.

    Returns:
        The prompt text, special tokens included as text.
    """
    plain = [dict(m) for m in messages]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            plain, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return str(text)
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in plain]
    if add_generation_prompt:
        lines.append("Assistant:")
    return "\n".join(lines)


def needs_special_tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> bool:
    """Whether tokenising ``text`` should add special tokens (not if it already has BOS).

    Chat-template text already carries the model's BOS; adding it again would double it.
    """
    bos = getattr(tokenizer, "bos_token", None)
    return not (bos and text.startswith(bos))
