"""Which chat template the server renders conversations with."""

from __future__ import annotations

import logging
from typing import Any

from inference_server.settings import ServerSettings
from kaito_common.presets.chat_templates import chat_template_text

log = logging.getLogger(__name__)


def choose_chat_template(tokenizer: Any, settings: ServerSettings) -> str:
    """Sets the tokenizer's chat template: `--chat-template FILE` always; else the model's own;
    else the preset's (`--default-chat-template NAME`). Returns where it came from."""
    if settings.chat_template is not None:
        tokenizer.chat_template = settings.chat_template.read_text()
        return f"file {settings.chat_template}"
    if getattr(tokenizer, "chat_template", None):
        return "the model's tokenizer"
    if settings.default_chat_template:
        tokenizer.chat_template = chat_template_text(settings.default_chat_template)
        log.info(
            "The model's tokenizer has no chat template: using the preset's template=%s",
            settings.default_chat_template,
        )
        return f"the preset's {settings.default_chat_template}"
    return "none (chat requests are refused)"
