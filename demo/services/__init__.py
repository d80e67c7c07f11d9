"""The demo services (ASGI apps on uvicorn): `core-api`, `profile-api`, `shipping-api`.

Configuration comes from the environment (see `demo.services.settings`). Every
service answers `GET /health`, `GET /metrics` (Prometheus text in the standard names:
OpenTelemetry's pool and HTTP server metrics, Micrometer's cache metric; see
`demo.services.exposition`) and `GET /status` (its settings and counters as JSON). A
service writes nothing anywhere: a run scrapes its /metrics, as it would any service's.
"""
