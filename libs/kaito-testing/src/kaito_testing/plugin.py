"""pytest plugin: the local Kubernetes control plane as fixtures.

Registered as the ``kaito_testing`` pytest11 entry point of kaito-testing. Fixtures:

- ``control_plane`` (session): one :class:`~kaito_testing.controlplane.ControlPlane`
  for the whole run; the ``full`` profile when any collected test carries the ``full`` marker,
  else ``apiserver``.
- ``kubeconfig_path`` (session): the admin kubeconfig of that cluster.
- ``api_client``: an async ``kubernetes_asyncio`` ``ApiClient``, closed after the test.
- ``namespace``: a fresh namespace per test (its name); deleted after the test.

Tests that use these fixtures are marked ``controlplane`` automatically. The binaries are
built (``hack/testbin/build.sh``, as ``make testbin`` does) once collection finds such a test,
so a missing toolchain fails loudly instead of skipping. Heavy imports (cryptography,
kubernetes_asyncio) happen inside the fixtures: environments without them can still load this
plugin.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import urllib.error
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

    from kaito_testing.controlplane import ControlPlane, Profile

_F = TypeVar("_F", bound=Callable[..., Any])


def _async_fixture(func: _F) -> _F:
    """pytest-asyncio's fixture decorator, or pytest's where pytest-asyncio is absent."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - environments without pytest-asyncio
        return cast(_F, pytest.fixture(func))
    return cast(_F, pytest_asyncio.fixture(func))


_FIXTURES = frozenset({"control_plane", "kubeconfig_path", "api_client", "namespace"})
_BIN_DIR = pytest.StashKey[Path]()
_CONTROL_PLANE = pytest.StashKey["ControlPlane"]()
_LOG_LINES = 25


def _uses_control_plane(item: pytest.Item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    return bool(names & _FIXTURES) or item.get_closest_marker("full") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_control_plane(item) and item.get_closest_marker("controlplane") is None:
            item.add_marker(pytest.mark.controlplane)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Builds the binaries before any test runs (outside the per-test timeout)."""
    if session.config.option.collectonly:
        return
    if not any(_uses_control_plane(item) for item in session.items):
        return
    from kaito_testing.testbin import ensure_testbin

    session.config.stash[_BIN_DIR] = ensure_testbin()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _uses_control_plane(item):
        control_plane = item.config.stash.get(_CONTROL_PLANE, None)
        if control_plane is not None:
            for name, text in control_plane.component_logs(lines=_LOG_LINES).items():
                report.sections.append((f"control plane: {name}.log (last {_LOG_LINES})", text))
    return report


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    from kaito_testing.controlplane import ControlPlane

    items = request.session.items
    profile: Profile = "full" if any(i.get_closest_marker("full") for i in items) else "apiserver"
    bin_dir = request.config.stash.get(_BIN_DIR, None)
    plane = ControlPlane(profile, tmp_path_factory.mktemp("controlplane"), bin_dir=bin_dir)
    plane.start()
    request.config.stash[_CONTROL_PLANE] = plane
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubeconfig_path(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig_path


@_async_fixture
async def api_client(control_plane: ControlPlane) -> AsyncIterator[ApiClient]:
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(control_plane.kubeconfig_path), client_configuration=configuration
    )
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        await api.close()


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"{slug or 'test'}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, control_plane: ControlPlane) -> Iterator[str]:
    from kaito_testing.waiting import wait_for

    name = _namespace_name(request.node.name)
    control_plane.request_json(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    sa_path = f"/api/v1/namespaces/{name}/serviceaccounts/default"
    if control_plane.profile == "full":
        # Pods are only admitted once the controller-manager has made the default account.
        wait_for(
            lambda: _exists(control_plane, sa_path),
            timeout=30.0,
            what=f"the default ServiceAccount in {name}",
        )
    else:
        # No controller-manager here: create the account it would have created.
        control_plane.request_json(
            "POST",
            f"/api/v1/namespaces/{name}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
        )
    try:
        yield name
    finally:
        # OSError: the cluster is gone or restarting; the session teardown removes it all.
        with contextlib.suppress(OSError):
            control_plane.request_json("DELETE", f"/api/v1/namespaces/{name}")


def _exists(control_plane: ControlPlane, path: str) -> bool:
    try:
        control_plane.get_json(path)
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return False
        raise
    return True
