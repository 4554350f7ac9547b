"""What an operator watches the release with: the Prometheus monitors (checked by a real API
server with the Prometheus operator's CRDs), the Grafana dashboard, log settings, PDBs and the
`helm test` pod."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, REGISTRY, Helm
from dashboard_metrics import dashboard_metric_names, exported_metric_names

Obj = dict[str, Any]
DASHBOARD = CHART / "files" / "dashboards" / "kaito.json"
MONITORS_ON = ("metrics.podMonitor.enabled=true", "metrics.serviceMonitor.enabled=true")


def of_kind(docs: list[Obj], kind: str) -> list[Obj]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Obj], kind: str, name: str) -> Obj:
    (found,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return found


def render(helm: Helm, *sets: str, namespace: str = "kaito-workspace") -> list[Obj]:
    """`helm template` with the `helm test` hooks (whatever `Helm.template` leaves out)."""
    argv = ["template", "kaito", str(CHART), "--namespace", namespace]
    for value in (f"global.image.registry={REGISTRY}", *sets):
        argv += ["--set", value]
    return [d for d in yaml.safe_load_all(helm.run(*argv).stdout) if d]


def is_hook(doc: Obj) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})


# -- monitors ----------------------------------------------------------------------------------


def test_monitors_are_off_by_default(helm: Helm) -> None:
    rendered = render(helm)
    assert not of_kind(rendered, "PodMonitor")
    assert not of_kind(rendered, "ServiceMonitor")


def test_pod_monitor_selects_the_workspace_pods_ports(helm: Helm) -> None:
    (monitor,) = of_kind(render(helm, *MONITORS_ON), "PodMonitor")
    spec = monitor["spec"]
    assert spec["selector"] == {
        "matchExpressions": [{"key": "kaito.sh/workspace", "operator": "Exists"}]
    }
    assert spec["namespaceSelector"] == {"any": True}
    # The inference pod's port is named http (5000), the tuning Job's metrics.
    from workspace_controller.inference.service import SERVER_PORT

    assert SERVER_PORT == 5000
    assert {(e["port"], e["path"]) for e in spec["podMetricsEndpoints"]} == {
        ("http", "/metrics"),
        ("metrics", "/metrics"),
    }


def test_service_monitors_select_the_metrics_services(helm: Helm) -> None:
    docs = render(helm, *MONITORS_ON, "metrics.serviceMonitor.labels.release=prom")
    monitors = of_kind(docs, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {"workspace-controller", "gpu-provisioner"}
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == "prom"
        selector = monitor["spec"]["selector"]["matchLabels"]
        service = named(docs, "Service", monitor["metadata"]["name"])
        assert selector.items() <= service["metadata"]["labels"].items()
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize(
    "sets",
    [
        ["workspace-controller.metrics.serviceMonitor.enabled=true"],
        ["gpu-provisioner.metrics.serviceMonitor.enabled=true"],
        ["gpu-provisioner.enabled=false"],
    ],
)
def test_either_switch_renders_each_service_monitor_once(helm: Helm, sets: list[str]) -> None:
    docs = render(helm, "metrics.serviceMonitor.enabled=true", *sets)
    names = [m["metadata"]["name"] for m in of_kind(docs, "ServiceMonitor")]
    expected = ["workspace-controller"]
    if "gpu-provisioner.enabled=false" not in sets:
        expected.append("gpu-provisioner")
    assert sorted(names) == sorted(expected)


@pytest.fixture(scope="module")
def monitor_plane(tmp_path_factory: pytest.TempPathFactory, bin_dir: Path) -> Iterator[Any]:
    """A private API server with the Prometheus operator's CRDs."""
    from kaito_testing.controlplane import ControlPlane
    from kaito_testing.promcrds import prometheus_operator_crds

    crds = prometheus_operator_crds()
    with ControlPlane("apiserver", tmp_path_factory.mktemp("monitor-plane"), bin_dir=bin_dir) as p:
        for path in crds:
            p.kubectl("apply", "--server-side", "-f", str(path))
        p.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            "crd/podmonitors.monitoring.coreos.com", "crd/servicemonitors.monitoring.coreos.com",
        )  # fmt: skip
        yield p


@pytest.mark.controlplane
def test_monitors_are_accepted_by_the_api_server(
    monitor_plane: Any, helm: Helm, tmp_path: Path
) -> None:
    namespace = "kaito-monitors"
    monitor_plane.kubectl("create", "namespace", namespace)
    docs = render(helm, *MONITORS_ON, namespace=namespace)
    monitors = [d for d in docs if d["kind"] in ("PodMonitor", "ServiceMonitor")]
    assert len(monitors) == 3
    manifest = tmp_path / "monitors.yaml"
    manifest.write_text(yaml.safe_dump_all(monitors))
    # Strict field validation: a field the CRD's schema does not know is an error, not dropped.
    monitor_plane.kubectl("apply", "--server-side", "--validate=strict", "-f", str(manifest))
    for doc in monitors:
        kind, name = doc["kind"].lower(), doc["metadata"]["name"]
        live = json.loads(
            monitor_plane.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
        )
        assert live["spec"] == doc["spec"], f"{kind}/{name} was changed by the API server"


# -- dashboard ---------------------------------------------------------------------------------


def test_dashboard_configmap_carries_the_json_with_the_sidecar_label(helm: Helm) -> None:
    rendered = render(helm)
    cm = named(rendered, "ConfigMap", "kaito-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["kaito.json"]) == json.loads(DASHBOARD.read_text())


def test_dashboard_can_be_left_out_or_placed(helm: Helm) -> None:
    docs = render(helm, "metrics.dashboard.enabled=false")
    assert "kaito-dashboard" not in {d["metadata"]["name"] for d in of_kind(docs, "ConfigMap")}
    placed = render(helm, "metrics.dashboard.namespace=monitoring")
    assert named(placed, "ConfigMap", "kaito-dashboard")["metadata"]["namespace"] == "monitoring"


def test_dashboard_queries_only_metrics_the_services_export() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = dashboard_metric_names(dashboard)
    exported = exported_metric_names()
    # The panels the dashboard promises: a vacuous extraction must not pass.
    assert {
        "vllm:request_success_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:num_requests_waiting",
        "kaito_ratelimit_rejected_total",
        "vllm:kv_cache_usage_perc",
        "kaito_tuning_step",
        "kaito_workspace_count",
        "gpu_provisioner_launch_duration_seconds_bucket",
    } <= used
    assert not used - exported, (
        f"the dashboard queries metrics no service exports: {used - exported}"
    )


def test_dashboard_panels_have_unique_ids_and_titles() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert all(p.get("title") for p in panels)


# -- logs, PDBs, helm test ---------------------------------------------------------------------


def _controller(docs: list[Obj], name: str) -> Obj:
    container: Obj = named(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    return container


def test_log_settings_reach_both_controllers(helm: Helm) -> None:
    defaults = render(helm)
    assert "--log-level=info" in _controller(defaults, "workspace-controller")["args"]
    assert "--log-format=text" in _controller(defaults, "workspace-controller")["args"]
    env = {e["name"]: e.get("value") for e in _controller(defaults, "gpu-provisioner")["env"]}
    assert env["LOG_LEVEL"] == "info"
    assert env["LOG_FORMAT"] == "text"
    docs = render(helm,
        "workspace-controller.logFormat=json", "gpu-provisioner.logFormat=json",
        "gpu-provisioner.logLevel=DEBUG",
    )  # fmt: skip
    assert "--log-format=json" in _controller(docs, "workspace-controller")["args"]
    env = {e["name"]: e.get("value") for e in _controller(docs, "gpu-provisioner")["env"]}
    assert (env["LOG_FORMAT"], env["LOG_LEVEL"]) == ("json", "DEBUG")


def test_sub_charts_share_log_level_values() -> None:
    values = [
        yaml.safe_load((CHART / "charts" / sub / "values.yaml").read_text())
        for sub in ("workspace-controller", "gpu-provisioner")
    ]
    assert values[0]["logLevel"] == values[1]["logLevel"] == "info"
    assert values[0]["logFormat"] == values[1]["logFormat"] == "text"
    schemas = [
        json.loads((CHART / "charts" / sub / "values.schema.json").read_text())["properties"]
        for sub in ("workspace-controller", "gpu-provisioner")
    ]
    assert schemas[0]["logLevel"] == schemas[1]["logLevel"]
    assert schemas[0]["logFormat"] == schemas[1]["logFormat"]


def test_bad_log_format_is_refused(helm: Helm) -> None:
    result = helm.run(
        "template", "kaito", str(CHART), "--set", f"global.image.registry={REGISTRY}",
        "--set", "workspace-controller.logFormat=xml", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "logFormat" in result.stderr


def test_disruption_budgets_only_with_several_replicas(helm: Helm) -> None:
    rendered = render(helm)
    assert not of_kind(rendered, "PodDisruptionBudget")
    docs = render(helm, "workspace-controller.replicaCount=2", "gpu-provisioner.replicaCount=3")
    budgets = {b["metadata"]["name"]: b for b in of_kind(docs, "PodDisruptionBudget")}
    assert set(budgets) == {"workspace-controller", "gpu-provisioner"}
    for name, budget in budgets.items():
        pods = named(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= pods.items()
        assert budget["spec"]["maxUnavailable"] == 1


def test_helm_test_pod_runs_the_check_in_the_controller_image(helm: Helm) -> None:
    rendered = render(helm)
    hooks = [d for d in rendered if is_hook(d)]
    assert {d["metadata"]["annotations"]["helm.sh/hook"] for d in hooks} == {"test"}
    pod = named(rendered, "Pod", "kaito-workspace-controller-helm-test")
    (check,) = pod["spec"]["containers"]
    assert check["image"] == _controller(rendered, "workspace-controller")["image"]
    assert check["command"][:2] == ["python", "-c"]
    compile(check["command"][2], "helm-test.py", "exec")  # valid Python in the manifest
    # Its identity reads CRDs and creates (dry-run) Workspaces only.
    sa = pod["spec"]["serviceAccountName"]
    rules = [
        rule
        for kind in ("ClusterRole", "Role")
        for role in of_kind(hooks, kind)
        for rule in role["rules"]
    ]
    assert {(tuple(r["resources"]), tuple(r["verbs"])) for r in rules} == {
        (("customresourcedefinitions",), ("get", "list")),
        (("workspaces",), ("create",)),
    }
    bound = {s["name"] for b in hooks if b["kind"].endswith("Binding") for s in b["subjects"]}
    assert bound == {sa}


def _notes(helm: Helm, tmp_path: Path, *sets: str) -> str:
    """NOTES.txt (not rendered by `helm template`) rendered through a copy of the chart."""
    chart = tmp_path / "kaito"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes.src")
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.src") . | quote }}\n'
    )
    argv = ["template", "kaito", str(chart), "--namespace", "kaito-workspace"]
    argv += ["--set", f"global.image.registry={REGISTRY}"]
    for value in sets:
        argv += ["--set", value]
    out = helm.run(*argv, "--show-only", "templates/zz-notes.yaml").stdout
    notes: str = yaml.safe_load(out)["data"]["notes"]
    return notes


def test_notes_name_the_next_steps(helm: Helm, tmp_path: Path) -> None:
    notes = _notes(helm, tmp_path)
    assert "helm test kaito -n kaito-workspace --logs" in notes
    assert "kubectl apply -f examples/kaito_workspace_phi_3_mini.yaml" in notes
    assert "metrics.podMonitor.enabled=true" in notes  # scraping is off: how to turn it on
    assert "ConfigMap kaito-dashboard in kaito-workspace" in notes
    on = _notes(helm, tmp_path / "on", *MONITORS_ON)
    assert "PodMonitor kaito-workspaces" in on
    assert "ServiceMonitors for the controllers" in on


@pytest.mark.controlplane
def test_helm_test_check_reads_crds_and_reaches_admission(
    monitor_plane: Any, helm: Helm, tmp_path: Path
) -> None:
    """The check as its own ServiceAccount against a real API server: its RBAC suffices, it
    finds the release's CRDs Established, and with no webhook registered (this API server runs
    no controller) it fails, saying the invalid Workspace was accepted; the dry run stored
    nothing."""
    namespace = "kaito-helm-test"
    monitor_plane.kubectl("create", "namespace", namespace)
    docs = render(helm, namespace=namespace)
    pod = named(docs, "Pod", "kaito-workspace-controller-helm-test")
    setup = of_kind(docs, "CustomResourceDefinition") + [
        d for d in docs if is_hook(d) and d["kind"] != "Pod"
    ]
    manifest = tmp_path / "setup.yaml"
    manifest.write_text(yaml.safe_dump_all(setup))
    monitor_plane.kubectl("apply", "--server-side", "-f", str(manifest))
    monitor_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/workspaces.kaito.sh"
    )
    token = tmp_path / "token"
    token.write_text(
        monitor_plane.kubectl(
            "create", "token", pod["spec"]["serviceAccountName"], "-n", namespace
        ).stdout.strip()
    )
    kubeconfig = yaml.safe_load(monitor_plane.kubeconfig_path.read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    ca = tmp_path / "ca.crt"
    if "certificate-authority-data" in cluster:
        ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    else:
        ca = Path(cluster["certificate-authority"])
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    env |= {
        "KAITO_TEST_API_URL": cluster["server"],
        "KAITO_TEST_TOKEN_FILE": str(token),
        "KAITO_TEST_CA_FILE": str(ca),
        "PATH": os.environ.get("PATH", ""),
    }
    script = pod["spec"]["containers"][0]["command"][2]
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert "CRD workspaces.kaito.sh is Established" in result.stdout, result.stderr
    assert "CRD nodeclaims.karpenter.sh is Established" in result.stdout, result.stderr
    assert result.returncode == 1
    assert "preset helm-test-no-such-preset was accepted" in result.stderr, result.stderr
    stored = monitor_plane.kubectl("get", "workspaces", "-n", namespace, "-o", "name").stdout
    assert stored.strip() == ""
