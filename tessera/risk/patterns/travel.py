"""Impossible travel between consecutive logins: the speed the user would have needed."""

from __future__ import annotations

import math

from tessera.risk.patterns import Term
from tessera.risk.signals.geo import haversine_km

# Airliners cruise near 900 km/h; above 1,000 km/h between two places more than 500 km apart (beyond what
# country-level coordinates and mobile-network geolocation blur) nobody travelled.
MAX_SPEED_KMH = 1000.0
MIN_DISTANCE_KM = 500.0


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 90:
        return f"{max(1, round(minutes))} minutes"
    hours = minutes / 60
    if hours < 48:
        return f"{round(hours)} hours"
    return f"{round(hours / 24)} days"


def impossible_travel(
    last_at: float | None,
    last_lat: float | None,
    last_lon: float | None,
    last_place: str,
    at: float,
    lat: float | None,
    lon: float | None,
    place: str,
) -> tuple[Term | None, float | None]:
    """The term (or None) and the distance in km (None when a position is unknown)."""
    if last_at is None or last_lat is None or last_lon is None or lat is None or lon is None:
        return None, None
    distance = haversine_km(last_lat, last_lon, lat, lon)
    elapsed = max(at - last_at, 1.0)
    speed = distance / (elapsed / 3600.0)
    if distance < MIN_DISTANCE_KM or speed <= MAX_SPEED_KMH:
        return None, distance
    weight = min(3.0, 1.0 + math.log10(speed / MAX_SPEED_KMH))
    words = f"{distance:,.0f} km from the last login ({last_place or 'unknown'}) {_duration(elapsed)} ago"
    return (
        Term(
            "impossible_travel",
            weight,
            f"{words}: {speed:,.0f} km/h, faster than any flight",
            f"{words}, too far to travel in that time",
        ),
        distance,
    )
