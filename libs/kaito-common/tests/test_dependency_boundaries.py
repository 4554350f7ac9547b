"""The services' dependency sets keep their boundaries, read from the one uv.lock.

The controllers must not pull torch (their images stay small); the ML services must not pull
kubernetes-asyncio (they talk to no API server).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

Graph = dict[str, dict[str, Any]]


def load_graph(lock_path: Path) -> Graph:
    lock = tomllib.loads(lock_path.read_text())
    return {pkg["name"]: pkg for pkg in lock["package"]}


def closure(graph: Graph, root: str) -> set[str]:
    """Every package installed for ``root`` (with the extras its dependents ask for)."""
    seen: set[str] = set()
    stack: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    visited: set[tuple[str, tuple[str, ...]]] = set()
    while stack:
        name, extras = stack.pop()
        if (name, extras) in visited:
            continue
        visited.add((name, extras))
        seen.add(name)
        pkg = graph[name]
        deps = list(pkg.get("dependencies", []))
        for extra in extras:
            deps += pkg.get("optional-dependencies", {}).get(extra, [])
        for dep in deps:
            stack.append((dep["name"], tuple(sorted(dep.get("extra", [])))))
    return seen


@pytest.fixture(scope="module")
def graph(repo_root: Path) -> Graph:
    return load_graph(repo_root / "uv.lock")


@pytest.mark.parametrize("service", ["workspace-controller", "gpu-provisioner"])
def test_controllers_do_not_pull_torch(graph: Graph, service: str) -> None:
    deps = closure(graph, service)
    assert "kubernetes-asyncio" in deps
    assert not {"torch", "transformers"} & deps


@pytest.mark.parametrize("service", ["inference-server", "tuning-runner"])
def test_ml_services_do_not_pull_kubernetes_client(graph: Graph, service: str) -> None:
    deps = closure(graph, service)
    assert "torch" in deps
    assert not {"kubernetes-asyncio", "kubernetes"} & deps
