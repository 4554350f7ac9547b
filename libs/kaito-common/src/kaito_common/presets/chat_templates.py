"""The presets' chat templates, one Jinja file each (``data/chat_templates/<name>.jinja``).

A preset names one (`chat_template` in the catalog). As upstream Kaito does, the inference server
uses it only when the model's own tokenizer has no chat template (Falcon's and Mistral's base
repositories have none, for example); a tokenizer's own template always wins.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATES_DIR = Path(__file__).parent / "data" / "chat_templates"


class UnknownChatTemplateError(ValueError):
    """No template of that name ships with the project."""


def chat_template_names() -> list[str]:
    return sorted(path.stem for path in TEMPLATES_DIR.glob("*.jinja"))


def chat_template_text(name: str) -> str:
    path = TEMPLATES_DIR / f"{name}.jinja"
    if "/" in name or not path.is_file():
        known = ", ".join(chat_template_names())
        raise UnknownChatTemplateError(f"no chat template named {name!r}; known: {known}")
    return path.read_text()
