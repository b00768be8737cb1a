"""The outbound-fetch policy: which URLs and addresses a server-side fetch may reach (against SSRF).

Pure rules, no I/O. Enforcement (resolving the name, checking every answer, connecting only to a
checked address, re-checking every redirect) is engine/sources/http.py.

* schemes: http and https only;
* ports: 80 and 443, plus the operator's ``fetch.allow_ports`` (numbers or ranges ``8000-8999``);
* addresses: only public ones. Loopback, private, link-local, multicast, reserved, unspecified and
  any other non-global address is refused, also when it hides inside an IPv6 address (IPv4-mapped
  ``::ffff:a.b.c.d``, IPv4-compatible, 6to4, Teredo, NAT64), unless it lies in one of the operator's
  ``fetch.allow_networks`` (CIDRs).

Refusals read ``refused by the outbound-fetch policy: <reason>`` with a reason from a short fixed
list; they never carry the address a name resolved to, nor anything about the target's ports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
ALWAYS_ALLOWED_PORTS = frozenset({80, 443})
PREFIX = "refused by the outbound-fetch policy"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class PolicyRefused(ValueError):
    """A URL or address the outbound-fetch policy does not allow; ``str()`` is the uniform text."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{PREFIX}: {reason}")


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) to networks; ValueError naming the bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ValueError(f"not a network (CIDR like 10.0.0.0/8 or an address): {value!r}") from None
    return tuple(networks)


def parse_ports(values: Iterable[str | int]) -> tuple[tuple[int, int], ...]:
    """Port numbers or ranges (``8080``, ``"8000-8999"``) to inclusive ranges; ValueError naming the bad entry."""
    ranges = []
    for value in values:
        text = str(value).strip()
        lo_text, sep, hi_text = text.partition("-")
        try:
            lo = int(lo_text)
            hi = int(hi_text) if sep else lo
        except ValueError:
            raise ValueError(f"not a port or a port range (like 8080 or 8000-8999): {value!r}") from None
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"not a port or a port range within 1-65535: {value!r}")
        ranges.append((lo, hi))
    return tuple(ranges)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, Teredo client, NAT64)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address ("loopback address", ...), or None when it is public."""
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_private:
        return "private address"
    if ip.is_reserved:
        return "reserved address"
    if not ip.is_global:
        return "non-public address"
    return None


@dataclass(frozen=True)
class NetPolicy:
    allow_networks: tuple[IPNetwork, ...] = ()
    allow_ports: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_settings(cls, networks: Iterable[str], ports: Iterable[str | int]) -> NetPolicy:
        return cls(parse_networks(networks), parse_ports(ports))

    # ------------------------------------------------------------------------------- addresses
    def _allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow_networks)

    def address_refusal(self, address: str | IPAddress) -> str | None:
        """The reason ``address`` may not be connected to, or None when it may."""
        try:
            ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        except ValueError:
            return "not an IP address"
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        inner = embedded_ipv4(ip)
        if self._allowed(ip) or (inner is not None and self._allowed(inner)):
            return None
        reason = classify(inner) if inner is not None else None
        return reason or classify(ip)

    def check_address(self, address: str | IPAddress) -> None:
        reason = self.address_refusal(address)
        if reason is not None:
            raise PolicyRefused(reason)

    def check_addresses(self, addresses: Iterable[str]) -> list[str]:
        """Every address a name resolved to must be allowed (one refused: the name is refused)."""
        checked = list(dict.fromkeys(addresses))
        if not checked:
            raise PolicyRefused("the host name has no address")
        for address in checked:
            self.check_address(address)
        return checked

    # ------------------------------------------------------------------------------------ URLs
    def port_allowed(self, port: int) -> bool:
        return port in ALWAYS_ALLOWED_PORTS or any(lo <= port <= hi for lo, hi in self.allow_ports)

    def url_refusal(self, scheme: str, host: str, port: int | None) -> str | None:
        """The reason a URL of these parts may not be fetched (scheme, missing host, port), or None."""
        scheme = scheme.lower()
        if scheme not in SCHEMES:
            return "only http and https URLs are fetched"
        if not host:
            return "the URL has no host"
        effective = DEFAULT_PORTS[scheme] if port is None else port
        if not self.port_allowed(effective):
            return "port not allowed"
        return None

    def check_url(self, scheme: str, host: str, port: int | None) -> None:
        reason = self.url_refusal(scheme, host, port)
        if reason is not None:
            raise PolicyRefused(reason)
