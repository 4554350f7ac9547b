"""A local Hugging Face hub for tests: the one model-hub fake (like the fake ARM for Azure).

`LocalHub` serves model directories under real repository ids and commits over the routes
`huggingface_hub` uses; `serve_preset` adds a (tiny) model under a preset's catalog repository
and pinned revision. Point the runtime at it with `HF_ENDPOINT=hub.url`.
"""

from kaito_testing.hfhub.presets import ServedPreset, serve_preset
from kaito_testing.hfhub.repos import HubRepo, RepoFile
from kaito_testing.hfhub.server import INVALID_CREDENTIALS, LocalHub, ServedRequest

__all__ = [
    "INVALID_CREDENTIALS",
    "HubRepo",
    "LocalHub",
    "RepoFile",
    "ServedPreset",
    "ServedRequest",
    "serve_preset",
]
