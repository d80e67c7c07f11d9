"""InfluxQL queries and annotations for grafana-foundation-sdk.

The SDK ships no InfluxDB query type, so this module adds one through the SDK's
documented custom-query route: a `cogvariants.Dataquery` subclass with `to_json` /
`from_json`, a `cog.builder.Builder` for it, and a registration with the cog runtime
under the plugin id `influxdb` (so `Dashboard.from_json` reads our JSON back).

Every query here is a *raw* InfluxQL query (`rawQuery: true`), exactly what Grafana's
InfluxDB datasource runs after substituting `$timeFilter`, `$__interval` and the
dashboard variables (see `grafana_dashboards.queries`).

The SDK's `AnnotationQuery` model only knows the `-- Grafana --` annotation fields,
so `InfluxAnnotation` extends it with the InfluxDB ones (`query`, `titleColumn`,
`textColumn`, `tagsColumn`), written both at the top level (the legacy layout older
Grafana versions read) and inside `target` (the layout Grafana 10+ migrates to).
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

PLUGIN_ID = "influxdb"
DATASOURCE_UID = "loadbearing-influxdb"

ResultFormat = Literal["time_series", "table", "logs"]


def datasource_ref() -> dashboard.DataSourceRef:
    """The reference every panel, query, variable and annotation uses: the provisioned datasource."""
    return dashboard.DataSourceRef(type_val=PLUGIN_ID, uid=DATASOURCE_UID)


def _ref_json(ref: dashboard.DataSourceRef | None) -> dict[str, object] | None:
    return None if ref is None else ref.to_json()


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target as Grafana's InfluxDB datasource stores it."""

    query: str
    ref_id: str
    hide: bool | None
    alias: str | None
    result_format: ResultFormat
    datasource: dashboard.DataSourceRef | None

    def __init__(self, query: str = "", ref_id: str = "", hide: bool | None = None,
                 alias: str | None = None, result_format: ResultFormat = "time_series",
                 datasource: dashboard.DataSourceRef | None = None) -> None:
        self.query = query
        self.ref_id = ref_id
        self.hide = hide
        self.alias = alias
        self.result_format = result_format
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.hide is not None:
            payload["hide"] = self.hide
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.datasource is not None:
            payload["datasource"] = _ref_json(self.datasource)
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        ds = data.get("datasource")
        return cls(
            query=data.get("query", ""),
            ref_id=data.get("refId", ""),
            hide=data.get("hide"),
            alias=data.get("alias"),
            result_format=data.get("resultFormat", "time_series"),
            datasource=dashboard.DataSourceRef.from_json(ds) if isinstance(ds, dict) else None,
        )


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder for `InfluxQLQuery`; the datasource defaults to the provisioned one."""

    _internal: InfluxQLQuery

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(query=query, datasource=datasource_ref())

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def alias(self, alias: str) -> Self:
        """Series name; Grafana expands `$tag_<key>`, `$col` and `$m` in it."""
        self._internal.alias = alias
        return self

    def table(self) -> Self:
        """Return the result as a table (one row per series/row) instead of time series."""
        self._internal.result_format = "table"
        return self

    def hide(self, hide: bool) -> Self:
        self._internal.hide = hide
        return self


class InfluxAnnotationQuery(dashboard.AnnotationQuery):
    """An annotation read from InfluxDB rows: time, plus title/text/tag columns."""

    query: str
    title_column: str
    text_column: str
    tags_column: str

    def __init__(self, name: str = "", query: str = "", title_column: str = "",
                 text_column: str = "", tags_column: str = "", icon_color: str = "blue",
                 enable: bool = True) -> None:
        super().__init__(name=name, datasource=datasource_ref(), enable=enable, hide=False,
                         icon_color=icon_color)
        self.query = query
        self.title_column = title_column
        self.text_column = text_column
        self.tags_column = tags_column

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        columns: dict[str, object] = {
            "query": self.query,
            "titleColumn": self.title_column,
            "textColumn": self.text_column,
            "tagsColumn": self.tags_column,
        }
        payload.update(columns)
        payload["target"] = {
            **columns,
            "fromAnnotations": True,
            "name": self.name,
            "queryType": "tags",
            "rawQuery": True,
            "refId": "Anno",
        }
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        raw_target = data.get("target")
        target: dict[str, Any] = raw_target if isinstance(raw_target, dict) else {}

        def pick(key: str) -> str:
            return str(target.get(key) or data.get(key) or "")

        return cls(name=data.get("name", ""), query=pick("query"), title_column=pick("titleColumn"),
                   text_column=pick("textColumn"), tags_column=pick("tagsColumn"),
                   icon_color=data.get("iconColor", "blue"), enable=data.get("enable", True))


class InfluxAnnotation(cogbuilder.Builder[dashboard.AnnotationQuery]):
    """Builder for an InfluxQL annotation; `tags` are column names whose values become tags."""

    _internal: InfluxAnnotationQuery

    def __init__(self, name: str, query: str) -> None:
        self._internal = InfluxAnnotationQuery(name=name, query=query)

    def build(self) -> InfluxAnnotationQuery:
        return self._internal

    def columns(self, *, title: str, text: str, tags: list[str]) -> Self:
        self._internal.title_column = title
        self._internal.text_column = text
        self._internal.tags_column = ",".join(tags)
        return self

    def icon_color(self, color: str) -> Self:
        self._internal.icon_color = color
        return self

    def enable(self, enable: bool) -> Self:
        self._internal.enable = enable
        return self


def variant_config() -> cogruntime.DataqueryConfig:
    return cogruntime.DataqueryConfig(identifier=PLUGIN_ID, from_json_hook=InfluxQLQuery.from_json)


def register() -> None:
    """Teach the cog runtime to decode `influxdb` targets into `InfluxQLQuery` (idempotent)."""
    cogruntime.register_dataquery_variant(variant_config())


register()
