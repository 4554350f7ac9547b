"""Entry point: `python -m workspace_controller [--flags]` (see docs/workspace-controller.md)."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from workspace_controller.app import WorkspaceApp
from workspace_controller.settings import ControllerSettings, parse_settings


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        settings: ControllerSettings = parse_settings(argv)
    except ValidationError as err:
        print(f"workspace-controller: invalid settings: {err}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    logging.getLogger(__name__).info(
        "Starting workspace controller nodeProvisioner=%s testPresets=%s",
        "byo" if settings.byo else settings.node_provisioner,
        settings.enable_test_presets,
    )
    asyncio.run(WorkspaceApp(settings).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
