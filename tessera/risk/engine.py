"""The engine: ``await engine.assess(event)`` scores a login; ``record_outcome`` teaches the user's profile
what
happened; ``feedback`` takes "this was me" / "this was not me"; ``assess_session`` re-checks a live session
(token refresh, continuous evaluation) against the login that started it.

The path of one login: signals (geo/ASN/network type, parsed user agent) -> the user's likelihood ratio
(model/likelihood.py) -> global patterns (sliding windows: throttling, stuffing, spraying, bots; impossible
travel; breached password) -> policy thresholds -> an ``Assessment`` with reasons. The windows and global
frequencies are updated with every attempt; the profile learns only from what ``record_outcome`` accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from tessera.core.clock import Clock
from tessera.core.errors import Conflict, ValidationFailed
from tessera.risk.config import RiskConfig
from tessera.risk.events import Assessment, Decision, LoginEvent, NetworkType, Reason, SessionEvent
from tessera.risk.model.likelihood import (
    RATE_FAMILIES,
    Features,
    GlobalStats,
    LevelTerm,
    Profile,
    forget,
    learn,
    likelihood_terms,
    rtt_bin,
)
from tessera.risk.model.tree import paths
from tessera.risk.patterns import Term
from tessera.risk.patterns.bots import bot_terms
from tessera.risk.patterns.stuffing import stuffing_terms
from tessera.risk.patterns.throttle import record_failure, throttle_terms
from tessera.risk.patterns.travel import impossible_travel
from tessera.risk.policy import decide
from tessera.risk.signals.geo import GeoResolver
from tessera.risk.signals.network import classify, network_key, parse_ip, prefix_key
from tessera.risk.signals.useragent import MAX_UA_LENGTH, UserAgentInfo, UserAgentParser, split_label
from tessera.risk.signals.windows import MemoryWindows, WindowStore
from tessera.risk.store import ProfileCache, RiskStore

HOUR = 3600.0
DAY = 86400.0
log = logging.getLogger(__name__)
MAX_FIELD = 256  # longer identifiers, cities, names are truncated (documented), never refused mid-login


class Outcome(StrEnum):
    """What happened after the decision; only accepted logins teach the profile."""

    ALLOWED = "allowed"  # the login went through without a challenge
    STEP_UP_PASSED = "step_up_passed"  # the second factor was passed: the user's new habit is learned
    STEP_UP_FAILED = "step_up_failed"
    DENIED = "denied"


@dataclass(slots=True)
class _Resolved:
    features: Features
    agent: UserAgentInfo
    geo_valid: bool


_CODES = {
    "pair": "device_on_network",
    "user_agent": "browser_configuration",
    "reputation": "network_with_confirmed_attacks",
}


def _address(text: str) -> tuple[str, str, str] | None:
    """(address, key, block) of an IP text; None when it is not one."""
    address = parse_ip(text)
    if address is None:
        return None
    return str(address), network_key(address), prefix_key(address)


def _clip(text: str | None) -> str:
    return (text or "")[:MAX_FIELD]


_WORDS = {
    ("net", "country"): (
        "first login from {country}",
        "rarely logs in from {country}",
        "a country you have not signed in from",
    ),
    ("net", "network"): (
        "first login from this network provider ({asn_name})",
        "rarely uses this network provider ({asn_name})",
        "a network you have not used before",
    ),
    ("net", "prefix"): (
        "new address block {prefix}",
        "rarely used address block {prefix}",
        "a new internet address",
    ),
    ("net", "ip"): ("new IP address {ip}", "rarely used IP address {ip}", "a new internet address"),
    ("agent", "device"): ("first login from a {device}", "rarely uses a {device}", "a new kind of device"),
    ("agent", "os"): ("first login from {os}", "rarely uses {os}", "a new operating system"),
    ("agent", "browser"): ("first login with {browser}", "rarely uses {browser}", "a new browser"),
    ("agent", "version"): (
        "new browser version {browser} {version}",
        "rare browser version",
        "a new browser version",
    ),
    ("agent", "user_agent"): (
        "new browser configuration",
        "rare browser configuration",
        "a new browser setup",
    ),
    ("pair", "pair"): (
        "{device} {browser} on {os} not seen before on this network",
        "rarely uses this browser on this network",
        "a device you do not usually use on this network",
    ),
    ("net", "reputation"): (
        "second factors failed more often than usual from this network ({asn_name}) or address block",
        "second factors failed more often than usual from this network ({asn_name}) or address block",
        "a network that attacks have come from",
    ),
    ("rtt", "rtt"): (
        "unusual network round-trip time ({rtt} ms)",
        "unusual round-trip time ({rtt} ms)",
        "an unusual connection",
    ),
}


class RiskEngine:
    def __init__(
        self,
        config: RiskConfig | None = None,
        *,
        secret: bytes,
        store: RiskStore | None = None,
        windows: WindowStore | None = None,
        geo: GeoResolver | None = None,
        agents: UserAgentParser | None = None,
        clock: Clock | None = None,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the risk engine's secret must have at least 16 bytes")
        self.config = config or RiskConfig()
        self._secret = secret
        self.store = store
        self.windows: WindowStore = windows or MemoryWindows()
        self.geo = geo or GeoResolver(extra_network_types=self.config.extra_network_types)
        self.agents = agents or UserAgentParser()
        self.clock = clock or Clock()
        self.world = GlobalStats()
        self._profiles: dict[str, Profile] = {}  # used when there is no store: everything stays in-process
        self.cache = ProfileCache(store, self.config.profile_cache_size) if store is not None else None
        self._pending: dict[str, dict[str, float]] = {
            "net": {},
            "agent": {},
            "rtt4": {},  # quarter-octave bins (the half-octave "rtt" family before is not read)
            "login": {},
            "attack": {},
        }
        if store is not None:
            self.world.unsaved = {}  # the population's rates are flushed with the global counts
        self._addresses = lru_cache(maxsize=65536)(_address)
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    # --- keys -----------------------------------------------------------------------------------------
    def password_fingerprint(self, password: str) -> str:
        """Keyed hash of a password tried, to see one password sprayed over many accounts without storing it
        (an HMAC under the engine's secret: not reversible, not comparable across deployments)."""
        mac = hmac.new(self._secret, b"tessera-risk-password\x00" + password.encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()[:32]

    # --- state --------------------------------------------------------------------------------------
    async def _profile(self, user_id: str) -> Profile:
        if self.cache is not None:
            return await self.cache.get(user_id)
        profile = self._profiles.get(user_id)
        if profile is None:
            profile = self._profiles[user_id] = Profile(user_id)
        return profile

    async def load(self) -> None:
        """Read the persisted global counts (at start-up)."""
        if self.store is None:
            return
        self.world.merge(
            await self.store.global_counts("net"),
            await self.store.global_counts("agent"),
            await self.store.global_counts("rtt4"),
            await self.store.global_counts("login"),
            await self.store.global_counts("attack"),
            {family: await self.store.global_counts(family) for family in RATE_FAMILIES},
        )

    async def flush(self) -> None:
        """Write the global counts gathered since the last flush (``start_flushing`` calls it periodically;
        ``aclose`` calls it at shutdown). Logins scored while the write is under way are kept for the next
        flush; a failed write keeps its counts pending too, so a database blip loses nothing."""
        if self.store is None:
            return
        for family, counts in self.world.take_unsaved().items():
            pending = self._pending.setdefault(family, {})
            for key, count in counts.items():
                pending[key] = pending.get(key, 0.0) + count
        for family in list(self._pending):
            batch = self._pending[family]
            if not batch:
                continue
            # Swap the batch out before awaiting: assess() keeps counting into a fresh dict meanwhile.
            self._pending[family] = {}
            try:
                await self.store.add_global_counts(family, batch)
            except BaseException:
                pending = self._pending[family]
                for path, count in batch.items():
                    pending[path] = pending.get(path, 0.0) + count
                raise

    def start_flushing(
        self, every: float | None = None, *, wait: Callable[[float], Awaitable[object]] | None = None
    ) -> asyncio.Task[None]:
        """Flush the global counts every ``every`` seconds (``RiskConfig.flush_every`` by default) in a
        background task of the running event loop, until ``aclose``. Returns the task; calling it again
        returns the same task. ``wait`` replaces ``asyncio.sleep`` (tests drive the ticks with it)."""
        if self._flusher is not None and not self._flusher.done():
            return self._flusher
        interval = every if every is not None else self.config.flush_every
        if interval is None or not interval > 0:
            raise ValueError("start_flushing needs a positive interval in seconds")
        self._flusher = asyncio.get_running_loop().create_task(
            self._flush_loop(interval, wait or asyncio.sleep), name="tessera-risk-flush"
        )
        return self._flusher

    async def _flush_loop(self, every: float, wait: Callable[[float], Awaitable[object]]) -> None:
        while True:
            await wait(every)
            try:
                await self.flush()
            except Exception:
                # The counts stay pending and go with the next tick; one failed write must not stop flushing.
                log.warning("risk: flushing the global counts failed; retrying next time", exc_info=True)

    async def stop_flushing(self) -> None:
        """Stop the background flush (if any) and write what is pending."""
        task, self._flusher = self._flusher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()

    @contextlib.asynccontextmanager
    async def flushing(self, every: float | None = None) -> AsyncIterator[RiskEngine]:
        """``async with engine.flushing(30):`` flushes every 30 seconds inside the block and once more at
        its end."""
        self.start_flushing(every)
        try:
            yield self
        finally:
            await self.stop_flushing()

    def _ensure_flushing(self) -> None:
        # A deployment's engine (RiskConfig.flush_every set, a store) starts its flusher with the first login
        # it sees, inside the server's event loop: no start-up hook is needed.
        if self._flusher is None and not self._closed and self.store is not None and self.config.flush_every:
            self.start_flushing()

    async def aclose(self) -> None:
        self._closed = True
        await self.stop_flushing()
        close = getattr(self.windows, "aclose", None)
        if close is not None:
            await close()

    # --- signals ------------------------------------------------------------------------------------
    def resolve(self, event: LoginEvent) -> _Resolved:
        if (
            not isinstance(event.timestamp, (int, float))
            or not math.isfinite(event.timestamp)
            or event.timestamp < 0
        ):
            raise ValidationFailed("timestamp must be a finite number of seconds since the epoch")
        if not event.user_id:
            raise ValidationFailed("user_id is required")
        parsed = self._addresses(event.ip or "")
        if parsed is None:
            raise ValidationFailed(f"not an IP address: {(event.ip or '')[:60]!r}")
        address, ip, prefix = parsed
        raw_ua = (event.user_agent or "")[:MAX_UA_LENGTH]
        agent = self.agents.parse(raw_ua)
        geo = None
        if event.country is None or (event.asn is None and event.asn_name is None):
            geo = self.geo.lookup(address)
        country = _clip(
            event.country if event.country is not None else (geo.country if geo else None)
        ).upper()
        asn = event.asn if event.asn is not None else (geo.asn if geo else None)
        asn_name = _clip(event.asn_name if event.asn_name is not None else (geo.asn_name if geo else None))
        city = _clip(event.city if event.city is not None else (geo.city if geo else None))
        if event.network_type is not None:
            network_type = event.network_type
        elif geo is not None and geo.network_type == NetworkType.PRIVATE:
            network_type = NetworkType.PRIVATE
        elif asn is not None or asn_name:
            network_type = classify(asn, asn_name, self.config.extra_network_types)
        else:
            network_type = geo.network_type if geo else NetworkType.UNKNOWN
        if network_type == NetworkType.PRIVATE:
            country = country or "private"
        lat = lon = None
        if geo is not None and geo.latitude is not None and event.city is None:
            lat, lon = geo.latitude, geo.longitude
        elif country and network_type != NetworkType.PRIVATE:
            place = self.geo.places.locate(country, city)
            if place:
                lat, lon = place
        browser, version = agent.browser, agent.browser_version
        if event.browser:
            browser, version = split_label(_clip(event.browser))
        os_family = agent.os
        if event.os:
            os_family = split_label(_clip(event.os))[0]
        device = _clip(event.device_type).lower() or agent.device_type
        ua_key = hashlib.blake2b(raw_ua.encode("utf-8", "replace"), digest_size=8).hexdigest()
        features = Features(
            country=country,
            asn=str(asn) if asn is not None else (asn_name or ""),
            prefix=prefix,
            ip=ip,
            device_type=device,
            os=os_family,
            browser=browser,
            version=version,
            ua=ua_key,
            rtt_ms=event.rtt_ms
            if event.rtt_ms is not None and math.isfinite(event.rtt_ms) and event.rtt_ms > 0
            else None,
            network_type=network_type,
            asn_name=asn_name,
            latitude=lat,
            longitude=lon,
            city=city,
        )
        return _Resolved(features, agent, geo.valid_ip if geo else True)

    # --- scoring ------------------------------------------------------------------------------------
    def _reasons_from_levels(self, terms: list[LevelTerm], f: Features) -> list[Reason]:
        reasons = []
        values = {
            "country": f.country or "an unknown country",
            "asn_name": f.asn_name or f"AS{f.asn}",
            "ip": f.ip,
            "prefix": f.prefix,
            "device": f.device_type,
            "os": f.os,
            "browser": f.browser,
            "version": f.version,
            "rtt": f"{f.rtt_ms:.0f}" if f.rtt_ms else "?",
        }
        for term in terms:
            if term.log10 < 0.3:
                continue
            first, rare, user = _WORDS[(term.family, term.level)]
            template = first if term.novel else rare
            code = _CODES.get(term.level, term.level)
            reasons.append(
                Reason(
                    code if term.level == "reputation" else f"new_{code}" if term.novel else f"rare_{code}",
                    term.log10,
                    template.format(**values),
                    user,
                )
            )
        return reasons

    async def _pattern_terms(self, event: LoginEvent, r: _Resolved, profile: Profile) -> list[Term]:
        c, w, f, at = self.config, self.windows, r.features, event.timestamp
        identifier = _clip(event.identifier or event.user_id)
        terms = await throttle_terms(w, c, at=at, ip=f.ip, identifier=identifier)
        terms += await stuffing_terms(
            w,
            c,
            at=at,
            ip=f.ip,
            identifier=identifier,
            asn=f.asn,
            asn_name=f.asn_name,
            device_id=_clip(event.device_id) or None,
            password_fingerprint=event.password_fingerprint,
            known_ip=profile.net.counts.get("\x1f".join(f.net), 0.0) > 0,
        )
        per_minute = await w.hit(f"att:idip:{identifier}|{f.ip}", at, 60.0)
        terms.extend(
            bot_terms(r.agent, event.user_agent or "", event.client_hints, per_minute, c.attempts_per_minute)
        )
        if event.breached_password:
            terms.append(
                Term(
                    "breached_password",
                    1.5,
                    "the password appears in a known breach",
                    "your password appeared in a data breach",
                    force=Decision.STEP_UP,
                )
            )
        if "ip:" + f.ip in profile.flagged or "ua:" + f.ua in profile.flagged:
            terms.append(
                Term(
                    "reported_by_user",
                    3.0,
                    "this address or browser was reported by the user as not them",
                    "an address or browser you reported",
                    force=Decision.DENY,
                )
            )
        # Record the attempt itself (after reading, so it does not count against itself).
        await w.hit(f"att:asn:{f.asn}", at, HOUR)
        if not event.success:
            await record_failure(w, c, at=at, ip=f.ip, identifier=identifier, asn=f.asn)
        return terms

    def _travel(self, profile: Profile, f: Features, at: float) -> tuple[Term | None, float | None]:
        if f.network_type in {NetworkType.PRIVATE}:
            return None, None
        return impossible_travel(
            profile.last_at,
            profile.last_lat,
            profile.last_lon,
            profile.last_place,
            at,
            f.latitude,
            f.longitude,
            f.city or f.country,
        )

    def _update_world(self, f: Features, success: bool) -> None:
        self.world.add(f, success)
        if self.store is not None:
            families = [("net", f.net), ("agent", f.agent)]
            if success:
                families.append(("login", self.world.reputation_path(f)))
            for family, values in families:
                pending = self._pending[family]
                pending[""] = pending.get("", 0.0) + 1.0
                for path in paths(values):
                    pending[path] = pending.get(path, 0.0) + 1.0
            if f.rtt_ms is not None:
                pending = self._pending["rtt4"]
                key = str(rtt_bin(f.rtt_ms))
                pending[""] = pending.get("", 0.0) + 1.0
                pending[key] = pending.get(key, 0.0) + 1.0

    async def assess(self, event: LoginEvent) -> Assessment:
        """Score one login attempt against the user's history and the global patterns."""
        resolved = self.resolve(event)
        self._ensure_flushing()
        f = resolved.features
        profile = await self._profile(event.user_id)
        levels = likelihood_terms(profile, self.world, f)
        reasons = self._reasons_from_levels(levels, f)
        score = sum(term.log10 for term in levels)
        terms = await self._pattern_terms(event, resolved, profile)
        travel, distance = self._travel(profile, f, event.timestamp)
        if travel is not None:
            terms.append(travel)
        forced = [t.force for t in terms if t.force is not None]
        for term in terms:
            score += term.log10
            reasons.append(Reason(term.code, term.log10, term.message, term.user_message))
        self._update_world(f, event.success)
        decision = decide(score, self.config.policy, forced, history=profile.logins)
        signals: dict[str, object] = {
            "country": f.country,
            "city": f.city,
            "asn": f.asn,
            "asn_name": f.asn_name,
            "network_type": f.network_type.value,
            "browser": f.browser,
            "browser_version": f.version,
            "os": f.os,
            "device_type": f.device_type,
            "distance_km": None if distance is None else round(distance, 1),
            "seconds_since_last_login": None
            if profile.last_at is None
            else round(event.timestamp - profile.last_at, 1),
        }
        assessment = Assessment(round(score, 4), decision, reasons, profile.logins, signals)
        assessment.features = f  # record_outcome learns these without resolving the event again
        return assessment

    async def record_outcome(self, event: LoginEvent, assessment: Assessment, outcome: Outcome) -> None:
        """Teach the profile: successful logins that were allowed or passed their second factor. A failed
        second factor after the right password is a confirmed attack: it teaches the attacker side (the
        network's reputation), never the profile."""
        if not event.success or outcome not in {
            Outcome.ALLOWED,
            Outcome.STEP_UP_PASSED,
            Outcome.STEP_UP_FAILED,
        }:
            return
        features = assessment.features
        if not isinstance(features, Features):
            features = self.resolve(event).features
        if outcome == Outcome.STEP_UP_FAILED:
            self._learn_attack(features)
            return
        await self._update(
            event.user_id,
            lambda profile: learn(profile, features, event.timestamp, self.config.max_history, self.world),
        )

    async def _update(self, user_id: str, change: Callable[[Profile], None]) -> None:
        """Apply a change to the profile and store it. Another worker may have written the profile since it
        was cached (optimistic concurrency): then reload it and apply the change again, at most 3 times."""
        for attempt in range(3):
            profile = await self._profile(user_id)
            change(profile)
            if self.cache is None:
                return
            try:
                await self.cache.save(profile)
                return
            except Conflict:
                if attempt == 2:
                    raise

    async def feedback(self, event: LoginEvent, *, was_me: bool) -> None:
        """The user's answer about a past login. "This was me" learns it (even if it was denied); "this was
        not me" removes its IP and browser from the profile and flags them, so they are denied next time."""
        features = self.resolve(event).features

        def change(profile: Profile) -> None:
            if was_me:
                learn(profile, features, event.timestamp, self.config.max_history, self.world)
                profile.flagged.discard("ip:" + features.ip)
                profile.flagged.discard("ua:" + features.ua)
            else:
                forget(profile, features)

        if not was_me:
            self._learn_attack(features)
        await self._update(event.user_id, change)

    def _learn_attack(self, f: Features) -> None:
        self.world.add_attack(f)
        if self.store is not None:
            pending = self._pending["attack"]
            pending[""] = pending.get("", 0.0) + 1.0
            for path in paths(self.world.reputation_path(f)):
                pending[path] = pending.get(path, 0.0) + 1.0

    async def assess_session(self, event: SessionEvent) -> Assessment:
        """For token refresh and live sessions: has the session moved (IP, network, device) since its login,
        in a way the user's history does not explain? Above ``policy.end_session`` the session should end."""
        login = LoginEvent(
            timestamp=event.timestamp,
            user_id=event.user_id,
            ip=event.ip,
            user_agent=event.user_agent,
            country=event.country,
            asn=event.asn,
        )
        resolved = self.resolve(login)
        f = resolved.features
        profile = await self._profile(event.user_id)
        levels = likelihood_terms(profile, self.world, f)
        score = sum(t.log10 for t in levels)
        reasons = self._reasons_from_levels(levels, f)
        forced: list[Decision] = []
        if event.login is not None:
            start = self.resolve(event.login)
            s = start.features
            if s.ua != f.ua:
                weight = 2.0 if (s.browser, s.os) != (f.browser, f.os) else 0.5
                reasons.append(
                    Reason(
                        "session_device_changed",
                        weight,
                        "the session moved to another browser or device",
                        "your session moved to another device",
                    )
                )
                score += weight
            if s.asn != f.asn:
                weight = 0.5 if event.dpop_bound else 1.0
                reasons.append(
                    Reason(
                        "session_network_changed",
                        weight,
                        f"the session moved from network {s.asn_name or s.asn} to {f.asn_name or f.asn}",
                        "your session moved to another network",
                    )
                )
                score += weight
            travel, _ = impossible_travel(
                event.login.timestamp,
                s.latitude,
                s.longitude,
                s.city or s.country,
                event.timestamp,
                f.latitude,
                f.longitude,
                f.city or f.country,
            )
            if travel is not None:
                reasons.append(Reason(travel.code, travel.log10, travel.message, travel.user_message))
                score += travel.log10
        if "ip:" + f.ip in profile.flagged or "ua:" + f.ua in profile.flagged:
            reasons.append(
                Reason(
                    "reported_by_user",
                    3.0,
                    "this address or browser was reported by the user",
                    "an address you reported",
                )
            )
            score += 3.0
            forced.append(Decision.END_SESSION)
        decision = decide(score, self.config.policy, forced, session=True, history=profile.logins)
        return Assessment(
            round(score, 4), decision, reasons, profile.logins, {"country": f.country, "asn": f.asn}
        )
