"""Controller chaos, reduced (the full run is `make chaos`, bench/chaos/run.py).

On a full local control plane of its own, with the gpu-provisioner's kwok cloud making the nodes:
5 Workspaces are created, updated and deleted while the workspace controller is SIGKILLed 3 times
(and started again), kube-apiserver is restarted, etcd is compacted so that the controller's
watches resume into 410 Gone, and two replicas with leader election lose their leader (SIGKILL,
then SIGTERM to the new one). Afterwards every Workspace has converged, with no duplicate
NodeClaims or workloads and no orphans. Timings are printed; the two failovers are also bounded
(with slack for a loaded machine): a lease duration after the last renewal, and at once after a
clean exit, which releases the Lease.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kaito_testing.chaos import ControllerChaos

pytestmark = [pytest.mark.full, pytest.mark.timeout(600)]


def test_controller_survives_chaos(tmp_path: Path) -> None:
    chaos = ControllerChaos(
        tmp_path, workspaces=5, kills=3, seed=19, converge_timeout_s=240, leader_failover=True
    )
    result = chaos.run()
    print(
        f"chaos: kills={result.controller_kills} converged={result.converged}/{result.total} "
        f"duplicates={result.duplicates} orphans={result.orphans} "
        f"apiserver_restarts={result.apiserver_restarts} "
        f"leader_failover_s={result.leader_failover_s} relists_on_gone={result.relists_on_gone} "
        f"peak_duplicates={result.peak_duplicates} lease_takeover_s={result.lease_takeover_s} "
        f"renewed_before_kill_s={result.renewed_before_kill_s} "
        f"graceful_handover_s={result.graceful_handover_s} "
        f"seconds={result.seconds:.0f}"
    )
    for line in result.details:
        print(line)
    assert result.controller_kills == 3
    assert result.apiserver_restarts == 2  # one plain restart, one after the etcd compaction
    # The controller's informers saw the compaction as 410 Gone and relisted.
    assert result.relists_on_gone > 0
    assert result.leader_failover_s is not None  # the standby took the Lease and reconciled
    # One lease duration (15 s) after the dead leader's last renewal, which the standby saw
    # through its watch (a few seconds of slack for a loaded machine).
    assert result.lease_takeover_s is not None and result.renewed_before_kill_s is not None
    assert result.lease_takeover_s + result.renewed_before_kill_s < 15 + 3
    # A leader stopped cleanly releases the Lease: the standby leads at once.
    assert result.graceful_handover_s is not None and result.graceful_handover_s < 5
    assert result.converged == result.total, result.details
    assert result.duplicates == 0, result.details
    assert result.orphans == 0, result.details
