"""A local certificate authority and a server certificate for ``tessera dev --tls``.

SDKs that only speak https (Auth0's among them) can then be pointed at a development server: trust the CA file
with ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE``. The CA exists only on this machine, under ``.tessera/tls/``;
both are made once and reused while they are valid. Keys are P-256 (fast, and accepted by every TLS stack).

The CA is constrained to what it is for: ``basicConstraints CA:TRUE, pathlen:0`` and key usage
``keyCertSign, cRLSign`` (RFC 5280 sections 4.2.1.9 and 4.2.1.3); the leaf carries the names in
subjectAltName (browsers and Python ignore the common name, RFC 6125 section 6.4.4), ``serverAuth`` extended
key usage, and key identifiers, which strict verifiers (Python 3.13's ``VERIFY_X509_STRICT``) require.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1")
CA_DAYS = 3650
# Apple platforms refuse server certificates valid for more than 825 days; stay well inside it.
LEAF_DAYS = 397
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class DevTLS:
    ca_file: Path  # the file to trust
    cert_file: Path  # the server certificate (leaf), for --tls-cert
    key_file: Path  # its private key, for --tls-key


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _names(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _still_good(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - RENEW_BEFORE > now


def _make_ca(now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tessera development"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Tessera local CA ({os.uname().nodename})"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, hosts: tuple[str, ...], now: dt.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _leaf_matches(leaf: x509.Certificate, ca_cert: x509.Certificate, hosts: tuple[str, ...]) -> bool:
    if leaf.issuer != ca_cert.subject:
        return False
    try:
        leaf.verify_directly_issued_by(ca_cert)
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    return set(_names(hosts)) <= set(sans)


def ensure_dev_tls(directory: Path, hosts: tuple[str, ...] = DEFAULT_HOSTS) -> DevTLS:
    """The CA and server certificate under ``directory``: reused when valid, (re)made when not."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    paths = DevTLS(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    ca_key_file = directory / "ca-key.pem"
    now = dt.datetime.now(dt.UTC)

    ca_cert: x509.Certificate | None = None
    ca_key: ec.EllipticCurvePrivateKey | None = None
    if paths.ca_file.exists() and ca_key_file.exists():
        try:
            ca_cert = x509.load_pem_x509_certificate(paths.ca_file.read_bytes())
            loaded = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
            if isinstance(loaded, ec.EllipticCurvePrivateKey) and _still_good(ca_cert, now):
                ca_key = loaded
        except ValueError:
            ca_cert = None
    if ca_cert is None or ca_key is None:
        ca_key, ca_cert = _make_ca(now)
        _write_private(ca_key_file, _key_pem(ca_key))
        paths.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        paths.cert_file.unlink(missing_ok=True)

    if paths.cert_file.exists() and paths.key_file.exists():
        try:
            leaf = x509.load_pem_x509_certificate(paths.cert_file.read_bytes())
            if _still_good(leaf, now) and _leaf_matches(leaf, ca_cert, hosts):
                return paths
        except ValueError:
            pass
    leaf_key, leaf = _make_leaf(ca_key, ca_cert, hosts, now)
    _write_private(paths.key_file, _key_pem(leaf_key))
    paths.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    return paths
