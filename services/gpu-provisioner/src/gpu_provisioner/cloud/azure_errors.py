"""Classify Azure SDK errors into the provisioner's error vocabulary.

The Azure text is kept verbatim (it is what an operator needs, e.g. which quota family is
exhausted); only the class and code are ours.
"""

from __future__ import annotations

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from gpu_provisioner.cloud.provider import (
    AuthError,
    CloudError,
    QuotaExceededError,
    SkuNotAvailableError,
    ThrottledError,
)

QUOTA_CODES = frozenset({"QuotaExceeded", "ErrCode_InsufficientVCPUQuota", "InsufficientVCPUQuota"})
QUOTA_TERMS = (
    "Family Cores quota",
    "Submit a request for Quota increase",
    "Total Regional Cores quota",
    "LowPriorityCores",
    "Insufficient vcpu quota",
)
SKU_CODES = frozenset({"SkuNotAvailable", "SKUNotAvailable", "VMSizeNotSupported"})
SKU_TERMS = ("is not allowed in your subscription in location", "is not available in location")
AUTH_CODES = frozenset(
    {"AuthorizationFailed", "InvalidAuthenticationToken", "AuthenticationFailed", "Unauthorized"}
)
MAX_MESSAGE = 800  # gpu-provisioner's patched Karpenter truncates launch errors at 800 chars


def error_code(err: HttpResponseError) -> str:
    odata = err.error
    if odata is not None and odata.code:
        return str(odata.code)
    return str(err.status_code or "Unknown")


def error_text(err: AzureError) -> str:
    """`(Code) message` as ARM reported it, truncated for a condition message."""
    if isinstance(err, HttpResponseError) and err.error is not None and err.error.message:
        text = f"({error_code(err)}) {err.error.message}"
    else:
        text = str(err.message or err).strip().splitlines()[0] if str(err) else type(err).__name__
    return text[:MAX_MESSAGE]


def classify(err: Exception, action: str) -> CloudError:
    """Map an SDK exception raised while doing `action` to a `CloudError`."""
    if isinstance(err, CloudError):
        return err
    prefix = f"{action}: "
    if isinstance(err, ClientAuthenticationError):
        code = error_code(err) if err.status_code else "CredentialUnavailable"
        return AuthError(prefix + error_text(err), code=code)
    if isinstance(err, HttpResponseError) and err.status_code is not None:
        code = error_code(err)
        text = prefix + error_text(err)
        if err.status_code == 429 or code == "TooManyRequests":
            return ThrottledError(text, code="TooManyRequests")
        if err.status_code in (401, 403) or code in AUTH_CODES:
            return AuthError(text, code=code)
        return classify_text(text, code)
    if isinstance(err, ServiceRequestError | ServiceResponseError):
        return CloudError(prefix + error_text(err), code="ConnectionError")
    if isinstance(err, HttpResponseError):
        # A failed long-running operation: the SDK raises with the operation's error body.
        return classify_text(prefix + error_text(err), error_code(err))
    if isinstance(err, AzureError):
        return CloudError(prefix + error_text(err), code=type(err).__name__)
    return CloudError(f"{prefix}{err}"[:MAX_MESSAGE], code=type(err).__name__)


def classify_text(text: str, code: str) -> CloudError:
    if code in QUOTA_CODES or any(term.lower() in text.lower() for term in QUOTA_TERMS):
        return QuotaExceededError(text, code=code)
    if code in SKU_CODES or any(term in text for term in SKU_TERMS):
        return SkuNotAvailableError(text, code=code)
    return CloudError(text, code=code)
