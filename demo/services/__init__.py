"""The demo services (ASGI apps on uvicorn, one process each): `core-api`, `profile-api`.

Configuration comes from the environment (see `demo.services.settings`). Every
service answers `GET /health` and `GET /metrics` (JSON counters: pool, cache,
endpoints) and, when `LOADBEARING_INFLUX_URL` is set, writes `app_*` points to
InfluxDB once a second.
"""
