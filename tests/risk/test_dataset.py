"""Bad input never crashes and is never skipped silently: RBA CSV reading, validation, the replay's order."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from tessera.core.errors import ValidationFailed
from tessera.risk.dataset import COLUMNS, DatasetError, format_row, load, read_rows, write_header
from tessera.risk.engine import RiskEngine
from tessera.risk.events import LoginEvent, NetworkType
from tessera.risk.replay import replay

from .conftest import SECRET

HEADER = ",".join(COLUMNS)
GOOD = (
    "1,2020-02-03 12:43:30.772,-4324475583306591935,,10.0.65.171,NO,-,-,29695,"
    '"Mozilla/5.0 (iPhone; CPU iPhone OS 13_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1 '  # noqa: E501
    'Mobile/15E148 Safari/604.1",Mobile Safari 13.1,iOS 13.4,mobile,False,False,False'
)


def parse(text: str, **kw: object) -> list:
    return list(read_rows(io.StringIO(text), **kw))  # type: ignore[arg-type]


def test_reads_the_rba_dataset_format() -> None:
    [row] = parse(HEADER + "\n" + GOOD + "\n")
    event = row.event
    assert row.index == "1"
    assert event.user_id == "-4324475583306591935"
    assert event.country == "NO" and event.asn == 29695 and event.region is None and event.city is None
    assert event.browser == "Mobile Safari 13.1" and event.device_type == "mobile"
    assert event.success is False and event.rtt_ms is None
    assert row.labels == {"Is Attack IP": "False", "Is Account Takeover": "False"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("index,User ID,IP Address\n", "missing required column(s): Login Timestamp"),
        (HEADER + "\n" + GOOD.rsplit(",", 3)[0] + "\n", "line 2: expected 16 fields, found 13"),
        (
            HEADER + "\n" + GOOD.replace("2020-02-03 12:43:30.772", "yesterday") + "\n",
            "line 2: bad Login Timestamp",
        ),
        (HEADER + "\n" + GOOD.replace("2020-02-03", "1970-01-01") + "\n", "absurd Login Timestamp"),
        (HEADER + "\n" + GOOD.replace("2020-02-03", "2999-01-01") + "\n", "absurd Login Timestamp"),
        (HEADER + "\n" + GOOD.replace("10.0.65.171", "10.0.65.300") + "\n", "not an IP address"),
        (HEADER + "\n" + GOOD.replace(",29695,", ",AS-x,") + "\n", "ASN must be a number"),
        (
            HEADER + "\n" + GOOD.replace(",mobile,False,", ",mobile,maybe,") + "\n",
            "Login Successful must be true or false",
        ),
        (HEADER + "\n" + GOOD.replace("-4324475583306591935", "") + "\n", "empty User ID"),
        (HEADER + '\n1,"2020-02-03 12:43:30,unterminated\n', "expected 16 fields"),
    ],
)
def test_bad_rows_are_errors_with_their_line(text: str, message: str) -> None:
    with pytest.raises(DatasetError) as caught:
        parse(text)
    assert message in str(caught.value)


def test_huge_fields_are_an_error_not_a_crash() -> None:
    huge = GOOD.replace("Mobile Safari 13.1", "x" * 200_000)
    with pytest.raises(DatasetError, match="line 2: malformed CSV"):
        parse(HEADER + "\n" + huge + "\n")


def test_skip_mode_reports_every_skipped_row() -> None:
    bad = GOOD.replace("10.0.65.171", "nonsense")
    reported: list[DatasetError] = []
    rows = parse(
        HEADER + "\n" + GOOD + "\n" + bad + "\n" + GOOD.replace("1,", "3,", 1) + "\n",
        on_error="skip",
        errors=reported.append,
    )
    assert [r.index for r in rows] == ["1", "3"]
    assert [e.line for e in reported] == [3]


def test_optional_columns_may_be_missing_and_are_looked_up() -> None:
    text = "Login Timestamp,User ID,IP Address\n1700000000,alice,8.8.8.8\n1700000100,alice,2001:4860:4860::8888\n"  # noqa: E501
    rows = parse(text)
    assert rows[0].event.country is None and rows[0].event.success is True
    engine = RiskEngine(secret=SECRET)
    features = engine.resolve(rows[0].event).features
    assert (
        features.country == "US" and features.network_type == NetworkType.HOSTING
    )  # GOOGLE, from geoip2fast data
    v6 = engine.resolve(rows[1].event).features
    assert v6.ip == "2001:4860:4860::/64" and v6.prefix == "2001:4860:4860::/48"


def test_private_addresses_have_no_geography() -> None:
    engine = RiskEngine(secret=SECRET)
    for ip in ("10.1.2.3", "192.168.0.7", "127.0.0.1", "fd00::1", "fe80::1"):
        features = engine.resolve(LoginEvent(timestamp=1.7e9, user_id="u", ip=ip)).features
        assert features.network_type == NetworkType.PRIVATE
        assert features.latitude is None and features.country == "private"
    mapped = engine.resolve(LoginEvent(timestamp=1.7e9, user_id="u", ip="::ffff:8.8.8.8")).features
    assert mapped.ip == "8.8.8.8"


@pytest.mark.parametrize("ip", ["", "not-an-ip", "1.2.3", "2001:db8::g"])
def test_engine_refuses_what_is_not_an_address(ip: str) -> None:
    engine = RiskEngine(secret=SECRET)
    with pytest.raises(ValidationFailed):
        engine.resolve(LoginEvent(timestamp=1.7e9, user_id="u", ip=ip))


@pytest.mark.parametrize("ts", [float("nan"), float("inf"), -5.0])
def test_engine_refuses_absurd_timestamps(ts: float) -> None:
    with pytest.raises(ValidationFailed):
        RiskEngine(secret=SECRET).resolve(LoginEvent(timestamp=ts, user_id="u", ip="8.8.8.8"))


def test_huge_values_are_truncated_in_the_engine() -> None:
    engine = RiskEngine(secret=SECRET)
    event = LoginEvent(
        timestamp=1.7e9,
        user_id="u",
        ip="8.8.8.8",
        user_agent="A" * 100_000,
        city="C" * 100_000,
        country="DE",
        asn=3320,
    )
    assessment = asyncio.run(engine.assess(event))
    assert assessment.signals["city"] == "C" * 256


def _write(path: Path, events: list[LoginEvent]) -> None:
    with path.open("w", newline="") as handle:
        writer = write_header(handle)
        for i, event in enumerate(events):
            writer.writerow(format_row(i, event, is_attack=False, takeover=False, attack_type="legitimate"))


def test_out_of_order_rows_are_replayed_in_time_order(tmp_path: Path) -> None:
    events = [
        LoginEvent(
            timestamp=1.7e9 + i * 3600,
            user_id="u",
            ip=f"84.1.1.{i % 3 + 1}",
            country="DE",
            asn=3320,
            rtt_ms=30.0,
        )
        for i in range(30)
    ]
    ordered, shuffled = tmp_path / "ordered.csv", tmp_path / "shuffled.csv"
    _write(ordered, events)
    lines = ordered.read_text().splitlines()
    body = lines[1:]
    body = body[::2] + body[1::2]  # out of order, each row keeping its index
    shuffled.write_text("\n".join([lines[0], *body]) + "\n")

    def scores(path: Path) -> dict[str, float]:
        rows = load(path)
        result = asyncio.run(replay(rows, RiskEngine(secret=SECRET)))
        return {s.index: s.score for s in result}

    a, b = scores(ordered), scores(shuffled)
    assert a.keys() == b.keys() and len(a) == 30
    assert all(abs(a[k] - b[k]) < 1e-9 for k in a)
