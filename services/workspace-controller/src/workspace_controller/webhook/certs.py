"""The webhook's serving certificate: a CA and a leaf made at start (or mounted by the chart)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID

from kaito_common.pki import CertificateAuthority, pem, subject, write_pair

VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class ServingCert:
    cert_file: Path
    key_file: Path
    ca_pem: bytes  # what the API server must trust: the webhook configuration's caBundle


def generate(directory: Path, dns_names: list[str], ips: list[str]) -> ServingCert:
    """Write `tls.crt`, `tls.key` and `ca.crt` into `directory` (private key mode 0600)."""
    ca = CertificateAuthority.create("workspace-controller-webhook-ca", VALIDITY)
    cert, key = ca.issue(
        subject(dns_names[0] if dns_names else "workspace-controller"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        dns_names=dns_names,
        ips=ips,
        valid_for=VALIDITY,
    )
    pair = write_pair(directory / "tls.crt", directory / "tls.key", cert, key)
    ca_pem = pem(ca.cert)
    (directory / "ca.crt").write_bytes(ca_pem)
    return ServingCert(pair.cert, pair.key, ca_pem)


def load(directory: Path) -> ServingCert:
    """A mounted certificate (cert-manager or the chart): `ca.crt` if present, else the leaf."""
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    ca_file = directory / "ca.crt"
    ca_pem = ca_file.read_bytes() if ca_file.exists() else cert_file.read_bytes()
    return ServingCert(cert_file, key_file, ca_pem)
