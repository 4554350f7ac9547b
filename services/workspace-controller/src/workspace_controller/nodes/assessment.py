"""Pure assessment of a workspace's nodes: which qualify, which are selected, how many NodeClaims
to create, whether everything is ready, and what is missing when it is not."""

from __future__ import annotations

from dataclasses import dataclass, field

from kaito_common.api import labels as L
from kaito_common.api.conditions import NODECLAIM_DEPENDENT_CONDITIONS, NodeClaimConditionType
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller.objects import (
    Obj,
    condition,
    condition_true,
    is_deleting,
    labels,
    name,
)
from workspace_controller.nodes.facts import (
    belongs_to,
    claimed_by_other,
    gpu_capacity,
    node_ready,
)


@dataclass(frozen=True)
class NodeRequest:
    workspace: str
    namespace: str
    target: int
    instance_type: str | None
    match_labels: dict[str, str]
    in_expressions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    preferred: tuple[str, ...] = ()
    previous: tuple[str, ...] = ()
    gpu_required: bool = True
    provision: bool = True  # karpenter mode: create NodeClaims for the shortfall

    def describe(self) -> str:
        parts = [f"instance type {self.instance_type}"] if self.instance_type else []
        if self.match_labels:
            parts.append(
                "labels " + ",".join(f"{k}={v}" for k, v in sorted(self.match_labels.items()))
            )
        return " and ".join(parts) or "the label selector"


@dataclass
class NodeAssessment:
    selected: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    claims_pending: list[str] = field(default_factory=list)
    to_create: int = 0
    needs_accelerator_label: list[str] = field(default_factory=list)
    claims_ready: bool = True
    claims_message: str = ""
    claims_reason: str = "NodeClaimsReady"
    nodes_ready: bool = False
    nodes_reason: str = "NodesNotReady"
    nodes_message: str = ""
    provisioned: bool = False  # every selected node was made for this workspace

    @property
    def ready(self) -> bool:
        return self.claims_ready and self.nodes_ready


def _matches_selector(node: Obj, request: NodeRequest) -> bool:
    found = labels(node)
    if any(found.get(k) != v for k, v in request.match_labels.items()):
        return False
    return all(found.get(k) in values for k, values in request.in_expressions)


def qualifies(node: Obj, request: NodeRequest) -> bool:
    """Ready, not deleting, carrying the selector's labels, and either preferred or of the
    requested instance type; never a node made for another workspace."""
    if not node_ready(node) or is_deleting(node):
        return False
    if claimed_by_other(node, request.workspace, request.namespace):
        return False
    if not _matches_selector(node, request):
        return False
    if name(node) in request.preferred:
        return True
    if request.instance_type is None:
        return True
    return labels(node).get(L.LABEL_INSTANCE_TYPE) == request.instance_type


def select_nodes(nodes: list[Obj], request: NodeRequest) -> list[Obj]:
    """Preferred nodes first, then nodes already in use, then provisioned ones, then by name."""

    def rank(node: Obj) -> tuple[int, int, int, str]:
        node_name = name(node)
        return (
            0 if node_name in request.preferred else 1,
            0 if node_name in request.previous else 1,
            0 if L.LABEL_NODEPOOL in labels(node) else 1,
            node_name,
        )

    qualified = sorted((n for n in nodes if qualifies(n, request)), key=rank)
    return qualified[: request.target]


def claim_problem(claim: Obj) -> str:
    """The provisioner's own words for why a claim is not Ready (Launched first)."""
    for type_ in NODECLAIM_DEPENDENT_CONDITIONS:
        cond = condition(claim, type_)
        if cond is None or cond.get("status") == "True":
            continue
        reason = str(cond.get("reason") or "")
        message = str(cond.get("message") or "")
        if message and reason != "AwaitingReconciliation":
            return f"{type_}={cond.get('status')} {reason}: {message}".strip()
    return ""


def _node_name(claim: Obj) -> str | None:
    """The node a claim launched, once it has one."""
    value = (claim.get("status") or {}).get("nodeName")
    return str(value) if value else None


def _count_claims(
    out: NodeAssessment, own_claims: list[Obj], selected: list[Obj], request: NodeRequest
) -> None:
    """Our claims, those still coming up (their node is not selected), and how many to create."""
    out.claims = sorted(name(c) for c in own_claims)
    pending = [c for c in own_claims if _node_name(c) not in out.selected]
    out.claims_pending = sorted(name(c) for c in pending)
    if request.provision:
        out.to_create = max(0, request.target - len(selected) - len(pending))


def _unready_claims(out: NodeAssessment, own_claims: list[Obj]) -> tuple[list[str], list[str]]:
    """Names of the claims not Ready whose node does not serve yet, and their problems."""
    claim_of_node = {_node_name(c) or "": c for c in own_claims}
    problems: list[str] = []
    unready: list[str] = []
    for claim in sorted(own_claims, key=name):
        if condition_true(claim, NodeClaimConditionType.READY):
            continue
        node_name = _node_name(claim)
        if node_name in out.selected and claim_of_node.get(node_name or "") is claim:
            # Its node already serves; the claim's own bookkeeping may lag.
            continue
        problem = claim_problem(claim)
        unready.append(name(claim))
        if problem:
            problems.append(f"NodeClaim {name(claim)}: {problem}")
    return unready, problems


def _claims_verdict(
    out: NodeAssessment,
    *,
    ready_nodes: int,
    own_claims: int,
    unready: list[str],
    problems: list[str],
    request: NodeRequest,
    claims_api: bool,
) -> None:
    if not claims_api:
        out.claims_ready = ready_nodes >= request.target
        out.claims_reason = "NodeClaimAPINotInstalled"
        out.claims_message = (
            f"The NodeClaim API ({NODECLAIM.api_version}) is not installed; only existing "
            "nodes can be used"
        )
    elif unready or out.to_create:
        out.claims_ready = False
        waiting = len(unready) + out.to_create
        out.claims_reason = "NodeClaimLaunchFailed" if problems else "NodeClaimNotReady"
        text = f"Waiting for {waiting} NodeClaim(s) to be Ready"
        if unready:
            text += f" ({', '.join(unready)})"
        out.claims_message = "; ".join([text, *problems])
    else:
        out.claims_message = f"{own_claims} NodeClaim(s) ready"


def _nodes_verdict(
    out: NodeAssessment, selected: list[Obj], problems: list[str], request: NodeRequest
) -> None:
    missing_gpu = [n for n in selected if request.gpu_required and gpu_capacity(n) <= 0]
    out.needs_accelerator_label = [
        name(n)
        for n in selected
        if request.gpu_required and labels(n).get(L.LABEL_ACCELERATOR) != L.ACCELERATOR_NVIDIA
    ]
    if len(selected) < request.target:
        out.nodes_reason = "NodesNotReady"
        text = f"{len(selected)} of {request.target} Ready node(s) with {request.describe()}"
        if request.provision and problems:
            text += "; " + "; ".join(problems)
        elif request.provision:
            text += "; waiting for the node provisioner"
        else:
            text += "; bring-your-own mode: add matching nodes"
        out.nodes_message = text
    elif missing_gpu:
        out.nodes_reason = "NodePluginsNotReady"
        names = ", ".join(name(n) for n in missing_gpu)
        out.nodes_message = (
            f"Node(s) {names} report no {L.RESOURCE_NVIDIA_GPU} capacity yet; is the NVIDIA "
            "device plugin running on them?"
        )
    else:
        out.nodes_ready = True
        out.nodes_reason = "NodesReady"
        out.nodes_message = f"{len(selected)} node(s) ready: {', '.join(out.selected)}"


def assess(
    nodes: list[Obj], claims: list[Obj], request: NodeRequest, *, claims_api: bool = True
) -> NodeAssessment:
    """Where the workspace's nodes and NodeClaims stand against `request`."""
    out = NodeAssessment()
    own_claims = [
        c
        for c in claims
        if belongs_to(c, request.workspace, request.namespace) and not is_deleting(c)
    ]
    selected = select_nodes(nodes, request)
    out.selected = [name(n) for n in selected]
    out.provisioned = bool(selected) and all(
        belongs_to(n, request.workspace, request.namespace) for n in selected
    )
    _count_claims(out, own_claims, selected, request)
    unready, problems = _unready_claims(out, own_claims)
    if request.provision:
        _claims_verdict(
            out,
            ready_nodes=len(selected),
            own_claims=len(own_claims),
            unready=unready,
            problems=problems,
            request=request,
            claims_api=claims_api,
        )
    _nodes_verdict(out, selected, problems, request)
    return out
