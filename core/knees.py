"""A capacity run's findings, as `run.json` records them (key `capacity`): per service, every
step of its arrival-rate ramp and its knee.

Written by the controller (`runners.capacity`), read by the policies (autoscaling sizes
instances from a measured knee), `verify` (the capacity per instance an applied instance
count delivers) and the report (offered vs achieved rate and p95 per step, the knee marked).

- `StepRecord`: one step of one service: the offered rate (the plan's ramp, in requests/s),
  what the store shows for the step's window (completed and successful requests/s, p95,
  error rate, iterations k6 dropped) and whether the step met the SLO (`reasons` says why not).
- `ServiceKnee`: the steps of one service, the knee (the highest step that met the SLO) and
  the first step that did not. When every step met it, the knee was not reached and
  `capacity_rps` is a lower bound (`knee_reached` false).
- `CapacityRecord`: the ramp's settings and every service's `ServiceKnee`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class StepRecord(_Record):
    step: int                      # 0-based
    offered_rps: float             # requests/s the ramp offered (iterations/s x requests per iteration)
    offered_iterations: float      # iterations/s the ramp offered (sum over the service's modules)
    started_at: str | None = None  # the step's window (shifted by the service's unloaded latency)
    ended_at: str | None = None
    requests: int = 0
    achieved_rps: float = 0.0      # completed requests/s
    goodput_rps: float = 0.0       # successful requests/s
    p95_ms: float | None = None
    error_rate: float = 0.0
    dropped: int = 0               # iterations k6 could not start (no VU free)
    ok: bool = False
    reasons: list[str] = Field(default_factory=list)

    @property
    def goodput_share(self) -> float:
        return self.goodput_rps / self.offered_rps if self.offered_rps > 0 else 0.0


class ServiceKnee(_Record):
    service: str
    modules: list[str]
    instances: int = 1
    peak_rps: float | None = None      # the plan's offered rate for the service (its peak)
    steps: list[StepRecord] = Field(default_factory=list)
    knee: int | None = None            # index into steps: the highest step that met the SLO
    first_failed: int | None = None    # index into steps: the first that did not
    stopped_early: bool = False        # its runners were stopped at the first failed step
    note: str = ""                     # in words: what the ramp found

    @property
    def knee_step(self) -> StepRecord | None:
        return None if self.knee is None else self.steps[self.knee]

    @property
    def failed_step(self) -> StepRecord | None:
        return None if self.first_failed is None else self.steps[self.first_failed]

    @property
    def knee_reached(self) -> bool:
        """True when a step broke: the knee lies between the last good step and that one."""
        return self.first_failed is not None

    @property
    def capacity_rps(self) -> float | None:
        """Successful requests/s at the knee (a lower bound when the knee was not reached)."""
        step = self.knee_step
        return None if step is None else step.goodput_rps

    @property
    def capacity_per_instance_rps(self) -> float | None:
        cap = self.capacity_rps
        return None if cap is None else cap / max(1, self.instances)


class CapacityRecord(_Record):
    mode: str                          # sequential | parallel
    step_s: float
    start: float
    growth: float
    max: float
    min_goodput: float
    services: list[ServiceKnee] = Field(default_factory=list)

    def service(self, name: str) -> ServiceKnee | None:
        return next((s for s in self.services if s.service == name), None)

