"""Freeman et al. (NDSS 2016), "Who Are You? A Statistical Approach to Measuring User Authenticity".

The score of a login with features x for user u is the likelihood ratio

    p(x | attacker) / p(x | u)

taken per feature family and multiplied (the families are treated as independent). Each family is a chain of
levels (network: country > ASN > IP; user agent: device type > OS > browser > major version > full string),
so the ratio factors into one term per level:

    g(value | parent) / p_u(value | parent)

``g`` is the global frequency over all attempts (the attacker is modelled as a login drawn from everybody,
as in
the paper, times a reputation factor for hosting, VPN and Tor networks). ``p_u`` is the user's own frequency,
smoothed with Witten-Bell back-off to the global estimate:

    p_u(v | parent) = (c_u(v) + d_u(parent) * g(v | parent)) / (c_u(parent) + d_u(parent))

where d_u(parent) is how many distinct children the user has shown under that parent: a user whose mobile
carrier hands out a new IP every time has a large d and is not surprised by one more; a user with one home IP
is. A value never seen backs off to its parent, which is the paper's IP -> ASN -> country and user agent ->
browser -> OS -> device back-off. Round-trip time is a third family: quarter-octave bins, smoothed with
their neighbours.

Several estimates come from what the population does rather than the user. An address new to the user weighs
by the block's churn (how often its legitimate logins bring an address new to their user: nearly always behind
a carrier-grade NAT, almost never among home lines), also where the user never used the block. A value new to
the user is drawn from the values users take up (Kneser-Ney continuation counts: the phone's carrier, work),
not from every login's, and a user with one to three logins is judged by how often users with the same
history show a new value. The attacker side carries each network's reputation learned from confirmed attacks
(``reputation_term``) and the latency those attacks added over their blocks' own users (``attacker_rtt``).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from tessera.risk.events import NetworkType
from tessera.risk.model.tree import SEP, Tree, paths

NET_CAPS = (8, 24, 32, 48)  # countries, ASNs, prefixes, IPs kept per user
UA_CAPS = (4, 8, 12, 16, 16)
RTT_CAPS = (24,)
PAIR_CAPS = (24, 96)  # (ASN, browser) and (ASN, round-trip-time bin) pairs
NOVEL_SPREAD = 1000.0  # unseen values share the global novelty mass; this constant cancels in most ratios


# Quarter-octave bins: a home line's RTT varies by about a fifth from login to login, and a residential proxy
# in the victim's city adds tens of milliseconds; half-octave bins (with their neighbours' share) put a
# European proxy's 40 ms and its block's 25 ms in one.
RTT_BINS_PER_OCTAVE = 4.0
RTT_BINS = 64  # 1 ms to 60 s


def rtt_bin(rtt_ms: float) -> int:
    return round(RTT_BINS_PER_OCTAVE * math.log2(max(1.0, min(rtt_ms, 60_000.0))))


def _bin_width_ms(b: int) -> float:
    return float(2.0 ** ((b + 0.5) / RTT_BINS_PER_OCTAVE) - 2.0 ** ((b - 0.5) / RTT_BINS_PER_OCTAVE))


@dataclass(slots=True)
class Features:
    """What the model looks at, already resolved (looked up or taken from the event)."""

    country: str
    asn: str
    prefix: str
    ip: str
    device_type: str
    os: str
    browser: str
    version: str
    ua: str
    rtt_ms: float | None
    network_type: NetworkType
    asn_name: str = ""
    latitude: float | None = None
    longitude: float | None = None
    city: str = ""
    churn: float | None = None  # the block's address churn when the login was scored (GlobalStats.churn)

    @property
    def net(self) -> tuple[str, str, str, str]:
        return (self.country or "?", self.asn or "?", self.prefix or "?", self.ip or "?")

    @property
    def agent(self) -> tuple[str, str, str, str, str]:
        return (
            self.device_type or "?",
            self.os or "?",
            self.browser or "?",
            self.version or "?",
            self.ua or "?",
        )


@dataclass(slots=True)
class Profile:
    """One user's history. Bounded: capped trees and counts decayed past ``max_history`` logins."""

    user_id: str
    net: Tree = field(default_factory=lambda: Tree(NET_CAPS))
    agent: Tree = field(default_factory=lambda: Tree(UA_CAPS))
    rtt: Tree = field(default_factory=lambda: Tree(RTT_CAPS))
    net_agent: Tree = field(default_factory=lambda: Tree(PAIR_CAPS))
    net_rtt: Tree = field(default_factory=lambda: Tree(PAIR_CAPS))
    logins: int = 0  # learned logins ever (history length)
    last_at: float | None = None
    last_lat: float | None = None
    last_lon: float | None = None
    last_place: str = ""
    flagged: set[str] = field(default_factory=set)  # paths the user said were not them
    version: int = 0  # optimistic concurrency in the SQL store

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.net.to_json(),
            "a": self.agent.to_json(),
            "r4": self.rtt.to_json(),
            "na": self.net_agent.to_json(),
            "nr4": self.net_rtt.to_json(),
            "l": self.logins,
            "t": self.last_at,
            "la": self.last_lat,
            "lo": self.last_lon,
            "p": self.last_place,
            "f": sorted(self.flagged),
        }

    @classmethod
    def from_json(cls, user_id: str, data: dict[str, Any], version: int = 0) -> Profile:
        return cls(
            user_id=user_id,
            net=Tree.from_json(data.get("n", {}), NET_CAPS),
            agent=Tree.from_json(data.get("a", {}), UA_CAPS),
            rtt=Tree.from_json(data.get("r4", {}), RTT_CAPS),
            net_agent=Tree.from_json(data.get("na", {}), PAIR_CAPS),
            net_rtt=Tree.from_json(data.get("nr4", {}), PAIR_CAPS),
            logins=int(data.get("l", 0)),
            last_at=data.get("t"),
            last_lat=data.get("la"),
            last_lon=data.get("lo"),
            last_place=data.get("p", ""),
            flagged=set(data.get("f", [])),
            version=version,
        )


class GlobalStats:
    """Global frequencies of every level, over all attempts. Bounded by pruning rare paths."""

    def __init__(self, max_paths: int = 2_000_000) -> None:
        self.net = Tree(())
        self.agent = Tree(())
        self.rtt = Tree(())
        self.max_paths = max_paths
        # How often users show a new value at each level (once the parent is known): the prior for users with
        # little history of their own (empirical Bayes).
        self.novel: dict[str, float] = {}
        self.trials: dict[str, float] = {}
        # The same rate under each parent value: users of a carrier-grade NAT block show a new address nearly
        # every time, users of a home-line block almost never, whatever the population does on average.
        self.novel_under: dict[str, float] = {}
        self.trials_under: dict[str, float] = {}
        # The attacker side learned from outcomes (Freeman et al. estimate p(x | attacker) partly from
        # labelled attacks): successful-password attempts and, among them, the confirmed attacks (a failed
        # second factor, "this was not me"), by country > network > address block.
        self.logins = Tree(())
        self.attacks = Tree(())
        # Per network and address block: accepted logins, and those whose address was new to their user. A
        # carrier-grade NAT block hands everybody a new address nearly every time; in a block of home lines
        # a new address is a renumbering, a move, or somebody else.
        self.fresh: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        # Legitimate users' round-trip times per address block (block > quarter-octave bin): what a login
        # there takes when it is not relayed, for a user who never used the network.
        self.block_rtt = Tree(())
        # Per address block, the sum of ln(RTT) of those logins: their geometric mean is the block's own RTT.
        self.block_log_rtt: dict[str, float] = {}
        # The attacker side of the RTT, learned from confirmed attacks: how many milliseconds a relayed login
        # takes beyond the legitimate users of the block it comes from (RELAY_MS bins). A proxy can only add
        # latency to its own path to the service, and the extra is additive, whatever the block's own RTT.
        self.relay = Tree(())
        # Which values users adopt: per level (network, address block), how many legitimate logins brought a
        # value new to their user, by value. Kneser and Ney's continuation counts: a user's next network is
        # drawn from the networks users take up (their phone's carrier, work), not from every login's.
        self.adopted = Tree(())
        # With a store, the rates' increments since the last flush, by family (the trees' go through the
        # engine, which sees every attempt; these are counted here, in ``learn``).
        self.unsaved: dict[str, dict[str, float]] | None = None

    def take_unsaved(self) -> dict[str, dict[str, float]]:
        taken, self.unsaved = self.unsaved or {}, {} if self.unsaved is not None else None
        return taken

    def novelty(self, level: str, parent: str | None = None) -> float:
        rate = (self.novel.get(level, 0.0) + 1.0) / (self.trials.get(level, 0.0) + 4.0)
        if parent is None:
            return rate
        key = level + SEP + parent
        trials = self.trials_under.get(key, 0.0)
        if trials <= 0:
            return rate
        return (self.novel_under.get(key, 0.0) + PARENT_PRIOR_WEIGHT * rate) / (trials + PARENT_PRIOR_WEIGHT)

    def history_factor(self, level: str, stage: str) -> float:
        """How much likelier a new value at this level is for users with this much history than for users
        in general: a second or third login brings a new network (the phone's carrier, work) far more often
        than the fiftieth does."""
        at = level + stage
        rate = (self.novel.get(level, 0.0) + 1.0) / (self.trials.get(level, 0.0) + 4.0)
        trials = self.trials.get(at, 0.0)
        return (
            (self.novel.get(at, 0.0) + HISTORY_PRIOR_WEIGHT * rate) / (trials + HISTORY_PRIOR_WEIGHT) / rate
        )

    def _bump(self, family: str, table: dict[str, float], key: str) -> None:
        table[key] = table.get(key, 0.0) + 1.0
        if self.unsaved is not None:
            pending = self.unsaved.setdefault(family, {})
            pending[key] = pending.get(key, 0.0) + 1.0

    def count_novelty(
        self, level: str, parent: str, novel: bool, stage: str | None = None, state: str | None = None
    ) -> None:
        key = level + SEP + parent
        self._bump("trials", self.trials, level)
        self._bump("trials", self.trials_under, key)
        stages = [level + at for at in (stage, state) if at is not None]
        for at in stages:
            self._bump("trials", self.trials, at)
        if novel:
            self._bump("novel", self.novel, level)
            self._bump("novel", self.novel_under, key)
            for at in stages:
                self._bump("novel", self.novel, at)
        if len(self.trials_under) > self.max_paths:
            rare = [k for k, n in self.trials_under.items() if n < 3.0]
            for k in rare:
                del self.trials_under[k]
                self.novel_under.pop(k, None)

    def count_fresh(self, features: Features, fresh: bool) -> None:
        for key in ("", *paths(features.net[:3])[1:]):
            self._bump("seen", self.seen, key)
            if fresh:
                self._bump("fresh", self.fresh, key)
        if len(self.seen) > self.max_paths:
            for key in [k for k, n in self.seen.items() if n < 3.0]:
                del self.seen[key]
                self.fresh.pop(key, None)

    def count_rtt(self, features: Features) -> None:
        if features.rtt_ms is None:
            return
        block = SEP.join(features.net[:3]).replace(SEP, "|")
        key = (block, str(rtt_bin(features.rtt_ms)))
        self.block_rtt.add(key)
        log_rtt = math.log(max(1.0, features.rtt_ms))
        self.block_log_rtt[block] = self.block_log_rtt.get(block, 0.0) + log_rtt
        if self.unsaved is not None:
            pending = self.unsaved.setdefault("block_rtt4", {})
            for path in ("", *paths(key)):
                pending[path] = pending.get(path, 0.0) + 1.0
            sums = self.unsaved.setdefault("block_log_rtt", {})
            sums[block] = sums.get(block, 0.0) + log_rtt

    def block_rtt_ms(self, features: Features) -> float | None:
        """The block's own RTT: the geometric mean of its legitimate logins' (None below RELAY_MIN_LOGINS)."""
        block = SEP.join(features.net[:3]).replace(SEP, "|")
        logins = self.block_rtt.count(block)
        if logins < RELAY_MIN_LOGINS or block not in self.block_log_rtt:
            return None
        return math.exp(self.block_log_rtt[block] / logins)

    def _relay_bin(self, features: Features, fallback: float | None = None) -> str | None:
        if features.rtt_ms is None:
            return None
        own = self.block_rtt_ms(features)
        if own is None:
            own = fallback
        if own is None:
            return None
        extra = math.floor((features.rtt_ms - own) / RELAY_MS)
        return str(min(RELAY_BINS[1], max(RELAY_BINS[0], extra)))

    def attacker_rtt(self, features: Features, b: int, g: float, fallback: float | None = None) -> float:
        """p(RTT bin b | attacker): the global distribution (an attacker drawn from everybody), mixed with
        the block's own RTT plus the extra latency confirmed attacks took over their blocks' users. Where the
        block's RTT is not known yet (fewer than RELAY_MIN_LOGINS legitimate logins: a young block, early
        in a log), ``fallback`` stands for it: the user's own RTT on the network, which a relay in their
        block would add its latency to. Until RELAY_MIN_ATTACKS were confirmed, or without either
        reference, only the global one. The global
        share (RELAY_GLOBAL_SHARE) stays: only stepped-up attacks are confirmed, so the learnt extra misses
        the relays that were let through; the ratio moves at most log10(1 / share) from the global one."""
        relay = self.relay
        if relay.total < RELAY_MIN_ATTACKS:
            return g
        key = self._relay_bin(features, fallback)
        if key is None:
            return g
        bins = RELAY_BINS[1] - RELAY_BINS[0] + 1
        k = int(key)
        share = (_smoothed(relay.counts, "", k) + 0.5) / (2.0 * relay.total + 0.5 * bins)
        # From RELAY_MS-wide bins of extra latency to the quarter-octave bin the login fell in.
        learnt = min(1.0, share * _bin_width_ms(b) / RELAY_MS)
        return RELAY_GLOBAL_SHARE * g + (1.0 - RELAY_GLOBAL_SHARE) * learnt

    def fresh_rate(self, features: Features) -> float:
        """The share of legitimate logins in this address block whose address was new to their user, shrunk
        towards the network's share and that towards everybody's (empirical Bayes, FRESH_WEIGHT logins)."""
        rate = (self.fresh.get("", 0.0) + 1.0) / (self.seen.get("", 0.0) + 2.0)
        for key in paths(features.net[:3])[1:]:
            rate = (self.fresh.get(key, 0.0) + FRESH_WEIGHT * rate) / (self.seen.get(key, 0.0) + FRESH_WEIGHT)
        return rate

    def churn(self, features: Features) -> float:
        """How often a legitimate login in this block brings an address new to its user: the rate among users
        returning to the block (the best evidence, but sparse), shrunk towards ``fresh_rate``."""
        key = "ip" + SEP + SEP.join(features.net[:3])
        returning = self.trials_under.get(key, 0.0)
        return (self.novel_under.get(key, 0.0) + BLOCK_FRESH_WEIGHT * self.fresh_rate(features)) / (
            returning + BLOCK_FRESH_WEIGHT
        )

    def add(self, features: Features, success: bool = True) -> None:
        self.net.add(features.net)
        if success:
            self.logins.add(self.reputation_path(features))
        self.agent.add(features.agent)
        if features.rtt_ms is not None:
            self.rtt.add((str(rtt_bin(features.rtt_ms)),))
        for tree in (self.net, self.agent):
            if len(tree.counts) > self.max_paths:
                tree.prune(2.0)

    def count_adoption(self, level: str, path: str) -> None:
        key = level + SEP + path
        self.adopted.add(tuple(key.split(SEP)))
        if self.unsaved is not None:
            pending = self.unsaved.setdefault("adopted", {})
            for prefix in ("", *paths(tuple(key.split(SEP)))):
                pending[prefix] = pending.get(prefix, 0.0) + 1.0

    def adoption(self, level: str, path: str, parent: str, g: float) -> float:
        """p(value | the user's new value at this level, parent): the continuation distribution, shrunk
        towards the global one (ADOPTION_WEIGHT adoptions' worth)."""
        under = self.adopted.count(level + SEP + parent if parent else level)
        taken = self.adopted.counts.get(level + SEP + path, 0.0)
        return (taken + ADOPTION_WEIGHT * g) / (under + ADOPTION_WEIGHT)

    def add_attack(self, features: Features) -> None:
        """A confirmed attack: the attacker side of the reputation (``reputation_term``) and of the RTT (the
        extra latency over its block's own users, ``attacker_rtt``)."""
        self.attacks.add(self.reputation_path(features))
        key = self._relay_bin(features)
        if key is not None:
            self.relay.add((key,))
            if self.unsaved is not None:
                pending = self.unsaved.setdefault("relay", {})
                for path in ("", key):
                    pending[path] = pending.get(path, 0.0) + 1.0

    def reputation_path(self, features: Features) -> tuple[str, ...]:
        """Where a login counts for reputations: the kind of block (carrier-grade NAT or stable lines, by its
        churn), then country, network and block. Evidence about one kind pools over all its blocks, so a
        block nobody was attacked from yet starts from what blocks of its kind have shown."""
        churn = features.churn if features.churn is not None else self.churn(features)
        kind = "nat" if churn >= 0.5 else "lines"
        return (kind, *features.net[:3])

    def merge(
        self,
        net: dict[str, float],
        agent: dict[str, float],
        rtt: dict[str, float],
        logins: dict[str, float] | None = None,
        attacks: dict[str, float] | None = None,
        rates: dict[str, dict[str, float]] | None = None,
    ) -> None:
        """Fold counts persisted by other workers into this one (see ``store.RiskStore.global_counts``):
        the trees, and ``rates`` by family ("novel", "trials", "fresh", "seen")."""
        for tree, counts in (
            (self.net, net),
            (self.agent, agent),
            (self.rtt, rtt),
            (self.logins, logins or {}),
            (self.attacks, attacks or {}),
        ):
            self._merge_tree(tree, counts)
        for family, counts in (rates or {}).items():
            if family in {"block_rtt4", "relay", "adopted"}:
                tree = {"block_rtt4": self.block_rtt, "relay": self.relay, "adopted": self.adopted}[family]
                self._merge_tree(tree, counts)
                continue
            if family == "block_log_rtt":
                for key, total in counts.items():
                    self.block_log_rtt[key] = self.block_log_rtt.get(key, 0.0) + total
                continue
            for key, count in counts.items():
                if family in RATE_FAMILIES[:2]:  # per level, and per level under a parent value
                    table = {
                        "novel": (self.novel, self.novel_under),
                        "trials": (self.trials, self.trials_under),
                    }
                    table_of = table[family][1 if SEP in key else 0]
                else:
                    table_of = self.fresh if family == "fresh" else self.seen
                table_of[key] = table_of.get(key, 0.0) + count

    @staticmethod
    def _merge_tree(tree: Tree, counts: dict[str, float]) -> None:
        for path, count in counts.items():
            if path == "":
                tree.total += count
                continue
            if path not in tree.counts:
                parent = path.rpartition(SEP)[0] if SEP in path else ""
                tree.kids[parent] = tree.kids.get(parent, 0) + 1
                tree.counts[path] = 0.0
            tree.counts[path] += count


# The RTT's counts are in quarter-octave bins ("r4", "nr4" in profiles, "rtt4" and "block_rtt4" here): the
# half-octave ones stored before ("r", "nr", "rtt", "block_rtt") are not read, rather than misread.
RATE_FAMILIES = ("novel", "trials", "fresh", "seen", "block_rtt4", "block_log_rtt", "relay", "adopted")
REPUTATION = {
    NetworkType.HOSTING: 3.0,
    NetworkType.VPN: 4.0,
    NetworkType.TOR: 10.0,
}
LEVEL_NAMES = {
    "net": ("country", "network", "prefix", "ip"),
    "agent": ("device", "os", "browser", "version", "user_agent"),
}


# A network's attack rate is its parent's until it has this many attacks' worth of evidence (a gamma prior of
# mean 1 on the ratio, in units of expected attacks: with few labels in the log, every ratio stays near 1).
ATTACK_PRIOR = 3.0
# log10 bounds of the learnt reputation. Only attacks that met a step-up are confirmed, so a kind of network
# attackers did not use yet (mobile carriers, in the simulation) looks clean: the lower bound limits what that
# blind spot buys a proxy on such a network. (-2 leaves 15-27 more users with 1-3 logins unasked at the
# strictest thresholds on the simulated log, and wins very targeted 99.5% there, by leaning on that blind
# spot.)
REPUTATION_BOUNDS = (-1.0, 1.0)


@dataclass(slots=True)
class LevelTerm:
    family: str
    level: str
    log10: float
    novel: bool  # the user never showed this value (under a known parent)


def _global_conditional(tree: Tree, user: Tree, path: str, parent: str) -> float:
    """g(value | parent) over everybody but this user: the attacker is someone else, so the user's own logins
    must not make their home address look like a place attackers come from (leave-one-out)."""
    parent_count = tree.count(parent) - user.count(parent)
    distinct = tree.kids.get(parent, 0)
    count = tree.counts.get(path, 0.0) - user.counts.get(path, 0.0)
    if parent_count <= 0.5:
        return 1.0 / NOVEL_SPREAD
    if count > 0.5:
        return count / (parent_count + distinct)
    return max(distinct, 1) / (parent_count + distinct) / NOVEL_SPREAD


HISTORY_STAGES = (1, 2, 3, 4, 8, 12, 20, 40)  # the stages of a user's history whose novelty rates are kept
HISTORY_PRIOR_WEIGHT = 20.0  # trials' worth of weight the level's overall rate has in one stage's


def history_stage(history: int) -> str:
    """The stage a history length falls in, as the suffix of the novelty counters' keys ("#0" ... "#40")."""
    index = bisect.bisect_right(HISTORY_STAGES, history)
    return "#" + str(HISTORY_STAGES[index - 1] if index else 0)


PARENT_PRIOR_WEIGHT = 5.0  # trials' worth of weight the level's rate has in one parent's rate
# Address churn (``GlobalStats.churn``): logins' worth of weight a network's share of new addresses has in one
# block's, and the block's share in the estimate from users returning to it.
FRESH_WEIGHT = 5.0
BLOCK_FRESH_WEIGHT = 1.0
# A user's chance of a new address in a block is judged mostly by the block's churn until they have about this
# many logins there: with one login, Good-Turing's "seen once" would say every address is new.
CHURN_WEIGHT = 10.0
CHURN_CAP = 1.5  # log10: a new address in the stablest block of home lines weighs at most 30x
PRIOR_WEIGHT = 3.0  # logins' worth of weight the population's novelty rate has in a user's estimate


def _chain_terms(
    family: str,
    user: Tree,
    world: Tree,
    values: tuple[str, ...],
    stats: GlobalStats,
    churn: float | None = None,
    history: int | None = None,
    context: str = "",
    adopt: bool = True,
) -> list[LevelTerm]:
    terms: list[LevelTerm] = []
    parent = ""
    names = LEVEL_NAMES[family]
    stage = None if history is None else history_stage(history) + context
    for depth, path in enumerate(paths(values)):
        g = _global_conditional(world, user, path, parent)
        parent_count = user.count(parent)
        if parent_count <= 0:
            # The user never showed the parent: no personal evidence below it (the back-off reached the top).
            terms.append(LevelTerm(family, names[depth], 0.0, novel=False))
            parent = path
            continue
        # Good-Turing: the chance that this user shows a value never seen under this parent is the share of
        # logins whose value was new (seen once), shrunk towards the population's rate for this level. A phone
        # on a carrier-grade NAT gets a new address nearly every time (no surprise); a stable home line almost
        # never does; a user with two logins is judged mostly by what users in general do.
        prior, weight = stats.novelty(names[depth], parent), PRIOR_WEIGHT
        factor = 1.0
        if stage is not None and history is not None and history < SHORT_HISTORY:
            # A user with one to three logins: how often users with exactly this history and this many
            # values seen under the parent show a new one (Good-Turing's "seen once" on two logins says
            # little), learnt from everybody's early logins.
            state = short_state(history, user.kids.get(parent, 0)) + context
            factor = stats.history_factor(names[depth], state)
            prior, weight = min(1.0, prior * factor), SHORT_WEIGHT
        elif stage is not None:
            prior = min(1.0, prior * stats.history_factor(names[depth], stage))
        if depth == 3 and churn is not None:
            # The block's churn, scaled for a user with one to three logins by how much more (or less)
            # often users in that state show a new address than users in general: a home line's second
            # login comes from the same address even where the block's returning users see renumberings.
            # (The block sets the level, the state the stage: assumed to multiply.) Such a user's own
            # "seen once" weighs as little here as at the other levels (SHORT_WEIGHT).
            prior, weight = min(1.0, churn * factor), max(weight, CHURN_WEIGHT)
        novelty = min(1.0, (user.ones.get(parent, 0) + weight * prior) / (parent_count + weight))
        own = user.counts.get(path, 0.0)
        new = g
        if adopt and names[depth] in ADOPTION_LEVELS:
            new = stats.adoption(names[depth], path, parent, g)
        p_user = (1.0 - novelty) * own / parent_count + novelty * new
        terms.append(LevelTerm(family, names[depth], math.log10(g / p_user), novel=own <= 0))
        parent = path
    return terms


def _smoothed(counts: dict[str, float], prefix: str, b: int) -> float:
    return counts.get(prefix + str(b), 0.0) + 0.5 * (
        counts.get(prefix + str(b - 1), 0.0) + counts.get(prefix + str(b + 1), 0.0)
    )


def _rtt_term(profile: Profile, stats: GlobalStats, features: Features) -> LevelTerm:
    """Round-trip time depends on the access network, so the user's RTT is modelled per ASN and backs off to
    the user's RTT over all networks, then to what legitimate users take from this address block (a relayed
    login takes longer than the block's own users), then to the global distribution (neighbouring bins share
    counts). On a network the user never used, their own RTT elsewhere says nothing: the block's stands."""
    assert features.rtt_ms is not None
    world = stats.rtt
    b = rtt_bin(features.rtt_ms)
    g = (_smoothed(world.counts, "", b) + 1.0) / (2.0 * world.total + RTT_BINS)
    user = profile.rtt
    if user.total <= 0:
        return LevelTerm("rtt", "rtt", 0.0, novel=False)
    block = SEP.join(features.net[:3]).replace(SEP, "|")
    population = g
    in_block = stats.block_rtt.count(block)
    if in_block > 0:
        spread_b = BLOCK_RTT_SPREAD + stats.block_rtt.kids.get(block, 0)
        population = (_smoothed(stats.block_rtt.counts, block + SEP, b) + spread_b * g) / (
            2.0 * in_block + spread_b
        )
    asn = features.asn or "?"
    pairs = profile.net_rtt
    on_network = pairs.count(asn)
    if on_network <= 0:
        attacker = stats.attacker_rtt(features, b, g)
        return LevelTerm("rtt", "rtt", math.log10(attacker / population), novel=False)
    attacker = stats.attacker_rtt(features, b, g, _own_rtt_ms(pairs, asn))
    spread = 2.0 + len(user.counts)
    own = _smoothed(user.counts, "", b)
    p_user = (own + spread * population) / (2.0 * user.total + spread)
    spread_n = 2.0 + pairs.kids.get(asn, 0)
    own = _smoothed(pairs.counts, asn + SEP, b)
    p_user = (own + spread_n * p_user) / (2.0 * on_network + spread_n)
    return LevelTerm("rtt", "rtt", math.log10(attacker / p_user), novel=own <= 0)


def _own_rtt_ms(pairs: Tree, asn: str) -> float | None:
    """The user's own RTT on this network: the geometric mean of their logins' quarter-octave bins there."""
    total = pairs.count(asn)
    if total <= 0:
        return None
    prefix = asn + SEP
    log2_sum = sum(
        count * int(path[len(prefix) :]) / RTT_BINS_PER_OCTAVE
        for path, count in pairs.counts.items()
        if path.startswith(prefix)
    )
    return float(2.0 ** (log2_sum / total))


BLOCK_RTT_SPREAD = 3.0  # pseudo-counts of the global RTT distribution in one block's
# The attacker's RTT learnt from confirmed attacks (``GlobalStats.attacker_rtt``): bins of extra latency over
# the block's own users (RELAY_MS wide, from -100 ms to +600 ms), the legitimate logins a block needs before
# its own RTT is trusted, the confirmed attacks needed before the learnt extra is used, and the global
# distribution's share in the attacker's.
RELAY_MS = 10.0
RELAY_BINS = (-10, 60)
RELAY_MIN_LOGINS = 3.0
RELAY_MIN_ATTACKS = 20.0
RELAY_GLOBAL_SHARE = 0.2


def _pair_term(profile: Profile, features: Features) -> LevelTerm:
    """Does this user use this browser on this network? (Their phone on the mobile carrier, their work PC at
    work.) The ratio of the user's marginal browser probability to the one conditioned on the ASN corrects the
    independence of the network and user-agent families."""
    asn = features.asn or "?"
    pairs = profile.net_agent
    on_network = pairs.count(asn)
    if on_network <= 0 or profile.agent.total <= 0:
        return LevelTerm("pair", "pair", 0.0, novel=False)
    key = SEP.join(features.agent[:3])
    tree = profile.agent
    # The user's marginal probability of this (device, OS, browser), from the agent tree.
    d0 = max(tree.kids.get("", 0), 1)
    marginal = (tree.counts.get(key, 0.0) + d0 * 0.01) / (tree.total + d0)
    distinct = max(pairs.kids.get(asn, 0), 1)
    conditional = (pairs.counts.get(asn + SEP + key, 0.0) + distinct * marginal) / (on_network + distinct)
    return LevelTerm(
        "pair", "pair", math.log10(marginal / conditional), novel=pairs.counts.get(asn + SEP + key, 0.0) <= 0
    )


def _newer_version(user: Tree, features: Features) -> bool:
    """A browser version newer than any the user had: browsers update themselves, this is expected."""
    if not features.version.isdigit():
        return False
    prefix = SEP.join(features.agent[:3]) + SEP
    seen = [p[len(prefix) :] for p in user.counts if p.startswith(prefix) and SEP not in p[len(prefix) :]]
    numbers = [int(v) for v in seen if v.isdigit()]
    return bool(numbers) and int(features.version) > max(numbers)


UPDATE_CAP = math.log10(2.0)
# How much a familiar value may lower the score, per level. Country, browser, OS and device are what a
# targeted attacker copies (Wiefling et al.'s attacker models know the victim's city and browser), so a match
# is weak evidence of the user; so is the address block (proxies are rented by city). Only the exact address
# is not copyable and keeps its full weight. (Under Freeman et al.'s independence assumption every match would
# count fully.) Together the copyable matches lower a login by at most 0.85 (7x): a very targeted attacker
# matches all of them, and a user's login from a network new to them matches only the country and the
# browser, so that matches must not buy an attacker more than the new address costs it.
FAMILIARITY_FLOOR = {
    "country": -0.1,
    "network": -0.15,
    "prefix": -0.15,
    "device": -0.05,
    "os": -0.05,
    "browser": -0.05,
    "version": -0.05,
    "user_agent": -0.1,
    "pair": -0.1,
    "rtt": -0.5,
}


def _floor(term: LevelTerm) -> LevelTerm:
    floor = FAMILIARITY_FLOOR.get(term.level)
    if floor is None or term.log10 >= floor:
        return term
    return LevelTerm(term.family, term.level, floor, term.novel)


def reputation_term(world: GlobalStats, features: Features) -> LevelTerm:
    """log10 p(network | attacker) / p(network | login), learned from confirmed attacks.

    The share of successful-password attempts that turned out to be attacks, per country, network and address
    block, each shrunk towards its parent's (Poisson counts under a gamma prior): a block whose logins never
    failed a second factor although its network's rate predicts many is cleaner than its network, one whose
    attempts keep failing is worse. Without confirmed attacks (no second factor, or replays that assume every
    one passed) the term is 0."""
    attacks, logins = world.attacks, world.logins
    if attacks.total <= 0 or logins.total <= 0:
        return LevelTerm("net", "reputation", 0.0, novel=False)
    rate = attacks.total / logins.total
    ratio = 1.0
    for path in paths(world.reputation_path(features)):
        expected = logins.counts.get(path, 0.0) * rate * ratio
        ratio *= (attacks.counts.get(path, 0.0) + ATTACK_PRIOR) / (expected + ATTACK_PRIOR)
    low, high = REPUTATION_BOUNDS
    return LevelTerm("net", "reputation", min(high, max(low, math.log10(ratio))), novel=False)


def likelihood_terms(profile: Profile, world: GlobalStats, features: Features) -> list[LevelTerm]:
    churn = features.churn = world.churn(features)
    # Hosting, VPN and Tor networks are where attackers come from: a user taking one up keeps the global
    # back-off, and their adoptions are the first an attack that passed (or was assumed to pass) a second
    # factor would teach the continuation counts.
    adopt = features.network_type not in REPUTATION
    terms = _chain_terms(
        "net", profile.net, world.net, features.net, world, churn, profile.logins, adopt=adopt
    )
    net = profile.net.counts
    if net.get(SEP.join(features.net[:2]), 0.0) > 0 and net.get(SEP.join(features.net[:3]), 0.0) <= 0:
        # An address in a block the user never used on a network they use, where the back-off has no
        # personal evidence: an attacker's address is new to the user whatever the block (p = 1), a
        # legitimate login's is new as often as the block's legitimate logins bring one. A phone entering
        # another carrier-grade NAT block pays nothing; a new address among stable home lines is a
        # renumbering, a move, or somebody else. (On a network new to the user, its own term says it.)
        terms[3] = LevelTerm("net", "ip", min(CHURN_CAP, -math.log10(churn)), novel=True)
    reputation = REPUTATION.get(features.network_type)
    if reputation:
        # Freeman et al. weigh the attacker side by the network's reputation: attackers favour these networks.
        terms[1] = LevelTerm("net", "network", terms[1].log10 + math.log10(reputation), terms[1].novel)
    agent_terms = _chain_terms(
        "agent",
        profile.agent,
        world.agent,
        features.agent,
        world,
        None,
        profile.logins,
        _network_context(profile, features),
    )
    if agent_terms[3].novel and agent_terms[3].log10 > UPDATE_CAP and _newer_version(profile.agent, features):
        agent_terms[3] = LevelTerm("agent", "version", UPDATE_CAP, novel=True)
    terms.extend(agent_terms)
    terms.append(_pair_term(profile, features))
    terms.append(reputation_term(world, features))
    if features.rtt_ms is not None:
        terms.append(_rtt_term(profile, world, features))
    return [_floor(term) for term in terms]


def short_state(history: int, distinct: int) -> str:
    """The key of a short history's state: its length and how many values the user showed (at most 3)."""
    return "#" + str(history) + "/" + str(min(distinct, 3))


# Levels whose new values follow the continuation counts (``GlobalStats.adoption``), and the adoptions' worth
# of weight the global distribution has in them. Addresses are left to the block's churn; a browser's version
# and full user agent change by themselves (updates), the versions everybody adopts.
ADOPTION_LEVELS = ("network", "prefix", "device", "os", "browser")
ADOPTION_WEIGHT = 5.0
SHORT_HISTORY = 4  # histories shorter than this are judged by their state (``short_state``)
SHORT_WEIGHT = 20.0  # logins' worth of weight the state's rate has in such a user's novelty estimate


def _network_context(profile: Profile, features: Features) -> str:
    """The context "n" for a login from a network the user never used: a user's new device and new network
    come together (the phone on its carrier, the work PC at work), so the device's novelty is learnt apart
    for such logins (the families' independence assumption corrected, as the pair term does for
    known networks)."""
    if profile.net.total <= 0 or SEP.join(features.net[:2]) in profile.net.counts:
        return ""
    return "n"


def _count_novelty(profile: Profile, world: GlobalStats, features: Features) -> None:
    short = profile.logins < SHORT_HISTORY
    for family, tree, values, context in (
        ("net", profile.net, features.net, ""),
        ("agent", profile.agent, features.agent, _network_context(profile, features)),
    ):
        stage = history_stage(profile.logins) + context
        parent = ""
        for depth, path in enumerate(paths(values)):
            if tree.count(parent) > 0:
                state = short_state(profile.logins, tree.kids.get(parent, 0)) + context if short else None
                level = LEVEL_NAMES[family][depth]
                world.count_novelty(level, parent, path not in tree.counts, stage, state)
                adopt = family == "agent" or features.network_type not in REPUTATION
                if adopt and level in ADOPTION_LEVELS and path not in tree.counts:
                    world.count_adoption(level, path)
            parent = path


def learn(
    profile: Profile,
    features: Features,
    at: float,
    max_history: float = 200.0,
    world: GlobalStats | None = None,
) -> None:
    """Online update after a login the caller accepted (allowed, or passed its second factor)."""
    if world is not None:
        _count_novelty(profile, world, features)
        world.count_rtt(features)
        if profile.net.total > 0:  # a first login's address is new by definition: no evidence about the block
            world.count_fresh(features, SEP.join(features.net) not in profile.net.counts)
    profile.net.add(features.net)
    profile.agent.add(features.agent)
    asn = features.asn or "?"
    profile.net_agent.add((asn, SEP.join(features.agent[:3])))
    if features.rtt_ms is not None:
        profile.rtt.add((str(rtt_bin(features.rtt_ms)),))
        profile.net_rtt.add((asn, str(rtt_bin(features.rtt_ms))))
    profile.logins += 1
    for tree in (profile.net, profile.agent, profile.rtt, profile.net_agent, profile.net_rtt):
        if tree.total > max_history:
            # Exponential forgetting keeps memory and adaptivity bounded: a user who moved is not held to the
            # habits of years ago.
            tree.decay(0.75)
    if at >= (profile.last_at or 0.0):
        profile.last_at = at
        if features.latitude is not None:
            profile.last_lat, profile.last_lon = features.latitude, features.longitude
            profile.last_place = features.city or features.country


def forget(profile: Profile, features: Features) -> None:
    """ "This was not me": remove the login's IP and full user agent and remember them as hostile."""
    net = paths(features.net)
    agent = paths(features.agent)
    for tree, path in ((profile.net, net[-1]), (profile.agent, agent[-1])):
        tree.remove(path)
    profile.flagged.update({"ip:" + features.ip, "ua:" + features.ua})
