"""Network type of an autonomous system: hosting, VPN, Tor, mobile, business or residential.

No PyPI package ships an open ASN-to-network-type list, so this is a curated table of well-known ASNs plus
keyword rules on the AS organisation name (which GeoLite2 data, shipped by ``geoip2fast``, carries). It is a
heuristic; an operator can extend it with ``RiskConfig.extra_network_types``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from tessera.risk.events import NetworkType

# Well-known ASNs (public registry facts). Hosting: cloud and dedicated-server providers.
KNOWN_ASNS: Mapping[int, NetworkType] = {
    16509: NetworkType.HOSTING,  # Amazon AWS
    14618: NetworkType.HOSTING,  # Amazon AWS
    15169: NetworkType.HOSTING,  # Google
    396982: NetworkType.HOSTING,  # Google Cloud
    8075: NetworkType.HOSTING,  # Microsoft Azure
    14061: NetworkType.HOSTING,  # DigitalOcean
    16276: NetworkType.HOSTING,  # OVH
    24940: NetworkType.HOSTING,  # Hetzner
    63949: NetworkType.HOSTING,  # Linode / Akamai
    20473: NetworkType.HOSTING,  # Vultr (Choopa)
    51167: NetworkType.HOSTING,  # Contabo
    60781: NetworkType.HOSTING,  # LeaseWeb
    45102: NetworkType.HOSTING,  # Alibaba Cloud
    13335: NetworkType.HOSTING,  # Cloudflare
    9009: NetworkType.VPN,  # M247: exits of many consumer VPNs
    60068: NetworkType.VPN,  # Datacamp / CDN77: consumer VPN exits
    212238: NetworkType.VPN,  # Datacamp
    136787: NetworkType.VPN,  # TEFINCOM (NordVPN)
    39351: NetworkType.VPN,  # 31173 Services (Mullvad)
    208323: NetworkType.TOR,  # Foundation for Applied Privacy (Tor exits)
    60729: NetworkType.TOR,  # Stiftung Erneuerbare Freiheit (Tor exits)
    21928: NetworkType.MOBILE,  # T-Mobile USA
    22394: NetworkType.MOBILE,  # Verizon Wireless
    20057: NetworkType.MOBILE,  # AT&T Mobility
    3209: NetworkType.RESIDENTIAL,  # Vodafone Germany (cable and mobile; residential is the safer default)
    12430: NetworkType.MOBILE,  # Vodafone Spain
    29247: NetworkType.MOBILE,  # Telia Norway mobile
    2119: NetworkType.RESIDENTIAL,  # Telenor Norway
    3320: NetworkType.RESIDENTIAL,  # Deutsche Telekom
    7922: NetworkType.RESIDENTIAL,  # Comcast
}

_KEYWORDS: tuple[tuple[NetworkType, tuple[str, ...]], ...] = (
    (NetworkType.TOR, ("tor exit", "torservers", "erneuerbare freiheit", "applied privacy")),
    (NetworkType.VPN, ("vpn", "m247", "datacamp", "mullvad", "proton", "31173", "tefincom", "packethub")),
    (
        NetworkType.HOSTING,
        (
            "amazon",
            "aws",
            "google",
            "microsoft",
            "azure",
            "digitalocean",
            "ovh",
            "hetzner",
            "linode",
            "akamai",
            "vultr",
            "choopa",
            "contabo",
            "leaseweb",
            "alibaba",
            "tencent",
            "oracle",
            "hosting",
            "datacenter",
            "data center",
            "server",
            "cloud",
            "colo",
            "vps",
        ),
    ),
    (NetworkType.MOBILE, ("mobile", "wireless", "cellular", "mobil ", "lte", "5g")),
    (NetworkType.BUSINESS, ("business", "enterprise", "corporate", "university", "college")),
)


def classify(
    asn: int | None, asn_name: str | None, extra: Mapping[int, NetworkType] | None = None
) -> NetworkType:
    if asn is not None:
        if extra and asn in extra:
            return extra[asn]
        if asn in KNOWN_ASNS:
            return KNOWN_ASNS[asn]
    if asn_name:
        lowered = asn_name.lower()
        for network_type, words in _KEYWORDS:
            if any(word in lowered for word in words):
                return network_type
        return NetworkType.RESIDENTIAL
    return NetworkType.UNKNOWN


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, or None when the text is not one (callers report it; it never raises)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:a.b.c.d is the IPv4 client seen through a dual-stack socket: one client, one key.
        return address.ipv4_mapped
    return address


def is_non_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Private, loopback, link-local, multicast or reserved: no geography or ASN applies."""
    return not address.is_global


def prefix_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The block an address belongs to: operators hand out mobile, fixed-line and business addresses from
    distinct blocks, so a new address in a known block is less surprising than one in a new block."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address) >> 80 << 80, 48)))
    return str(ipaddress.IPv4Network((int(address) >> 16 << 16, 16)))


def network_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The IP as the user model sees it. IPv6 clients rotate within their /64 (RFC 8981 temporary
    addresses), so the /64 is the stable identity of one IPv6 client network."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)
