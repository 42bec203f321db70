"""Counts over a feature hierarchy (country > ASN > IP; device > OS > browser > version > user agent).

A path is the feature values from the root down, joined with ``\\x1f``; each login adds one to every prefix of
its path. ``kids[parent]`` is how many distinct children a parent has and ``ones[parent]`` how many of them
were seen once: the smoothing estimates the chance of a new value from them (Good-Turing: the share of
values seen once).
Bounded: each depth holds at most ``caps[depth]`` paths; the least-counted one (and its subtree) goes first.
"""

from __future__ import annotations

from typing import Any

SEP = "\x1f"
ONCE = 1.5  # counts below this were seen once (counts decay, so they are not integers)


class Tree:
    __slots__ = ("caps", "counts", "kids", "ones", "total")

    def __init__(self, caps: tuple[int, ...]) -> None:
        self.caps = caps
        self.counts: dict[str, float] = {}
        self.kids: dict[str, int] = {}
        self.ones: dict[str, int] = {}
        self.total = 0.0

    def add(self, values: tuple[str, ...], amount: float = 1.0) -> None:
        self.total += amount
        path = ""
        parent = ""
        for depth, value in enumerate(values):
            path = value if depth == 0 else path + SEP + value
            count = self.counts.get(path)
            if count is None:
                self.kids[parent] = self.kids.get(parent, 0) + 1
                self.counts[path] = amount
                if amount < ONCE:
                    self.ones[parent] = self.ones.get(parent, 0) + 1
                if self.caps:
                    self._bound(depth, path)
            else:
                self.counts[path] = count + amount
                if count < ONCE <= count + amount:
                    self.ones[parent] = self.ones.get(parent, 1) - 1
            parent = path

    def _bound(self, depth: int, keep: str) -> None:
        cap = self.caps[depth]
        at_depth = [p for p in self.counts if p.count(SEP) == depth] if len(self.counts) > cap else []
        if len(at_depth) <= cap:
            return
        victim = min((p for p in at_depth if p != keep), key=lambda p: self.counts[p])
        self.remove(victim)

    def remove(self, path: str) -> None:
        """Forget a path and everything under it ("this was not me" and eviction)."""
        if path not in self.counts:
            return
        prefix = path + SEP
        for other in [p for p in self.counts if p.startswith(prefix)]:
            del self.counts[other]
            self.kids.pop(other, None)
            self.ones.pop(other, None)
        removed = self.counts.pop(path)
        self.kids.pop(path, None)
        self.ones.pop(path, None)
        parent = path.rpartition(SEP)[0] if SEP in path else ""
        if removed < ONCE and self.ones.get(parent, 0) > 0:
            self.ones[parent] -= 1
        if parent in self.kids:
            self.kids[parent] -= 1
            if self.kids[parent] <= 0:
                del self.kids[parent]

    def count(self, path: str) -> float:
        return self.total if path == "" else self.counts.get(path, 0.0)

    def decay(self, factor: float) -> None:
        """Scale every count (old habits fade; keeps counts bounded)."""
        self.total *= factor
        for path in self.counts:
            self.counts[path] *= factor
        self._recount_ones()

    def _recount_ones(self) -> None:
        self.ones = {}
        for path, count in self.counts.items():
            if count < ONCE:
                parent = path.rpartition(SEP)[0] if SEP in path else ""
                self.ones[parent] = self.ones.get(parent, 0) + 1

    def prune(self, min_count: float) -> None:
        """Drop rare paths when the global tree outgrows its budget (amortised, unlike per-add eviction)."""
        for path in sorted((p for p, c in self.counts.items() if c < min_count), key=lambda p: -p.count(SEP)):
            self.remove(path)

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.total, 4), "c": {p: round(c, 4) for p, c in self.counts.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any], caps: tuple[int, ...]) -> Tree:
        tree = cls(caps)
        tree.total = float(data.get("t", 0.0))
        for path, count in data.get("c", {}).items():
            tree.counts[path] = float(count)
        for path in tree.counts:
            parent = path.rpartition(SEP)[0] if SEP in path else ""
            tree.kids[parent] = tree.kids.get(parent, 0) + 1
        tree._recount_ones()
        return tree


def paths(values: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    path = ""
    for depth, value in enumerate(values):
        path = value if depth == 0 else path + SEP + value
        out.append(path)
    return out
