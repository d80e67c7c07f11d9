"""The demo target: two small APIs that reproduce the field report's pathology (the project
README: a Profile API whose latency spiked past 17 s at ~1200 users).

- `core-api` serves the jobs, ecommerce and notifications modules and holds up.
- `profile-api` serves profile; each request holds a pooled DB connection for
  `PROFILE_DB_MS`, so a small pool saturates at exactly pool_size / hold_time.

Start one with `python -m demo.launcher core-api --port 8000` or from Python with
`demo.launcher.start_service`. The plan and k6 modules live beside this file
(`plan.toml`, `plan_seed.toml`, `modules/*.js`); `demo.plan.write_plan` renders a
plan for the ports the services actually got.
"""
