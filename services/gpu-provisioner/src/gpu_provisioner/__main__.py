"""`python -m gpu_provisioner` / `gpu-provisioner`: run the provisioner until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from gpu_provisioner.app import api_client_for, build
from gpu_provisioner.settings import Settings


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="gpu-provisioner", description="Karpenter-compatible GPU node provisioner."
    )
    parser.add_argument("--cloud", choices=["azure", "kwok"], help="GPU_PROVISIONER_CLOUD")
    parser.add_argument("--kubeconfig", help="KUBECONFIG; in-cluster config when unset")
    parser.add_argument("--metrics-port", type=int, help="METRICS_PORT (health and metrics)")
    parser.add_argument("--leader-elect", action="store_true", default=None, help="LEADER_ELECT")
    args = parser.parse_args(argv)
    return {k: v for k, v in vars(args).items() if v is not None}


async def _run(settings: Settings) -> None:
    api_client = await api_client_for(settings)
    provisioner = build(settings, api_client)
    await provisioner.run_until_signal()


def main(argv: list[str] | None = None) -> None:
    overrides = parse_args(argv)
    settings = Settings().model_copy(update=overrides)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("azure").setLevel(logging.WARNING)
    asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
