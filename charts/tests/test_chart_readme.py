"""charts/kaito/README.md lists every value of the chart and its sub-charts."""

from __future__ import annotations

from chart_support import CHART
from values_readme import README, SUB_CHARTS, chart_values


def test_readme_lists_every_value() -> None:
    text = README.read_text()
    keys = [d.key for d in chart_values(CHART)]
    for sub in SUB_CHARTS:
        keys += [d.key for d in chart_values(CHART / "charts" / sub, prefix=f"{sub}.")]
    missing = [key for key in keys if f"| `{key}` |" not in text]
    assert not missing, (
        f"charts/kaito/README.md lacks {missing}: run "
        "`uv run --frozen python charts/tests/values_readme.py`"
    )
