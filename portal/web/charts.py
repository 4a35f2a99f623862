"""Bar charts drawn on the server as SVG (templates/_macros/charts.html).

The geometry is worked out here, in SVG user units, so templates only place shapes: no
scripts, no inline styles (the CSP forbids both); colours come from CSS classes
`chart-bar--<kind>` in static/css/tessera.css. Every chart carries its numbers, so the
macro can print them as a table for screen readers and for anyone who wants figures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WIDTH, HEIGHT, BASE = 600, 180, 150
PALETTE = ("a", "b", "c", "d", "e", "f")


@dataclass(frozen=True)
class Series:
    """One row of values, one per category; `currency` makes them money (minor units)."""
    kind: str
    label: str
    values: list[int]
    currency: str | None = None

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    kind: str
    series: Series
    category: Any


@dataclass(frozen=True)
class Chart:
    categories: list[Any]
    series: list[Series]
    bars: list[Bar]
    labels: list[tuple[float, Any]]
    top: int
    stacked: bool
    also: list[Series] = field(default_factory=list)   # in the table, not drawn
    width: int = WIDTH
    height: int = HEIGHT
    base: int = BASE

    @property
    def is_empty(self) -> bool:
        return not any(s.total for s in self.series)


def bar_chart(categories: list[Any], series: list[Series], *, stacked: bool = False,
              label_every: int | None = None, also: list[Series] | None = None) -> Chart:
    """Bars per category: side by side (grouped) or on top of each other (stacked).

    `label_every` labels every n-th category counting back from the last, so a chart of
    days always names its newest day; by default every category is labelled."""
    n = max(len(categories), 1)
    if stacked:
        top = max([1, *(sum(s.values[i] for s in series) for i in range(len(categories)))])
    else:
        top = max([1, *(v for s in series for v in s.values)])
    slot = WIDTH / n
    gap = slot * 0.12
    inner = slot - 2 * gap
    width = inner if stacked else inner / max(len(series), 1)
    bars, labels = [], []
    for i, category in enumerate(categories):
        left, floor = i * slot + gap, float(BASE)
        for j, s in enumerate(series):
            value = s.values[i]
            height = BASE * value / top
            if stacked:
                x, y = left, floor - height
                floor = y
            else:
                x, y = left + j * width, BASE - height
            bars.append(Bar(round(x, 1), round(y, 1), round(max(width - 1, 1), 1),
                            round(height, 1), value, s.kind, s, category))
        every = label_every or 1
        if (len(categories) - 1 - i) % every == 0:
            labels.append((round(i * slot + slot / 2, 1), category))
    return Chart(categories=list(categories), series=list(series), bars=bars, labels=labels,
                 top=top, stacked=stacked, also=list(also or []))


def day_label_step(days: int) -> int:
    """How often to name a day under a chart so the labels never run into each other."""
    return 1 if days <= 8 else 7 if days <= 60 else 14 if days <= 120 else 30
