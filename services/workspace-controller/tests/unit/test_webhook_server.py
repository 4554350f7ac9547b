"""The admission endpoint on a real aiohttp server: malformed requests get a 4xx or a denial
with a message, never a 500; a well-formed review is still answered as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from wc_helpers.fakes import FakeConfigMapReader
from wc_helpers.workspaces import phi3

from kaito_common.presets import default_catalog
from workspace_controller.webhook.registration import WEBHOOK_PATH
from workspace_controller.webhook.rules import RuleContext
from workspace_controller.webhook.server import WorkspaceValidator, build_app

CTX = RuleContext(catalog=default_catalog(include_test=True))


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(WorkspaceValidator(CTX, FakeConfigMapReader()))
    async with TestClient(TestServer(app)) as c:
        yield c


def review(request: object) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # nesting past the parser's depth
        (b"[1, 2]", "not a JSON object"),
        (b'"AdmissionReview"', "not a JSON object"),
        (b'{"kind": "Pod"}', "not an AdmissionReview"),
        (b'{"kind": "AdmissionReview", "request": null}', "not an AdmissionReview"),
        (b'{"kind": "AdmissionReview", "request": "x"}', "not an AdmissionReview"),
        (b'{"kind": "AdmissionReview", "request": {"operation": "CREATE"}}', "no uid"),
        (b'{"kind": "AdmissionReview", "request": {"uid": 7}}', "no uid"),
    ],
)
async def test_unreadable_requests_get_400_with_a_message(
    client: TestClient[Any, Any], body: bytes, fragment: str
) -> None:
    resp = await client.post(WEBHOOK_PATH, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    answer = await resp.json()
    assert fragment in answer["error"], answer
    assert "workspace webhook cannot read this request" in answer["error"]


@pytest.mark.parametrize(
    ("request_", "fragment"),
    [
        ({"uid": "u-1", "operation": "CREATE"}, "has no object"),
        ({"uid": "u-1", "operation": "CREATE", "object": "Workspace"}, "has no object"),
        ({"uid": "u-1", "operation": "UPDATE", "object": {}, "oldObject": [1]}, "oldObject"),
    ],
)
async def test_a_review_with_a_uid_is_denied_with_the_reason(
    client: TestClient[Any, Any], request_: dict[str, Any], fragment: str
) -> None:
    resp = await client.post(WEBHOOK_PATH, json=review(request_))
    assert resp.status == 200
    answer = await resp.json()
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == "u-1"
    assert answer["response"]["allowed"] is False
    assert fragment in answer["response"]["status"]["message"]


async def test_an_object_the_rules_cannot_read_is_denied_not_a_500(
    client: TestClient[Any, Any],
) -> None:
    bad = {"uid": "u-2", "operation": "CREATE", "object": {"metadata": "not an object"}}
    resp = await client.post(WEBHOOK_PATH, json=review(bad))
    assert resp.status == 200
    answer = await resp.json()
    assert answer["response"]["allowed"] is False
    assert "could not validate" in answer["response"]["status"]["message"]


async def test_a_well_formed_review_is_answered(client: TestClient[Any, Any]) -> None:
    good = {"uid": "u-3", "operation": "CREATE", "namespace": "default", "object": phi3()}
    resp = await client.post(WEBHOOK_PATH, json=review(good))
    assert resp.status == 200
    answer = await resp.json()
    assert answer["response"] == {"uid": "u-3", "allowed": True}

    invalid = phi3()
    invalid["inference"]["preset"]["name"] = "no-such-model"
    denied = {"uid": "u-4", "operation": "CREATE", "namespace": "default", "object": invalid}
    resp = await client.post(WEBHOOK_PATH, json=review(denied))
    answer = await resp.json()
    assert answer["response"]["uid"] == "u-4" and answer["response"]["allowed"] is False
