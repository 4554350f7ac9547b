"""The spec hash and the ControllerRevision that records each version of a workspace."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kaito_common.api import labels as L

SPEC_FIELDS = ("resource", "inference", "tuning")
MAX_REVISION_HISTORY = 10


def spec_json(workspace: dict[str, Any]) -> str:
    """The desired state as canonical JSON (stable key order, absent fields omitted)."""
    spec = {k: workspace[k] for k in SPEC_FIELDS if workspace.get(k) is not None}
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def spec_hash(workspace: dict[str, Any]) -> str:
    return hashlib.sha256(spec_json(workspace).encode()).hexdigest()


def revision_name(workspace_name: str, digest: str) -> str:
    return f"{workspace_name}-{digest[:5]}"


def controller_revision_manifest(
    workspace: dict[str, Any], digest: str, revision: int, owner: dict[str, Any]
) -> dict[str, Any]:
    meta = workspace["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name(meta["name"], digest),
            "namespace": meta["namespace"],
            "labels": {L.LABEL_WORKSPACE_NAME: meta["name"]},
            "annotations": {L.ANNOTATION_WORKSPACE_HASH: digest},
            "ownerReferences": [owner],
        },
        "revision": revision,
        "data": json.loads(spec_json(workspace)),
    }
