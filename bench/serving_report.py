"""Markdown tables of the serving benchmark: figures, ratios, worker balance, in-process limit.

Ratios are modelops over MLServer (issue 2's goals) and over KServe (issue 12's peer), each with
both p99s; a peer given several configurations is compared with its fastest one per cell.
Takes the measured cells (possibly several repeats per cell) and formats them; with repeats
every figure is the median and the spread is shown as the min-max range of requests/s. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

from serving_load import Cell
from serving_models import BATCH_ROWS, InProcessLimit

# results[model][configuration label][connections] -> one Cell per repeat
Results = dict[str, dict[str, dict[int, list[Cell]]]]

DEFAULT, BATCHING = "MLServer default", "MLServer batching"
BEST_INLINE, BEST_WORKERS = "MLServer 1 process", "MLServer workers"
"""The candidates for MLServer's best configuration: per cell, the faster one is its best."""
OURS, OURS_BATCHING = "modelops default", "modelops batching"
KSERVE_DEFAULT, KSERVE_LEAN = "KServe default", "KServe lean"
"""KServe 0.21 with the same workers: as shipped, and with its per-request logging off."""


def rps(cells: Sequence[Cell]) -> float:
    return median(cell.requests_per_second for cell in cells)


def p99(cells: Sequence[Cell]) -> float:
    return median(cell.p99_ms for cell in cells)


def _cell_text(cells: Sequence[Cell]) -> str:
    text = (f"{rps(cells):,.0f} · {median(c.p50_ms for c in cells):.1f} · "
            f"{p99(cells):.1f}")
    if len(cells) > 1:
        low = min(c.requests_per_second for c in cells)
        high = max(c.requests_per_second for c in cells)
        text += f" ({low:,.0f}–{high:,.0f})"
    errors = sum(c.errors for c in cells)
    return text + (f" **{errors} errors**" if errors else "")


def figures_table(results: Results, descriptions: dict[str, str],
                  connections: Sequence[int]) -> list[str]:
    head = " | ".join(f"{n} conn{'s' if n > 1 else ''}" for n in connections)
    lines = [f"| Model | Server (configuration) | {head} |",
             "|---|---|" + "---|" * len(connections)]
    for model, by_config in results.items():
        for label, by_conns in by_config.items():
            cells = " | ".join(_cell_text(by_conns[n]) if n in by_conns else "—"
                               for n in connections)
            lines.append(f"| {model} | {label} ({descriptions[label]}) | {cells} |")
    return lines


def _ratio(results: Results, model: str, ours: str, theirs: Sequence[str], conns: int) -> str:
    """Our requests/s over the best of `theirs` at `conns`, and whether our p99 is lower."""
    by_config = results[model]
    candidates = [by_config[t][conns] for t in theirs if conns in by_config.get(t, {})]
    if conns not in by_config.get(ours, {}) or not candidates:
        return "—"
    mine, other = by_config[ours][conns], max(candidates, key=rps)
    lower = "lower" if p99(mine) < p99(other) else "**higher**"
    return f"{rps(mine) / rps(other):.2f}x, p99 {p99(mine):.1f} vs {p99(other):.1f} ms ({lower})"


def ratio_table(results: Results, connections: Sequence[int]) -> list[str]:
    lines = ["| Model | conns | modelops ÷ MLServer default (goal 1.5x) | modelops ÷ MLServer "
             "best of 1 process / workers (goal 1.2x) | batching ÷ MLServer batching (goal 2x) "
             "| modelops ÷ KServe best of default / lean |",
             "|---|---|---|---|---|---|"]
    for model in results:
        for n in connections:
            lines.append(f"| {model} | {n} | {_ratio(results, model, OURS, [DEFAULT], n)} | "
                         f"{_ratio(results, model, OURS, [BEST_INLINE, BEST_WORKERS], n)} | "
                         f"{_ratio(results, model, OURS_BATCHING, [BATCHING], n)} | "
                         f"{_ratio(results, model, OURS, [KSERVE_DEFAULT, KSERVE_LEAN], n)} |")
    return lines


def balance_table(results: Results, connections: Sequence[int]) -> list[str]:
    lines = ["| Model | Server | conns | requests per worker | CPU s per process (busiest first) |",
             "|---|---|---|---|---|"]
    for model, by_config in results.items():
        for label, by_conns in by_config.items():
            for n in connections:
                if n == 1 or n not in by_conns:
                    continue
                last = by_conns[n][-1]
                served = "/".join(str(r) for r in last.requests_by_worker) or "n/a"
                lines.append(f"| {model} | {label} | {n} | {served} | {last.worker_cpu_split} |")
    return lines


def limit_table(limits: dict[str, InProcessLimit]) -> list[str]:
    lines = ["| Model | model.predict, 1 row (calls/s) | "
             f"rows/s in {BATCH_ROWS}-row batches |", "|---|---|---|"]
    for model, limit in limits.items():
        lines.append(f"| {model} | {limit.calls_per_second:,.0f} | "
                     f"{limit.batch_rows_per_second:,.0f} |")
    return lines
