"""Entry point: `python -m tuning_runner fetch|train|push|pull ...` (flags: `cli.py`)."""

from __future__ import annotations

import os
import sys

from kaito_common.omp import prefer_passive_waiting
from tuning_runner import logs
from tuning_runner.app import run
from tuning_runner.cli import parse_cli

# No tqdm bars in a pod's log (read before the libraries are imported); transfers and training
# log progress lines instead.
_QUIET_PROGRESS_BARS = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")


def main(argv: list[str] | None = None) -> int:
    passive = prefer_passive_waiting()  # before anything imports torch
    for name in _QUIET_PROGRESS_BARS:
        os.environ.setdefault(name, "1")
    logs.configure()  # usage errors are reported before the settings are known
    command, settings = parse_cli(argv)
    logs.configure(settings.log_level, settings.log_format)
    if passive:
        logs.log(
            "Set OMP_WAIT_POLICY=PASSIVE for torch's CPU threads: the CPUs were already busy "
            "(set OMP_WAIT_POLICY to override)"
        )
    return run(command, settings)


if __name__ == "__main__":
    sys.exit(main())
