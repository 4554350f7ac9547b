"""The generated PKI: a CA that signs a serving pair for every name clients use and client
pairs that carry the identity (CN) and groups (O) the API server authenticates."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kaito_testing.certs import ClientIdentity, generate


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_serving_and_client_certificates_chain_to_the_ca(tmp_path: Path) -> None:
    pki = generate(
        tmp_path,
        service_ip="10.96.0.1",
        clients={"admin": ClientIdentity("kaito-admin", ("system:masters",))},
    )
    ca = _load(pki.ca.cert)
    serving = _load(pki.serving.cert)
    admin = _load(pki.clients["admin"].cert)

    for cert in (serving, admin):
        cert.verify_directly_issued_by(ca)

    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("10.96.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]

    subject = admin.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kaito-admin"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    assert pki.service_account_key.stat().st_mode & 0o077 == 0
    assert pki.clients["admin"].key.stat().st_mode & 0o077 == 0
