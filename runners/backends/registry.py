"""Which backend a run uses: `get_backend(options)` builds the backend its typed options name.

The backends are imported only when chosen: docker's SDK and boto3 cost a run that uses
neither a noticeable part of a second to import.
"""

from __future__ import annotations

from typing import Any

from runners.backends import Backend, BackendOptions, DockerOptions, EcsOptions, ProcessOptions


def get_backend(options: BackendOptions) -> Backend[Any]:
    """The backend `options` configure (docker connects to its engine, ecs reads its stack here)."""
    if isinstance(options, ProcessOptions):
        from runners.backends.process import ProcessBackend

        return ProcessBackend(k6_path=options.k6_path)
    if isinstance(options, DockerOptions):
        from runners.backends.docker import DockerBackend

        return DockerBackend(base_url=options.base_url, image=options.image, pull=options.pull)
    assert isinstance(options, EcsOptions)
    from runners.backends.ecs import EcsBackend

    return EcsBackend(stack_outputs=options.stack_outputs, max_cost=options.max_cost)
