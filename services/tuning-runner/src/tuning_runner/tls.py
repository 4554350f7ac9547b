"""TLS trust of the runner's HTTPS clients: the public CAs, plus the operator's CA bundle.

A registry or a data server inside the cluster often has a certificate from a private CA; the
workspace controller mounts that CA bundle into the runner's containers and names the file in
`KAITO_TUNING_CA_FILE`. Its certificates are trusted in addition to httpx's default roots.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from tuning_runner.errors import TuningFailure


class CABundleError(TuningFailure):
    """The CA bundle file cannot be read as PEM certificates."""

    reason = "InvalidCABundle"


def ssl_context(ca_file: Path | None) -> ssl.SSLContext | bool:
    """`True` (httpx's default trust) without a bundle; else a context trusting both."""
    if ca_file is None:
        return True
    ctx = httpx.create_ssl_context()
    try:
        ctx.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as err:
        raise CABundleError(f"the CA bundle {ca_file} cannot be loaded: {err}") from err
    return ctx
