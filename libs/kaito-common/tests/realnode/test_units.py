"""Unit tests of the real node's pieces that need no root: image archives, CNI and containerd
configuration."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from kaito_testing import cni, containerd
from kaito_testing.oci_archive import ImageFile, ImageSpec, image_archive


def _members(data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            if member.isfile():
                extracted = archive.extractfile(member)
                assert extracted is not None
                out[member.name] = extracted.read()
    return out


def test_image_archive_is_a_deterministic_oci_layout_naming_the_image() -> None:
    spec = ImageSpec(
        name="kaito.local/thing:2",
        files=[ImageFile("bin/tool", b"\x7fELF"), ImageFile("bin/alias", link="tool")],
        entrypoint=["/bin/tool"],
        user="65535:65535",
    )
    data = image_archive(spec)
    assert data == image_archive(spec)
    files = _members(data)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    (entry,) = index["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "kaito.local/thing:2"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "2"
    manifest = json.loads(files["blobs/sha256/" + entry["digest"].removeprefix("sha256:")])
    config_blob = files["blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")]
    config = json.loads(config_blob)
    (layer_desc,) = manifest["layers"]
    layer = files["blobs/sha256/" + layer_desc["digest"].removeprefix("sha256:")]
    assert layer_desc["size"] == len(layer)
    # Every blob is stored under its own digest; the layer is uncompressed, so its diff_id is
    # its digest.
    for name, blob in files.items():
        if name.startswith("blobs/"):
            assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1]
    assert config["rootfs"]["diff_ids"] == [layer_desc["digest"]]
    assert config["config"]["Entrypoint"] == ["/bin/tool"]
    assert config["config"]["User"] == "65535:65535"
    with tarfile.open(fileobj=io.BytesIO(layer)) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert members["bin"].isdir()
    assert members["bin/tool"].mode == 0o755
    assert members["bin/alias"].issym() and members["bin/alias"].linkname == "tool"


def test_conflist_is_bridge_host_local_portmap_with_our_state(tmp_path: Path) -> None:
    network = cni.PodNetwork(
        bridge="kaito-rn0",
        subnet="10.85.0.0/24",
        conf_dir=tmp_path / "net.d",
        ipam_dir=tmp_path / "ipam",
        bin_dir=Path("/usr/lib/cni"),
    )
    path = cni.write_conflist(network)
    doc = json.loads(path.read_text())
    assert doc["name"] == cni.NETWORK_NAME
    bridge, portmap = doc["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "kaito-rn0"
    assert bridge["isGateway"] and bridge["ipMasq"] and bridge["hairpinMode"]
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.85.0.0/24"}]]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")
    assert portmap["type"] == "portmap" and portmap["capabilities"] == {"portMappings": True}


def test_containerd_config_keeps_everything_under_its_directories(tmp_path: Path) -> None:
    paths = containerd.ContainerdPaths(tmp_path / "ctd", tmp_path / "images")
    text = containerd.render_config(
        paths,
        sandbox_image="kaito.local/pause:1",
        cni_bin_dir=Path("/usr/lib/cni"),
        cni_conf_dir=tmp_path / "net.d",
    )
    assert f'root = "{tmp_path / "images"}"' in text
    assert f'state = "{tmp_path / "ctd" / "state"}"' in text
    assert f'address = "{tmp_path / "ctd" / "containerd.sock"}"' in text
    assert 'sandbox_image = "kaito.local/pause:1"' in text
    # No CAP_SYS_RESOURCE here: runc may not lower oom_score_adj below containerd's own.
    assert "restrict_oom_score_adj = true" in text
    assert "SystemdCgroup = false" in text
    assert "netns_mounts_under_state_dir = true" in text
    assert f'conf_dir = "{tmp_path / "net.d"}"' in text
