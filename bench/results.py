"""Figures, their medians and ratios, and the table they are printed as (text, markdown, JSON)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from .servers import SERVERS


@dataclass
class Value:
    """One server's measurements of one figure: a sample per repetition, and whether every
    message of every sample arrived."""
    samples: list[float] = field(default_factory=list)
    complete: bool = True
    cut: bool = False               # a sample was cut short at the round's time limit
    note: str = ""                  # why there is no figure (n/a, error), or a remark
    details: list[dict[str, object]] = field(default_factory=list)

    def add(self, sample: float, arrived: bool = True, cut: bool = False, /, **details: object) -> None:
        self.samples.append(sample)
        self.complete = self.complete and arrived
        self.cut = self.cut or cut
        if details:
            self.details.append(details)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


@dataclass
class Figure:
    scenario: str
    params: str
    metric: str
    unit: str                        # msg/s, MB/s, us, ms, MB, %
    better: str                      # "higher", "lower" or "" (no ratio)
    values: dict[str, Value] = field(default_factory=dict)
    ratio_wanted: bool = True

    def value(self, server: str) -> Value:
        return self.values.setdefault(server, Value())

    def ratio(self) -> float | None:
        """ours / reference, of the medians."""
        if not self.ratio_wanted:
            return None
        ours = self.values.get("ours")
        ref = self.values.get("reference")
        if not ours or not ref or ours.median is None or not ref.median:
            return None
        return ours.median / ref.median

    def to_json(self) -> dict[str, object]:
        return {"scenario": self.scenario, "params": self.params, "metric": self.metric, "unit": self.unit,
                "better": self.better, "ratio_ours_reference": self.ratio(),
                "values": {name: {"median": v.median, "samples": v.samples, "complete": v.complete, "cut": v.cut,
                                  "note": v.note, "details": v.details} for name, v in self.values.items()}}


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "msg/s":
        if value >= 1e6:
            return f"{value / 1e6:.2f}M/s"
        return f"{value / 1e3:.1f}k/s" if value >= 1e3 else f"{value:.0f}/s"
    if unit == "MB/s":
        return f"{value:.0f} MB/s" if value >= 100 else f"{value:.1f} MB/s"
    if unit == "us":
        return f"{value:.0f} µs" if value >= 10 else f"{value:.2f} µs"
    if unit == "ms":
        return f"{value:.0f} ms" if value >= 10 else f"{value:.2f} ms"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "%":
        return f"{value:+.1f}%"
    return f"{value:.3g} {unit}"


def cell(fig: Figure, server: str) -> str:
    v = fig.values.get(server)
    if v is None:
        return ""
    if v.median is None:
        return v.note or "–"
    text = fmt(v.median, fig.unit)
    if v.cut:
        # an upper bound for a rate, a lower bound for a time
        text = ("<" if fig.better == "higher" else ">") + text + " (cut)"
    elif not v.complete:
        text += " (lost)"
    if len(v.samples) > 1 and fig.unit not in ("%",):
        spread = (max(v.samples) - min(v.samples)) / v.median * 100 if v.median else 0
        if spread >= 20:
            text += f" ±{spread / 2:.0f}%"
    return text


def ratio_cell(fig: Figure) -> str:
    r = fig.ratio()
    if r is None:
        return "–" if fig.ratio_wanted else ""
    ours, ref = fig.values["ours"].cut, fig.values["reference"].cut
    if ours and ref:
        return "?"
    bound = ""
    if ours or ref:
        # a cut figure is a bound: the ratio is one too
        upper = (ours and fig.better == "higher") or (ref and fig.better == "lower")
        bound = "≤" if upper else "≥"
    return f"{bound}{r:.2f}×"


def columns(figures: list[Figure]) -> list[str]:
    used = {name for f in figures for name in f.values}
    return [s for s in SERVERS if s in used]


def rows(figures: list[Figure]) -> tuple[list[str], list[list[str]]]:
    servers = columns(figures)
    header = ["scenario", "parameters", "figure", *servers, "ours/ref"]
    body = []
    for f in figures:
        better = {"higher": " ↑", "lower": " ↓"}.get(f.better, "")
        body.append([f.scenario, f.params, f"{f.metric}{better}", *[cell(f, s) for s in servers], ratio_cell(f)])
    return header, body


def text_table(figures: list[Figure]) -> str:
    header, body = rows(figures)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    header, body = rows(figures)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in body:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    return "\n".join(lines)
