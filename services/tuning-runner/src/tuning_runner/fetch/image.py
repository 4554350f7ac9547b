"""Input given as an OCI image: copy its `/data/*` into the data folder."""

from __future__ import annotations

from pathlib import Path

from tuning_runner.errors import PullError
from tuning_runner.logs import log
from tuning_runner.oci.client import RegistryClient, RegistryError
from tuning_runner.oci.image import ImageFormatError, pull_image
from tuning_runner.oci.reference import ImageReference, InvalidReferenceError


def fetch_image(client: RegistryClient, image: str, dest: Path) -> list[str]:
    try:
        ref = ImageReference.parse(image)
        files = pull_image(client, ref, dest)
    except (InvalidReferenceError, RegistryError, ImageFormatError) as err:
        raise PullError(f"pulling {image} into {dest} failed: {err}") from err
    log("Pulled image data", image=image, dest=str(dest), files=len(files))
    return files
