"""A small certificate authority: EC P-256 keys, SHA-256 signatures, PEM files.

One implementation for every certificate the project makes: the webhook's serving certificate
(made at start when the chart mounts none), and the local control plane's and real node's
certificates in the tests. Needs `cryptography` (the `controller` and `testing` extras).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

DEFAULT_VALIDITY = datetime.timedelta(days=365)
# Clocks of the machines that check a certificate may lag the one that made it.
BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key, as PEM file paths."""

    cert: Path
    key: Path


def subject(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    name: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    valid_for: datetime.timedelta,
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + valid_for)
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    """The key as unencrypted PKCS#8 PEM, readable by its owner only (mode set before writing)."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def write_pair(
    cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> CertPair:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(pem(cert))
    write_key(key_path, key)
    return CertPair(cert=cert_path, key=key_path)


class CertificateAuthority:
    """A CA that signs leaf certificates (no intermediates)."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.cert = cert
        self.key = key

    @classmethod
    def create(
        cls, common_name: str, valid_for: datetime.timedelta = DEFAULT_VALIDITY
    ) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = subject(common_name)
        cert = (
            _builder(name, name, key.public_key(), valid_for)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, pair: CertPair) -> CertificateAuthority:
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"expected the CA key {pair.key} to be an EC key")
        return cls(cert, key)

    def issue(
        self,
        name: x509.Name,
        usage: x509.ObjectIdentifier,
        *,
        dns_names: Sequence[str] = (),
        ips: Sequence[str] = (),
        valid_for: datetime.timedelta = DEFAULT_VALIDITY,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A leaf certificate for `name` with one extended key usage (server or client auth)
        and the given subject alternative names, and its new key."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            _builder(name, self.cert.subject, key.public_key(), valid_for)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key
