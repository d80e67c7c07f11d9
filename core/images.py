"""Every third-party container image loadbearing runs, pinned once: the AWS stack pulls each
by digest (infra/images.py), the local docker stack and the docker backend name the same
release by its tag (runners/images.py).

A digest pins the exact image; the tag beside it says which release that is. The digests
were not pulled here (no registry is reachable from this project's machines): each is the
one public repositories pin for that tag, found through the project's search tool, and
`docker buildx imagetools inspect <repository>:<tag>` shows it. k6 1.1.0 and aws-cli
2.27.50 were found pinned alike in several repositories; influxdb 1.8.10 and grafana
12.4.12 (the newest Grafana release found, for its security fixes) in one each, grafana's
noted there as the multi-platform index (one reference for x86_64 and arm64).

Why the local stack uses the tag: a fleet on AWS must pull the identical image on every
task, and the policy pack requires a digest there; on a laptop the tag is what a user can
check, pull ahead (`docker pull grafana/grafana:12.4.12`) or mirror and retag, and since no
registry answers here, a digest reference could not be pulled or tested for the local stack.
"""

from __future__ import annotations

from dataclasses import dataclass

CACHE_PREFIX = "docker-hub"          # the ECR pull-through cache's repository prefix (infra/images.py)


@dataclass(frozen=True)
class Image:
    """An image on Docker Hub (`library/` for official images), its release tag and its digest."""

    repository: str
    tag: str
    digest: str

    @property
    def name(self) -> str:
        """The repository as `docker pull` spells it (`influxdb`, `grafana/grafana`)."""
        return self.repository.removeprefix("library/")

    @property
    def tagged(self) -> str:
        """The release by its tag: `grafana/grafana:12.4.12` (the local docker stack)."""
        return f"{self.name}:{self.tag}"

    @property
    def docker_hub(self) -> str:
        """The reference for a pull from Docker Hub by digest: `grafana/k6@sha256:...`."""
        return f"{self.name}@{self.digest}"

    def via(self, registry: str | None) -> str:
        """The reference a task pulls: from Docker Hub, or through the pull-through cache in `registry`."""
        if registry is None:
            return self.docker_hub
        return f"{registry}/{CACHE_PREFIX}/{self.repository}@{self.digest}"


K6 = Image("grafana/k6", "1.1.0", "sha256:aa8202f377550cee0c8bad295bbe8d2d4d4cf88d15c98383e9ecc53c56882308")
INFLUXDB = Image("library/influxdb", "1.8.10",
                 "sha256:299ebda2c7e308dbef42e26ac9b8fd1d9b3bcb8a0aee80c6509aa0219c1d0290")
GRAFANA = Image("grafana/grafana", "12.4.12",
                "sha256:83be3e511ede559bee80e2215bb1987cb1246075461cb961beb515b0341e7aea")
# Grafana's init container on AWS: copies its provisioning files from S3 onto the task's volumes.
AWS_CLI = Image("amazon/aws-cli", "2.27.50", "sha256:48c3d4212e2f5b0e24bdc6af7708f9412ce65425a79575e0f78b8f8c0dcd70ab")

ALL = (K6, INFLUXDB, GRAFANA, AWS_CLI)
