"""The example in examples/ is the seed document's manifest, unchanged."""

import re
from pathlib import Path

import pytest


def test_example_is_the_seed_manifest(repo_root: Path, seed_example_path: Path) -> None:
    seed_doc = repo_root.parent / "shared" / "seeds" / "000_23d495189989a93d.txt"
    if not seed_doc.exists():
        pytest.skip(f"{seed_doc} is not beside this checkout")
    blocks = re.findall(r"```\n(apiVersion: kaito.sh/v1alpha1.*?)```", seed_doc.read_text(), re.S)
    assert blocks, "the seed document has no Workspace example"
    assert seed_example_path.read_text().strip() == blocks[0].strip()
