"""Figures, ratios and how they are printed and saved.

Every benchmark returns `Figure`s: a value, the baseline measured in the same run, the ratio
between them (always oriented so that the number is what the target bounds), and the target.
A submission figure also carries the `limit` (bench/limit.py: the shortest durable path of the
same work on this machine, measured in the same run, in the figure's unit) and its ratio to
it, with a target of its own. A few figures bound the value itself (`absolute`: "writes
nothing", target "<= 0"); they have no baseline.
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
    # The limit of the same work in the figure's unit (a throughput for a throughput), and the
    # bound on value / limit (limit / value when `inverse`).
    limit: float | None = None
    limit_target: str = ""
    # The target bounds the value itself, not a ratio (e.g. "<= 0": nothing written).
    absolute: bool = False

    @property
    def ratio(self) -> float | None:
        return _ratio(self.value, self.baseline, self.inverse)

    @property
    def limit_ratio(self) -> float | None:
        return _ratio(self.value, self.limit, self.inverse)

    @property
    def met(self) -> bool | None:
        """Whether the target holds (None: no target, or nothing to judge it by)."""
        if self.absolute:
            return _holds(self.value, self.target)
        return _holds(self.ratio, self.target)

    @property
    def limit_met(self) -> bool | None:
        return _holds(self.limit_ratio, self.limit_target)

    @property
    def missed(self) -> bool:
        return self.met is False or self.limit_met is False

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        d["met"] = self.met
        d["limit_ratio"] = self.limit_ratio
        d["limit_met"] = self.limit_met
        return d


def _ratio(value: float, baseline: float | None, inverse: bool) -> float | None:
    if baseline is None or baseline == 0 or value == 0:
        return None
    return baseline / value if inverse else value / baseline


def _holds(number: float | None, target: str) -> bool | None:
    if not target or number is None:
        return None
    op, bound = target.split()
    return number <= float(bound) if op == "<=" else number >= float(bound)


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in ("s", "ms") or abs(value) < 100:
        text = f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    else:
        text = f"{value:,.0f}"
    return f"{text} {unit}".strip()


def verdict(met: bool | None) -> str:
    if met is None:
        return ""
    return "met" if met else "MISSED"


def table(figures: Sequence[Figure]) -> list[list[str]]:
    """The rows of the results table; the limit's columns only when some figure has one."""
    with_limit = any(f.limit is not None for f in figures)
    head = ["benchmark", "db", "metric", "value", "baseline", "ratio", "target", ""]
    rows = [head + (["limit", "x limit", "target", ""] if with_limit else [])]
    for f in figures:
        row = [
            f.benchmark,
            f.backend or "-",
            f.metric,
            fmt(f.value, f.unit),
            f"{f.baseline_name} {fmt(f.baseline, f.unit)}" if f.baseline is not None else "-",
            f"{f.ratio:.2f}" if f.ratio is not None else "-",
            (f"value {f.target}" if f.absolute else f.target) or "-",
            verdict(f.met),
        ]
        if with_limit:
            row += [
                fmt(f.limit, f.unit) if f.limit is not None else "-",
                f"{f.limit_ratio:.2f}" if f.limit_ratio is not None else "-",
                f.limit_target or "-",
                verdict(f.limit_met),
            ]
        rows.append(row)
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
