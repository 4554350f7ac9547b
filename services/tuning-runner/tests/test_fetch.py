"""`fetch` of input URLs from a real HTTP server on loopback, and its refusals."""

from __future__ import annotations

import functools
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from kaito_testing.certs import generate
from kaito_testing.dataserver import DataServer
from tuning_runner.errors import FetchError
from tuning_runner.fetch.urls import FetchOptions, fetch_urls, file_name_for
from tuning_runner.tls import CABundleError, ssl_context

LOOPBACK = FetchOptions(allow_loopback=True, attempts=2, backoff_seconds=0.0, read_timeout=5)


def test_fetches_files_named_by_the_url_path(data_server: DataServer, tmp_path: Path) -> None:
    (data_server.root / "train.parquet").write_bytes(b"PAR1 fake but non-empty")
    (data_server.root / "more.jsonl").write_text('{"text": "x"}\n')
    dest = tmp_path / "data"
    got = fetch_urls(
        [data_server.url_for("train.parquet?sig=abc&se=1"), data_server.url_for("more.jsonl#x")],
        dest,
        LOOPBACK,
    )
    assert [p.name for p in got] == ["train.parquet", "more.jsonl"]
    assert (dest / "train.parquet").read_bytes() == b"PAR1 fake but non-empty"
    assert sorted(p.name for p in dest.iterdir()) == ["more.jsonl", "train.parquet"]


def test_refuses_loopback_without_the_test_switch(data_server: DataServer, tmp_path: Path) -> None:
    (data_server.root / "a.csv").write_text("text\nx\n")
    with pytest.raises(FetchError, match="loopback"):
        fetch_urls([data_server.url_for("a.csv")], tmp_path, FetchOptions())
    assert not (tmp_path / "a.csv").exists()


def test_404_names_the_url_and_leaves_nothing(data_server: DataServer, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_urls([data_server.url_for("missing.parquet")], tmp_path / "data", LOOPBACK)
    assert list((tmp_path / "data").iterdir()) == []


def test_empty_file_is_refused(data_server: DataServer, tmp_path: Path) -> None:
    (data_server.root / "empty.jsonl").write_bytes(b"")
    with pytest.raises(FetchError, match="empty"):
        fetch_urls([data_server.url_for("empty.jsonl")], tmp_path / "data", LOOPBACK)
    assert list((tmp_path / "data").iterdir()) == []


def test_size_cap(data_server: DataServer, tmp_path: Path) -> None:
    (data_server.root / "big.csv").write_bytes(b"x" * 5000)
    opts = FetchOptions(allow_loopback=True, max_bytes=1000)
    with pytest.raises(FetchError, match="limit"):
        fetch_urls([data_server.url_for("big.csv")], tmp_path / "data", opts)
    assert list((tmp_path / "data").iterdir()) == []


def test_unreachable_host_fails_after_retries(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delays: list[float] = []
    opts = FetchOptions(allow_loopback=True, attempts=3, backoff_seconds=0.5, connect_timeout=2)
    with pytest.raises(FetchError, match="after 3 attempts"):
        fetch_urls([f"http://127.0.0.1:{port}/a.jsonl"], tmp_path, opts, sleep=delays.append)
    assert delays == [0.5, 1.0]  # exponential backoff


def test_retries_server_errors_then_succeeds(tmp_path: Path) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url)
        if len(calls) < 3:
            return httpx.Response(503)
        return httpx.Response(200, content=b"text\nhello\n")

    opts = FetchOptions(attempts=3, backoff_seconds=0)
    got = fetch_urls(
        ["https://93.184.216.34/d/train.csv"],
        tmp_path,
        opts,
        transport=httpx.MockTransport(handler),
        sleep=lambda _: None,
    )
    assert got[0].read_bytes() == b"text\nhello\n" and len(calls) == 3


def test_redirect_to_metadata_is_refused(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    with pytest.raises(FetchError, match="metadata"):
        fetch_urls(
            ["https://93.184.216.34/d/train.csv"],
            tmp_path,
            FetchOptions(),
            transport=httpx.MockTransport(handler),
        )


@pytest.mark.parametrize("url", ["https://h.io/", "https://h.io/dir/", "https://h.io/.hidden"])
def test_urls_must_name_a_file(url: str) -> None:
    with pytest.raises(FetchError, match="file name"):
        file_name_for(url)


# -- the operator's allow-list and CA bundle ------------------------------------------------


def test_allowed_network_lets_a_private_server_through(
    data_server: DataServer, tmp_path: Path
) -> None:
    (data_server.root / "train.jsonl").write_text('{"text": "x"}\n')
    url = data_server.url_for("train.jsonl")
    with pytest.raises(FetchError, match="loopback"):
        fetch_urls([url], tmp_path, FetchOptions(allowed_networks=("10.96.0.0/12",)))
    opts = FetchOptions(allowed_networks=("127.0.0.0/8",), attempts=1)
    (got,) = fetch_urls([url], tmp_path / "data", opts)
    assert got.read_text() == '{"text": "x"}\n'


def test_redirect_to_metadata_is_refused_inside_an_allowed_network(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    with pytest.raises(FetchError, match="metadata"):
        fetch_urls(
            ["http://10.96.0.10/d/train.csv"],
            tmp_path,
            FetchOptions(allowed_networks=("0.0.0.0/0",)),
            transport=httpx.MockTransport(handler),
        )


def test_bad_allow_list_fails_before_any_download(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="allowed data networks are invalid"):
        fetch_urls(
            ["https://93.184.216.34/train.csv"],
            tmp_path,
            FetchOptions(allowed_networks=("not a host",)),
        )


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback whose certificate a private CA signed: (base URL, CA file)."""
    pki = generate(tmp_path / "pki", service_ip="10.96.0.1", clients={})
    root = tmp_path / "www"
    root.mkdir()
    (root / "train.jsonl").write_text('{"text": "private"}\n')
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.serving.cert, pki.serving.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", pki.ca.cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_ca_file_makes_a_private_ca_trusted(tls_server: tuple[str, Path], tmp_path: Path) -> None:
    base, ca = tls_server
    opts = FetchOptions(allow_loopback=True, attempts=1, read_timeout=5)
    with pytest.raises(FetchError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        fetch_urls([f"{base}/train.jsonl"], tmp_path / "a", opts)
    trusting = FetchOptions(allow_loopback=True, attempts=1, read_timeout=5, ca_file=ca)
    (got,) = fetch_urls([f"{base}/train.jsonl"], tmp_path / "b", trusting)
    assert got.read_text() == '{"text": "private"}\n'


def test_unreadable_ca_file_is_a_clear_failure(tmp_path: Path) -> None:
    bad = tmp_path / "ca.crt"
    bad.write_text("not a certificate")
    with pytest.raises(CABundleError, match="cannot be loaded"):
        ssl_context(bad)
    assert ssl_context(None) is True


# -- DNS rebinding: the connection goes to the address the guard approved ---------------------


class RebindingResolver:
    """Answers each name's first lookup with `first` and every later one with `later`
    (a DNS server rebinding the name after the check)."""

    def __init__(self, first: dict[str, str], later: str = "169.254.169.254") -> None:
        self.first = first
        self.later = later
        self.calls: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.calls.append(host)
        if self.calls.count(host) == 1:
            return [self.first[host]]
        return [self.later]


class _RecordingHandler(SimpleHTTPRequestHandler):
    hosts: list[str]
    redirect_to: str

    def do_GET(self) -> None:
        self.hosts.append(self.headers.get("Host", ""))
        if self.path == "/start":
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recording_server(tmp_path: Path) -> Iterator[tuple[int, type[_RecordingHandler]]]:
    """A loopback HTTP server recording each request's Host header; `/start` redirects."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "train.jsonl").write_text('{"text": "pinned"}\n')
    handler = type("Handler", (_RecordingHandler,), {"hosts": [], "redirect_to": ""})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_connects_to_the_approved_address_not_a_second_answer(
    recording_server: tuple[int, type[_RecordingHandler]], tmp_path: Path
) -> None:
    port, handler = recording_server
    resolver = RebindingResolver({"data.rebind.test": "127.0.0.1"})
    (got,) = fetch_urls(
        [f"http://data.rebind.test:{port}/train.jsonl"],
        tmp_path / "data",
        FetchOptions(allow_loopback=True, attempts=1, read_timeout=5),
        resolver=resolver,
    )
    assert got.read_text() == '{"text": "pinned"}\n'
    assert resolver.calls == ["data.rebind.test"]  # resolved once; the checked answer was used
    assert handler.hosts == [f"data.rebind.test:{port}"]  # the server still saw the name


def test_every_redirect_hop_is_resolved_once_and_pinned(
    recording_server: tuple[int, type[_RecordingHandler]], tmp_path: Path
) -> None:
    port, handler = recording_server
    handler.redirect_to = f"http://second.rebind.test:{port}/train.jsonl"
    resolver = RebindingResolver(
        {"first.rebind.test": "127.0.0.1", "second.rebind.test": "127.0.0.1"}
    )
    (got,) = fetch_urls(
        [f"http://first.rebind.test:{port}/start"],
        tmp_path / "data",
        FetchOptions(allow_loopback=True, attempts=1, read_timeout=5),
        resolver=resolver,
    )
    assert got.name == "start" and got.read_text() == '{"text": "pinned"}\n'
    assert resolver.calls == ["first.rebind.test", "second.rebind.test"]
    assert handler.hosts == [f"first.rebind.test:{port}", f"second.rebind.test:{port}"]


def test_a_redirect_hop_resolving_to_metadata_is_refused(
    recording_server: tuple[int, type[_RecordingHandler]], tmp_path: Path
) -> None:
    port, handler = recording_server
    handler.redirect_to = f"http://evil.rebind.test:{port}/train.jsonl"
    resolver = RebindingResolver(
        {"first.rebind.test": "127.0.0.1", "evil.rebind.test": "169.254.169.254"}
    )
    with pytest.raises(FetchError, match="metadata"):
        fetch_urls(
            [f"http://first.rebind.test:{port}/start"],
            tmp_path / "data",
            FetchOptions(allow_loopback=True, attempts=1, read_timeout=5),
            resolver=resolver,
        )
    assert handler.hosts == [f"first.rebind.test:{port}"]  # the refused hop was never sent


def test_pinned_https_checks_the_certificate_against_the_name(
    tls_server: tuple[str, Path], tmp_path: Path
) -> None:
    """The TLS server name (SNI) and the certificate check use the URL's host, not the IP the
    connection goes to: the certificate names kubernetes.default.svc and 127.0.0.1, not
    other.rebind.test, so only the first fetch may succeed."""
    base, ca = tls_server
    port = base.rsplit(":", 1)[1]
    resolver = RebindingResolver(
        {"kubernetes.default.svc": "127.0.0.1", "other.rebind.test": "127.0.0.1"}
    )
    opts = FetchOptions(allow_loopback=True, attempts=1, read_timeout=5, ca_file=ca)
    (got,) = fetch_urls(
        [f"https://kubernetes.default.svc:{port}/train.jsonl"],
        tmp_path / "a",
        opts,
        resolver=resolver,
    )
    assert got.read_text() == '{"text": "private"}\n'
    with pytest.raises(FetchError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify|match"):
        fetch_urls(
            [f"https://other.rebind.test:{port}/train.jsonl"],
            tmp_path / "b",
            opts,
            resolver=resolver,
        )
