"""Rows to training examples: detect the row shape, render it, and mask the loss.

Shapes (checked in this order): conversational `messages` (loss on assistant turns only),
`prompt` + `completion` (loss on the completion), instruction columns (loss on the response),
plain `text` (loss on every token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from tuning_runner.config.sections import DatasetSection
from tuning_runner.errors import DatasetError

IGNORE_INDEX = -100


class RowShape(StrEnum):
    CONVERSATIONAL = "conversational"
    PROMPT_COMPLETION = "prompt-completion"
    INSTRUCTION = "instruction"
    TEXT = "text"


class Tokenizer(Protocol):
    """The slice of a Hugging Face tokenizer used here."""

    chat_template: Any
    eos_token_id: Any
    bos_token_id: Any

    def __call__(self, text: str, add_special_tokens: bool = ...) -> Any: ...

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class ShapePlan:
    shape: RowShape
    columns: tuple[str, ...]


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


def detect_shape(columns: Sequence[str], cfg: DatasetSection) -> ShapePlan:
    cols = set(columns)
    messages = cfg.messages_column or "messages"
    if messages in cols:
        return ShapePlan(RowShape.CONVERSATIONAL, (messages,))
    if {"prompt", "completion"} <= cols:
        return ShapePlan(RowShape.PROMPT_COMPLETION, ("prompt", "completion"))
    if cfg.context_column and cfg.response_column:
        missing = [c for c in (cfg.context_column, cfg.response_column) if c not in cols]
        if missing:
            raise DatasetError(
                f"DatasetConfig names column(s) {', '.join(missing)} that the dataset lacks "
                f"(it has {', '.join(sorted(cols))})"
            )
        return ShapePlan(RowShape.INSTRUCTION, (cfg.context_column, cfg.response_column))
    if {"instruction", "response"} <= cols:
        extra = ("context",) if "context" in cols else ()
        return ShapePlan(RowShape.INSTRUCTION, ("instruction", "response", *extra))
    text = cfg.response_column or "text"
    if text in cols:
        return ShapePlan(RowShape.TEXT, (text,))
    raise DatasetError(
        f"the dataset's columns ({', '.join(sorted(cols)) or 'none'}) match no known shape; "
        f"expected '{messages}' (conversational), 'prompt'+'completion', "
        "'instruction'+'response' (or DatasetConfig context_column/response_column), or 'text'"
    )


def _ids(out: Any) -> list[int]:
    if isinstance(out, dict) or hasattr(out, "keys"):
        return list(out["input_ids"])
    return list(out)


def _check_messages(value: Any, row: int) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise DatasetError(f"row {row}: 'messages' must be a non-empty list of {{role, content}}")
    out = []
    for m in value:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DatasetError(f"row {row}: every message needs 'role' and 'content'")
        out.append({"role": str(m["role"]), "content": str(m["content"] or "")})
    if not any(m["role"] == "assistant" for m in out):
        raise DatasetError(f"row {row}: the conversation has no assistant turn to learn from")
    return out


def _conversation(tok: Tokenizer, messages: list[dict[str, str]]) -> Example:
    rendered = tok.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = list(rendered["input_ids"])
    mask = list(rendered.get("assistant_masks") or [])
    if not any(mask):
        mask = _assistant_mask_by_prefix(tok, messages, len(ids))
    labels = [t if m else IGNORE_INDEX for t, m in zip(ids, mask, strict=True)]
    return Example(ids, labels)


def _assistant_mask_by_prefix(
    tok: Tokenizer, messages: list[dict[str, str]], length: int
) -> list[int]:
    """For templates without `{% generation %}` markers: diff renderings of growing prefixes."""
    mask = [0] * length
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(_ids(tok.apply_chat_template(messages[:i], add_generation_prompt=True)))
        end = len(_ids(tok.apply_chat_template(messages[: i + 1])))
        for j in range(min(start, length), min(end, length)):
            mask[j] = 1
    return mask


def _prompt_completion(tok: Tokenizer, prompt: Any, completion: Any) -> Example:
    if isinstance(prompt, list) and isinstance(completion, list):
        messages = prompt + completion
        full = _ids(tok.apply_chat_template(messages))
        head = len(_ids(tok.apply_chat_template(prompt, add_generation_prompt=True)))
        return Example(full, [IGNORE_INDEX] * head + full[head:])
    head_ids = _ids(tok(str(prompt), add_special_tokens=True))
    tail_ids = _ids(tok(str(completion), add_special_tokens=False))
    if tok.eos_token_id is not None:
        tail_ids.append(int(tok.eos_token_id))
    return Example(head_ids + tail_ids, [IGNORE_INDEX] * len(head_ids) + tail_ids)


def _instruction(tok: Tokenizer, plan: ShapePlan, row: dict[str, Any]) -> Example:
    prompt = str(row[plan.columns[0]] or "")
    if len(plan.columns) > 2 and row.get(plan.columns[2]):
        prompt = f"{prompt}\n\n{row[plan.columns[2]]}"
    response = str(row[plan.columns[1]] or "")
    if tok.chat_template:
        return _conversation(
            tok, [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        )
    return _prompt_completion(tok, prompt + "\n", response)


def _text(tok: Tokenizer, text: Any) -> Example:
    ids = _ids(tok(str(text or ""), add_special_tokens=True))
    if tok.eos_token_id is not None:
        ids.append(int(tok.eos_token_id))
    return Example(ids, list(ids))


def to_example(tok: Tokenizer, plan: ShapePlan, row: dict[str, Any], index: int) -> Example:
    missing = [c for c in plan.columns if c not in row]
    if missing:
        raise DatasetError(f"row {index} lacks column(s) {', '.join(missing)}")
    if plan.shape is RowShape.CONVERSATIONAL:
        return _conversation(tok, _check_messages(row[plan.columns[0]], index))
    if plan.shape is RowShape.PROMPT_COMPLETION:
        return _prompt_completion(tok, row["prompt"], row["completion"])
    if plan.shape is RowShape.INSTRUCTION:
        return _instruction(tok, plan, row)
    return _text(tok, row[plan.columns[0]])


@dataclass
class TokenizedData:
    examples: list[Example]
    shape: RowShape
    truncated: int
    dropped: int


def tokenize_rows(
    tok: Tokenizer, rows: list[dict[str, Any]], cfg: DatasetSection, max_length: int
) -> TokenizedData:
    """Examples ready for packing. Rows over `max_length` are truncated and counted; rows left
    with nothing to learn (no label tokens) are dropped and counted."""
    plan = detect_shape(list(rows[0].keys()), cfg)
    examples: list[Example] = []
    truncated = dropped = 0
    for i, row in enumerate(rows):
        ex = to_example(tok, plan, row, i)
        if len(ex.input_ids) > max_length:
            truncated += 1
            ex = Example(ex.input_ids[:max_length], ex.labels[:max_length])
        if len(ex.input_ids) < 2 or all(label == IGNORE_INDEX for label in ex.labels[1:]):
            dropped += 1
            continue
        examples.append(ex)
    if not examples:
        raise DatasetError(
            f"no row of the {plan.shape} dataset has tokens to learn from "
            f"(max_length {max_length}); check the data and max_length"
        )
    return TokenizedData(examples, plan.shape, truncated, dropped)
