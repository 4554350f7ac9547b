"""Names the builders derive from user input (adapter and secret names)."""

from __future__ import annotations

import re


def dns_label(text: str) -> str:
    """A string usable as a DNS-1123 label (container and volume names)."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned[:63].rstrip("-") or "x"
