"""Finding files of the repository checkout the tests run from."""

from __future__ import annotations

from pathlib import Path

_CHART = Path("charts/kaito/Chart.yaml")


def find_in_checkout(relative: Path | str) -> Path | None:
    """``relative`` looked up from the working directory and from this package upwards, so it
    is found from a checkout whatever the current directory; None when it is nowhere."""
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / relative).exists():
                return folder / relative
    return None


def repo_root() -> Path:
    """The root of the checkout (the folder holding ``charts/kaito``)."""
    chart = find_in_checkout(_CHART)
    if chart is None:
        raise FileNotFoundError(
            f"cannot find the repository ({_CHART}) from the working directory or from "
            f"{Path(__file__).parent}"
        )
    return chart.parents[len(_CHART.parts) - 1]
