"""Leader-election flags of `warmpool operator` (pure parsing, no cluster)."""

from __future__ import annotations

import pytest

from warmpool.controller.settings import LeaderElectionSettings, parse_settings


def test_leader_election_is_off_by_default_with_controller_runtime_timings() -> None:
    settings = parse_settings([], environ={})
    assert settings.leader_elect is False
    assert settings.standalone is True
    election = settings.leader_election
    assert (
        election.lease_duration_seconds,
        election.renew_deadline_seconds,
        election.retry_period_seconds,
    ) == (15.0, 10.0, 2.0)
    assert election.lease_name == "warmpool-operator"
    assert election.namespace is None


def test_flags_and_environment_turn_it_on() -> None:
    settings = parse_settings(
        [
            "--leader-elect",
            "--leader-election-namespace",
            "warmpool-system",
            "--leader-election-id",
            "wp-warmpool",
            "--lease-duration",
            "6",
            "--renew-deadline",
            "4",
            "--retry-period",
            "1",
        ],
        environ={},
    )
    assert settings.leader_elect and not settings.standalone
    assert settings.leader_election == LeaderElectionSettings(
        namespace="warmpool-system",
        lease_name="wp-warmpool",
        lease_duration_seconds=6.0,
        renew_deadline_seconds=4.0,
        retry_period_seconds=1.0,
    )
    env = {
        "WARMPOOL_LEADER_ELECT": "true",
        "WARMPOOL_LEADER_ELECTION_NAMESPACE": "ops",
        "WARMPOOL_LEADER_ELECTION_ID": "lease-a",
        "WARMPOOL_LEASE_DURATION": "20",
        "WARMPOOL_RENEW_DEADLINE": "12",
        "WARMPOOL_RETRY_PERIOD": "3",
    }
    from_env = parse_settings([], environ=env)
    assert from_env.leader_elect
    assert from_env.leader_election == LeaderElectionSettings("ops", "lease-a", 20.0, 12.0, 3.0)
    # A flag beats the environment.
    assert parse_settings(["--standalone"], environ=env).leader_elect is False


def test_standalone_and_leader_elect_are_exclusive() -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--standalone", "--leader-elect"], environ={})


@pytest.mark.parametrize(
    "flags",
    [
        ["--lease-duration", "10", "--renew-deadline", "10"],  # leader would not step down first
        ["--renew-deadline", "2", "--retry-period", "2"],  # not even two renewal attempts
        ["--retry-period", "0"],
        ["--lease-duration", "15.5"],  # leaseDurationSeconds is an integer
        ["--leader-election-id", ""],
    ],
)
def test_unsafe_timings_are_refused(flags: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings(["--leader-elect", *flags], environ={})


def test_timings_are_only_checked_when_electing() -> None:
    settings = parse_settings(["--lease-duration", "5"], environ={})
    assert settings.leader_elect is False


@pytest.mark.parametrize("flags", [["--peering"], ["--peering-name", "x"]])
def test_kopf_peering_flags_point_to_leader_election(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_settings(flags, environ={})
    assert "--leader-elect" in capsys.readouterr().err
