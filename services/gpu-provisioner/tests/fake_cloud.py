"""An in-memory cloud for the provisioner's unit tests: instances in a dict, errors and delays on
demand (a fake of `gpu_provisioner.cloud.provider.CloudProvider`)."""

from __future__ import annotations

import asyncio
import datetime as dt

from gpu_provisioner import claims
from gpu_provisioner.cloud.provider import CloudError, Instance
from kaito_common.controller import objects
from kaito_common.controller.objects import Obj


class FakeCloud:
    name = "fake"

    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}
        self.create_calls: list[str] = []
        self.delete_calls: list[str] = []
        self.next_create_errors: list[CloudError] = []
        # While cleared, creates wait (a slow cloud operation the test controls).
        self.create_gate = asyncio.Event()
        self.create_gate.set()

    async def close(self) -> None:
        return None

    async def create(self, claim: Obj) -> Instance:
        name = str(objects.meta(claim).get("name"))
        self.create_calls.append(name)
        await self.create_gate.wait()
        if self.next_create_errors:
            raise self.next_create_errors.pop(0)
        if name in self.instances:
            return self.instances[name]
        instance = Instance(
            name=name,
            provider_id=f"fake://{name}",
            instance_type=claims.instance_type(claim) or "",
            capacity={"cpu": "4"},
            allocatable={"cpu": "4"},
            labels=objects.labels(claim),
            created_at=dt.datetime.now(dt.UTC),
        )
        self.instances[name] = instance
        return instance

    async def delete(self, name: str) -> bool:
        self.delete_calls.append(name)
        self.instances.pop(name, None)
        return True

    async def get(self, name: str) -> Instance | None:
        return self.instances.get(name)

    async def list(self) -> list[Instance]:
        return list(self.instances.values())
