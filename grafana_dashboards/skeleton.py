"""What every loadbearing dashboard shares: uid scheme, tags, time, refresh and links."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, DashboardLink
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DashboardLinkType

TAG = "loadbearing"
OVERVIEW_UID = "loadbearing-overview"
ENDPOINT_UID = "loadbearing-endpoint"
CAPACITY_UID = "loadbearing-capacity"
TITLES = {
    OVERVIEW_UID: "loadbearing / Run overview",
    ENDPOINT_UID: "loadbearing / Endpoint drill-down",
    CAPACITY_UID: "loadbearing / Capacity",
}


def link(uid: str) -> DashboardLink:
    """A link to another loadbearing dashboard keeping the time range and the run filter."""
    return (
        DashboardLink(TITLES[uid].split(" / ", 1)[1])
        .type(DashboardLinkType.LINK)
        .url(f"/d/{uid}")
        .icon("dashboard")
        .include_vars(True)
        .keep_time(True)
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
            board = board.link(link(other))
    return board
