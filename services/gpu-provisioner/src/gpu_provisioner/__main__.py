"""Entry point: `python -m gpu_provisioner`."""

import sys


def main() -> int:
    print("gpu_provisioner: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
