"""Pure functions and the launcher, with no cluster: agent pool body, conditions, error
classification, quantities, initialization checks, launch backoff."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.transport import HttpResponse
from fake_cloud import FakeCloud
from gp_support import kaito_nodeclaim

from gpu_provisioner import claims
from gpu_provisioner.cloud.agentpool import agent_pool_body, os_sku, pool_instance
from gpu_provisioner.cloud.azure_errors import classify
from gpu_provisioner.cloud.provider import (
    AuthError,
    InvalidClaimError,
    QuotaExceededError,
    SkuNotAvailableError,
    ThrottledError,
)
from gpu_provisioner.conditions import ConditionSet
from gpu_provisioner.controllers.initialization import uninitialized_reason
from gpu_provisioner.controllers.launch import Launcher
from gpu_provisioner.metrics import ProvisionerMetrics, phase
from kaito_common.controller import objects
from kaito_common.controller.objects import Obj
from kaito_testing.controllers import eventually

CREATED = "2026-01-02T03:04:05Z"


def _claim(**kwargs: object) -> Obj:
    claim = kaito_nodeclaim("ws0123abcd", **kwargs)  # type: ignore[arg-type]
    claim["metadata"]["creationTimestamp"] = CREATED
    claim["metadata"]["uid"] = "uid-1"
    claim["metadata"]["generation"] = 1
    return claim


def test_agent_pool_body_golden() -> None:
    assert agent_pool_body(_claim(storage="1024Gi")) == {
        "properties": {
            "type": "VirtualMachineScaleSets",
            "count": 1,
            "osType": "Linux",
            "vmSize": "Standard_NC12s_v3",
            "osDiskSizeGB": 1024,
            "osSKU": "Ubuntu",
            "nodeLabels": {
                "karpenter.sh/nodepool": "kaito",
                "kaito.sh/workspace": "ws-a",
                "kaito.sh/workspacenamespace": "default",
                "gpu-provisioner.test/run": "true",
                "kaito.sh/machine-type": "gpu",
                "kaito.sh/creation-timestamp": "2026-01-02T03-04-05Z",
            },
            "nodeTaints": ["sku=gpu:NoSchedule"],
        }
    }


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        (None, "Ubuntu"),
        ("ubuntu", "Ubuntu"),
        ("azurelinux", "AzureLinux"),
        ("AzureLinux", "AzureLinux"),
        ("flatcar", "Ubuntu"),
    ],
)
def test_os_sku_from_image_family_annotation(family: str | None, expected: str) -> None:
    assert os_sku(_claim(image_family=family)) == expected


def test_os_sku_ignores_a_label() -> None:
    claim = _claim(extra_labels={"kaito.sh/node-image-family": "azurelinux"})
    assert os_sku(claim) == "Ubuntu"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda c: c["metadata"].update(name="Ws-Upper"), "InvalidAgentPoolName"),
        (lambda c: c["metadata"].update(name="ws0123456789abc"), "InvalidAgentPoolName"),
        (lambda c: c["spec"].update(requirements=[]), "NoInstanceType"),
        (lambda c: c["spec"].update(resources={"requests": {"storage": "0"}}), "NoStorage"),
        (lambda c: c["spec"].update(resources={}), "NoStorage"),
    ],
)
def test_agent_pool_body_rejects_impossible_claims(mutate: object, code: str) -> None:
    claim = _claim()
    mutate(claim)  # type: ignore[operator]
    with pytest.raises(InvalidClaimError) as err:
        agent_pool_body(claim)
    assert err.value.code == code
    assert not err.value.retryable


def test_pool_instance_reads_the_pool_and_its_node() -> None:
    pool = {
        "name": "ws1",
        "properties": {
            "vmSize": "Standard_NC6s_v3",
            "provisioningState": "Deleting",
            "nodeLabels": {"kaito.sh/creation-timestamp": "2026-01-02T03-04-05Z"},
        },
    }
    node = {"metadata": {"labels": {}}, "status": {"capacity": {"nvidia.com/gpu": "1"}}}
    inst = pool_instance(pool, provider_id="azure:///x", node=node)
    assert inst.deleting and inst.provider_id == "azure:///x"
    assert inst.created_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert inst.capacity == {"nvidia.com/gpu": "1"}
    assert inst.labels["node.kubernetes.io/instance-type"] == "Standard_NC6s_v3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1024Gi", 1024 * 2**30), ("500m", 0.5), ("2", 2), ("1.5Ki", 1536), ("1e3", 1000)],
)
def test_parse_quantity(value: str, expected: float) -> None:
    assert objects.parse_quantity(value) == pytest.approx(expected)


def test_is_managed() -> None:
    assert claims.is_managed(_claim())
    other = _claim()
    other["metadata"]["labels"] = {}
    other["spec"]["nodeClassRef"] = {
        "group": "karpenter.azure.com",
        "kind": "AKSNodeClass",
        "name": "default",
    }
    assert not claims.is_managed(other)
    other["metadata"]["labels"] = {"kaito.sh/ragengine": "r"}
    assert claims.is_managed(other)


def test_conditions_follow_operatorpkg_semantics() -> None:
    created = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    t1 = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    cs = ConditionSet(None, generation=3, created=created, now=t1)
    assert [c["type"] for c in cs.conditions][-1] == "Ready"
    launched = cs.get("Launched")
    assert launched is not None
    assert (launched["status"], launched["reason"], launched["message"]) == (
        "Unknown",
        "AwaitingReconciliation",
        "object is awaiting reconciliation",
    )
    assert launched["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    ready = cs.get("Ready")
    assert ready is not None and ready["reason"] == "ReconcilingDependents"
    assert ready["message"] == "Launched=Unknown, Registered=Unknown, Initialized=Unknown"

    cs.set_true("Launched")
    launched = cs.get("Launched")
    assert launched is not None
    assert (launched["reason"], launched["message"], launched["observedGeneration"]) == (
        "Launched",
        "",
        3,
    )
    assert launched["lastTransitionTime"] == "2026-01-02T00:00:00Z"

    later = ConditionSet(
        cs.conditions, generation=3, created=created, now=t1 + dt.timedelta(hours=1)
    )
    later.set_true("Launched")
    relaunched = later.get("Launched")
    assert relaunched is not None and relaunched["lastTransitionTime"] == "2026-01-02T00:00:00Z"
    later.set_false("Registered", "MultipleNodesFound", "x")
    ready = later.get("Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "UnhealthyDependents",
        "Registered=False",
    )
    later.set_true("Registered")
    later.set_true("Initialized")
    ready = later.get("Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("True", "Ready")
    times = [c["lastTransitionTime"] for c in later.conditions[:-1]]
    assert times == sorted(times) and later.conditions[-1]["type"] == "Ready"


def _http_error(status: int, code: str, message: str) -> HttpResponseError:
    class _Resp(HttpResponse):
        def __init__(self) -> None:
            self.status_code = status
            self.reason = "x"
            self.headers = {"content-type": "application/json"}
            self.request = None  # type: ignore[assignment]

        def body(self) -> bytes:
            return json.dumps({"error": {"code": code, "message": message}}).encode()

        def text(self, encoding: str | None = None) -> str:
            return self.body().decode()

    from azure.mgmt.core.exceptions import ARMErrorFormat

    return HttpResponseError(response=_Resp(), error_format=ARMErrorFormat)


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (
            400,
            "QuotaExceeded",
            "exceeding approved standardNCSv3Family Cores quota",
            QuotaExceededError,
        ),
        (
            409,
            "OperationNotAllowed",
            "exceeding approved Total Regional Cores quota",
            QuotaExceededError,
        ),
        (400, "SkuNotAvailable", "The requested VM size X is not available", SkuNotAvailableError),
        (429, "TooManyRequests", "throttled", ThrottledError),
        (403, "AuthorizationFailed", "no access", AuthError),
    ],
)
def test_classify_azure_errors(status: int, code: str, message: str, kind: type) -> None:
    err = classify(_http_error(status, code, message), "creating agent pool ws1")
    assert isinstance(err, kind)
    assert err.message == f"creating agent pool ws1: ({code}) {message}"


def test_classify_credential_failure() -> None:
    err = classify(ClientAuthenticationError("no token"), "getting agent pool ws1")
    assert isinstance(err, AuthError) and err.retryable


def _node(
    ready: bool = True, taints: list[Obj] | None = None, allocatable: dict[str, str] | None = None
) -> Obj:
    return {
        "metadata": {"name": "n"},
        "spec": {"taints": taints or []},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "allocatable": allocatable if allocatable is not None else {"cpu": "4"},
        },
    }


def test_initialization_blockers() -> None:
    claim = _claim()
    assert uninitialized_reason(claim, None) == ("NodeNotFound", "Node not registered with cluster")
    assert uninitialized_reason(claim, _node(ready=False))[0] == "NodeNotReady"  # type: ignore[index]
    tainted = _node(taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}])
    assert uninitialized_reason(claim, tainted)[0] == "KnownEphemeralTaintsExist"  # type: ignore[index]
    claim["spec"]["startupTaints"] = [{"key": "nvidia.com/boot", "effect": "NoSchedule"}]
    started = _node(taints=[{"key": "nvidia.com/boot", "effect": "NoSchedule"}])
    assert uninitialized_reason(claim, started) == (
        "StartupTaintsExist",
        'StartupTaint "nvidia.com/boot:NoSchedule" still exists',
    )
    claim["spec"]["startupTaints"] = []
    # storage is requested but never reported by nodes: it does not block initialization.
    assert uninitialized_reason(claim, _node()) is None
    claim["spec"]["resources"]["requests"]["nvidia.com/gpu"] = "1"
    assert uninitialized_reason(claim, _node()) == (
        "ResourceNotRegistered",
        'Resource "nvidia.com/gpu" was requested but not registered',
    )
    assert uninitialized_reason(claim, _node(allocatable={"nvidia.com/gpu": "2"})) is None


def test_phase() -> None:
    claim = _claim()
    assert phase(claim) == "Launching"
    claim["status"] = {"conditions": [{"type": "Launched", "status": "False"}]}
    assert phase(claim) == "Failed"
    claim["metadata"]["deletionTimestamp"] = CREATED
    assert phase(claim) == "Terminating"


async def test_launcher_runs_creates_as_tasks_and_backs_off_after_failures() -> None:
    cloud = FakeCloud()
    launcher = Launcher(cloud, ProvisionerMetrics(), backoff_base_s=0.05, backoff_max_s=0.1)
    woken: list[object] = []
    launcher.notify = woken.append
    claim = _claim()
    cloud.create_gate.clear()
    cs = ConditionSet(None, generation=1, created=None)
    assert launcher.reconcile(claim, cs) == (None, None)
    assert launcher.reconcile(claim, cs) == (None, None)  # in flight: not started twice
    assert launcher.in_flight == 1
    cloud.next_create_errors.append(QuotaExceededError("no quota", code="QuotaExceeded"))
    cloud.create_gate.set()
    await eventually(lambda: bool(woken), timeout_s=5, interval_s=0.01, what="the create to end")
    outcome, wait = launcher.reconcile(claim, cs)
    assert outcome is None and wait == pytest.approx(0.05, abs=0.02)
    launched = cs.get("Launched")
    assert launched is not None and (launched["reason"], launched["message"]) == (
        "LaunchFailed",
        "no quota",
    )
    outcome, wait = launcher.reconcile(claim, cs)
    assert outcome is None and wait is not None and wait > 0  # still backing off
    # Once the backoff has passed, the next reconcile starts the second attempt.
    await eventually(lambda: launcher.reconcile(claim, cs)[1] is None, timeout_s=5, interval_s=0.01)
    await eventually(lambda: len(woken) == 2, timeout_s=5, interval_s=0.01, what="the retry")
    outcome, _ = launcher.reconcile(claim, cs)
    assert outcome is not None and outcome.status["providerID"] == "fake://ws0123abcd"
    assert outcome.labels["node.kubernetes.io/instance-type"] == "Standard_NC12s_v3"
    assert cloud.create_calls == ["ws0123abcd", "ws0123abcd"]
    await launcher.close()
