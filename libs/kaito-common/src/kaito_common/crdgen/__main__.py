"""``python -m kaito_common.crdgen [--out DIR] [--check]``: write or verify ``crds/``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kaito_common.crdgen.render import render_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the CRD YAML from the pydantic models.")
    parser.add_argument("--out", type=Path, default=Path("crds"), help="output directory")
    parser.add_argument(
        "--check", action="store_true", help="fail when the files on disk differ from the models"
    )
    args = parser.parse_args(argv)

    rendered = render_all()
    if args.check:
        stale = [
            name
            for name, text in rendered.items()
            if not (args.out / name).is_file() or (args.out / name).read_text() != text
        ]
        if stale:
            print(
                f"CRDs in {args.out} are stale: {', '.join(sorted(stale))}. Run `make crds` "
                "and commit the result.",
                file=sys.stderr,
            )
            return 1
        print(f"CRDs in {args.out} are up to date ({len(rendered)} files).")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (args.out / name).write_text(text)
        print(f"Wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
