"""The values tables of charts/kaito/README.md, generated from the values files' comments.

    uv run --frozen python charts/tests/values_readme.py   # rewrites the README's tables

Each key's description is the comment block above it in values.yaml (or, lacking one, the
schema's description); its default is the value values.yaml sets. The tables sit between the
README's `<!-- values:begin -->` and `<!-- values:end -->` markers; the prose around them is
written by hand. `test_chart_readme.py` checks that every key appears.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "kaito"
README = CHART / "README.md"
BEGIN, END = "<!-- values:begin -->", "<!-- values:end -->"
SUB_CHARTS = ("workspace-controller", "gpu-provisioner")
_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")


@dataclass(frozen=True)
class ValueDoc:
    key: str  # dotted path, e.g. metrics.podMonitor.enabled
    default: Any
    comment: str


def _comments(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Dotted key -> the comment lines right above it (and any trailing comment); and dotted
    key -> the comment of the paragraph it is in (the first key's, for keys listed under it
    without a blank line, like `podLabels` under `# Pod placement and metadata`)."""
    own: dict[str, str] = {}
    paragraph: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    last_at: dict[int, str] = {}  # indent -> the comment of the paragraph's keys at that indent
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            last_at, pending = {}, []
            continue
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _KEY_LINE.match(line)
        if not match or stripped.startswith("-"):
            pending = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        key = ".".join(k for _, k in stack)
        rest = match["rest"]
        trailing = rest.split(" #", 1)[1].strip() if " #" in rest else ""
        own[key] = " ".join([*pending, trailing]).strip()
        if indent == 0:  # nested keys are described by their own comments or their parent's
            if own[key]:
                last_at[indent] = own[key]
            paragraph[key] = last_at.get(indent, "")
        for deeper in [i for i in last_at if i > indent]:
            del last_at[deeper]
        pending = []
    return own, paragraph


def _leaves(values: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted keys of the values that are not further mappings (empty mappings are leaves)."""
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, values


def _schema_descriptions(schema: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{key}" if prefix else key
        if sub.get("description"):
            out[path] = sub["description"]
        out |= _schema_descriptions(sub, path)
    return out


def chart_values(chart: Path, prefix: str = "") -> list[ValueDoc]:
    """Every leaf key of `chart`'s values.yaml with its default and description."""
    text = (chart / "values.yaml").read_text()
    own, paragraph = _comments(text)
    schema_file = chart / "values.schema.json"
    described = (
        _schema_descriptions(json.loads(schema_file.read_text())) if schema_file.is_file() else {}
    )
    values = yaml.safe_load(text) or {}
    docs = []
    for key, default in _leaves(values):
        docs.append(
            ValueDoc(f"{prefix}{key}", default, _describe(key, own, paragraph, described, values))
        )
    return docs


def _describe(
    key: str, own: dict[str, str], paragraph: dict[str, str], described: dict[str, str], values: Any
) -> str:
    """The key's own comment, the schema's description, its paragraph's comment, or the
    nearest parent's; a top-level section's introduction (a key with an `enabled` switch) only
    describes that switch."""
    for found in (own.get(key), described.get(key), paragraph.get(key)):
        if found:
            return found
    parts = key.split(".")
    while len(parts) > 1:
        last = parts.pop()
        parent = ".".join(parts)
        section = isinstance(values.get(parent), dict) and "enabled" in values[parent]
        if len(parts) == 1 and section and last != "enabled":
            return ""
        found = own.get(parent) or described.get(parent) or paragraph.get(parent)
        if found:
            return found
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(value: Any) -> str:
    if isinstance(value, str):
        return f"`{json.dumps(value)}`"
    return f"`{json.dumps(value, separators=(', ', ': '))}`"


def table(docs: list[ValueDoc]) -> str:
    rows = ["| Key | Default | Description |", "| --- | --- | --- |"]
    for doc in docs:
        rows.append(f"| `{doc.key}` | {_cell(_default(doc.default))} | {_cell(doc.comment)} |")
    return "\n".join(rows)


def values_section() -> str:
    umbrella = [d for d in chart_values(CHART) if d.key.split(".")[0] not in SUB_CHARTS]
    parts = ["### Umbrella chart (`charts/kaito/values.yaml`)", "", table(umbrella)]
    for sub in SUB_CHARTS:
        parts += [
            "",
            f"### `{sub}` (`charts/kaito/charts/{sub}/values.yaml`, set under `{sub}:`)",
            "",
            table(chart_values(CHART / "charts" / sub, prefix=f"{sub}.")),
        ]
    return "\n".join(parts)


def rewrite_readme() -> None:
    text = README.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{BEGIN}\n{values_section()}\n{END}{tail}")


if __name__ == "__main__":
    rewrite_readme()
