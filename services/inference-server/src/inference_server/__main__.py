"""Entry point: `python -m inference_server`."""

import sys


def main() -> int:
    print("inference_server: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
