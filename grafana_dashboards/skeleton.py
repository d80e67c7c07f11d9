"""What every loadbearing dashboard shares: uid scheme, tags, time, refresh and links."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, DashboardLink
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DashboardLinkType

TAG = "loadbearing"
OVERVIEW_UID = "loadbearing-overview"
ENDPOINT_UID = "loadbearing-endpoint"
CAPACITY_UID = "loadbearing-capacity"
COMPARE_UID = "loadbearing-compare"
TITLES = {
    OVERVIEW_UID: "loadbearing / Run overview",
    ENDPOINT_UID: "loadbearing / Endpoint drill-down",
    CAPACITY_UID: "loadbearing / Capacity",
    COMPARE_UID: "loadbearing / Compare two runs",
}
# Dashboards on a run-relative time axis (from 1970-01-01T00:00:00Z): a link to or from them
# does not carry the time range over.
RELATIVE_TIME = {COMPARE_UID}


def link(uid: str, keep_time: bool = True) -> DashboardLink:
    """A link to another loadbearing dashboard keeping the run filter (and the time range)."""
    return (
        DashboardLink(TITLES[uid].split(" / ", 1)[1])
        .type(DashboardLinkType.LINK)
        .url(f"/d/{uid}")
        .icon("dashboard")
        .include_vars(True)
        .keep_time(keep_time)
        .target_blank(False)
        .as_dropdown(False)
        .tags([])
        .tooltip(TITLES[uid])
    )


def dashboard(uid: str, description: str) -> Dashboard:
    """A dashboard with the loadbearing defaults and links to its two siblings."""
    board = (
        Dashboard(TITLES[uid])
        .uid(uid)
        .description(description)
        .tags([TAG, "k6", "influxdb"])
        .time("now-30m", "now")
        .refresh("10s")
        .timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .editable()
    )
    for other in TITLES:
        if other != uid:
            board = board.link(link(other, keep_time=not {uid, other} & RELATIVE_TIME))
    return board
