"""Container images for the docker backend and the docker local stack: pull, else build.

Pinned images: k6 `grafana/k6:<the local k6's version>` (runners.k6_binary: the same
version the process backend runs), and InfluxDB and Grafana at the releases the AWS stack
pins (core/images.py; here by tag: `influxdb:1.8.10`, `grafana/grafana:12.4.12`). Each `ensure_*` returns
the reference of an image present in the engine:

1. the pinned image, if the engine already has it;
2. the local build (below), if the engine already has it;
3. the pinned image pulled from its registry (unless the pull policy is `never`);
4. a local build from binaries on this machine, when the pull fails (offline):
   - k6: `FROM scratch` with the local k6 binary (k6 is a static Linux binary),
     tagged `loadbearing/k6:<version>-local`;
   - InfluxDB: `FROM scratch` with this machine's `influxd`, the shared libraries it
     links (per `ldd`) and the config of the process stack (runners/influxd.py),
     tagged `loadbearing/influxdb:<version>-local`.
   Grafana has no local build: when it cannot be pulled, `ensure_grafana_image`
   raises RunError saying so.

The pull policy is `missing` (steps 1-4) or `never` (no registry is contacted:
steps 1, 2, 4); `LOADBEARING_DOCKER_PULL` sets it. `LOADBEARING_K6_IMAGE`,
`LOADBEARING_INFLUXDB_IMAGE` and `LOADBEARING_GRAFANA_IMAGE` replace a pinned image
(it must then be present or pullable).

Every image keeps its program at the same path, so container specs do not depend
on which one was chosen: k6 at /usr/bin/k6, influxd reading
/etc/influxdb/influxdb.conf with its data under /var/lib/influxdb.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Literal

import docker
import docker.errors

from core.errors import BadInput, RunError
from core.images import GRAFANA, INFLUXDB, K6
from runners.influxd import CONFIG_TEMPLATE
from runners.influxd import influxd_binary as find_influxd
from runners.k6_binary import resolve

PullPolicy = Literal["missing", "never"]

K6_REPOSITORY = K6.name
INFLUXDB_IMAGE = INFLUXDB.tagged
GRAFANA_IMAGE = GRAFANA.tagged
LOCAL_K6 = "loadbearing/k6:{version}-local"
LOCAL_INFLUXDB = "loadbearing/influxdb:{version}-local"

K6_PATH = "/usr/bin/k6"                       # in every k6 image
INFLUXD_CONFIG = "/etc/influxdb/influxdb.conf"  # in every InfluxDB image
INFLUXD_DATA = "/var/lib/influxdb"              # the data volume's mount point
IMAGE_LABEL = "loadbearing.image"               # on the images built here


def pull_policy(value: str | None = None) -> PullPolicy:
    """`value`, else LOADBEARING_DOCKER_PULL, else `missing`; BadInput for anything else."""
    raw = (value or os.environ.get("LOADBEARING_DOCKER_PULL") or "missing").strip().lower()
    if raw == "missing":
        return "missing"
    if raw == "never":
        return "never"
    raise BadInput(f"LOADBEARING_DOCKER_PULL={raw!r}: use 'missing' (pull when absent) or 'never'")


def k6_version() -> str:
    """The version of the k6 loadbearing runs locally (e.g. '1.1.0'; runners.k6_binary)."""
    return resolve().version


def k6_image() -> str:
    """The pinned k6 image: grafana/k6 tagged with the version of the k6 that runs locally."""
    return os.environ.get("LOADBEARING_K6_IMAGE") or f"{K6_REPOSITORY}:{k6_version()}"


def _has(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def _pull(client: docker.DockerClient, ref: str) -> str | None:
    """Pull `ref`; its reason in words when the pull fails, None when it worked."""
    repository, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    try:
        client.images.pull(repository, tag=tag)
    except docker.errors.APIError as exc:
        return str(exc.explanation or exc)
    except docker.errors.DockerException as exc:
        return str(exc)
    return None


def ensure_image(client: docker.DockerClient, pinned: str, *, local: str | None,
                 build: Callable[[docker.DockerClient, str], None] | None,
                 pull: PullPolicy | None = None) -> str:
    """An image present in the engine: pinned, else local build present, else pulled, else built.

    Raises RunError when the pinned image can neither be found nor pulled and there
    is no local build for it.
    """
    policy = pull_policy(pull)
    if _has(client, pinned):
        return pinned
    if local is not None and _has(client, local):
        return local
    why = "pulling is off (LOADBEARING_DOCKER_PULL=never)"
    if policy == "missing":
        failed = _pull(client, pinned)
        if failed is None:
            return pinned
        why = f"pull failed: {failed}"
    if local is None or build is None:
        raise RunError(f"image {pinned} is not in the Docker engine and cannot be built here ({why}); "
                       f"pull it where a registry is reachable: docker pull {pinned}")
    build(client, local)
    return local


def ensure_k6_image(client: docker.DockerClient, pull: PullPolicy | None = None) -> str:
    """A k6 image of the local k6's version (pinned grafana/k6, else a local scratch build of it)."""
    version = k6_version()
    pinned = k6_image()
    local = None if os.environ.get("LOADBEARING_K6_IMAGE") else LOCAL_K6.format(version=version)
    return ensure_image(client, pinned, local=local, build=build_k6_image, pull=pull)


def ensure_influxdb_image(client: docker.DockerClient, pull: PullPolicy | None = None) -> str:
    """An InfluxDB 1.x image (pinned influxdb:1.8.10, else a scratch build of this machine's influxd)."""
    pinned = os.environ.get("LOADBEARING_INFLUXDB_IMAGE") or INFLUXDB_IMAGE
    local: str | None = None
    if not os.environ.get("LOADBEARING_INFLUXDB_IMAGE"):
        version = influxd_version()
        local = LOCAL_INFLUXDB.format(version=version) if version else None
    return ensure_image(client, pinned, local=local, build=build_influxdb_image, pull=pull)


def ensure_grafana_image(client: docker.DockerClient, pull: PullPolicy | None = None) -> str:
    """The pinned Grafana image (no local build exists)."""
    pinned = os.environ.get("LOADBEARING_GRAFANA_IMAGE") or GRAFANA_IMAGE
    return ensure_image(client, pinned, local=None, build=None, pull=pull)


# -- local builds ----------------------------------------------------------------------

def _add_file(tar: tarfile.TarFile, source: Path, arcname: str, mode: int = 0o755) -> None:
    info = tar.gettarinfo(str(source.resolve()), arcname=arcname.lstrip("/"))
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    with open(source, "rb") as fh:
        tar.addfile(info, fh)


def _add_bytes(tar: tarfile.TarFile, data: bytes, arcname: str, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(arcname.lstrip("/"))
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, arcname: str, mode: int = 0o1777) -> None:
    info = tarfile.TarInfo(arcname.lstrip("/"))
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def _build(client: docker.DockerClient, tag: str, context: IO[bytes], what: str) -> None:
    context.seek(0)
    try:
        client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True,
                            labels={IMAGE_LABEL: what})
    except docker.errors.BuildError as exc:
        lines = "".join(str(step.get("stream") or step.get("error") or "") for step in exc.build_log)
        raise RunError(f"building the {what} image {tag} failed: {exc.msg}\n{lines[-1500:]}") from None
    except docker.errors.APIError as exc:
        raise RunError(f"building the {what} image {tag} failed: {exc.explanation or exc}") from None


def k6_dockerfile() -> str:
    return (f"FROM scratch\nCOPY k6 {K6_PATH}\nCOPY tmp /tmp\n"
            f'ENV K6_NO_USAGE_REPORT=true\nENTRYPOINT ["{K6_PATH}"]\n')


def build_k6_image(client: docker.DockerClient, tag: str) -> None:
    """Build `tag` FROM scratch holding the local static k6 binary (runners.k6_binary)."""
    binary = Path(resolve().path)
    with tempfile.TemporaryFile() as ctx:
        with tarfile.open(fileobj=ctx, mode="w") as tar:
            _add_bytes(tar, k6_dockerfile().encode(), "Dockerfile")
            _add_file(tar, binary, "k6")
            _add_dir(tar, "tmp")
        _build(client, tag, ctx, "k6")


def influxd_binary() -> Path | None:
    found = find_influxd()
    return Path(found) if found else None


def influxd_version() -> str | None:
    """This machine's influxd version as an image tag (e.g. '1.6.7'), None without influxd."""
    binary = influxd_binary()
    if binary is None:
        return None
    try:
        out = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"v?(\d+\.\d+\.\d+)", out)
    return found.group(1) if found else "unknown"


def linked_libraries(binary: Path) -> list[Path]:
    """The shared libraries (and loader) `binary` links, from `ldd`; [] for a static binary."""
    ldd = shutil.which("ldd")
    if ldd is None:
        raise RunError("ldd is not installed; cannot tell which libraries influxd needs")
    res = subprocess.run([ldd, str(binary)], capture_output=True, text=True, timeout=30)
    libs: list[Path] = []
    for raw in res.stdout.splitlines():
        text = raw.strip()
        path = text.split("=>", 1)[1].strip() if "=>" in text else text
        path = path.split(" (", 1)[0].strip()
        if path.startswith("/"):
            libs.append(Path(path))
    return libs


def influxdb_config() -> str:
    """The process stack's influxd config (runners/influxd.py), with the image's paths.

    Ports here are the defaults; containers bind 127.0.0.1:<port> through
    INFLUXDB_HTTP_BIND_ADDRESS / INFLUXDB_BIND_ADDRESS (see runners/stack_docker.py).
    """
    return CONFIG_TEMPLATE.format(root=INFLUXD_DATA, http_port=8086, rpc_port=8088)


def influxdb_dockerfile() -> str:
    return f'FROM scratch\nCOPY rootfs/ /\nENTRYPOINT ["/usr/bin/influxd", "-config", "{INFLUXD_CONFIG}"]\n'


def build_influxdb_image(client: docker.DockerClient, tag: str) -> None:
    """Build `tag` FROM scratch: this machine's influxd, the libraries it links, the config."""
    binary = influxd_binary()
    if binary is None:
        raise RunError("cannot build a local InfluxDB image: influxd is not installed "
                       f"(Debian: apt-get install influxdb), and {INFLUXDB_IMAGE} could not be pulled")
    with tempfile.TemporaryFile() as ctx:
        with tarfile.open(fileobj=ctx, mode="w") as tar:
            _add_bytes(tar, influxdb_dockerfile().encode(), "Dockerfile")
            _add_file(tar, binary, "rootfs/usr/bin/influxd")
            for lib in linked_libraries(binary):
                _add_file(tar, lib, f"rootfs{lib}")  # the file behind the link, at the linked path
            _add_bytes(tar, influxdb_config().encode(), f"rootfs{INFLUXD_CONFIG}")
            _add_dir(tar, "rootfs/tmp")
            _add_dir(tar, f"rootfs{INFLUXD_DATA}", mode=0o755)
        _build(client, tag, ctx, "influxdb")
