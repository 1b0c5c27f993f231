"""Figures, ratios and how they are printed and saved.

Every benchmark returns `Figure`s: a value, the baseline measured in the same run, the ratio
between them (always oriented so that the number is what the target bounds), and the target.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), linear between the closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Figure:
    benchmark: str  # "submission", "peers", "reconciliation", "polling", "copying"
    backend: str  # "sqlite", "postgresql", "" (no database)
    metric: str  # what was measured, e.g. "p50 latency, concurrency 1"
    unit: str
    value: float
    baseline_name: str = ""
    baseline: float | None = None
    # value / baseline, or baseline / value when `inverse` (for throughputs and speeds).
    inverse: bool = False
    target: str = ""  # e.g. "<= 1.3"; empty: reported, not bounded
    runs: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0 or self.value == 0:
            return None
        return self.baseline / self.value if self.inverse else self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if not self.target or self.ratio is None:
            return None
        op, bound = self.target.split()
        return self.ratio <= float(bound) if op == "<=" else self.ratio >= float(bound)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        d["met"] = self.met
        return d


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in ("s", "ms") or abs(value) < 100:
        text = f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    else:
        text = f"{value:,.0f}"
    return f"{text} {unit}".strip()


def verdict(f: Figure) -> str:
    if f.met is None:
        return ""
    return "met" if f.met else "MISSED"


def table(figures: Sequence[Figure]) -> list[list[str]]:
    rows = [["benchmark", "db", "metric", "value", "baseline", "ratio", "target", ""]]
    for f in figures:
        rows.append(
            [
                f.benchmark,
                f.backend or "-",
                f.metric,
                fmt(f.value, f.unit),
                f"{f.baseline_name} {fmt(f.baseline, f.unit)}" if f.baseline is not None else "-",
                f"{f.ratio:.2f}" if f.ratio is not None else "-",
                f.target or "-",
                verdict(f),
            ]
        )
    return rows


def render_text(figures: Sequence[Figure]) -> str:
    rows = table(figures)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def render_markdown(figures: Sequence[Figure]) -> str:
    rows = table(figures)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(cell.replace("|", "/") for cell in r) + " |" for r in rows[1:]]
    return "\n".join(out)
