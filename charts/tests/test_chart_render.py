"""`helm lint` and `helm template` of charts/kaito, and what the rendered manifests must hold."""

from __future__ import annotations

import base64
import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, REGISTRY, REGISTRY_VALUE, REPO, Helm
from cryptography import x509

from workspace_controller.settings import ControllerSettings, parse_settings
from workspace_controller.webhook.registration import webhook_configuration

Obj = dict[str, Any]
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")


def of_kind(docs: list[Obj], kind: str) -> list[Obj]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Obj], kind: str, name: str) -> Obj:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
    return found[0]


@pytest.mark.parametrize("sets", [[], ["gpu-provisioner.enabled=false"]], ids=["default", "byo"])
def test_lint_passes(helm: Helm, sets: list[str]) -> None:
    argv = ["lint", "--strict", str(CHART)]
    for value in (REGISTRY_VALUE, *sets):
        argv += ["--set", value]
    result = helm.run(*argv)
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_default_render_has_both_controllers(rendered: list[Obj]) -> None:
    deployments = {d["metadata"]["name"] for d in of_kind(rendered, "Deployment")}
    assert deployments == {"workspace-controller", "gpu-provisioner"}
    crds = {d["metadata"]["name"] for d in of_kind(rendered, "CustomResourceDefinition")}
    assert crds == {"workspaces.kaito.sh", "nodeclaims.karpenter.sh"}
    for name in ("inference-params-template", "lora-params-template", "qlora-params-template"):
        cm = named(rendered, "ConfigMap", name)
        assert cm["metadata"]["namespace"] == "kaito-workspace"
        (text,) = cm["data"].values()
        assert yaml.safe_load(text), f"{name} holds no YAML"
    assert not of_kind(rendered, "ServiceMonitor")
    assert not of_kind(rendered, "DaemonSet")


def test_provisioner_disabled_leaves_it_and_the_nodeclaim_crd_out(
    rendered_without_provisioner: list[Obj], helm: Helm
) -> None:
    docs = rendered_without_provisioner
    assert {d["metadata"]["name"] for d in of_kind(docs, "Deployment")} == {"workspace-controller"}
    assert not [d for d in docs if "gpu-provisioner" in d["metadata"]["name"]]
    crds = {d["metadata"]["name"] for d in of_kind(docs, "CustomResourceDefinition")}
    assert crds == {"workspaces.kaito.sh"}
    asked = helm.template("gpu-provisioner.enabled=false", "crds.installNodeClaim=true")
    crds = {d["metadata"]["name"] for d in of_kind(asked, "CustomResourceDefinition")}
    assert crds == {"workspaces.kaito.sh", "nodeclaims.karpenter.sh"}


def test_chart_crds_are_the_generated_ones(rendered: list[Obj]) -> None:
    for path in sorted((REPO / "crds").glob("*.yaml")):
        generated = yaml.safe_load(path.read_text())
        copy = CHART / "files" / "crds" / path.name
        assert copy.read_bytes() == path.read_bytes(), f"{copy} is stale: run `make chart-crds`"
        live = named(rendered, "CustomResourceDefinition", generated["metadata"]["name"])
        assert live["spec"] == generated["spec"]
        assert live["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


@pytest.mark.parametrize("kind", ["ClusterRole", "Role"])
def test_roles_name_every_verb_and_resource(rendered: list[Obj], kind: str) -> None:
    roles = of_kind(rendered, kind)
    assert len(roles) == 2
    for role in roles:
        for rule in role["rules"]:
            where = f"{kind} {role['metadata']['name']} rule {rule}"
            assert rule.get("verbs") and "*" not in rule["verbs"], where
            assert rule.get("resources") and not any("*" in r for r in rule["resources"]), where
            assert "*" not in rule.get("apiGroups", []), where
            assert not rule.get("nonResourceURLs"), where


def test_only_the_provisioner_may_touch_node_lifecycle(rendered: list[Obj]) -> None:
    def verbs(role: str, group: str, resource: str) -> set[str]:
        rules = named(rendered, "ClusterRole", f"kaito-{role}")["rules"]
        return {
            v
            for r in rules
            if group in r["apiGroups"] and resource in r["resources"]
            for v in r["verbs"]
        }

    assert verbs("workspace-controller", "", "nodes") == {"get", "list", "watch", "patch"}
    assert "update" not in verbs("workspace-controller", "karpenter.sh", "nodeclaims/status")
    assert verbs("workspace-controller", "", "secrets") == set()
    assert verbs("gpu-provisioner", "", "secrets") == set()
    assert "create" not in verbs("gpu-provisioner", "karpenter.sh", "nodeclaims")
    assert verbs("gpu-provisioner", "", "pods/eviction") == {"create"}


@pytest.mark.parametrize("sets", [[], ["nvidiaDevicePlugin.enabled=true"]], ids=["default", "dp"])
def test_pods_are_locked_down(helm: Helm, sets: list[str]) -> None:
    for workload in (d for d in helm.template(*sets) if d["kind"] in WORKLOAD_KINDS):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        pod_sc = pod.get("securityContext") or {}
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert sc.get("privileged") is not True, where
            seccomp = sc.get("seccompProfile") or pod_sc.get("seccompProfile")
            assert seccomp == {"type": "RuntimeDefault"}, where
            requests = container["resources"]["requests"]
            assert requests.get("cpu") and requests.get("memory"), where
            if name != "nvidia-device-plugin":  # needs root for the kubelet's socket directory
                assert sc["runAsNonRoot"] is True and pod_sc["runAsNonRoot"] is True, where
                assert pod_sc["runAsUser"] != 0, where


def test_webhook_matches_the_controllers_own_registration(rendered: list[Obj]) -> None:
    (config,) = copy.deepcopy(of_kind(rendered, "ValidatingWebhookConfiguration"))
    ours = webhook_configuration(
        config["metadata"]["name"],
        b"-",
        service_name="workspace-controller",
        service_namespace="kaito-workspace",
    )
    (hook,) = config["webhooks"]
    (expected,) = ours["webhooks"]
    assert hook["clientConfig"].pop("caBundle")
    expected["clientConfig"].pop("caBundle")
    assert hook == expected


def test_webhook_certificate_is_trusted_by_its_ca_bundle_and_names_the_service(
    rendered: list[Obj],
) -> None:
    (config,) = of_kind(rendered, "ValidatingWebhookConfiguration")
    secret = named(rendered, "Secret", "workspace-controller-webhook-cert")
    ca_pem = base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])
    assert base64.b64decode(secret["data"]["ca.crt"]) == ca_pem
    ca = x509.load_pem_x509_certificate(ca_pem)
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "workspace-controller.kaito-workspace.svc" in names.get_values_for_type(x509.DNSName)
    # The controller serves the mounted certificate and leaves the configuration to the chart.
    args = named(rendered, "Deployment", "workspace-controller")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert "--no-register-webhook" in args
    assert "--webhook-cert-dir=/etc/kaito/webhook-cert" in args
    assert "--release-namespace=kaito-workspace" in args
    assert "--leader-election" in args


def test_webhook_by_url_puts_its_host_in_the_certificate(helm: Helm) -> None:
    docs = helm.template("workspace-controller.webhook.url=https://127.0.0.1:9443/validate/x")
    (config,) = of_kind(docs, "ValidatingWebhookConfiguration")
    assert config["webhooks"][0]["clientConfig"]["url"] == "https://127.0.0.1:9443/validate/x"
    assert "service" not in config["webhooks"][0]["clientConfig"]
    secret = named(docs, "Secret", "workspace-controller-webhook-cert")
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_workload_identity_annotates_the_provisioner(helm: Helm) -> None:
    docs = helm.template(
        "gpu-provisioner.azure.workloadIdentity.clientId=11111111-2222-3333-4444-555555555555",
        "gpu-provisioner.azure.tenantId=tenant",
        "gpu-provisioner.azure.subscriptionId=sub",
    )
    sa = named(docs, "ServiceAccount", "gpu-provisioner")
    assert sa["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555",
        "azure.workload.identity/tenant-id": "tenant",
    }
    pod = named(docs, "Deployment", "gpu-provisioner")["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["AZURE_CLIENT_ID"] == "11111111-2222-3333-4444-555555555555"
    assert env["ARM_SUBSCRIPTION_ID"] == "sub"
    assert env["SYSTEM_NAMESPACE"] == "kaito-workspace"
    kwok = named(helm.template("gpu-provisioner.cloud=kwok"), "Deployment", "gpu-provisioner")
    labels = kwok["spec"]["template"]["metadata"]["labels"]
    assert "azure.workload.identity/use" not in labels
    kwok_env = {e["name"] for e in kwok["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "ARM_SUBSCRIPTION_ID" not in kwok_env


def test_service_monitors_and_device_plugin_are_optional(helm: Helm) -> None:
    docs = helm.template(
        "workspace-controller.metrics.serviceMonitor.enabled=true",
        "gpu-provisioner.metrics.serviceMonitor.enabled=true",
        "nvidiaDevicePlugin.enabled=true",
    )
    monitors = {d["metadata"]["name"] for d in of_kind(docs, "ServiceMonitor")}
    assert monitors == {"workspace-controller", "gpu-provisioner"}
    (plugin,) = of_kind(docs, "DaemonSet")
    tolerations = plugin["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in (
        tolerations
    )


def test_upstream_feature_gates_render_and_unknown_ones_pass_to_the_controller(
    helm: Helm,
) -> None:
    """Upstream's values (gates as strings, gates this controller lacks) install; the controller
    warns about the ones it ignores (settings.feature_gate_warnings)."""
    docs = helm.template(
        "workspace-controller.featureGates.vLLM=false",
        "workspace-controller.featureGates.gatewayAPIInferenceExtension=true",
    )
    (deployment,) = [
        d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "workspace-controller"
    ]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    gates = next(a for a in args if a.startswith("--feature-gates="))
    assert gates == "--feature-gates=gatewayAPIInferenceExtension=true,vLLM=false"


def test_upstreams_gpu_provisioner_value_names(helm: Helm) -> None:
    """replicas, settings.azure.clusterName and workloadIdentity.* as upstream names them."""
    docs = helm.template(
        "gpu-provisioner.replicas=2",
        "gpu-provisioner.settings.azure.clusterName=aks-1",
        "gpu-provisioner.workloadIdentity.clientId=client-1",
        "gpu-provisioner.workloadIdentity.tenantId=tenant-1",
    )
    (deployment,) = [
        d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "gpu-provisioner"
    ]
    assert deployment["spec"]["replicas"] == 2
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["AZURE_CLUSTER_NAME"] == "aks-1"
    assert env["AZURE_CLIENT_ID"] == "client-1" and env["AZURE_TENANT_ID"] == "tenant-1"
    (account,) = [
        d for d in of_kind(docs, "ServiceAccount") if d["metadata"]["name"] == "gpu-provisioner"
    ]
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"] == "client-1"
    assert [d["metadata"]["name"] for d in of_kind(docs, "PodDisruptionBudget")] == [
        "gpu-provisioner"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("workspace-controller.nodeProvisioner=magic", "nodeProvisioner"),
        ("gpu-provisioner.cloud=gcp", "cloud"),
        ("workspace-controller.featureGates.vLLM=maybe", "vLLM"),
        ("workspace-controller.replicaCount=-1", "replicaCount"),
        ("crds.installNodeClaim=maybe", "installNodeClaim"),
        ("workspace-controller.typo=1", "typo"),
        ("global.image.registry=https://registry.example", "registry"),
        ("global.image.tag=no spaces", "tag"),
        ("global.imagePullSecrets[0]=Not_A_Name", "imagePullSecrets"),
        ("workspace-controller.weightsCache.size=lots", "size"),
    ],
)
def test_schema_rejects_bad_values(helm: Helm, value: str, message: str) -> None:
    result = helm.run(
        "template", "kaito", str(CHART), "--set", REGISTRY_VALUE, "--set", value, check=False
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_values_files_document_every_key() -> None:
    """Every paragraph of values.yaml that sets a top-level key carries a comment."""
    for values in [CHART / "values.yaml", *sorted((CHART / "charts").glob("*/values.yaml"))]:
        for paragraph in Path(values).read_text().split("\n\n"):
            lines = paragraph.splitlines()
            keys = [line for line in lines if line[:1].isalpha()]
            if keys:
                assert any(line.lstrip().startswith("#") for line in lines), (
                    f"{values}: {keys} undocumented"
                )


def test_runtime_images_reach_the_controller_only_when_set(helm: Helm) -> None:
    def args(*sets: str) -> list[str]:
        deployment = named(helm.template(*sets), "Deployment", "workspace-controller")
        found: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        return found

    defaults = args()
    assert not [a for a in defaults if a.startswith(("--inference-server-image", "--tuning-r"))]
    chosen = args(
        "workspace-controller.runtimeImages.inferenceServer=reg.example/kaito/inference-server:9",
        "workspace-controller.runtimeImages.tuningRunner=reg.example/kaito/tuning-runner:9",
    )
    assert "--inference-server-image=reg.example/kaito/inference-server:9" in chosen
    assert "--tuning-runner-image=reg.example/kaito/tuning-runner:9" in chosen


def controller_args(docs: list[Obj]) -> list[str]:
    deployment = named(docs, "Deployment", "workspace-controller")
    found: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return found


def controller_settings(docs: list[Obj]) -> ControllerSettings:
    """The settings the controller would run with, parsed from its Deployment's own args."""
    return parse_settings(controller_args(docs))


def pod_images(docs: list[Obj]) -> dict[str, str]:
    """`<object>/<container>` -> image, over every workload and Pod (a helm test) rendered."""
    pods = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs
            if d["kind"] in WORKLOAD_KINDS]  # fmt: skip
    pods += [(d["metadata"]["name"], d["spec"]) for d in docs if d["kind"] == "Pod"]
    return {
        f"{name}/{c['name']}": c["image"]
        for name, pod in pods
        for c in pod["containers"] + pod.get("initContainers", [])
    }


def test_the_registry_is_required_with_a_pointer_to_the_docs(helm: Helm) -> None:
    # (`helm lint` only logs a missing required value: the render is what fails, as at install.)
    result = helm.run("template", "kaito", str(CHART), check=False)
    assert result.returncode != 0
    assert "global.image.registry is required" in result.stderr
    assert "docs/installation.md" in result.stderr


def test_one_registry_names_every_image(helm: Helm) -> None:
    """Only global.image.registry set: the controllers and every image the workspace controller
    puts in pods come from it, tagged with the chart's appVersion."""
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    docs = helm.template()
    images = pod_images(docs)
    assert images["workspace-controller/controller"] == (
        f"{REGISTRY}/workspace-controller:{app_version}"
    )
    assert images["gpu-provisioner/controller"] == f"{REGISTRY}/gpu-provisioner:{app_version}"
    assert all(image.startswith(f"{REGISTRY}/") for image in images.values()), images
    args = controller_args(docs)
    assert f"--image-registry={REGISTRY}" in args and f"--image-tag={app_version}" in args
    assert not [a for a in args if a.startswith(("--preset-", "--image-pull", "--weights-"))]
    s = controller_settings(docs)
    assert s.server_image == f"{REGISTRY}/inference-server:{app_version}"
    assert s.vllm_server_image == f"{REGISTRY}/inference-server-vllm:{app_version}"
    assert s.runner_image == f"{REGISTRY}/tuning-runner:{app_version}"
    assert (s.weights_image_registry, s.weights_image_tag) == (REGISTRY, app_version)

    tagged = helm.template("global.image.registry=r.example/k/", "global.image.tag=1.2.3")
    assert set(pod_images(tagged).values()) >= {
        "r.example/k/workspace-controller:1.2.3",
        "r.example/k/gpu-provisioner:1.2.3",
    }
    assert all(i.startswith("r.example/k/") for i in pod_images(tagged).values())
    s = controller_settings(tagged)
    assert (s.runner_image, s.weights_image_tag) == ("r.example/k/tuning-runner:1.2.3", "1.2.3")


def test_sub_charts_share_the_umbrella_charts_app_version() -> None:
    """global.image.tag defaults to the appVersion each sub-chart sees: they must agree."""
    versions = {
        path.parent.name: yaml.safe_load(path.read_text())["appVersion"]
        for path in [CHART / "Chart.yaml", *sorted((CHART / "charts").glob("*/Chart.yaml"))]
    }
    assert len(set(versions.values())) == 1, versions


def test_each_image_can_still_be_named_on_its_own(helm: Helm) -> None:
    docs = helm.template(
        "workspace-controller.image.repository=other.example/wc",
        "workspace-controller.image.tag=v7",
        "gpu-provisioner.image.tag=v8",
        "workspace-controller.runtimeImages.tuningRunner=runner.example/tr:9",
        "workspace-controller.presets.registry=weights.example/models",
        "workspace-controller.presets.imageTag=v10",
    )
    images = pod_images(docs)
    assert images["workspace-controller/controller"] == "other.example/wc:v7"
    assert images["gpu-provisioner/controller"] == f"{REGISTRY}/gpu-provisioner:v8"
    s = controller_settings(docs)
    assert s.runner_image == "runner.example/tr:9"
    assert (s.weights_image_registry, s.weights_image_tag) == ("weights.example/models", "v10")
    assert s.server_image.startswith(f"{REGISTRY}/inference-server:")


def test_global_pull_secrets_reach_the_controllers_and_the_workload_pods(helm: Helm) -> None:
    docs = helm.template(
        "global.imagePullSecrets={acr-pull,mirror}",
        "gpu-provisioner.imagePullSecrets[0].name=own",
    )
    wc = named(docs, "Deployment", "workspace-controller")["spec"]["template"]["spec"]
    gp = named(docs, "Deployment", "gpu-provisioner")["spec"]["template"]["spec"]
    assert wc["imagePullSecrets"] == [{"name": "acr-pull"}, {"name": "mirror"}]
    assert gp["imagePullSecrets"] == [{"name": "own"}, {"name": "acr-pull"}, {"name": "mirror"}]
    assert controller_settings(docs).image_pull_secrets == ["acr-pull", "mirror"]
    default_pod = named(helm.template(), "Deployment", "workspace-controller")["spec"]["template"]
    assert "imagePullSecrets" not in default_pod["spec"]


def test_weights_cache_reaches_the_controller(helm: Helm) -> None:
    s = controller_settings(
        helm.template(
            "workspace-controller.weightsCache.storageClass=managed-csi",
            "workspace-controller.weightsCache.size=120Gi",
        )
    )
    assert (s.weights_cache_storage_class, s.weights_cache_size) == ("managed-csi", "120Gi")


def test_notes_name_the_images_in_use(helm: Helm, tmp_path: Path) -> None:
    """NOTES.txt (not rendered by `helm template`) rendered through a copy of the chart."""
    chart = tmp_path / "kaito"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes.src")
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.src") . | quote }}\n'
    )
    out = helm.run(
        "template", "kaito", str(chart), "--set", REGISTRY_VALUE,
        "--set", "global.imagePullSecrets={acr-pull}",
        "--show-only", "templates/zz-notes.yaml",
    ).stdout  # fmt: skip
    notes: str = yaml.safe_load(out)["data"]["notes"]
    for name in ("workspace-controller", "gpu-provisioner", "inference-server", "tuning-runner"):
        assert f"{REGISTRY}/{name}:" in notes, notes
    assert f"{REGISTRY}/inference-server-vllm:" in notes
    assert f"{REGISTRY}/kaito-model-<preset>:" in notes
    assert "acr-pull" in notes


def test_top_level_feature_gates_as_upstreams_chart_takes_them(helm: Helm) -> None:
    """`--set featureGates.vLLM=false` (upstream's path) reaches the controller through the
    umbrella's ConfigMap; the sub-chart's own value wins for a gate both name."""
    docs = helm.template("featureGates.vLLM=false", "featureGates.disableNodeAutoProvisioning=true")
    gates = named(docs, "ConfigMap", "kaito-feature-gates")
    assert gates["data"] == {
        "KAITO_WC_FEATURE_GATES_FROM_VALUES": "disableNodeAutoProvisioning=true,vLLM=false"
    }
    pod = named(docs, "Deployment", "workspace-controller")["spec"]["template"]["spec"]
    (env_from,) = pod["containers"][0]["envFrom"]
    assert env_from == {"configMapRef": {"name": "kaito-feature-gates", "optional": True}}
    assert not of_kind(helm.template(), "ConfigMap") or all(
        d["metadata"]["name"] != "kaito-feature-gates"
        for d in of_kind(helm.template(), "ConfigMap")
    )
