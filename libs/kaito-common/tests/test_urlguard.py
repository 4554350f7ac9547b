"""Table tests for the SSRF guard."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from kaito_common.urlguard import UnsafeURLError, URLPolicy, check_url, is_safe_url


def fake_resolver(table: dict[str, list[str]]) -> object:
    def resolve(host: str) -> Iterable[str]:
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    return resolve


DNS = {
    "data.example.com": ["93.184.216.34"],
    "sneaky.example.com": ["10.1.2.3"],
    "mixed.example.com": ["93.184.216.34", "127.0.0.1"],
    "rebind.example.com": ["169.254.169.254"],
    "v6.example.com": ["2606:4700::1111"],
    "mapped.example.com": ["::ffff:192.168.1.1"],
}


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://data.example.com/a.parquet", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("data.example.com/a.parquet", "scheme 'none'"),
        ("http:///nohost", "no host"),
        ("http://127.0.0.1:8080/a", "loopback"),
        ("http://[::1]/a", "loopback"),
        ("http://localhost/a", "local machine"),
        ("http://api.localhost/a", "local machine"),
        ("http://LOCALHOST./a", "local machine"),
        ("http://169.254.169.254/latest/meta-data", "cloud metadata address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata service"),
        ("http://169.254.10.1/a", "link-local"),
        ("http://[fe80::1]/a", "link-local"),
        ("http://10.0.0.1/a", "private"),
        ("http://172.16.5.4/a", "private"),
        ("http://192.168.1.1/a", "private"),
        ("http://[fd00::1]/a", "private"),
        ("http://100.64.0.1/a", "carrier-grade NAT"),
        ("http://0.0.0.0/a", "unspecified"),
        ("http://sneaky.example.com/a", "resolves to 10.1.2.3"),
        ("http://mixed.example.com/a", "resolves to 127.0.0.1"),
        ("http://rebind.example.com/a", "cloud metadata"),
        ("http://mapped.example.com/a", "private"),
        ("http://nowhere.example.com/a", "could not be resolved"),
        ("http://user:pw@data.example.com/a", "credentials"),
        ("http://data.example.com:99999/a", "malformed"),
    ],
)
def test_rejects_with_a_message_naming_the_problem(url: str, fragment: str) -> None:
    with pytest.raises(UnsafeURLError) as err:
        check_url(url, resolver=fake_resolver(DNS))  # type: ignore[arg-type]
    assert fragment in str(err.value)
    assert not is_safe_url(url, resolver=fake_resolver(DNS))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "https://data.example.com/a.parquet?sig=1",
        "HTTP://data.example.com/a.jsonl",
        "http://v6.example.com/x",
        "http://93.184.216.34/x",
    ],
)
def test_accepts_public_addresses(url: str) -> None:
    check_url(url, resolver=fake_resolver(DNS))  # type: ignore[arg-type]


def test_loopback_only_with_the_explicit_switch() -> None:
    policy = URLPolicy(allow_loopback=True)
    check_url("http://127.0.0.1:8080/a", policy, resolver=None)
    check_url("http://localhost:8080/a", policy, resolver=fake_resolver({"localhost": ["::1"]}))  # type: ignore[arg-type]
    # The switch opens loopback only: private and metadata addresses stay closed.
    with pytest.raises(UnsafeURLError, match="private"):
        check_url("http://10.0.0.1/a", policy, resolver=None)
    with pytest.raises(UnsafeURLError, match="metadata"):
        check_url("http://169.254.169.254/a", policy, resolver=None)


def test_without_a_resolver_names_are_only_checked_syntactically() -> None:
    check_url("http://sneaky.example.com/a", resolver=None)
    with pytest.raises(UnsafeURLError):
        check_url("http://metadata.google.internal/", resolver=None)


def test_system_resolver_resolves_localhost() -> None:
    with pytest.raises(UnsafeURLError, match="local machine"):
        check_url("http://localhost/a")
    check_url("http://localhost/a", URLPolicy(allow_loopback=True))
