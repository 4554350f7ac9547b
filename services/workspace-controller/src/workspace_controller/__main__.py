"""Entry point: `python -m workspace_controller [--flags]` (see docs/workspace-controller.md)."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from kaito_common.logs import configure_logging
from workspace_controller.app import WorkspaceApp
from workspace_controller.settings import (
    ControllerSettings,
    feature_gate_warnings,
    parse_settings,
)


def main(argv: list[str] | None = None) -> int:
    try:
        settings: ControllerSettings = parse_settings(argv)
    except ValidationError as err:
        print(f"workspace-controller: invalid settings: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger(__name__)
    for warning in feature_gate_warnings(settings.all_feature_gates):
        log.warning("%s", warning)
    log.info(
        "Starting workspace controller nodeProvisioner=%s testPresets=%s",
        "byo" if settings.byo else settings.node_provisioner,
        settings.enable_test_presets,
    )
    asyncio.run(WorkspaceApp(settings).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
