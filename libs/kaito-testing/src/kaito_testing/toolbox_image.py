"""A small toolbox image for pods on the real node: Debian's static busybox.

It gives test pods a shell, ``wget``, ``nc`` and ``httpd`` without any registry: the static
binary from the ``busybox-static`` package (installed by ``hack/realnode/install.sh``) with one
link per applet the tests use, written as a one-layer OCI archive for ``ctr images import``.
"""

from __future__ import annotations

from pathlib import Path

from kaito_testing.oci_archive import ImageFile, ImageSpec, write_image_archive

TOOLBOX_IMAGE = "kaito.local/toolbox:1"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "wget", "nc", "httpd", "cat", "echo", "sleep", "ls", "ip", "nslookup", "env")


class ToolboxImageError(RuntimeError):
    """The static busybox is missing."""


def write_toolbox_archive(work_dir: Path, busybox: Path = BUSYBOX) -> Path:
    """Writes the toolbox image's archive into ``work_dir``; returns its path."""
    if not busybox.is_file():
        raise ToolboxImageError(f"{busybox} is missing; run hack/realnode/install.sh")
    files = [ImageFile("bin/busybox", busybox.read_bytes())]
    files += [ImageFile(f"bin/{name}", link="busybox") for name in APPLETS]
    files.append(ImageFile("tmp/.keep", b"", 0o644))
    spec = ImageSpec(
        name=TOOLBOX_IMAGE,
        files=files,
        entrypoint=[],
        cmd=["/bin/sh"],
        env={"PATH": "/bin"},
    )
    return write_image_archive(spec, work_dir / "toolbox.tar")
