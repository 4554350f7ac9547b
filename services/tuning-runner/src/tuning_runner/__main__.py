"""Entry point: `python -m tuning_runner`."""

import sys


def main() -> int:
    print("tuning_runner: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
