"""`python -m kaito_testing.hfhub serve`: the local hub as a process of its own (for `make demo`).

    python -m kaito_testing.hfhub serve --host 10.0.0.4 --port 8900 \\
        --preset phi-3-mini-128k-instruct=/path/to/model [--preset ...]

serves each model directory under its preset's catalog repository and pinned commit until
SIGTERM, and prints one line per repository it serves.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from kaito_testing.hfhub.presets import serve_preset
from kaito_testing.hfhub.server import LocalHub


def _preset(value: str) -> tuple[str, Path]:
    name, sep, directory = value.partition("=")
    if not sep or not name or not directory:
        raise argparse.ArgumentTypeError(f"expected <preset>=<model dir>, got {value!r}")
    path = Path(directory)
    if not (path / "config.json").is_file():
        raise argparse.ArgumentTypeError(f"{path} holds no config.json: not a model directory")
    return name, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kaito_testing.hfhub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve model directories under preset repositories")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--preset", type=_preset, action="append", required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with LocalHub(host=args.host, port=args.port) as hub:
        for name, directory in args.preset:
            served = serve_preset(hub, name, directory)
            print(
                f"Serving {directory} as {served.repo_id} at {served.commit} "
                f"(preset {served.preset}) on {hub.url}",
                flush=True,
            )
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
