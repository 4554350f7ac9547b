"""Split a `uv export` requirements file into one package's dependency closure and the rest.

The ML images install torch and everything torch needs (its CUDA wheels included) in one layer
of its own, identical for the inference server and the tuning runner, so that both images share
it. The closure is read from uv.lock (names only; versions, hashes and markers stay those of the
export), so the layer comes from the lock like the rest of the image:

    python3 split_requirements.py --lock uv.lock --root torch --part closure all.txt > torch.txt
    python3 split_requirements.py --lock uv.lock --root torch --part rest svc.txt > svc-rest.txt

Standard library only: it runs with the image's own Python 3.11 before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of `-_.` as one `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_graph(lock: Mapping[str, Any]) -> dict[str, dict[str | None, set[tuple[str, str | None]]]]:
    """package -> extra (None: base) -> {(dependency, extra of it or None)}."""
    graph: dict[str, dict[str | None, set[tuple[str, str | None]]]] = {}
    for package in lock.get("package", []):
        edges: dict[str | None, set[tuple[str, str | None]]] = {}
        groups: dict[str | None, list[dict[str, Any]]] = {None: package.get("dependencies", [])}
        groups.update(package.get("optional-dependencies", {}))
        for extra, deps in groups.items():
            targets = edges.setdefault(extra, set())
            for dep in deps:
                name = normalize(dep["name"])
                extras: list[str | None] = [None, *dep.get("extra", [])]
                targets.update((name, e) for e in extras)
        graph.setdefault(normalize(package["name"]), {}).update(edges)
    return graph


def closure(lock: Mapping[str, Any], root: str) -> set[str]:
    """Names of `root` and every package it depends on, through the extras it asks for."""
    graph = lock_graph(lock)
    seen: set[tuple[str, str | None]] = set()
    todo: list[tuple[str, str | None]] = [(normalize(root), None)]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        name, extra = node
        todo.extend(graph.get(name, {}).get(extra, set()))
    return {name for name, _ in seen}


def requirement_blocks(lines: Iterable[str]) -> list[tuple[str | None, list[str]]]:
    """The export's lines grouped per requirement: (normalized name or None, its lines).

    A requirement starts on an unindented line and owns the indented lines after it (hashes,
    `# via` comments); header comments and options form blocks without a name."""
    blocks: list[tuple[str | None, list[str]]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and blocks:
            blocks[-1][1].append(line)
            continue
        match = _NAME.match(line)
        blocks.append((normalize(match.group(1)) if match else None, [line]))
    return blocks


def split(text: str, names: set[str], part: str) -> str:
    """The blocks whose package is in `names` (part="closure") or is not (part="rest")."""
    keep_closure = part == "closure"
    out: list[str] = []
    for name, block in requirement_blocks(text.splitlines(keepends=True)):
        if name is None:
            continue
        if (name in names) == keep_closure:
            out.extend(block)
    return "".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, required=True, help="uv.lock")
    parser.add_argument("--root", required=True, help="package whose closure is split off")
    parser.add_argument("--part", choices=["closure", "rest"], required=True)
    parser.add_argument("requirements", type=Path, help="a `uv export` output")
    args = parser.parse_args(argv)
    lock = tomllib.loads(args.lock.read_text())
    if normalize(args.root) not in lock_graph(lock):
        print(f"split_requirements: {args.root} is not in {args.lock}", file=sys.stderr)
        return 2
    names = closure(lock, args.root)
    sys.stdout.write(split(args.requirements.read_text(), names, args.part))
    return 0


if __name__ == "__main__":
    sys.exit(main())
