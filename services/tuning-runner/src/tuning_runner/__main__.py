"""Entry point: `python -m tuning_runner fetch|train|push|pull ...` (flags: `cli.py`)."""

from __future__ import annotations

import sys

from kaito_common.omp import prefer_passive_waiting
from tuning_runner import logs
from tuning_runner.app import run
from tuning_runner.cli import parse_cli


def main(argv: list[str] | None = None) -> int:
    passive = prefer_passive_waiting()  # before anything imports torch
    logs.configure()
    if passive:
        logs.log(
            "Set OMP_WAIT_POLICY=PASSIVE for torch's CPU threads: the CPUs were already busy "
            "(set OMP_WAIT_POLICY to override)"
        )
    command, settings = parse_cli(argv)
    return run(command, settings)


if __name__ == "__main__":
    sys.exit(main())
