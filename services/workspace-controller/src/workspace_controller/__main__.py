"""Entry point: `python -m workspace_controller`."""

import sys


def main() -> int:
    print("workspace_controller: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
