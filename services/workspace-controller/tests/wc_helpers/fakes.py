"""In-memory stand-ins for the controller's own interfaces, for unit tests."""

from __future__ import annotations

from kaito_common.controller.objects import Obj


class FakeConfigMapReader:
    """ConfigMaps held in memory (a `webhook.configmaps.ConfigMapReader`)."""

    def __init__(self, items: dict[tuple[str, str], Obj] | None = None) -> None:
        self.items = dict(items or {})

    async def get(self, namespace: str, name: str) -> Obj | None:
        return self.items.get((namespace, name))
