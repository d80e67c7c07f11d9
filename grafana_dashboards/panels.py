"""Panel presets shared by the dashboards: every panel reads the provisioned InfluxDB.

Sizes are grid units (24 columns). Panels are laid out left to right by the SDK.
"""

from __future__ import annotations

from typing import TypeVar

from grafana_foundation_sdk.builders import heatmap, stat, table, timeseries
from grafana_foundation_sdk.builders.common import (
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
from grafana_foundation_sdk.builders.heatmap import (
    CellValues,
    HeatmapColorOptions,
    RowsHeatmapOptions,
    YAxisConfig,
)
from grafana_foundation_sdk.models.common import (
    AxisPlacement,
    BigValueColorMode,
    BigValueGraphMode,
    HeatmapCellLayout,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    StackingMode,
    TooltipDisplayMode,
    VisibilityMode,
)
from grafana_foundation_sdk.models.dashboard import DynamicConfigValue, Threshold, ThresholdsMode
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode, HeatmapColorScale

from grafana_dashboards.influxql import InfluxQL, datasource_ref

REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


P = TypeVar("P", timeseries.Panel, stat.Panel, table.Panel, heatmap.Panel)


def _with_targets(panel: P, targets: list[InfluxQL]) -> P:
    for ref_id, target in zip(REF_IDS, targets, strict=False):
        panel = panel.with_target(target.ref_id(ref_id))
    if len(targets) > len(REF_IDS):
        raise ValueError(f"at most {len(REF_IDS)} targets per panel")
    return panel


def timeseries_panel(title: str, description: str, unit: str, targets: list[InfluxQL], *,
                     span: int = 12, height: int = 8, stacked: bool = False,
                     legend_calcs: tuple[str, ...] = ("mean", "max")) -> timeseries.Panel:
    """A time series with a table legend (mean, max) and a shared tooltip."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .unit(unit)
        .span(span)
        .height(height)
        .line_width(1)
        .fill_opacity(10 if not stacked else 40)
        .show_points(VisibilityMode.NEVER)
        .span_nulls(True)
        .legend(VizLegendOptions().display_mode(LegendDisplayMode.TABLE).placement(LegendPlacement.BOTTOM)
                .show_legend(True).calcs(list(legend_calcs)))
        .tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
    )
    if stacked:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL).group("A"))
    return _with_targets(panel, targets)


def slo_line(panel: timeseries.Panel, series: str) -> timeseries.Panel:
    """Draw the series named `series` as a dashed red threshold line, not stacked or filled."""
    return panel.override_by_name(series, [
        DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
        DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
        DynamicConfigValue(id_val="custom.lineWidth", value=2),
        DynamicConfigValue(id_val="custom.fillOpacity", value=0),
    ])


def right_axis(panel: timeseries.Panel, series: str, unit: str) -> timeseries.Panel:
    """Put the series named `series` on a right-hand axis with its own unit (e.g. requests/s)."""
    return panel.override_by_name(series, [
        DynamicConfigValue(id_val="custom.axisPlacement", value=AxisPlacement.RIGHT.value),
        DynamicConfigValue(id_val="unit", value=unit),
        DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [4, 4]}),
        DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "text"}),
    ])


def stat_panel(title: str, description: str, unit: str, target: InfluxQL, *, span: int = 4,
               height: int = 4, decimals: int | None = None,
               thresholds: list[tuple[float | None, str]] | None = None) -> stat.Panel:
    """A single number over the whole time range (the query aggregates on the server)."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .unit(unit)
        .span(span)
        .height(height)
        .graph_mode(BigValueGraphMode.NONE)
        .color_mode(BigValueColorMode.VALUE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    steps = thresholds or [(None, "text")]
    panel = panel.thresholds(ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE)
                             .steps([Threshold(value=v, color=c) for v, c in steps]))
    return _with_targets(panel, [target])


def table_panel(title: str, description: str, targets: list[InfluxQL], *, span: int = 24,
                height: int = 7) -> table.Panel:
    """A table of server-side aggregates (targets use `resultFormat: table`)."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .span(span)
        .height(height)
    )
    return _with_targets(panel, [t.table() for t in targets])


def bucket_heatmap(title: str, description: str, targets: list[InfluxQL], *, span: int = 12,
                   height: int = 9) -> heatmap.Panel:
    """A heatmap of pre-bucketed counts: one series per bucket, named by its upper bound."""
    panel = (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(datasource_ref())
        .span(span)
        .height(height)
        .calculate(False)
        .rows_frame(RowsHeatmapOptions().layout(HeatmapCellLayout.LE).value("requests"))
        .y_axis(YAxisConfig().unit("ms").decimals(0))
        .cell_values(CellValues().unit("short"))
        .color(HeatmapColorOptions().mode(HeatmapColorMode.SCHEME).scheme("Oranges")
               .scale(HeatmapColorScale.EXPONENTIAL).exponent(0.5).fill("dark-orange").steps(64)
               .reverse(False))
        .show_legend()
        .show_tooltip()
    )
    return _with_targets(panel, targets)
