"""Login logs in the columns of the RBA dataset (Wiefling et al., ACM TOPS 2022; CC BY 4.0).

Columns: ``index, Login Timestamp, User ID, Round-Trip Time [ms], IP Address, Country, Region, City, ASN,
User Agent String, Browser Name and Version, OS Name and Version, Device Type, Login Successful, Is Attack IP,
Is Account Takeover``; simulated logs add ``Attack Type``. Required: ``Login Timestamp``, ``User ID`` and
``IP Address``; every other column is optional, and when present (country, ASN, browser...) it is used as
given
instead of being looked up. ``Is Attack IP``, ``Is Account Takeover`` and ``Attack Type`` are labels: the
replay never reads them.

Bad input is never skipped silently: ``read_rows`` raises ``DatasetError`` naming the line, or, with
``on_error="skip"``, reports each skipped line to ``errors``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from tessera.risk.events import LoginEvent
from tessera.risk.signals.network import parse_ip

COLUMNS = [
    "index",
    "Login Timestamp",
    "User ID",
    "Round-Trip Time [ms]",
    "IP Address",
    "Country",
    "Region",
    "City",
    "ASN",
    "User Agent String",
    "Browser Name and Version",
    "OS Name and Version",
    "Device Type",
    "Login Successful",
    "Is Attack IP",
    "Is Account Takeover",
]
LABELS = ["Is Attack IP", "Is Account Takeover", "Attack Type"]
REQUIRED = ["Login Timestamp", "User ID", "IP Address"]
# Python's csv refuses fields over 131,072 characters (its default limit, left as it is: the limit is
# process-wide); such a row is reported as malformed.
MAX_FIELD_BYTES = 131_072
# Logins before the web existed or more than a day in the future are typos or corrupt rows.
EARLIEST = datetime(1995, 1, 1, tzinfo=UTC).timestamp()
LATEST_MARGIN = 86400.0

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n", ""}


class DatasetError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(slots=True)
class Row:
    index: str
    line: int
    event: LoginEvent
    labels: dict[str, str]


def parse_timestamp(text: str) -> float:
    text = text.strip()
    if not text:
        raise ValueError("empty timestamp")
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"timestamp is not finite: {text!r}")
        return value / 1000.0 if value > 1e11 else value  # epoch milliseconds or seconds
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # the RBA dataset's timestamps are UTC without an offset
    return parsed.timestamp()


def _bool(text: str, column: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{column} must be true or false, not {text[:20]!r}")


def _format_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def read_rows(
    handle: TextIO,
    *,
    on_error: str = "fail",
    errors: Callable[[DatasetError], None] | None = None,
    now: float | None = None,
) -> Iterator[Row]:
    """Parse and validate rows. ``on_error``: ``fail`` (raise at the first bad row) or ``skip`` (report
    it)."""
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(1, "the file is empty: expected a header row") from None
    except csv.Error as exc:
        raise DatasetError(1, f"unreadable header: {exc}") from None
    header = [name.strip().lstrip("\ufeff") for name in header]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise DatasetError(1, f"missing required column(s): {', '.join(missing)}")
    position = {name: i for i, name in enumerate(header)}
    latest = (now if now is not None else datetime.now(UTC).timestamp()) + LATEST_MARGIN
    line = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            error = DatasetError(reader.line_num, f"malformed CSV: {exc}")
            if on_error == "fail":
                raise error from None
            if errors:
                errors(error)
            continue
        line = reader.line_num
        if not values:
            continue  # a blank line is not a row
        try:
            yield _row(values, header, position, line, latest)
        except (ValueError, OverflowError) as exc:
            error = exc if isinstance(exc, DatasetError) else DatasetError(line, str(exc))
            if on_error == "fail":
                raise error from None
            if errors:
                errors(error)


def _row(values: list[str], header: list[str], position: dict[str, int], line: int, latest: float) -> Row:
    if len(values) != len(header):
        raise DatasetError(
            line, f"expected {len(header)} fields, found {len(values)} (truncated or malformed row)"
        )

    def get(name: str) -> str | None:
        i = position.get(name)
        return None if i is None else values[i]

    try:
        ts = parse_timestamp(get("Login Timestamp") or "")
    except ValueError as exc:
        raise DatasetError(line, f"bad Login Timestamp: {exc}") from None
    if not EARLIEST <= ts <= latest:
        raise DatasetError(
            line, f"absurd Login Timestamp {get('Login Timestamp')!r} (before 1995 or in the future)"
        )
    user = (get("User ID") or "").strip()
    if not user:
        raise DatasetError(line, "empty User ID")
    ip = (get("IP Address") or "").strip()
    if parse_ip(ip) is None:
        raise DatasetError(line, f"not an IP address: {ip[:60]!r}")
    rtt_text = (get("Round-Trip Time [ms]") or "").strip()
    rtt = None
    if rtt_text:
        try:
            rtt = float(rtt_text)
        except ValueError:
            raise DatasetError(line, f"Round-Trip Time is not a number: {rtt_text[:20]!r}") from None
        if not math.isfinite(rtt) or rtt < 0:
            raise DatasetError(line, f"Round-Trip Time must be a positive number: {rtt_text[:20]!r}")
        rtt = rtt or None
    asn_text = (get("ASN") or "").strip()
    asn = None
    if asn_text:
        digits = asn_text.upper().removeprefix("AS")
        if not digits.isdigit() or int(digits) > 4_294_967_295:
            raise DatasetError(line, f"ASN must be a number up to 2^32-1: {asn_text[:20]!r}")
        asn = int(digits)
    success_text = get("Login Successful")
    success = True if success_text is None else _bool(success_text, "Login Successful")

    def opt(name: str) -> str | None:
        value = get(name)
        if value is None:
            return None
        value = value.strip()
        return value if value and value != "-" else None

    event = LoginEvent(
        timestamp=ts,
        user_id=user,
        ip=ip,
        user_agent=get("User Agent String") or "",
        success=success,
        rtt_ms=rtt,
        country=opt("Country"),
        region=opt("Region"),
        city=opt("City"),
        asn=asn,
        browser=opt("Browser Name and Version"),
        os=opt("OS Name and Version"),
        device_type=opt("Device Type"),
    )
    labels = {name: values[position[name]] for name in LABELS if name in position}
    index = (get("index") or "").strip() or str(line - 1)
    return Row(index, line, event, labels)


def write_header(handle: TextIO, *, attack_type: bool = True) -> csv.Writer:  # type: ignore[name-defined]
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow([*COLUMNS, "Attack Type"] if attack_type else COLUMNS)
    return writer


def format_row(
    index: int, event: LoginEvent, *, is_attack: bool, takeover: bool, attack_type: str
) -> list[str]:
    return [
        str(index),
        _format_ts(event.timestamp),
        event.user_id,
        "" if event.rtt_ms is None else f"{event.rtt_ms:.0f}",
        event.ip,
        event.country or "",
        event.region or "",
        event.city or "",
        "" if event.asn is None else str(event.asn),
        event.user_agent,
        event.browser or "",
        event.os or "",
        event.device_type or "",
        str(event.success),
        str(is_attack),
        str(takeover),
        attack_type,
    ]


def load(path: Path, **kwargs: object) -> list[Row]:
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        return list(read_rows(handle, **kwargs))  # type: ignore[arg-type]
