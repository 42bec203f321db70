"""The key ring: which key signs, which keys are published, and signing/verifying JWTs with them.

Every process keeps the published key set in memory and re-reads it from the database when it is older than
``settings.cache_ttl`` seconds or when a token names a kid it does not know (another process rotated), so a
rotation done anywhere is seen everywhere within that bound. Private keys are unsealed once per process.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.core.clock import Clock
from tessera.core.errors import TesseraError
from tessera.core.ids import new_id
from tessera.core.sealing import Sealer
from tessera.keys.store import KeyRecord, SqlKeyStore
from tessera.settings import Settings
from tessera.storage.database import Database

log = logging.getLogger("tessera.keys")

# Algorithms Tessera signs with, and the curve each needs.
SUPPORTED_ALGS = {"ES256": "P-256", "EdDSA": "Ed25519", "Ed25519": "Ed25519"}

# OIDC Core 3.1.3.6 (at_hash/c_hash): the hash of the JOSE alg; for EdDSA over Ed25519 that is SHA-512.
_HALF_HASH = {
    "ES256": hashlib.sha256,
    "RS256": hashlib.sha256,
    "PS256": hashlib.sha256,
    "EdDSA": hashlib.sha512,
    "Ed25519": hashlib.sha512,
}


class KeyError_(TesseraError):
    code = "signing_key_error"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    key: ECKey | OKPKey  # with the private part
    created_at: datetime
    retired_at: datetime | None

    @functools.cached_property
    def private_key(self) -> Any:
        """The ``cryptography`` private key (joserfc builds its property anew on each access)."""
        return self.key.private_key

    def public_jwk(self) -> dict[str, Any]:
        data = dict(self.key.as_dict(private=False))
        data.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return data


def half_hash(value: str, alg: str) -> str:
    """Left-most half of the hash, base64url: ``at_hash`` and ``c_hash`` (OIDC Core 3.1.3.6)."""
    digest = _HALF_HASH.get(alg, hashlib.sha256)(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


class KeyStore(Protocol):
    """What the key ring needs from storage (``store.SqlKeyStore`` implements it over the database)."""

    async def insert(self, record: KeyRecord, *, conn: AsyncConnection) -> None: ...

    async def retire_active(self, at: datetime, *, conn: AsyncConnection, except_kid: str) -> list[str]:
        """Retire every active key but ``except_kid``; the kids retired."""
        ...

    async def published(self, retired_after: datetime) -> list[KeyRecord]:
        """Active keys and keys retired after ``retired_after`` (their tokens may still be alive), newest
        first. Read on its own, never from a cache: a rotation in another process must be seen."""
        ...

    async def active_kids(self, *, conn: AsyncConnection) -> list[str]: ...


class KeyRing:
    def __init__(
        self, db: Database, sealer: Sealer, clock: Clock, settings: Settings, store: KeyStore | None = None
    ):
        self._store: KeyStore = store if store is not None else SqlKeyStore(db)
        self._db = db
        self._sealer = sealer
        self._clock = clock
        self._settings = settings
        self._keys: list[SigningKey] = []  # published, newest first
        self._by_kid: dict[str, SigningKey] = {}
        self._unsealed: dict[str, ECKey | OKPKey] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()
        self._dirty = True  # the next use must wait for a reload (first use, or a rotation made here)
        self._refreshing: asyncio.Task[None] | None = None
        # The signing key as of the last reload (None if every key is retired): answered as it is while the
        # set is fresh, since the token endpoint asks for it on every request.
        self._active: SigningKey | None = None
        # Tokens whose signature verified, by SHA-256 of the token (not the bearer token itself): the header
        # and claims. A signature that verified once verifies forever, so only the key's membership of the
        # published set is asked again on each use (``verify``); everything else about a token (expiry,
        # revocation, its client and user) is the caller's to check every time. Bounded: when it is full it
        # starts over.
        self._verified: dict[bytes, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._verified_max = 10_000

    @property
    def max_token_lifetime(self) -> int:
        """A retired key is published this long after retirement: the longest life of a token it signed."""
        return max(self._settings.access_token_ttl, self._settings.id_token_ttl)

    # --- generation and rotation ---

    def _generate(self, alg: str) -> tuple[KeyRecord, ECKey | OKPKey]:
        if alg not in SUPPORTED_ALGS:
            raise KeyError_(f"unsupported signing algorithm {alg!r}; use one of {sorted(SUPPORTED_ALGS)}")
        kid = new_id()
        key: ECKey | OKPKey
        if alg == "ES256":
            key = ECKey.generate_key("P-256", parameters={"kid": kid})
        else:
            key = OKPKey.generate_key("Ed25519", parameters={"kid": kid})
        pem = key.as_pem(private=True)
        public = dict(key.as_dict(private=False))
        public.update({"kid": kid, "use": "sig", "alg": alg})
        record = KeyRecord(
            kid=kid,
            alg=alg,
            public_jwk=public,
            private_key=self._sealer.seal(pem, f"signing_keys.private_key:{kid}"),
            created_at=self._now(),
            retired_at=None,
        )
        return record, key

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    async def rotate(self, *, alg: str | None = None, conn: AsyncConnection | None = None) -> SigningKey:
        """Make a new key the signing key; the old ones are retired (still published, no longer signing)."""
        record, key = self._generate(alg or self._settings.signing_alg)
        if conn is None:
            async with self._db.transaction() as own:
                await self._rotate_in(own, record)
        else:
            await self._rotate_in(conn, record)
        self._unsealed[record.kid] = key
        self._dirty = True  # re-read on next use
        return SigningKey(record.kid, record.alg, key, record.created_at, None)

    async def _rotate_in(self, conn: AsyncConnection, record: KeyRecord) -> None:
        await self._store.insert(record, conn=conn)
        await self._store.retire_active(record.created_at, conn=conn, except_kid=record.kid)

    async def _ensure_one(self) -> None:
        async with self._db.transaction() as conn:
            if await self._store.active_kids(conn=conn):
                return
            record, key = self._generate(self._settings.signing_alg)
            await self._store.insert(record, conn=conn)
        self._unsealed[record.kid] = key

    # --- the cached key set ---

    async def _reload(self) -> None:
        cutoff = datetime.fromtimestamp(self._clock.now() - self.max_token_lifetime, UTC)
        records = await self._store.published(cutoff)
        if not any(r.retired_at is None for r in records):
            await self._ensure_one()
            records = await self._store.published(cutoff)
        keys = []
        for record in records:
            key = self._unsealed.get(record.kid)
            if key is None:
                pem = self._sealer.open(record.private_key, f"signing_keys.private_key:{record.kid}")
                key = (ECKey if record.alg == "ES256" else OKPKey).import_key(
                    pem, parameters={"kid": record.kid}
                )
                self._unsealed[record.kid] = key
            keys.append(SigningKey(record.kid, record.alg, key, record.created_at, record.retired_at))
        self._keys = keys
        self._by_kid = {k.kid: k for k in keys}
        self._loaded_at = self._clock.now()
        self._dirty = False
        # Only reloads change which key signs; retired keys leave the published set on their own, but never
        # sign, so the choice holds until the set is due for a re-read.
        self._active = next((k for k in keys if k.retired_at is None), None)

    def _stale(self) -> bool:
        # Also stale when the clock went backwards (tests move FrozenClocks).
        return not (0 <= self._clock.now() - self._loaded_at < self._settings.cache_ttl)

    async def _fresh(self, *, force: bool = False) -> list[SigningKey]:
        if force or self._dirty or not self._keys:
            async with self._lock:
                if force or self._dirty or not self._keys:
                    await self._reload()
        elif self._stale() and (self._refreshing is None or self._refreshing.done()):
            # Stale: keep answering from memory and re-read once in the background, so that requests never
            # queue behind the database when the TTL runs out (the bound becomes TTL + one read).
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
        # Retirement is checked on every use, not only on reload: a key leaves the set on the second its
        # last token expires.
        cutoff = self._clock.now() - self.max_token_lifetime
        return [k for k in self._keys if k.retired_at is None or k.retired_at.timestamp() > cutoff]

    async def _refresh(self) -> None:
        try:
            async with self._lock:
                if self._stale():
                    await self._reload()
        except Exception:  # keep the keys we have; the next use tries again
            log.warning("could not re-read the signing keys", exc_info=True)

    async def settle(self) -> None:
        """Wait for a background re-read, if one is running (shutdown, tests)."""
        if self._refreshing is not None and not self._refreshing.done():
            await self._refreshing

    async def active(self) -> SigningKey:
        cached = self._active
        if cached is not None and not self._dirty and not self._stale():
            return cached
        keys = await self._fresh()
        signing = [k for k in keys if k.retired_at is None]
        return signing[0] if signing else keys[0]

    async def published(self) -> list[SigningKey]:
        return list(await self._fresh())

    async def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in await self._fresh()]}

    async def find(self, kid: str) -> SigningKey | None:
        found = next((k for k in await self._fresh() if k.kid == kid), None)
        if found is None and kid not in self._by_kid and self._clock.now() - self._loaded_at >= 1.0:
            # An unknown kid: another process may have rotated since we loaded (at most one reload a second).
            found = next((k for k in await self._fresh(force=True) if k.kid == kid), None)
        return found

    # --- JWTs ---

    async def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> tuple[str, SigningKey]:
        key = await self.active()
        return sign_compact(key, claims, typ), key

    async def verify(self, token: str, *, typ: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check the signature of a token Tessera signed; returns (header, claims). Claims are not validated.

        Raises ``KeyError_`` for anything that is not a well-formed token signed by one of our published keys
        with that key's own algorithm (so ``alg: none`` or an algorithm switch fails here).

        A token seen before is not verified again (an ES256 verification is most of this method's cost, and
        an agent presents the same access token on every call): its header and claims come from memory once
        its key is found still published with the same algorithm and ``typ`` still matches.
        """
        try:
            raw = token.encode("ascii")
        except UnicodeError as exc:
            raise KeyError_("malformed token") from exc
        digest = hashlib.sha256(raw).digest()
        seen = self._verified.get(digest)
        if seen is not None:
            header, claims = seen
            key = await self.find(header["kid"])
            if key is None:  # retired past its tokens' lifetime (or removed): refused as below
                del self._verified[digest]
                raise KeyError_("token was not signed by a key of this server")
            _check_header(header, key, typ)
            return dict(header), dict(claims)
        try:
            compact = jws.extract_compact(raw)
        except (JoseError, ValueError, UnicodeError) as exc:
            raise KeyError_("malformed token") from exc
        header = compact.headers()
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise KeyError_("token has no kid")
        key = await self.find(kid)
        if key is None:
            raise KeyError_("token was not signed by a key of this server")
        _check_header(header, key, typ)
        try:
            decoded = jwt.decode(token, key.key, algorithms=[key.alg])
        except (JoseError, ValueError) as exc:
            raise KeyError_("bad token signature") from exc
        claims = decoded.claims
        if not isinstance(claims, dict):
            raise KeyError_("token claims are not an object")
        if len(self._verified) >= self._verified_max:
            self._verified.clear()
        self._verified[digest] = (dict(header), dict(claims))
        return dict(header), claims


def _check_header(header: dict[str, Any], key: SigningKey, typ: str | None) -> None:
    if header.get("alg") != key.alg:
        raise KeyError_("token algorithm does not match its key")
    if typ is not None and str(header.get("typ", "")).lower() not in {typ, f"application/{typ}"}:
        raise KeyError_(f"token type is not {typ}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_ES256 = ec.ECDSA(hashes.SHA256())  # an immutable algorithm description, shared by every signature


@functools.lru_cache(maxsize=64)
def _encoded_header(alg: str, typ: str, kid: str) -> str:
    # The same few headers sign every token: encode each once (bounded: a handful of keys and types).
    return _b64(json.dumps({"alg": alg, "typ": typ, "kid": kid}, separators=(",", ":")).encode())


def sign_compact(key: SigningKey, claims: dict[str, Any], typ: str) -> str:
    """RFC 7515 compact serialization, signed with ``cryptography`` directly.

    This is the token endpoint's hot path, so it skips the generic JOSE machinery: the header is fixed by
    our own key, and ES256 needs only the DER signature turned into R || S (RFC 7518 3.4). Verification
    (``KeyRing.verify``) goes through joserfc, and the tests check that joserfc accepts what this signs.
    """
    signing_input = f"{_encoded_header(key.alg, typ, key.kid)}.{_b64(orjson.dumps(claims))}".encode("ascii")
    private = key.private_key
    if isinstance(private, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private.sign(signing_input, _ES256))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        signature = private.sign(signing_input)
    else:  # pragma: no cover - only ES256 and Ed25519 keys are ever generated
        raise KeyError_(f"cannot sign with {type(private).__name__}")
    return f"{signing_input.decode('ascii')}.{_b64(signature)}"
