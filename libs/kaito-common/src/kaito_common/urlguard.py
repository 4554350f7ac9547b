"""The SSRF guard: refuse URLs pointing into the cluster, the node or a cloud metadata service.

Used by the tuning runner before it fetches input URLs and by the workspace webhook before it
accepts them. Dependency-free: only the standard library. `check_url` and `approved_addresses`
are pure apart from name resolution, which is injectable so callers and tests can decide how
names resolve.

An operator can allow data sources inside the cluster (an in-cluster MinIO, a Service's
ClusterIP) with `URLPolicy.allowed_networks` (CIDRs) and `URLPolicy.allowed_hosts` (host names);
both are empty by default. Cloud metadata names and addresses stay refused whatever is allowed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolver = Callable[[str], Iterable[str]]
"""Maps a host name to the IP addresses it resolves to."""
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Names that reach a cloud's instance metadata service without being an IP literal.
METADATA_HOSTNAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)

# Metadata endpoints that are not covered by the link-local / private checks.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, Azure, GCP, OpenStack
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)


class UnsafeURLError(ValueError):
    """The URL must not be fetched; the message names the problem and the URL."""


@dataclass(frozen=True)
class URLPolicy:
    """What the guard lets through. `allow_loopback` exists for tests serving data on 127.0.0.1.

    `allowed_networks` and `allowed_hosts` are the operator's allow-list of otherwise refused
    destinations (private, loopback, link-local... addresses); metadata stays refused.
    """

    allow_loopback: bool = False
    allowed_schemes: frozenset[str] = ALLOWED_SCHEMES
    allowed_networks: tuple[Network, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def with_allow_list(cls, entries: Iterable[str], *, allow_loopback: bool = False) -> URLPolicy:
        """A policy allowing each entry: a CIDR or IP address, or else a host name."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(_valid_host_entry(entry))
        return cls(
            allow_loopback=allow_loopback,
            allowed_networks=tuple(networks),
            allowed_hosts=frozenset(hosts),
        )

    def allows_address(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(addr.version == net.version and addr in net for net in self.allowed_networks)


def _valid_host_entry(entry: str) -> str:
    host = entry.rstrip(".").lower()
    labels = host.split(".")
    if not all(label and len(label) <= 63 for label in labels) or not all(
        c.isalnum() or c == "-" for label in labels for c in label
    ):
        raise ValueError(f"allow-list entry {entry!r} is neither a CIDR, an IP nor a host name")
    if host in METADATA_HOSTNAMES:
        raise ValueError(f"allow-list entry {entry!r} is a cloud metadata service")
    return host


def system_resolver(host: str) -> list[str]:
    """Resolve a host name with the system resolver (all address families)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as err:
        raise UnsafeURLError(f"host {host!r} could not be resolved: {err.strerror}") from err
    return sorted({str(info[4][0]) for info in infos})


def _is_metadata_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped in METADATA_ADDRESSES
    return addr in METADATA_ADDRESSES


def _address_problem(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: URLPolicy
) -> str | None:
    """Why this address is not allowed, or None when it is."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return _address_problem(addr.ipv4_mapped, policy)
    if addr in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if policy.allows_address(addr):
        return None
    if addr.is_loopback:
        return None if policy.allow_loopback else "a loopback address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_unspecified:
        return "the unspecified address"
    if addr.is_multicast:
        return "a multicast address"
    if addr.is_reserved:
        return "a reserved address"
    if addr.is_private:
        return "a private address"
    if isinstance(addr, ipaddress.IPv4Address) and addr in ipaddress.ip_network("100.64.0.0/10"):
        return "a carrier-grade NAT (shared) address"
    return None


def _is_localhost_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def _split(url: str, policy: URLPolicy) -> tuple[str, bool]:
    """The URL's host (lower case, no trailing dot) and whether it is an allowed name; raises
    for what the URL's syntax alone rules out."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as err:
        raise UnsafeURLError(f"URL {url!r} is malformed: {err}") from err
    scheme = parts.scheme.lower()
    if scheme not in policy.allowed_schemes:
        allowed = ", ".join(sorted(policy.allowed_schemes))
        shown = scheme or "none"
        raise UnsafeURLError(f"URL {url!r} has scheme {shown!r}; only {allowed} are allowed")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeURLError(f"URL {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError(f"URL {url!r} carries credentials; put them in a Secret instead")

    if host in METADATA_HOSTNAMES:
        raise UnsafeURLError(f"URL {url!r} points at {host!r}, a cloud metadata service")
    allowed_name = host in policy.allowed_hosts
    if _is_localhost_name(host) and not (policy.allow_loopback or allowed_name):
        raise UnsafeURLError(f"URL {url!r} points at {host!r}, which is the local machine")
    return host, allowed_name


def _resolve(url: str, host: str, resolver: Resolver) -> list[Address]:
    try:
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host)]
    except UnsafeURLError:
        raise
    except (OSError, ValueError) as err:
        raise UnsafeURLError(f"host {host!r} of URL {url!r} could not be resolved: {err}") from err
    if not addresses:
        raise UnsafeURLError(f"host {host!r} of URL {url!r} resolved to no address")
    return addresses


def approved_addresses(
    url: str, policy: URLPolicy | None = None, resolver: Resolver | None = system_resolver
) -> list[Address]:
    """The addresses `url` may be fetched from, resolved once and each checked; raises
    `UnsafeURLError` naming the problem when any of them (or the URL itself) is refused.

    A fetcher connects to one of these exact addresses (not to the name again), so a DNS
    answer that changes between the check and the connection (rebinding) cannot reach an
    address the check never saw. IPv4 addresses come first. With `resolver=None` a host name is
    only checked syntactically and the list is empty.
    """
    policy = policy or URLPolicy()
    host, allowed_name = _split(url, policy)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    elif resolver is None:
        return []
    else:
        addresses = _resolve(url, host, resolver)

    for addr in addresses:
        if allowed_name and not _is_metadata_address(addr):
            continue
        problem = _address_problem(addr, policy)
        if problem is not None:
            via = "" if literal is not None else f" (host {host!r} resolves to {addr})"
            raise UnsafeURLError(
                f"URL {url!r} points at {addr if literal is not None else host}, "
                f"{problem}{via}; only public addresses may be fetched unless the operator "
                "allows the network or host"
            )
    return sorted(dict.fromkeys(addresses), key=lambda a: a.version)


def check_url(
    url: str, policy: URLPolicy | None = None, resolver: Resolver | None = system_resolver
) -> None:
    """Raise `UnsafeURLError` naming the problem when `url` must not be fetched.

    With `resolver=None` host names are not resolved (a purely syntactic check, e.g. in an
    admission webhook that must not do DNS); IP literals and known names are still checked.
    A fetcher should use `approved_addresses` and connect to what it returns instead.
    """
    approved_addresses(url, policy, resolver)


def is_safe_url(
    url: str, policy: URLPolicy | None = None, resolver: Resolver | None = system_resolver
) -> bool:
    """True when `check_url` accepts the URL."""
    try:
        check_url(url, policy, resolver)
    except UnsafeURLError:
        return False
    return True
