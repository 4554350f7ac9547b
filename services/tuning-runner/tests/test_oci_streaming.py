"""Bounded-memory OCI push/pull and retries, against the real registry used by test_oci.py.

A large layer is pushed and pulled in a subprocess whose peak RSS growth is read from
/proc/self/status (VmHWM); faults (5xx answers, dropped connections, bodies cut off halfway)
are injected by a proxy on loopback in front of the registry.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kaito_testing.registry import LocalRegistry
from tuning_runner.oci.auth import Credentials
from tuning_runner.oci.client import HttpRegistryClient, RegistryError
from tuning_runner.oci.image import pull_image, push_adapter
from tuning_runner.oci.reference import ImageReference
from tuning_runner.oci.retry import RetryPolicy

from .faulty_proxy import Fault, FaultyProxy

MiB = 1 << 20

# Pushes then pulls an adapter in a fresh interpreter and prints its peak RSS figures (kB).
_RSS_PROBE = r"""
import json, sys
from pathlib import Path
from tuning_runner.oci.connect import client_for
from tuning_runner.oci.image import pull_image, push_adapter
from tuning_runner.oci.reference import ImageReference

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/self/status")

def reset_peak():
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False

args = json.loads(sys.argv[1])
ref = ImageReference.parse(args["image"])
with client_for(ref, [Path(args["config"])], [], 300) as client:
    client.blob_exists(ref.repository, "sha256:" + "0" * 64)  # connections, imports: warmed up
    base = status("VmHWM")
    pushed = push_adapter(client, ref, Path(args["adapter"]), "m")
    push_peak = status("VmHWM")
    reset = reset_peak()
    pull_base = status("VmHWM")
    files = pull_image(client, ref, Path(args["dest"]))
    pull_peak = status("VmHWM")
print(json.dumps({
    "base_kb": base, "push_peak_kb": push_peak, "pull_base_kb": pull_base,
    "pull_peak_kb": pull_peak, "peak_reset": reset, "files": files,
    "layer_digest": pushed.layer_digest,
}))
"""


def _adapter_with_weights(dir_: Path, size: int, seed: int = 7) -> Path:
    """An adapter folder whose weights file is `size` bytes of barely compressible data, written
    in chunks (the test itself never holds it whole)."""
    dir_.mkdir(parents=True)
    (dir_ / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    rng = random.Random(seed)
    with (dir_ / "adapter_model.safetensors").open("wb") as out:
        written = 0
        while written < size:
            n = min(4 * MiB, size - written)
            out.write(rng.randbytes(n))
            written += n
    return dir_


def _same_file(a: Path, b: Path) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            ca, cb = fa.read(4 * MiB), fb.read(4 * MiB)
            if ca != cb:
                return False
            if not ca:
                return True


def _push_and_pull_in_a_subprocess(
    registry: LocalRegistry, tmp_path: Path, size: int, name: str
) -> dict[str, Any]:
    source = _adapter_with_weights(tmp_path / "adapter", size)
    config = registry.write_docker_config(tmp_path / "secret" / ".dockerconfigjson")
    dest = tmp_path / "pulled"
    args = {
        "image": f"{registry.host}/adapters/{name}:v1",
        "config": str(config.parent),
        "adapter": str(source),
        "dest": str(dest),
    }
    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["files"] == ["adapter_config.json", "adapter_model.safetensors"]
    assert _same_file(dest / "adapter_model.safetensors", source / "adapter_model.safetensors")
    push_growth = (figures["push_peak_kb"] - figures["base_kb"]) * 1024
    pull_growth = (figures["pull_peak_kb"] - figures["pull_base_kb"]) * 1024
    print(
        f"RESULT oci_stream layer_mib={size // MiB} base_rss_mib={figures['base_kb'] // 1024} "
        f"push_peak_growth_mib={push_growth / MiB:.1f} "
        f"pull_peak_growth_mib={pull_growth / MiB:.1f} "
        f"peak_rss_mib={max(figures['push_peak_kb'], figures['pull_peak_kb']) / 1024:.1f} "
        f"peak_reset={figures['peak_reset']}"
    )
    figures["push_growth"] = push_growth
    figures["pull_growth"] = pull_growth
    return figures


def test_a_large_layer_pushes_and_pulls_in_bounded_memory(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    size = 256 * MiB
    figures = _push_and_pull_in_a_subprocess(registry, tmp_path, size, "large")
    # Whole-blob reads would grow the RSS by at least the layer's size; streaming by a few chunks.
    assert figures["push_growth"] < size // 4, figures
    if figures["peak_reset"]:  # without the reset the pull's peak hides under the push's
        assert figures["pull_growth"] < size // 4, figures
    assert max(figures["push_peak_kb"], figures["pull_peak_kb"]) * 1024 < 300 * MiB, figures


@pytest.mark.slow
def test_a_2_gib_layer_keeps_the_runner_under_300_mb(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    size = 2048 * MiB
    figures = _push_and_pull_in_a_subprocess(registry, tmp_path, size, "huge")
    assert max(figures["push_peak_kb"], figures["pull_peak_kb"]) * 1024 < 300 * MiB, figures


# -- retries -------------------------------------------------------------------------------


def _adapter(dir_: Path) -> Path:
    dir_.mkdir(parents=True)
    (dir_ / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    (dir_ / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 4000)
    return dir_


def _client(registry: LocalRegistry, proxy: FaultyProxy, delays: list[float]) -> HttpRegistryClient:
    return HttpRegistryClient(
        proxy.host,
        Credentials(registry.username, registry.password),
        plain_http=True,
        timeout=30,
        retry=RetryPolicy(attempts=4, backoff_seconds=0.25, max_backoff_seconds=1.0),
        sleep=delays.append,
    )


def test_push_and_pull_survive_5xx_and_dropped_connections(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    source = _adapter(tmp_path / "adapter")
    faults = [
        Fault("POST", r"/blobs/uploads/$", "status", times=1, status=502),
        Fault("PUT", r"/blobs/uploads/", "drop", times=1),
        Fault("PUT", r"/blobs/uploads/", "status", times=1, status=500),
        Fault("PUT", r"/manifests/", "status", times=2, status=503),
        Fault("GET", r"/manifests/", "drop", times=1),
        Fault("GET", r"/blobs/sha256:", "cut", times=2),
        Fault("HEAD", r"/blobs/sha256:", "status", times=1, status=429),
    ]
    delays: list[float] = []
    with FaultyProxy(registry.host, faults) as proxy:
        ref = ImageReference.parse(f"{proxy.host}/adapters/flaky:v1")
        with _client(registry, proxy, delays) as client:
            pushed = push_adapter(client, ref, source, "m")
            files = pull_image(client, ref, tmp_path / "pulled")
    assert [f.injected for f in faults] == [f.times for f in faults], proxy.requests
    assert files == ["adapter_config.json", "adapter_model.safetensors"]
    for name in files:
        assert (tmp_path / "pulled" / name).read_bytes() == (source / name).read_bytes()
    assert pushed.layer_digest.startswith("sha256:")
    # Every injected fault cost one bounded, backed-off retry.
    assert len(delays) == sum(f.times for f in faults)
    assert set(delays) <= {0.25, 0.5, 1.0}  # doubling from 0.25 s, capped at 1 s


def test_a_registry_that_keeps_failing_is_given_up_on_after_the_bound(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    source = _adapter(tmp_path / "adapter")
    always = Fault("POST", r"/blobs/uploads/$", "status", times=1000, status=503)
    delays: list[float] = []
    with FaultyProxy(registry.host, [always]) as proxy:
        ref = ImageReference.parse(f"{proxy.host}/adapters/down:v1")
        with (
            _client(registry, proxy, delays) as client,
            pytest.raises(RegistryError, match=r"after 4 attempts \(HTTP 503"),
        ):
            push_adapter(client, ref, source, "m")
    assert always.injected == 4
    assert delays == [0.25, 0.5, 1.0]  # exponential, capped at max_backoff_seconds


def test_a_corrupted_blob_is_refused_and_nothing_is_written(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """The digest is still checked on the streamed download: a layer whose bytes do not match
    fails the pull with the digest named, and the destination gets no file."""
    source = _adapter(tmp_path / "adapter")
    corrupt = Fault("GET", r"/blobs/sha256:", "corrupt", times=1000)
    delays: list[float] = []
    with FaultyProxy(registry.host, []) as proxy:
        ref = ImageReference.parse(f"{proxy.host}/adapters/corrupt:v1")
        with _client(registry, proxy, delays) as client:
            pushed = push_adapter(client, ref, source, "m")
            proxy.faults.append(corrupt)
            with pytest.raises(RegistryError, match=f"{pushed.layer_digest} .*does not match"):
                pull_image(client, ref, tmp_path / "pulled")
    assert corrupt.injected == 1  # a mismatch is not a transient failure: no retry
    assert delays == []
    assert list((tmp_path / "pulled").iterdir()) == []
