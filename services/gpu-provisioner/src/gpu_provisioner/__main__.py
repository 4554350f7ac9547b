"""`python -m gpu_provisioner` / `gpu-provisioner`: run the provisioner until SIGTERM."""

from __future__ import annotations

import asyncio

from gpu_provisioner.app import api_client_for, build
from gpu_provisioner.settings import Settings, parse_settings
from kaito_common.logs import configure_logging


async def _run(settings: Settings) -> None:
    api_client = await api_client_for(settings)
    provisioner = build(settings, api_client)
    await provisioner.run_until_signal()


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    configure_logging(settings.log_level, settings.log_format)  # quietens azure's loggers too
    asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
