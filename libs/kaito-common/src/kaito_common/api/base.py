"""The pydantic base every Kubernetes-facing type uses: camelCase on the wire, empties omitted."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class KubeModel(BaseModel):
    """A fragment of a Kubernetes object.

    Field names are snake_case in Python and camelCase on the wire. Unknown fields are ignored on
    input (the API server may be newer than we are) and ``None`` fields are omitted on output, which
    is what Kubernetes expects of a client.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        validate_assignment=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """Serialise the way Kubernetes expects: camelCase keys, ``None`` fields omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
