"""Each preset family's chat template renders a conversation as the family's models expect it
(the expected texts are the formats of the models' cards), and every preset names one that
exists."""

from __future__ import annotations

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from kaito_common.presets import default_catalog
from kaito_common.presets.chat_templates import (
    UnknownChatTemplateError,
    chat_template_names,
    chat_template_text,
)

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is Kubernetes?"},
    {"role": "assistant", "content": "A container orchestrator."},
    {"role": "user", "content": "Who made it?"},
]

# DeepSeek-R1's special tokens use FULLWIDTH VERTICAL LINE and LOWER ONE EIGHTH BLOCK.
BAR, LOW = "\uff5c", "\u2581"
BOS = f"<{BAR}begin{LOW}of{LOW}sentence{BAR}>"
EOS = f"<{BAR}end{LOW}of{LOW}sentence{BAR}>"
DS_USER, DS_ASSISTANT = f"<{BAR}User{BAR}>", f"<{BAR}Assistant{BAR}>"

EXPECTED = {
    "phi-3": (
        "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is Kubernetes?<|end|>\n"
        "<|assistant|>\nA container orchestrator.<|end|>\n<|user|>\nWho made it?<|end|>\n"
        "<|assistant|>\n"
    ),
    "phi-4": (
        "<|im_start|>system<|im_sep|>Be brief.<|im_end|>"
        "<|im_start|>user<|im_sep|>What is Kubernetes?<|im_end|>"
        "<|im_start|>assistant<|im_sep|>A container orchestrator.<|im_end|>"
        "<|im_start|>user<|im_sep|>Who made it?<|im_end|>"
        "<|im_start|>assistant<|im_sep|>"
    ),
    "llama-3": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is Kubernetes?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nA container orchestrator.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWho made it?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "chatml": (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is Kubernetes?<|im_end|>\n"
        "<|im_start|>assistant\nA container orchestrator.<|im_end|>\n"
        "<|im_start|>user\nWho made it?<|im_end|>\n<|im_start|>assistant\n"
    ),
    "deepseek": (
        f"{BOS}Be brief.{DS_USER}What is Kubernetes?{DS_ASSISTANT}A container orchestrator."
        f"{EOS}{DS_USER}Who made it?{DS_ASSISTANT}<think>\n"
    ),
    "falcon-instruct": (
        "Be brief.\nUser: What is Kubernetes?\nAssistant: A container orchestrator.\n"
        "User: Who made it?\nAssistant:"
    ),
    "mistral-instruct": (
        "<s>[INST] Be brief.\n\nWhat is Kubernetes? [/INST] A container orchestrator.</s>"
        "[INST] Who made it? [/INST]"
    ),
}


def render(name: str) -> str:
    """As transformers renders a chat template (a sandboxed Jinja environment, trimmed blocks)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(chat_template_text(name))
    return template.render(
        messages=CONVERSATION, add_generation_prompt=True, bos_token="<s>", eos_token="</s>"
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_renders_the_familys_format(name: str) -> None:
    assert render(name) == EXPECTED[name]


def test_every_template_is_tested_and_every_preset_names_one_that_exists() -> None:
    assert chat_template_names() == sorted(EXPECTED)
    catalog = default_catalog(include_test=True)
    named = {p.chat_template for p in catalog.presets.values() if p.chat_template}
    assert named <= set(EXPECTED), named - set(EXPECTED)


def test_an_unknown_name_says_which_exist() -> None:
    with pytest.raises(UnknownChatTemplateError, match="known: chatml, deepseek"):
        chat_template_text("vicuna")
    with pytest.raises(UnknownChatTemplateError):
        chat_template_text("../models")
