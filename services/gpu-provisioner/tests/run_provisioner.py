"""Run the provisioner as its own process against the fake ARM (for kill-and-restart tests).

Settings come from the environment as in production; the only difference is the credential:
a static token the fake accepts (`FAKE_ARM_TOKEN`)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from gpu_provisioner.app import api_client_for, build
from gpu_provisioner.cloud.azure import AzureCloud
from gpu_provisioner.cloud.provider import CloudProvider
from gpu_provisioner.metrics import ProvisionerMetrics
from gpu_provisioner.settings import Settings
from kaito_common.controller.client import KubeClient
from kaito_testing.fakearm.credential import StaticTokenCredential


async def main() -> None:
    settings = Settings()
    token = os.environ["FAKE_ARM_TOKEN"]

    def factory(kube: KubeClient, metrics: ProvisionerMetrics) -> CloudProvider:
        return AzureCloud(settings.azure, StaticTokenCredential(token), kube, metrics)

    provisioner = build(settings, await api_client_for(settings), cloud_factory=factory)
    await provisioner.run_until_signal()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(main())
