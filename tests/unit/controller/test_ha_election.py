"""How `warmpool operator --leader-elect` names itself and finds its Lease (pure, no cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from warmpool.controller.ha import election
from warmpool.controller.ha.standby import standby_report
from warmpool.controller.settings import parse_settings


def test_identity_is_the_pod_name_and_a_fresh_suffix() -> None:
    first = election.election_identity({"POD_NAME": "wp-warmpool-7d9f-abcde"})
    second = election.election_identity({"POD_NAME": "wp-warmpool-7d9f-abcde"})
    assert first.startswith("wp-warmpool-7d9f-abcde_")
    assert len(first.rpartition("_")[2]) == 8
    # A restarted container is a new candidate, never mistaken for its previous self.
    assert first != second


def test_identity_falls_back_to_the_host_name() -> None:
    assert election.election_identity({}).rpartition("_")[0]


def test_lease_namespace_flag_then_pod_namespace_then_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flagged = parse_settings(["--leader-elect", "--leader-election-namespace", "ops"], {})
    assert election.election_namespace(flagged, {"POD_NAMESPACE": "other"}) == "ops"
    unflagged = parse_settings(["--leader-elect"], {})
    assert election.election_namespace(unflagged, {"POD_NAMESPACE": "warmpool-system"}) == (
        "warmpool-system"
    )
    account = tmp_path / "namespace"
    monkeypatch.setattr(election, "SERVICE_ACCOUNT_NAMESPACE", account)
    assert election.election_namespace(unflagged, {}) is None  # outside a pod, no flag: refused
    account.write_text("from-sa\n")
    assert election.election_namespace(unflagged, {}) == "from-sa"


def test_standby_health_says_who_leads() -> None:
    assert standby_report("op-b_1", "op-a_2") == {
        "leaderElection": "standby",
        "identity": "op-b_1",
        "leader": "op-a_2",
    }
