"""The Grafana dashboard of deploy/monitoring: its queries, and a PNG of panels (test helper).

`queries` lists every panel target and annotation query, `expand` substitutes the dashboard's
variables the way Grafana would for one selection, and `render` draws time series (already
queried from Prometheus) in the dashboard's layout style with matplotlib, marking rollbacks as
Grafana marks its annotations. Pure except for `render` writing the PNG.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "monitoring" / "grafana-dashboard.json"
UNITS = {"reqps": "req/s", "percentunit": "", "s": "seconds"}


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries(board: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) of every Prometheus query: panel targets, then annotations."""
    found = [(f"panel {p['id']} {p['title']} {t['refId']}", t["expr"])
             for p in board["panels"] for t in p.get("targets", [])]
    found += [(f"annotation {a['name']}", a["expr"])
              for a in board["annotations"]["list"] if "expr" in a]
    return found


def expand(expr: str, variables: Mapping[str, str]) -> str:
    """`expr` with every `$name` / `${name}` replaced; an unknown variable is an error."""
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"no value for ${name} in {expr}")
        return variables[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def legend(template: str, labels: Mapping[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


@dataclass
class PanelData:
    title: str
    unit: str
    series: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)


def render(panels: list[PanelData], marks: Mapping[float, str], path: Path, title: str) -> Path:
    """Draw panels in a 2-column grid, with a dashed red line (labelled on the first panel) at
    each time in `marks`, as Grafana draws annotations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    rows = (len(panels) + 1) // 2
    plt.style.use("dark_background")
    figure, axes = plt.subplots(rows, 2, figsize=(14, 3.4 * rows), squeeze=False)
    figure.patch.set_facecolor("#111217")
    figure.suptitle(title, x=0.01, ha="left", fontsize=14, color="#d8d9da")
    for ax, panel in zip(axes.flat, panels):
        ax.set_facecolor("#181b1f")
        ax.set_title(panel.title, loc="left", fontsize=11, color="#d8d9da")
        for name, (times, values) in sorted(panel.series.items()):
            ax.plot([datetime.fromtimestamp(t) for t in times], values, linewidth=1.6, label=name)
        for mark, text in marks.items():
            ax.axvline(datetime.fromtimestamp(mark), color="#f2495c", linestyle="--", linewidth=1)
            if panel is panels[0]:
                ax.annotate(f" {text}", (datetime.fromtimestamp(mark), 1), va="top",
                            xycoords=("data", "axes fraction"), color="#f2495c", fontsize=9)
        if panel.unit == "percentunit":
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        ax.set_ylabel(UNITS.get(panel.unit, panel.unit), color="#8e8e8e")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.grid(color="#2c3235", linewidth=0.6)
        ax.legend(fontsize=8, loc="upper left", framealpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    figure.savefig(path, dpi=110, facecolor=figure.get_facecolor())
    plt.close(figure)
    return path
