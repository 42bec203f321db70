"""A labelled login log with realistic habits and realistic attackers, in the RBA dataset's columns.

Legitimate users have a home ISP (a stable address that the ISP occasionally renumbers), phones on mobile
carriers (a new carrier-grade NAT address nearly every time) and on home Wi-Fi, work networks, office VPNs on
cloud providers, consumer VPNs, trips abroad (hotel networks, or roaming through the home carrier), new
devices,
browsers that update themselves on the vendors' release schedules, moves to another ISP, and typos (a failed
attempt just before the successful one).

Attackers follow Wiefling et al.'s models (ACM TOPS 2022, after Freeman et al.): they hold the victim's
password and
- ``naive``: log in from a hosting provider or a random ISP anywhere, with a common browser;
- ``vpn``: from a consumer VPN, an exit in the victim's country half of the time;
- ``targeted``: know the victim's city and browser: a residential proxy on an ISP of the victim's country
  (chosen by market share, so sometimes the victim's own ISP), the victim's browser and version;
- ``very_targeted``: know the victim's ISP and exact user agent: a residential proxy on the victim's ISP.
Proxies add latency (round-trip time), as relaying does. ``stuffing`` campaigns try many accounts (real and
non-existent) with leaked passwords, a few attempts each, rotating addresses within a few ASNs. Each attacker
knows the victim's ISP and browser of the moment it attacks. By default each attacker type tries each victim
once in every stage of the victim's history (``attacks_per_stage``, ``Simulator.attack_times``), so that the
evaluation's per-history thresholds rest on enough attacks; 0 gives one attempt at a random moment instead.

IP addresses are synthetic: each ASN owns random public /16 blocks (fixed-line and mobile apart), each city a
few of them, and a home connection is renumbered within its city's blocks, mostly its own. The log carries
country, city and ASN columns and the engine uses them as given, as it does for the RBA dataset.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tessera.risk.dataset import format_row, write_header
from tessera.risk.events import LoginEvent
from tessera.risk.signals.useragent import UserAgentParser

DAY = 86400.0
START = 1_735_689_600.0  # 2025-01-01T00:00:00Z
PERIOD_DAYS = 365

# country: weight, RTT to the service (ms; the service runs in Frankfurt), cities, residential ISPs
# (ASN, name, market share), mobile carriers (ASN, name, share)
COUNTRIES: dict[str, dict] = {
    "DE": {
        "w": 0.22,
        "rtt": 8,
        "cities": [
            ("Berlin", "Berlin", 4),
            ("Hamburg", "Hamburg", 2),
            ("Munich", "Bavaria", 2),
            ("Frankfurt am Main", "Hesse", 1),
        ],
        "isp": [
            (3320, "Deutsche Telekom AG", 40),
            (3209, "Vodafone GmbH", 30),
            (6805, "Telefonica Germany", 15),
            (8881, "1&1 Versatel", 15),
        ],
        "mobile": [
            (3320, "Deutsche Telekom AG", 40),
            (3209, "Vodafone GmbH", 30),
            (6805, "Telefonica Germany", 30),
        ],
    },
    "US": {
        "w": 0.2,
        "rtt": 95,
        "cities": [
            ("New York City", "New York", 4),
            ("Chicago", "Illinois", 2),
            ("Los Angeles", "California", 3),
            ("Houston", "Texas", 2),
        ],
        "isp": [
            (7922, "Comcast Cable Communications", 35),
            (20115, "Charter Communications", 25),
            (7018, "AT&T Services", 20),
            (701, "Verizon Business", 20),
        ],
        "mobile": [
            (21928, "T-Mobile USA", 40),
            (22394, "Verizon Wireless", 35),
            (20057, "AT&T Mobility", 25),
        ],
    },
    "GB": {
        "w": 0.12,
        "rtt": 16,
        "cities": [("London", "England", 5), ("Manchester", "England", 2), ("Birmingham", "England", 2)],
        "isp": [
            (2856, "British Telecommunications", 35),
            (5089, "Virgin Media", 25),
            (13285, "TalkTalk", 15),
            (5607, "Sky UK", 25),
        ],
        "mobile": [(12576, "EE Limited", 45), (25135, "Vodafone UK", 30), (60339, "Hutchison 3G UK", 25)],
    },
    "FR": {
        "w": 0.1,
        "rtt": 12,
        "cities": [
            ("Paris", "Ile-de-France", 5),
            ("Lyon", "Auvergne-Rhone-Alpes", 2),
            ("Marseille", "Provence", 2),
        ],
        "isp": [
            (3215, "Orange", 40),
            (12322, "Free SAS", 25),
            (5410, "Bouygues Telecom", 15),
            (15557, "SFR", 20),
        ],
        "mobile": [(3215, "Orange", 40), (51207, "Free Mobile", 25), (5410, "Bouygues Telecom", 35)],
    },
    "NO": {
        "w": 0.08,
        "rtt": 22,
        "cities": [("Oslo", "Oslo", 4), ("Bergen", "Vestland", 2), ("Trondheim", "Trondelag", 1)],
        "isp": [(2119, "Telenor Norge", 40), (29695, "Altibox", 35), (41164, "Telia Norge", 25)],
        "mobile": [(2119, "Telenor Norge", 50), (12929, "Telia Norge Mobile", 50)],
    },
    "BR": {
        "w": 0.1,
        "rtt": 190,
        "cities": [("Sao Paulo", "Sao Paulo", 4), ("Rio de Janeiro", "Rio de Janeiro", 3)],
        "isp": [(28573, "Claro NXT", 40), (18881, "Telefonica Brasil", 35), (26599, "TIM Brasil", 25)],
        "mobile": [(26599, "TIM Brasil", 40), (18881, "Telefonica Brasil", 35), (28573, "Claro NXT", 25)],
    },
    "IN": {
        "w": 0.12,
        "rtt": 130,
        "cities": [("Mumbai", "Maharashtra", 3), ("New Delhi", "Delhi", 3), ("Bengaluru", "Karnataka", 3)],
        "isp": [(24560, "Bharti Airtel", 40), (55836, "Reliance Jio", 40), (9829, "BSNL", 20)],
        "mobile": [(55836, "Reliance Jio", 55), (45609, "Bharti Airtel Mobility", 45)],
    },
    "JP": {
        "w": 0.06,
        "rtt": 225,
        "cities": [("Tokyo", "Tokyo", 4), ("Osaka", "Osaka", 2)],
        "isp": [(4713, "NTT OCN", 40), (2516, "KDDI", 35), (17676, "SoftBank", 25)],
        "mobile": [(2516, "KDDI", 40), (17676, "SoftBank", 30), (9605, "NTT Docomo", 30)],
    },
}
BUSINESS = [(3356, "Lumen"), (174, "Cogent"), (1299, "Arelion"), (8220, "Colt"), (6939, "Hurricane Electric")]
OFFICE_VPN = [(16509, "Amazon.com"), (8075, "Microsoft Corporation"), (16276, "OVH SAS")]
CONSUMER_VPN = [
    (9009, "M247 Europe"),
    (60068, "Datacamp Limited"),
    (136787, "TEFINCOM S.A."),
    (39351, "31173 Services AB"),
]
HOSTING = [
    (14061, "DigitalOcean"),
    (24940, "Hetzner Online"),
    (16276, "OVH SAS"),
    (20473, "The Constant Company (Vultr)"),
    (16509, "Amazon.com"),
    (45102, "Alibaba"),
]

# Browser release schedules: (major at START, days per major release).
ATTACKERS = ("naive", "vpn", "targeted", "very_targeted")
# History lengths at which staged attacks begin (``Simulator.attack_times``): the evaluation's buckets, with
# the open-ended last one split so that it rests on about as many attacks as the others.
STAGES = (1, 4, 8, 12, 20, 40, 80, 120)

RELEASES = {
    "Chrome": (131, 28),
    "Firefox": (134, 28),
    "Edge": (131, 28),
    "Safari": (18, 365),
    "Samsung": (27, 90),
}
DESKTOP_BROWSERS = [
    ("Chrome", "Windows", 40),
    ("Chrome", "Mac", 10),
    ("Edge", "Windows", 12),
    ("Firefox", "Windows", 8),
    ("Firefox", "Linux", 3),
    ("Safari", "Mac", 12),
    ("Chrome", "Linux", 3),
]
PHONES = [("iPhone", 50), ("Android", 38), ("Samsung", 12)]


def _ua(kind: str, os: str, version: int) -> str:
    if kind == "Chrome":
        platform = {
            "Windows": "Windows NT 10.0; Win64; x64",
            "Mac": "Macintosh; Intel Mac OS X 10_15_7",
            "Linux": "X11; Linux x86_64",
        }[os]
        return f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{version}.0.0.0 Safari/537.36"  # noqa: E501
    if kind == "Edge":
        return f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{version}.0.0.0 Safari/537.36 Edg/{version}.0.0.0"  # noqa: E501
    if kind == "Firefox":
        platform = {
            "Windows": "Windows NT 10.0; Win64; x64",
            "Linux": "X11; Linux x86_64",
            "Mac": "Macintosh; Intel Mac OS X 10.15",
        }[os]
        return f"Mozilla/5.0 ({platform}; rv:{version}.0) Gecko/20100101 Firefox/{version}.0"
    if kind == "Safari":
        return f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{version}.1 Safari/605.1.15"  # noqa: E501
    if kind == "iPhone":
        return f"Mozilla/5.0 (iPhone; CPU iPhone OS {version}_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{version}.1 Mobile/15E148 Safari/604.1"  # noqa: E501
    if kind == "Android":
        return f"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{version}.0.0.0 Mobile Safari/537.36"  # noqa: E501
    if kind == "Samsung":
        return f"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/{version}.0 Chrome/131.0.0.0 Mobile Safari/537.36"  # noqa: E501
    raise ValueError(kind)


def _release(kind: str, at: float) -> int:
    schedule = {"iPhone": "Safari", "Android": "Chrome"}.get(kind, kind)
    first, every = RELEASES[schedule]
    return first + int(max(0.0, at - START) / DAY // every)


@dataclass
class Device:
    kind: str
    os: str
    lag_days: float  # how long after a release this device updates

    def ua(self, at: float) -> str:
        return _ua(self.kind, self.os, _release(self.kind, at - self.lag_days * DAY))


class World:
    """The synthetic address plan: each ASN owns random public /16 blocks."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.blocks: dict[tuple[int, bool], list[int]] = {}
        taken: set[int] = set()
        fixed = {a for c in COUNTRIES.values() for a, *_ in c["isp"]}
        fixed |= {a for a, _ in BUSINESS + OFFICE_VPN + CONSUMER_VPN + HOSTING}
        mobile = {a for c in COUNTRIES.values() for a, *_ in c["mobile"]}
        # Operators number mobile (carrier-grade NAT) and fixed-line customers from distinct blocks.
        for asn, is_mobile in sorted({(a, False) for a in fixed} | {(a, True) for a in mobile}):
            blocks = []
            for _ in range(rng.randint(6, 16) if is_mobile else rng.randint(12, 40)):
                while True:
                    first = rng.randint(1, 223)
                    if first in {10, 100, 127, 169, 172, 192, 198, 203}:
                        continue
                    block = first * 256 + rng.randint(0, 255)
                    if block not in taken:
                        taken.add(block)
                        blocks.append(block)
                        break
            self.blocks[(asn, is_mobile)] = blocks
        self.pools: dict[tuple[int, bool, str], list[int]] = {}

    def pool(self, asn: int, mobile: bool, city: str) -> list[int]:
        """The blocks an operator uses in one city."""
        key = (asn, mobile, city)
        if key not in self.pools:
            blocks = self.blocks[(asn, mobile)]
            self.pools[key] = self.rng.sample(blocks, min(len(blocks), self.rng.randint(3, 6)))
        return self.pools[key]

    def ip(self, asn: int, mobile: bool = False, city: str | None = None, block: int | None = None) -> str:
        if block is None:
            block = self.rng.choice(self.pool(asn, mobile, city) if city else self.blocks[(asn, mobile)])
        return f"{block >> 8}.{block & 255}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"


def _pick(rng: random.Random, items: list, weight_index: int = -1):
    return rng.choices(items, weights=[i[weight_index] for i in items])[0]


@dataclass
class Network:
    country: str
    city: str
    region: str
    asn: int
    asn_name: str
    rtt: float  # typical round-trip time on this network
    stable_ips: list[str] = field(default_factory=list)  # empty: a new address every time (mobile CGNAT)
    renumber: float = 0.0  # chance per login that a stable address changes
    mobile: bool = False
    home_block: int | None = None  # a home line is renumbered within its router's block, mostly


@dataclass
class Login:
    at: float
    user: str
    ip: str
    network: Network
    ua: str
    rtt: float
    success: bool
    attack: str  # "" for legitimate


class Simulator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
        self.world = World(self.rng)

    def _country(self) -> str:
        return self.rng.choices(list(COUNTRIES), weights=[c["w"] for c in COUNTRIES.values()])[0]

    def _city(self, cc: str) -> tuple[str, str]:
        city, region, _ = _pick(self.rng, COUNTRIES[cc]["cities"])
        return city, region

    def _rtt(self, base: float) -> float:
        return max(1.0, base * math.exp(self.rng.gauss(0, 0.18)))

    def _home(self, cc: str, city: str, region: str) -> Network:
        asn, name, _ = _pick(self.rng, COUNTRIES[cc]["isp"])
        net = Network(
            cc,
            city,
            region,
            asn,
            name,
            COUNTRIES[cc]["rtt"] + self.rng.uniform(6, 18),
            renumber=self.rng.uniform(0.005, 0.04),
        )
        net.home_block = self.rng.choice(self.world.pool(asn, False, city))
        net.stable_ips = [self.world.ip(asn, block=net.home_block)]
        return net

    def _mobile(self, cc: str, city: str, region: str) -> Network:
        asn, name, _ = _pick(self.rng, COUNTRIES[cc]["mobile"])
        return Network(
            cc, city, region, asn, name, COUNTRIES[cc]["rtt"] + self.rng.uniform(30, 70), mobile=True
        )

    def _stable(
        self, cc: str, city: str, region: str, asn: int, name: str, extra_rtt: float, count: int
    ) -> Network:
        net = Network(cc, city, region, asn, name, COUNTRIES[cc]["rtt"] + extra_rtt, renumber=0.002)
        net.stable_ips = [self.world.ip(asn) for _ in range(count)]
        return net

    def _device(self, phone: bool) -> Device:
        if phone:
            kind = _pick(self.rng, PHONES)[0]
            return Device(kind, "iOS" if kind == "iPhone" else "Android", self.rng.uniform(0, 21))
        kind, os, _ = _pick(self.rng, DESKTOP_BROWSERS)
        return Device(kind, os, self.rng.uniform(0, 14))

    def user_logins(self, user: str) -> tuple[list[Login], dict]:
        rng = self.rng
        cc = self._country()
        city, region = self._city(cc)
        home = self._home(cc, city, region)
        desktop = self._device(False) if rng.random() < 0.8 else None
        phone = self._device(True) if rng.random() < 0.85 or desktop is None else None
        mobile = self._mobile(cc, city, region)
        phone_share = rng.uniform(0.15, 0.7) if phone and desktop else (1.0 if phone else 0.0)
        cellular_share = rng.uniform(0.2, 0.8)
        work = None
        work_device = None
        if rng.random() < 0.45:
            asn, name = rng.choice(BUSINESS)
            work = self._stable(cc, city, region, asn, name, rng.uniform(3, 10), rng.randint(1, 2))
            work_device = self._device(False) if rng.random() < 0.6 else desktop
        office_vpn = None
        if rng.random() < 0.1:
            asn, name = rng.choice(OFFICE_VPN)
            office_vpn = self._stable(cc, city, region, asn, name, rng.uniform(15, 40), rng.randint(1, 3))
        consumer_vpn = None
        if rng.random() < 0.05:
            asn, name = rng.choice(CONSUMER_VPN)
            consumer_vpn = self._stable(
                cc,
                COUNTRIES[cc]["cities"][0][0],
                COUNTRIES[cc]["cities"][0][1],
                asn,
                name,
                rng.uniform(20, 50),
                6,
            )
            consumer_vpn.renumber = 0.3
        count = int(min(260, max(6, rng.lognormvariate(math.log(70), 0.6))))
        first = START + rng.uniform(0, 60) * DAY
        span = (PERIOD_DAYS * DAY + START - first) * rng.uniform(0.6, 1.0)
        times = sorted(first + rng.random() * span for _ in range(count))
        trips: list[tuple[float, float, str]] = []
        for _ in range(rng.choices([0, 1, 2, 3], weights=[35, 35, 20, 10])[0]):
            start = first + rng.random() * span
            other = rng.choice([c for c in COUNTRIES if c != cc])
            trips.append((start, start + rng.uniform(3, 12) * DAY, other))
        move_at = first + rng.random() * span if rng.random() < 0.04 else None
        logins: list[Login] = []
        # What an attacker could know at each moment: the victim's home ISP and main browser then.
        states: list[tuple[float, Network, Device]] = []
        for at in times:
            if move_at is not None and at >= move_at:
                home = self._home(cc, city, region)
                move_at = None
            if rng.random() < 0.004:
                if phone and rng.random() < 0.5:
                    phone = self._device(True)
                elif desktop:
                    desktop = self._device(False)
            trip = next((t for t in trips if t[0] <= at < t[1]), None)
            use_phone = phone is not None and (desktop is None or rng.random() < phone_share)
            device = phone if use_phone else desktop
            assert device is not None
            hour = ((at % DAY) / 3600.0 + COUNTRIES[cc]["rtt"] / 20) % 24
            weekday = int(at // DAY + 3) % 7 < 5
            if trip is not None:
                other = trip[2]
                tcity, tregion = self._city(other)
                if use_phone and rng.random() < 0.5:
                    # Roaming: traffic leaves through the home carrier, so the address is at home.
                    net = mobile
                    rtt = self._rtt(mobile.rtt + abs(COUNTRIES[other]["rtt"] - COUNTRIES[cc]["rtt"]) + 20)
                else:
                    asn, name, _ = _pick(rng, COUNTRIES[other]["isp"])
                    net = Network(other, tcity, tregion, asn, name, COUNTRIES[other]["rtt"] + 15)
                    rtt = self._rtt(net.rtt)
            elif work is not None and weekday and 8 <= hour <= 18 and not use_phone and rng.random() < 0.7:
                net = work
                device = work_device or device
                rtt = self._rtt(net.rtt)
            elif office_vpn is not None and not use_phone and rng.random() < 0.35:
                net = office_vpn
                rtt = self._rtt(net.rtt)
            elif consumer_vpn is not None and rng.random() < 0.3:
                net = consumer_vpn
                rtt = self._rtt(net.rtt)
            elif use_phone and rng.random() < cellular_share:
                net = mobile
                rtt = self._rtt(net.rtt)
            else:
                net = home
                rtt = self._rtt(net.rtt + (5 if use_phone else 0))
            if net.stable_ips:
                if rng.random() < net.renumber:
                    block = net.home_block if net.home_block is not None and rng.random() < 0.8 else None
                    net.stable_ips[rng.randrange(len(net.stable_ips))] = self.world.ip(
                        net.asn, city=net.city, block=block
                    )
                ip = rng.choice(net.stable_ips)
            else:
                ip = self.world.ip(net.asn, net.mobile, net.city)
            ua = device.ua(at)
            if rng.random() < 0.04:  # a typo first
                logins.append(Login(at - rng.uniform(4, 40), user, ip, net, ua, self._rtt(rtt), False, ""))
            if rng.random() < 0.01:  # a forgotten password
                for k in range(rng.randint(2, 4)):
                    logins.append(Login(at - 60 * (k + 1), user, ip, net, ua, self._rtt(rtt), False, ""))
            logins.append(Login(at, user, ip, net, ua, rtt, True, ""))
            primary = desktop or phone
            assert primary is not None
            states.append((at, home, primary))
        victim = {
            "home": home,
            "country": cc,
            "city": city,
            "region": region,
            "first": first,
            "last": times[-1],
            "desktop": desktop,
            "phone": phone,
            "states": states,
        }
        return logins, victim

    def attack_times(self, victim: dict, per_stage: int) -> list[tuple[str, float, Network, Device]]:
        """When each attacker type tries the victim's password, with what it knows of the victim then.

        ``per_stage`` 0: once per attacker type at a random moment of the victim's life (85% of victims), as
        attacks arrive in production. ``per_stage`` N: N attempts per attacker type in each history stage the
        victim reaches (after 1-3, 4-7, 8-11, 12-19, 20-39, 40-79, 80-119 and 120+ of their logins), so that
        every history length of the evaluation rests on as many attacks as users reach it rather than on the
        few that a random moment puts there.
        """
        rng = self.rng
        states: list[tuple[float, Network, Device]] = victim["states"]
        out = []
        for kind in ATTACKERS:
            if per_stage <= 0:
                if rng.random() < 0.15:
                    continue
                at = victim["first"] + rng.random() * (victim["last"] - victim["first"] + DAY)
                before = [s for s in states if s[0] <= at] or states[:1]
                out.append((kind, at, before[-1][1], before[-1][2]))
                continue
            for lo, hi in zip(STAGES, (*STAGES[1:], len(states) + 1), strict=True):
                hi = min(hi, len(states) + 1)
                for _ in range(per_stage if lo < hi else 0):
                    # After the victim's k-th login and before the next (or within a day of the last one).
                    k = rng.randrange(lo, hi)
                    after = states[k - 1][0]
                    until = states[k][0] if k < len(states) else after + DAY
                    at = after + rng.uniform(0.05, 0.95) * (until - after)
                    out.append((kind, at, states[k - 1][1], states[k - 1][2]))
        return out

    def attacks(self, user: str, victim: dict, per_stage: int = 0) -> list[Login]:
        rng = self.rng
        out = []
        for kind, at, home_then, primary in self.attack_times(victim, per_stage):
            cc, city, region = victim["country"], victim["city"], victim["region"]
            if kind == "naive":
                origin = self._country()
                ocity, oregion = self._city(origin)
                if rng.random() < 0.5:
                    asn, name = rng.choice(HOSTING)
                else:
                    asn, name, _ = _pick(rng, COUNTRIES[origin]["isp"])
                net = Network(
                    origin, ocity, oregion, asn, name, COUNTRIES[origin]["rtt"] + rng.uniform(5, 40)
                )
                device = self._device(rng.random() < 0.2)
                ua = device.ua(at)
            elif kind == "vpn":
                exit_cc = cc if rng.random() < 0.5 else self._country()
                ecity, eregion = COUNTRIES[exit_cc]["cities"][0][:2]
                asn, name = rng.choice(CONSUMER_VPN)
                net = Network(
                    exit_cc, ecity, eregion, asn, name, COUNTRIES[exit_cc]["rtt"] + rng.uniform(20, 90)
                )
                ua = self._device(rng.random() < 0.2).ua(at)
            elif kind == "targeted":
                asn, name, _ = _pick(rng, COUNTRIES[cc]["isp"])
                net = Network(
                    cc,
                    city,
                    region,
                    asn,
                    name,
                    COUNTRIES[cc]["rtt"] + rng.uniform(6, 18) + rng.lognormvariate(math.log(60), 0.6),
                )
                os_ = (
                    primary.os
                    if rng.random() < 0.5
                    else {"Chrome": "Windows", "Edge": "Windows", "Firefox": "Windows", "Safari": "Mac"}.get(
                        primary.kind, primary.os
                    )
                )
                ua = Device(primary.kind, os_, 0).ua(at)
            else:
                home = home_then
                net = Network(
                    cc,
                    city,
                    region,
                    home.asn,
                    home.asn_name,
                    COUNTRIES[cc]["rtt"] + rng.uniform(6, 18) + rng.lognormvariate(math.log(40), 0.6),
                )
                ua = primary.ua(at)
            # Residential proxies are chosen by the victim's city (targeted) or anywhere (naive, VPN).
            city_pool = net.city if kind in {"targeted", "very_targeted"} else None
            out.append(
                Login(
                    at, user, self.world.ip(net.asn, city=city_pool), net, ua, self._rtt(net.rtt), True, kind
                )
            )
        return out

    def stuffing(self, users: list[str], campaigns: int) -> list[Login]:
        rng = self.rng
        out = []
        for c in range(campaigns):
            start = START + rng.uniform(60, PERIOD_DAYS - 10) * DAY
            asns = rng.sample(HOSTING + CONSUMER_VPN, rng.randint(2, 4))
            ips = [(self.world.ip(asn), asn, name) for asn, name in asns for _ in range(rng.randint(30, 80))]
            uas = [
                _ua("Chrome", "Windows", _release("Chrome", start)),
                _ua("Firefox", "Windows", _release("Firefox", start)),
                "python-requests/2.32.3",
            ]
            targets = rng.sample(users, min(len(users), rng.randint(400, 900)))
            targets += [f"ghost{c}-{i}@example.com" for i in range(len(targets) // 2)]
            duration = rng.uniform(2, 8) * 3600
            for target in targets:
                for _ in range(rng.choice([1, 1, 2])):
                    ip, asn, name = rng.choice(ips)
                    cc = self._country()
                    ccity, cregion = self._city(cc)
                    net = Network(cc, ccity, cregion, asn, name, COUNTRIES[cc]["rtt"] + 30)
                    out.append(
                        Login(
                            start + rng.random() * duration,
                            target,
                            ip,
                            net,
                            rng.choice(uas),
                            self._rtt(net.rtt),
                            rng.random() < 0.01,
                            "stuffing",
                        )
                    )
        return out


def simulate(users: int, seed: int, attacks_per_stage: int = 1) -> Iterator[tuple[LoginEvent, str]]:
    """Every login, in time order, with its attack type ("" for legitimate). ``attacks_per_stage``: see
    ``Simulator.attack_times`` (0: one attack per attacker type per victim at a random time)."""
    if users < 1:
        raise ValueError("users must be at least 1")
    sim = Simulator(seed)
    parser = UserAgentParser()
    logins: list[Login] = []
    ids = [f"user{i:06d}" for i in range(users)]
    for user in ids:
        own, victim = sim.user_logins(user)
        logins.extend(own)
        logins.extend(sim.attacks(user, victim, attacks_per_stage))
    logins.extend(sim.stuffing(ids, max(1, users // 700)))
    logins.sort(key=lambda login: login.at)
    for login in logins:
        info = parser.parse(login.ua)
        yield (
            LoginEvent(
                timestamp=round(login.at, 3),
                user_id=login.user,
                ip=login.ip,
                user_agent=login.ua,
                success=login.success,
                rtt_ms=round(login.rtt),
                country=login.network.country,
                region=login.network.region,
                city=login.network.city,
                asn=login.network.asn,
                browser=f"{info.browser} {info.browser_version}".strip(),
                os=f"{info.os} {info.os_version}".strip(),
                device_type=info.device_type,
            ),
            login.attack,
        )


def write(path: Path, users: int, seed: int, attacks_per_stage: int = 1) -> int:
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = write_header(handle)
        for rows, (event, attack) in enumerate(simulate(users, seed, attacks_per_stage)):
            takeover = bool(attack) and event.success
            writer.writerow(
                format_row(
                    rows, event, is_attack=bool(attack), takeover=takeover, attack_type=attack or "legitimate"
                )
            )
    return rows + 1
