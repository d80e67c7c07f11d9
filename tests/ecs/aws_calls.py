"""Every AWS API call the ecs backend makes, recorded with its parameters (botocore's own hooks).

`record_calls(monkeypatch)` wraps `runners.backends.ecs.new_session` (the one place the
backend and the controller's store lookup make their boto3 session) so that each session
reports every operation before it is sent: `before-parameter-build` fires for API calls and
for presigned URLs alike. The calls still go to moto_server unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from runners.backends import ecs as ecs_backend


@dataclass(frozen=True)
class Call:
    service: str        # the IAM prefix: ecs, s3, logs, secretsmanager
    operation: str      # the API operation: RunTask, PutObject, ...
    params: dict[str, Any]

    @property
    def action(self) -> str:
        """The IAM action this call needs (`ecs:RunTask`)."""
        return f"{self.service}:{self.operation}"


@dataclass
class Calls:
    calls: list[Call] = field(default_factory=list)

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        prefix = model.service_model.signing_name or model.service_model.endpoint_prefix
        self.calls.append(Call(prefix, model.name, copy.deepcopy(params)))

    def of(self, operation: str) -> list[Call]:
        return [c for c in self.calls if c.operation == operation]


def on_sessions(monkeypatch: pytest.MonkeyPatch, event: str, handler: Callable[..., Any]) -> None:
    """Register `handler` for botocore `event` on every session the backend makes from now on."""
    real = ecs_backend.new_session

    def session_with_handler(region: str | None) -> Any:
        session = real(region)
        session.events.register(event, handler)
        return session

    monkeypatch.setattr(ecs_backend, "new_session", session_with_handler)


def record_calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls = Calls()
    on_sessions(monkeypatch, "before-parameter-build", calls.record)
    return calls


def rewrite_tasks(monkeypatch: pytest.MonkeyPatch, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to every task in DescribeTasks answers, as the backend receives them: what
    moto does not model (stop codes, a task stuck in PROVISIONING) injected at the API edge."""
    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        for task in parsed.get("tasks", []):
            change(task)

    on_sessions(monkeypatch, "after-call.ecs.DescribeTasks", rewrite)
