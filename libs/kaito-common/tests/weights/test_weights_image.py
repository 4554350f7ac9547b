"""What `build-image` packs and where its files come from (buildah itself runs in the real-node
tests, through kaito_testing.model_image)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from kaito_common.presets import default_catalog
from kaito_common.weights.cli import main
from kaito_common.weights.copier import build_copier, find_copier_source
from kaito_common.weights.image import ModelImageError, download_source, model_files, tree_digest


def _args(**values: object) -> argparse.Namespace:
    defaults: dict[str, object] = {
        "from_dir": None, "preset": None, "repo": None, "revision": None,
        "trust_remote_code": None, "test_catalog": False,
    }  # fmt: skip
    return argparse.Namespace(**{**defaults, **values})


def test_hidden_entries_stay_out_of_the_image(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.safetensors").write_bytes(b"w")
    before = tree_digest(tmp_path)
    (tmp_path / ".kaito-weights.json").write_text("{}")
    (tmp_path / ".kaito-weights.partial").mkdir()
    (tmp_path / ".kaito-weights.partial" / "x.part").write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in model_files(tmp_path)] == [
        "config.json",
        "sub/model.safetensors",
    ]
    assert tree_digest(tmp_path) == before
    (tmp_path / "config.json").write_text('{"a": 1}')
    assert tree_digest(tmp_path) != before


def test_a_preset_names_the_repository_revision_and_remote_code() -> None:
    preset = default_catalog().preset("phi-3-mini-128k-instruct")
    assert preset is not None
    assert download_source(_args(preset="phi-3-mini-128k-instruct")) == (
        preset.source.repo,
        preset.source.revision,
        True,  # the Phi-3 presets load with trust_remote_code: their *.py files come along
    )
    assert download_source(_args(repo="org/m", revision="a" * 40)) == ("org/m", "a" * 40, False)
    assert download_source(_args(from_dir=Path("/models/x"))) is None
    with pytest.raises(ModelImageError, match="--repo needs --revision"):
        download_source(_args(repo="org/m"))
    with pytest.raises(ModelImageError, match="not in the catalog"):
        download_source(_args(preset="no-such-preset"))


def test_build_image_from_a_missing_folder_fails_with_exit_1(tmp_path: Path) -> None:
    missing = tmp_path / "nothing"
    assert main(["build-image", "--image", "x/y:z", "--from", str(missing)]) == 1


@pytest.mark.skipif(
    shutil.which("go") is None and not Path("/usr/local/go/bin/go").is_file(),
    reason="no Go toolchain (make testbin)",
)
def test_the_copier_builds_as_a_static_binary(tmp_path: Path) -> None:
    assert (find_copier_source() / "main.go").is_file()
    copier = build_copier(tmp_path / "copy-weights")
    assert copier.read_bytes()[:4] == b"\x7fELF"
    source, dest = tmp_path / "src", tmp_path / "dest"
    source.mkdir()
    (source / "config.json").write_text("{}")
    result = subprocess.run(
        [str(copier), str(dest)],
        env={"KAITO_WEIGHTS_SOURCE": str(source)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (dest / "config.json").read_text() == "{}"
