"""The OpenMP waiting policy the entry point sets before torch is imported."""

from __future__ import annotations

from kaito_common.omp import prefer_passive_waiting


def test_sets_passive_waiting_when_the_operator_chose_nothing() -> None:
    env: dict[str, str] = {"PATH": "/bin"}
    assert prefer_passive_waiting(env, oversubscribed=True) is True
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"


def test_keeps_spinning_on_an_idle_node() -> None:
    env: dict[str, str] = {"PATH": "/bin"}
    assert prefer_passive_waiting(env, oversubscribed=False) is False
    assert env == {"PATH": "/bin"}


def test_leaves_an_operator_choice_alone() -> None:
    for key, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "100000")):
        env = {key: value}
        assert prefer_passive_waiting(env, oversubscribed=True) is False
        assert env == {key: value}
