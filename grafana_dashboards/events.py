"""Annotations from `loadbearing_events` (one point per event; tags testid, strategy,
kind, event, name; fields title, text), always filtered to the selected run."""

from __future__ import annotations

from core import measurements
from grafana_dashboards.influxql import InfluxAnnotation
from grafana_dashboards.variables import RUN_FILTER, where

EVENTS_MEASUREMENT = measurements.EVENTS


def annotation(name: str, kinds: list[str], color: str) -> InfluxAnnotation:
    """Events of the given kinds: title from `title`, text from `text`, tags kind/event/name."""
    kind_filter = '"kind" = ' + "'" + kinds[0] + "'" if len(kinds) == 1 else \
        '"kind" =~ /^(' + "|".join(kinds) + ')$/'
    query = (f'SELECT "title", "text", "kind", "event", "name" FROM "{EVENTS_MEASUREMENT}" '
             f"{where(RUN_FILTER, kind_filter)}")
    return (InfluxAnnotation(name, query)
            .columns(title="title", text="text", tags=["kind", "event", "name"])
            .icon_color(color))


def phases() -> InfluxAnnotation:
    return annotation("Phases", ["phase"], "blue")


def modules() -> InfluxAnnotation:
    return annotation("Modules", ["module"], "purple")


def findings() -> InfluxAnnotation:
    return annotation("Findings", ["finding"], "red")


def recommendations() -> InfluxAnnotation:
    return annotation("Recommendations", ["recommendation"], "green")


def knees() -> InfluxAnnotation:
    """A capacity run's knee per service (`loadbearing run capacity`), at the first step that broke."""
    return annotation("Knees", [measurements.KNEE], "orange")
