"""Table tests for the SSRF guard."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from kaito_common.urlguard import (
    Resolver,
    UnsafeURLError,
    URLPolicy,
    approved_addresses,
    check_url,
    is_safe_url,
)


def fake_resolver(table: dict[str, list[str]]) -> Resolver:
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
        check_url(url, resolver=fake_resolver(DNS))
    assert fragment in str(err.value)
    assert not is_safe_url(url, resolver=fake_resolver(DNS))


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
    check_url(url, resolver=fake_resolver(DNS))


def test_loopback_only_with_the_explicit_switch() -> None:
    policy = URLPolicy(allow_loopback=True)
    check_url("http://127.0.0.1:8080/a", policy, resolver=None)
    check_url("http://localhost:8080/a", policy, resolver=fake_resolver({"localhost": ["::1"]}))
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


# -- the operator's allow-list ---------------------------------------------------------------

IN_CLUSTER = {
    "minio.storage.svc": ["10.96.12.7"],
    "evil.storage.svc": ["169.254.169.254"],
    "dual.storage.svc": ["10.96.12.8", "::ffff:169.254.169.254"],
}


def test_allow_list_is_empty_by_default() -> None:
    policy = URLPolicy()
    assert policy.allowed_networks == () and policy.allowed_hosts == frozenset()
    assert not is_safe_url("http://10.96.12.7/train.jsonl", policy, fake_resolver(IN_CLUSTER))


@pytest.mark.parametrize(
    "url",
    [
        "http://10.96.12.7/train.jsonl",
        "http://10.96.255.1:9000/bucket/train.parquet",
        "http://minio.storage.svc/bucket/train.jsonl",
        "http://[fd10::5]/train.jsonl",
    ],
)
def test_allowed_networks_let_in_cluster_urls_through(url: str) -> None:
    policy = URLPolicy.with_allow_list(["10.96.0.0/12", "fd10::/64"])
    check_url(url, policy, fake_resolver(IN_CLUSTER))


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://10.244.0.5/train.jsonl", "a private address"),  # outside the allowed CIDR
        ("http://192.168.1.1/train.jsonl", "a private address"),
        ("http://127.0.0.1/train.jsonl", "a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://evil.storage.svc/x", "metadata"),
    ],
)
def test_allowed_networks_refuse_the_rest(url: str, fragment: str) -> None:
    policy = URLPolicy.with_allow_list(["10.96.0.0/12"])
    with pytest.raises(UnsafeURLError, match=fragment):
        check_url(url, policy, fake_resolver(IN_CLUSTER))


def test_metadata_stays_refused_even_inside_an_allowed_network() -> None:
    policy = URLPolicy.with_allow_list(["169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/0"])
    check_url("http://169.254.10.1/x", policy, None)  # link-local, allowed by the operator
    for url in (
        "http://169.254.169.254/latest/meta-data",
        "http://169.254.170.2/v2/credentials",
        "http://100.100.100.200/latest/meta-data",
        "http://[::ffff:169.254.169.254]/x",
        "http://metadata.google.internal/computeMetadata/v1/",
    ):
        with pytest.raises(UnsafeURLError, match="metadata"):
            check_url(url, policy, None)


def test_allowed_hosts_skip_the_address_check_but_not_metadata() -> None:
    policy = URLPolicy.with_allow_list(["MinIO.storage.svc.", "dual.storage.svc"])
    assert policy.allowed_hosts == frozenset({"minio.storage.svc", "dual.storage.svc"})
    check_url("http://minio.storage.svc/bucket/a.jsonl", policy, fake_resolver(IN_CLUSTER))
    check_url("http://minio.storage.svc/bucket/a.jsonl", policy, None)  # the webhook's check
    with pytest.raises(UnsafeURLError, match="metadata"):
        check_url("http://dual.storage.svc/a", policy, fake_resolver(IN_CLUSTER))
    # A name that is not on the list is still checked by its addresses.
    with pytest.raises(UnsafeURLError, match="a private address"):
        check_url("http://sneaky.example.com/a", policy, fake_resolver(DNS))


@pytest.mark.parametrize("entry", ["metadata.google.internal", "not a host", "a..b", "x/y/z"])
def test_bad_allow_list_entries_are_rejected(entry: str) -> None:
    with pytest.raises(ValueError, match="allow-list entry"):
        URLPolicy.with_allow_list([entry])


def test_allow_list_keeps_loopback_setting_and_ignores_blanks() -> None:
    policy = URLPolicy.with_allow_list(["", " 10.0.0.0/8 "], allow_loopback=True)
    assert policy.allow_loopback
    assert [str(n) for n in policy.allowed_networks] == ["10.0.0.0/8"]


# -- approved_addresses: what a fetcher connects to -------------------------------------------


def test_approved_addresses_are_the_checked_answer_ipv4_first() -> None:
    calls: list[str] = []

    def resolve(host: str) -> list[str]:
        calls.append(host)
        return ["2606:4700::1111", "93.184.216.34", "93.184.216.34"]

    got = approved_addresses("https://dual.example.com/a", resolver=resolve)
    assert [str(a) for a in got] == ["93.184.216.34", "2606:4700::1111"]
    assert calls == ["dual.example.com"]  # one lookup
    assert [str(a) for a in approved_addresses("http://[2606:4700::1]/a")] == ["2606:4700::1"]
    assert approved_addresses("http://sneaky.example.com/a", resolver=None) == []


def test_approved_addresses_refuse_like_check_url() -> None:
    with pytest.raises(UnsafeURLError, match=r"resolves to 10\.1\.2\.3"):
        approved_addresses("http://sneaky.example.com/a", resolver=fake_resolver(DNS))
    with pytest.raises(UnsafeURLError, match="metadata"):
        approved_addresses("http://rebind.example.com/a", resolver=fake_resolver(DNS))
