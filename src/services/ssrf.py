"""Where a webhook may be sent: only to public addresses (or the operator's allow-list), checked
when an endpoint is registered and again right before every delivery, since DNS can change.

A delivery connects to the very address that was checked, so a second lookup cannot rebind the
name to an internal host between the check and the connection."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from src.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeDestination(Exception):
    """The URL may not receive webhooks; the message says why, for the endpoint's owner."""


@dataclass(frozen=True)
class Destination:
    """A URL whose host has been resolved and checked: connect to `connect_url`, send `host`."""

    url: str
    host: str
    host_header: str
    address: IPAddress

    @property
    def connect_url(self) -> str:
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


@dataclass(frozen=True)
class _ParsedUrl:
    scheme: str
    host: str
    port: int
    host_header: str


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_public(address: IPAddress) -> bool:
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE)
        or not address.is_global
    )


def check_address(address: IPAddress, allow_networks: Sequence[IPNetwork]) -> None:
    """Refuses an address that is not public, unless the operator allowed its network."""
    candidates = [address]
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        candidates.append(embedded)
    if any(candidate in network for candidate in candidates for network in allow_networks):
        return
    if not all(_is_public(candidate) for candidate in candidates):
        raise UnsafeDestination(
            f"resolves to {address}, which is not a public address "
            "(loopback, private, link-local, multicast and reserved ranges are refused)"
        )


def _parse(url: str, settings: Settings) -> _ParsedUrl:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeDestination(f"is not a valid URL ({exc})") from None
    schemes = ("https", "http") if settings.webhook_allow_insecure else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeDestination("must be an https:// URL")
    if not parts.hostname:
        raise UnsafeDestination("has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestination("must not carry credentials")
    if parts.fragment:
        raise UnsafeDestination("must not carry a #fragment")
    default_port = 443 if parts.scheme == "https" else 80
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = f"{shown}:{port}" if port and port != default_port else shown
    return _ParsedUrl(parts.scheme, host, port or default_port, host_header)


def _checked(
    url: str, parsed: _ParsedUrl, infos: list[tuple[object, ...]], settings: Settings
) -> Destination:
    addresses: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        assert isinstance(sockaddr, tuple)
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeDestination(f"host {parsed.host} does not resolve")
    # Every address must pass: a client library could pick any of them.
    for address in addresses:
        check_address(address, settings.webhook_allow_networks)
    return Destination(
        url=url, host=parsed.host, host_header=parsed.host_header, address=addresses[0]
    )


def _unresolvable(host: str) -> UnsafeDestination:
    return UnsafeDestination(f"host {host} does not resolve")


def resolve_destination(url: str, settings: Settings) -> Destination:
    """Resolves and checks `url` (blocking); raises `UnsafeDestination` if it may not be used."""
    parsed = _parse(url, settings)
    try:
        infos = socket.getaddrinfo(parsed.host, parsed.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _unresolvable(parsed.host) from None
    return _checked(url, parsed, list(infos), settings)


async def resolve_destination_async(url: str, settings: Settings) -> Destination:
    """As `resolve_destination`, without blocking the event loop."""
    parsed = _parse(url, settings)
    try:
        # An address needs no lookup (and no trip to the resolver's thread).
        infos: list[tuple[object, ...]] = [
            ((), (), (), "", (str(ipaddress.ip_address(parsed.host)),))
        ]
    except ValueError:
        try:
            infos = list(
                await asyncio.get_running_loop().getaddrinfo(
                    parsed.host, parsed.port, type=socket.SOCK_STREAM
                )
            )
        except (socket.gaierror, UnicodeError):
            raise _unresolvable(parsed.host) from None
    return _checked(url, parsed, infos, settings)
