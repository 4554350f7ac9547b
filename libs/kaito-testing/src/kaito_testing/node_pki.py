"""Client certificates for the real node's kubelet and kube-proxy, signed by the launcher's CA.

The control plane's CA (``pki/ca.crt`` and ``pki/ca.key``, written by :mod:`certs`) signs a
client certificate per identity: ``system:node:<name>`` in ``system:nodes`` for the kubelet
(the Node authorizer and NodeRestriction admission then apply to it) and
``system:kube-proxy`` for kube-proxy (bound to ``system:node-proxier`` by default RBAC).
"""

from __future__ import annotations

from pathlib import Path

from kaito_common.pki import CertificateAuthority, CertPair
from kaito_testing.certs import ClientIdentity
from kaito_testing.certs import issue_client_pair as _issue


def kubelet_identity(node_name: str) -> ClientIdentity:
    return ClientIdentity(f"system:node:{node_name}", ("system:nodes",))


KUBE_PROXY_IDENTITY = ClientIdentity("system:kube-proxy")


def issue_client_pair(
    ca: CertPair, directory: Path, stem: str, identity: ClientIdentity
) -> CertPair:
    """Writes ``<stem>.crt``/``<stem>.key`` in ``directory``: a client certificate for
    ``identity`` signed by the CA pair ``ca`` (the control plane's files)."""
    return _issue(CertificateAuthority.load(ca), directory, stem, identity)
