"""Image references (`registry/repository[:tag][@digest]`) in the docker normalisation rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


class InvalidReferenceError(ValueError):
    """The image reference cannot be parsed."""


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host the registry API is served on."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What goes after `/manifests/`: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        raw = text.strip()
        if not raw or "://" in raw:
            raise InvalidReferenceError(
                f"image reference {text!r} is not of the form registry/repository[:tag][@digest]"
            )
        digest = None
        if "@" in raw:
            raw, digest = raw.split("@", 1)
            if not _DIGEST.match(digest):
                raise InvalidReferenceError(f"image reference {text!r} has an invalid digest")
        tag = None
        slash = raw.rfind("/")
        colon = raw.rfind(":")
        if colon > slash:
            raw, tag = raw[:colon], raw[colon + 1 :]
            if not _TAG.match(tag):
                raise InvalidReferenceError(f"image reference {text!r} has an invalid tag {tag!r}")
        first, _, rest = raw.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, rest
        else:
            registry, repository = DOCKER_HUB, raw
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        if not _REPOSITORY.match(repository):
            raise InvalidReferenceError(
                f"image reference {text!r} has an invalid repository {repository!r}"
            )
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)
