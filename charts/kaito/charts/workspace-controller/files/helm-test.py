"""`helm test`: the release's CRDs are Established and the Workspace webhook answers.

Runs in the workspace-controller image with the standard library only, as the test pod's
ServiceAccount. The webhook check sends a server-side dry run (nothing is stored) of a Workspace
that names a preset no release has: the API server must refuse it with the webhook's message.
Exit status 0 when every check passed; each failure is printed for `helm test --logs`.
"""

import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

SA = "/var/run/secrets/kubernetes.io/serviceaccount"
API = os.environ.get("KAITO_TEST_API_URL") or "https://{}:{}".format(
    os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc"),
    os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
)
TOKEN_FILE = os.environ.get("KAITO_TEST_TOKEN_FILE", f"{SA}/token")
CA_FILE = os.environ.get("KAITO_TEST_CA_FILE", f"{SA}/ca.crt")
NAMESPACE = os.environ["KAITO_TEST_NAMESPACE"]
RELEASE = os.environ["KAITO_TEST_RELEASE"]
WEBHOOK = os.environ.get("KAITO_TEST_WEBHOOK", "validation.workspace.kaito.sh")
BAD_PRESET = "helm-test-no-such-preset"


def call(method, path, body=None):
    with open(TOKEN_FILE) as fh:
        token = fh.read().strip()
    request = urllib.request.Request(
        API + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=CA_FILE)
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def check_crds():
    """Every CRD of this release (the chart labels them) is Established; Workspace is one."""
    selector = f"app.kubernetes.io/part-of=kaito,app.kubernetes.io/instance={RELEASE}"
    query = urllib.parse.urlencode({"labelSelector": selector})
    status, found = call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions?{query}")
    if status != 200:
        return [f"listing the release's CRDs answered HTTP {status}: {found.get('message', '')}"]
    failures = []
    names = []
    for crd in found.get("items") or []:
        name = crd["metadata"]["name"]
        names.append(name)
        conditions = (crd.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            print(f"CRD {name} is Established")
        else:
            failures.append(f"CRD {name} is not Established")
    if "workspaces.kaito.sh" not in names:
        failures.append(f"release {RELEASE} has no CRD workspaces.kaito.sh (found {names})")
    return failures


def check_webhook():
    workspace = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "helm-test-webhook", "namespace": NAMESPACE},
        "resource": {
            "instanceType": "Standard_NC6s_v3",
            "labelSelector": {"matchLabels": {"apps": "helm-test"}},
        },
        "inference": {"preset": {"name": BAD_PRESET}},
    }
    path = f"/apis/kaito.sh/v1beta1/namespaces/{NAMESPACE}/workspaces?dryRun=All"
    status, answer = call("POST", path, workspace)
    message = answer.get("message", "")
    if status < 400:
        return f"webhook {WEBHOOK}: a Workspace with preset {BAD_PRESET} was accepted"
    if f'admission webhook "{WEBHOOK}" denied the request' not in message:
        return f"webhook {WEBHOOK} did not answer (HTTP {status}): {message}"
    if BAD_PRESET not in message:
        return f"webhook {WEBHOOK} refused the Workspace for another reason: {message}"
    print(f"Webhook {WEBHOOK} answered: {message}")
    return None


def main():
    failures = [*check_crds(), check_webhook()]
    failures = [f for f in failures if f]
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
