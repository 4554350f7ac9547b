"""Certificates and keys for the local control plane.

One throw-away CA signs the API server's serving certificate and the client certificates of the
admin and of the components; a separate RSA key signs service-account tokens. Everything is
written as PEM files into one directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from kaito_common.pki import CertificateAuthority, CertPair, subject, write_key, write_pair


@dataclass(frozen=True)
class ClientIdentity:
    """Who a client certificate authenticates as: user name and groups."""

    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ControlPlaneCerts:
    """Paths of every certificate and key the control plane uses."""

    ca: CertPair
    serving: CertPair
    service_account_key: Path
    service_account_pub: Path
    clients: dict[str, CertPair]


def issue_client_pair(
    ca: CertificateAuthority, directory: Path, stem: str, identity: ClientIdentity
) -> CertPair:
    """Writes ``<stem>.crt``/``<stem>.key`` in ``directory``: a client certificate for
    ``identity`` (user name, groups as organizations) signed by ``ca``."""
    cert, key = ca.issue(subject(identity.name, identity.groups), ExtendedKeyUsageOID.CLIENT_AUTH)
    return write_pair(directory / f"{stem}.crt", directory / f"{stem}.key", cert, key)


def generate(
    directory: Path,
    *,
    service_ip: str,
    clients: dict[str, ClientIdentity],
) -> ControlPlaneCerts:
    """Writes a CA, the API server's serving pair, the service-account key pair and one client
    pair per entry of ``clients`` (keyed by file stem) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    issuer = CertificateAuthority.create("kaito-local-ca")
    ca = write_pair(directory / "ca.crt", directory / "ca.key", issuer.cert, issuer.key)

    dns_names = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    serving_cert, serving_key = issuer.issue(
        subject("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        dns_names=dns_names,
        ips=["127.0.0.1", service_ip],
    )
    serving = write_pair(
        directory / "apiserver.crt", directory / "apiserver.key", serving_cert, serving_key
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_key_path = directory / "sa.key"
    sa_pub_path = directory / "sa.pub"
    write_key(sa_key_path, sa_key)
    sa_pub_path.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    client_pairs = {
        stem: issue_client_pair(issuer, directory, stem, identity)
        for stem, identity in clients.items()
    }

    return ControlPlaneCerts(
        ca=ca,
        serving=serving,
        service_account_key=sa_key_path,
        service_account_pub=sa_pub_path,
        clients=client_pairs,
    )
