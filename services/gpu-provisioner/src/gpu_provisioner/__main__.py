"""`python -m gpu_provisioner` / `gpu-provisioner`: run the provisioner until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import sys

from gpu_provisioner.app import api_client_for, build
from gpu_provisioner.settings import Settings, parse_settings


async def _run(settings: Settings) -> None:
    api_client = await api_client_for(settings)
    provisioner = build(settings, api_client)
    await provisioner.run_until_signal()


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("azure").setLevel(logging.WARNING)
    asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
