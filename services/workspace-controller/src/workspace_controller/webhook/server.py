"""The HTTPS admission endpoint: AdmissionReview in, allowed or denied with reasons out.

Reads only what it must (named ConfigMaps), with a short timeout, and never does DNS: the
API server calls it with failurePolicy Fail, so it answers fast and a crash denies.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from typing import Any

from aiohttp import web

from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import CONFIG_MAP
from kaito_common.controller.objects import Obj
from workspace_controller.webhook.certs import ServingCert
from workspace_controller.webhook.configmaps import ConfigMapReader, check_config_maps
from workspace_controller.webhook.registration import WEBHOOK_PATH
from workspace_controller.webhook.rules import (
    RuleContext,
    admission_warnings,
    spec_changed,
    validate_create,
    validate_update,
)

log = logging.getLogger(__name__)


class ApiConfigMapReader:
    def __init__(self, client: KubeClient) -> None:
        self._client = client

    async def get(self, namespace: str, name: str) -> Obj | None:
        return await self._client.get_or_none(CONFIG_MAP, name, namespace)


class WorkspaceValidator:
    def __init__(self, ctx: RuleContext, config_maps: ConfigMapReader) -> None:
        self._ctx = ctx
        self._config_maps = config_maps

    async def errors(self, request: Obj) -> list[str]:
        operation = request.get("operation")
        obj: Obj = request.get("object") or {}
        old: Obj = request.get("oldObject") or {}
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", request.get("namespace"))
        if operation == "CREATE":
            errors = validate_create(obj, self._ctx)
        elif operation == "UPDATE":
            errors = validate_update(old, obj, self._ctx)
            if errors or not spec_changed(old, obj) or objects.is_deleting(obj):
                return errors
        else:
            return []
        if not errors:
            errors = await check_config_maps(obj, self._config_maps, self._ctx.catalog)
        return errors

    def warnings(self, request: Obj) -> list[str]:
        """Warnings for an accepted CREATE (kubectl prints them); none for other operations."""
        if request.get("operation") != "CREATE":
            return []
        return admission_warnings(request.get("object") or {}, self._ctx)


def review_response(uid: str, errors: list[str], warnings: list[str] | None = None) -> Obj:
    response: Obj = {"uid": uid, "allowed": not errors}
    if errors:
        response["status"] = {
            "code": 422,
            "reason": "Invalid",
            "message": "; ".join(errors),
        }
    elif warnings:
        response["warnings"] = list(warnings)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class MalformedReviewError(ValueError):
    """The request body is not an AdmissionReview this webhook can answer; `uid` is the
    review's uid when it has one (so the answer can still be a review), else empty."""

    def __init__(self, message: str, uid: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.uid = uid


async def read_review(request: web.Request) -> tuple[str, Obj]:
    """The review's uid and its `request`; raises `MalformedReviewError` saying what is wrong.

    The uid comes back even when the rest is unusable (empty when there is none), so a
    review with a uid is answered as a review (denied) rather than as a bare HTTP error.
    """
    body = await request.read()
    try:
        review = json.loads(body)
    except (UnicodeDecodeError, RecursionError, json.JSONDecodeError) as err:
        raise MalformedReviewError(f"the request body is not JSON: {err}") from err
    if not isinstance(review, dict):
        raise MalformedReviewError("the request body is not a JSON object (an AdmissionReview)")
    admission = review.get("request")
    if not isinstance(admission, dict):
        kind = review.get("kind")
        raise MalformedReviewError(
            f"the body is not an AdmissionReview with a request (kind={kind!r}); "
            "expected admission.k8s.io/v1 AdmissionReview"
        )
    uid = admission.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReviewError("the AdmissionReview's request has no uid")
    if not isinstance(admission.get("object"), dict):
        raise MalformedReviewError(f"the AdmissionReview's request (uid {uid}) has no object", uid)
    old = admission.get("oldObject")
    if old is not None and not isinstance(old, dict):
        raise MalformedReviewError(
            f"the AdmissionReview's request (uid {uid}) has an oldObject that is not an object",
            uid,
        )
    return uid, admission


def build_app(validator: WorkspaceValidator) -> web.Application:
    async def validate(request: web.Request) -> web.Response:
        started = time.monotonic()
        try:
            uid, admission = await read_review(request)
        except MalformedReviewError as err:
            log.warning("Refused a malformed admission request uid=%s: %s", err.uid or "-", err)
            message = f"the workspace webhook cannot read this request: {err.message}"
            if err.uid:
                return web.json_response(review_response(err.uid, [message]))
            return web.json_response({"error": message}, status=400)
        warnings: list[str] = []
        try:
            errors = await validator.errors(admission)
            if not errors:
                warnings = validator.warnings(admission)
        except Exception as err:  # fail closed, with a reason a person can act on
            log.exception("Validation failed uid=%s", uid)
            errors = [f"the workspace webhook could not validate the request: {err}"]
        log.info(
            "Validated workspace operation=%s namespace=%s name=%s allowed=%s durationMs=%.1f",
            admission.get("operation"),
            admission.get("namespace"),
            admission.get("name"),
            not errors,
            (time.monotonic() - started) * 1000,
        )
        return web.json_response(review_response(uid, errors, warnings))

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(WEBHOOK_PATH, validate)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(
    validator: WorkspaceValidator, cert: ServingCert, host: str, port: int
) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (for cleanup) and the bound port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert_file, cert.key_file)
    runner = web.AppRunner(build_app(validator), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    await site.start()
    server: Any = site._server
    sockets = server.sockets if server is not None else []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    log.info("Serving the validating webhook port=%d path=%s", bound, WEBHOOK_PATH)
    return runner, bound
