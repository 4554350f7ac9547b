"""Keep the ControllerRevision of the current spec and the hash/revision annotations."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kubernetes_asyncio.client.exceptions import ApiException

from kaito_common.api import labels as L
from kaito_common.contracts.kinds import WORKSPACE
from kaito_common.controller.client import KubeClient, is_conflict
from kaito_common.controller.kinds import CONTROLLER_REVISION, Obj
from kaito_common.controller.store import StoreReader
from workspace_controller.manifests.revision import (
    MAX_REVISION_HISTORY,
    controller_revision_manifest,
    revision_name,
    spec_hash,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RevisionInfo:
    digest: str
    number: int
    workspace: Obj  # the workspace after the annotation write (or unchanged)


def _owned_by(obj: Obj, uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


async def sync_revision(
    client: KubeClient, revisions: StoreReader, workspace: Obj, owner: Obj
) -> RevisionInfo:
    meta = workspace["metadata"]
    name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
    digest = spec_hash(workspace)
    own = [
        r for r in revisions.list(namespace, {L.LABEL_WORKSPACE_NAME: name}) if _owned_by(r, uid)
    ]
    own.sort(key=lambda r: int(r.get("revision") or 0))
    wanted = revision_name(name, digest)
    current = next((r for r in own if r["metadata"]["name"] == wanted), None)
    if current is not None:
        number = int(current.get("revision") or 0)
    else:
        number = (int(own[-1].get("revision") or 0) if own else 0) + 1
        manifest = controller_revision_manifest(workspace, digest, number, owner)
        try:
            await client.create(CONTROLLER_REVISION, manifest, namespace)
            log.info(
                "Created ControllerRevision namespace=%s workspace=%s revision=%d name=%s",
                namespace,
                name,
                number,
                wanted,
            )
        except ApiException as err:
            if not is_conflict(err):
                raise
            # Created by an earlier reconcile the cache has not seen yet: reuse its number.
            live = await client.get(CONTROLLER_REVISION, wanted, namespace)
            number = int(live.get("revision") or number)
        own.append({"metadata": {"name": wanted}, "revision": number})
    for old in own[: max(0, len(own) - MAX_REVISION_HISTORY)]:
        if old["metadata"]["name"] != wanted:
            await client.delete(CONTROLLER_REVISION, old["metadata"]["name"], namespace)
    annotations = meta.get("annotations") or {}
    if annotations.get(L.ANNOTATION_WORKSPACE_HASH) != digest or annotations.get(
        L.ANNOTATION_WORKSPACE_REVISION
    ) != str(number):
        body = {
            "metadata": {
                "annotations": {
                    L.ANNOTATION_WORKSPACE_HASH: digest,
                    L.ANNOTATION_WORKSPACE_REVISION: str(number),
                }
            }
        }
        workspace = await client.patch(WORKSPACE, name, body, namespace)
    return RevisionInfo(digest, number, workspace)
