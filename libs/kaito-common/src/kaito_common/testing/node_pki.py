"""Client certificates for the real node's kubelet and kube-proxy, signed by the launcher's CA.

The control plane's CA (``pki/ca.crt`` and ``pki/ca.key``, written by :mod:`certs`) signs a
client certificate per identity: ``system:node:<name>`` in ``system:nodes`` for the kubelet
(the Node authorizer and NodeRestriction admission then apply to it) and
``system:kube-proxy`` for kube-proxy (bound to ``system:node-proxier`` by default RBAC).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kaito_common.testing.certs import CertPair, ClientIdentity

_VALIDITY = datetime.timedelta(days=30)


def kubelet_identity(node_name: str) -> ClientIdentity:
    return ClientIdentity(f"system:node:{node_name}", ("system:nodes",))


KUBE_PROXY_IDENTITY = ClientIdentity("system:kube-proxy")


def issue_client_pair(
    ca: CertPair, directory: Path, stem: str, identity: ClientIdentity
) -> CertPair:
    """Writes ``<stem>.crt``/``<stem>.key`` in ``directory``: a client certificate for
    ``identity`` signed by the CA pair ``ca``."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"expected the CA key {ca.key} to be an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in identity.groups]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.name))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pair.key.chmod(0o600)
    return pair
