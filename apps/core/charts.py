"""What a chart shows: the chart partial (templates/admin/reports/_chart.html) draws a `Chart`
with the vendored Chart.js and lists the same figures, humanized, in a table beside it."""

from dataclasses import dataclass, field

from .humanize import credits


@dataclass
class Series:
    """One column of figures: drawn as a dataset (unless `charted` is false) and listed in
    the table, humanized by `show`."""

    label: str
    values: list
    show: object = credits
    charted: bool = True


@dataclass
class Chart:
    """What the chart partial draws: `labels` along one axis (and as the table's row
    headers), one bar (segment) per series. `links`: an optional URL per label."""

    id: str
    title: str
    label_header: str
    labels: list
    series: list
    stacked: bool = False
    horizontal: bool = False
    links: list = field(default_factory=list)

    @property
    def data_id(self):
        return f"{self.id}-data"

    @property
    def data(self):
        """For json_script: plain numbers for drawing (the table shows the exact ones)."""
        return {
            "labels": [str(label) for label in self.labels],
            "datasets": [
                {"label": s.label, "data": [float(v) for v in s.values]}
                for s in self.series
                if s.charted
            ],
            "stacked": self.stacked,
            "horizontal": self.horizontal,
        }

    @property
    def rows(self):
        links = self.links or [None] * len(self.labels)
        return [
            {"label": label, "url": url, "cells": [s.show(s.values[n]) for s in self.series]}
            for n, (label, url) in enumerate(zip(self.labels, links, strict=True))
        ]
