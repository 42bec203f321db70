"""The local CA for ``tessera dev --tls``: what it issues, that it is reused, and when it is remade."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tessera.cli.tls import ensure_dev_tls


def test_the_ca_and_server_certificate(tmp_path: Path) -> None:
    tls = ensure_dev_tls(tmp_path / "tls")
    ca = x509.load_pem_x509_certificate(tls.ca_file.read_bytes())
    leaf = x509.load_pem_x509_certificate(tls.cert_file.read_bytes())

    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign

    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert (tls.key_file.stat().st_mode & 0o077) == 0
    assert ((tmp_path / "tls" / "ca-key.pem").stat().st_mode & 0o077) == 0

    # Python's own TLS stack accepts the pair as a server identity and the CA as a trust anchor.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tls.cert_file, tls.key_file)
    client = ssl.create_default_context(cafile=str(tls.ca_file))
    assert len(client.get_ca_certs()) == 1


def test_reused_while_valid_and_remade_when_not(tmp_path: Path) -> None:
    first = ensure_dev_tls(tmp_path)
    ca_bytes, leaf_bytes = first.ca_file.read_bytes(), first.cert_file.read_bytes()
    again = ensure_dev_tls(tmp_path)
    assert again.ca_file.read_bytes() == ca_bytes and again.cert_file.read_bytes() == leaf_bytes

    # A leaf for other names is re-issued by the same CA.
    other = ensure_dev_tls(tmp_path, hosts=("127.0.0.1", "tessera.test"))
    assert other.ca_file.read_bytes() == ca_bytes and other.cert_file.read_bytes() != leaf_bytes

    # A damaged CA file means a new CA, and a new leaf signed by it.
    first.ca_file.write_text("not a certificate")
    remade = ensure_dev_tls(tmp_path)
    ca = x509.load_pem_x509_certificate(remade.ca_file.read_bytes())
    x509.load_pem_x509_certificate(remade.cert_file.read_bytes()).verify_directly_issued_by(ca)
