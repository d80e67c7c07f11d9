"""Safety: every host a run may reach must be in the plan's `allow_hosts`.

`check_plan_hosts` refuses (exit 3) before any request when a URL in the plan names
a host outside the list. `k6_block_options` backs that up inside k6 itself: every IP
outside the allowed ones goes to `blacklistIPs`, so a script that builds its own
URLs, or a redirect to another host, reaches nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from core.errors import BadInput, Refused
from core.plan import Plan

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _resolve(host: str) -> set[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        return set()
    return {str(info[4][0]).split("%")[0] for info in infos}


def _as_network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry.strip("[]"), strict=False)
    except ValueError:
        return None


def allowed_networks(allow_hosts: Iterable[str]) -> list[IPNetwork]:
    """The IP networks the allowlist permits: literal IPs/CIDRs, and what names resolve to."""
    nets: list[IPNetwork] = []
    for entry in allow_hosts:
        net = _as_network(entry)
        if net is not None:
            nets.append(net)
            continue
        for ip in _resolve(entry):
            nets.append(ipaddress.ip_network(ip))
    return nets


def host_allowed(host: str, allow_hosts: Iterable[str]) -> bool:
    """True when `host` is listed by name, or is an IP (or resolves only to IPs) inside the allowed set."""
    entries = list(allow_hosts)
    bare = host.strip("[]").lower()
    if bare in {e.strip("[]").lower() for e in entries}:
        return True
    nets = allowed_networks(entries)
    try:
        ips = {ipaddress.ip_address(bare)}
    except ValueError:
        # A name that is not listed: allowed only if every address it resolves to is allowed.
        resolved = _resolve(bare)
        if not resolved:
            return False
        ips = {ipaddress.ip_address(ip) for ip in resolved}
    return all(any(ip in net for net in nets if net.version == ip.version) for ip in ips)


def check_plan_hosts(plan: Plan) -> None:
    """Raise Refused (exit 3) when a URL in the plan names a host outside allow_hosts."""
    if not plan.target.allow_hosts:
        raise BadInput(f"{plan.path}: target.allow_hosts is empty; list the hosts this plan may load")
    for key, url in plan.urls():
        host = urlsplit(url).hostname or ""
        if not host_allowed(host, plan.target.allow_hosts):
            raise Refused(
                f"{plan.path}: {key}: host {host!r} is not in target.allow_hosts "
                f"({', '.join(plan.target.allow_hosts)}); refusing to send any load. "
                "Add it to allow_hosts only if you own that system."
            )


def _complement(allowed: list[IPNetwork], universe: IPNetwork) -> list[IPNetwork]:
    blocked: list[IPNetwork] = [universe]
    for net in allowed:
        if net.version != universe.version:
            continue
        nxt: list[IPNetwork] = []
        for block in blocked:
            if block.overlaps(net):
                if net.supernet_of(block):  # type: ignore[arg-type]
                    continue
                nxt.extend(block.address_exclude(net))  # type: ignore[arg-type]
            else:
                nxt.append(block)
        blocked = nxt
    return blocked


def k6_block_options(allow_hosts: Iterable[str]) -> dict[str, list[str]]:
    """k6 options that block every address outside the allowlist (`blacklistIPs`)."""
    nets = allowed_networks(allow_hosts)
    blocked = _complement(nets, ipaddress.ip_network("0.0.0.0/0")) + _complement(
        nets, ipaddress.ip_network("::/0")
    )
    return {"blacklistIPs": sorted(str(n) for n in blocked)}
