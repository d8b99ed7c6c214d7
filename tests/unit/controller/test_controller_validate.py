from __future__ import annotations

import pytest
from controller_builders import make_pool

from warmpool.api.resource import InferencePool
from warmpool.controller.pool.validate import Invalid, field_path, validate_pool


def test_field_path_formats_indices() -> None:
    assert field_path(("spec", "scaling", "schedules", 0, "timezone")) == (
        "spec.scaling.schedules[0].timezone"
    )


def test_valid_pool_parses() -> None:
    assert isinstance(validate_pool(make_pool()), InferencePool)


def test_unknown_time_zone_names_the_field() -> None:
    body = make_pool(
        scaling={
            "warmFloor": 0,
            "maxReplicas": 2,
            "schedules": [
                {
                    "cron": "0 8 * * 1-5",
                    "timezone": "Mars/Olympus",
                    "warmFloor": 1,
                    "durationMinutes": 60,
                }
            ],
        }
    )
    result = validate_pool(body)
    assert isinstance(result, Invalid)
    assert result.message == (
        "spec.scaling.schedules[0].timezone: unknown time zone 'Mars/Olympus'"
    )


def test_cron_croniter_rejects_names_the_field() -> None:
    body = make_pool(
        scaling={
            "warmFloor": 0,
            "maxReplicas": 2,
            "schedules": [{"cron": "61 * * * *", "warmFloor": 1, "durationMinutes": 60}],
        }
    )
    result = validate_pool(body)
    assert isinstance(result, Invalid)
    assert result.message.startswith("spec.scaling.schedules[0].cron: '61 * * * *'")


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 12 31 4 *"])
def test_cron_that_never_fires_names_the_field(cron: str) -> None:
    # croniter.is_valid accepts these; a schedule built on one failed on every scaling tick.
    body = make_pool(
        scaling={
            "warmFloor": 0,
            "maxReplicas": 2,
            "schedules": [
                {"cron": "0 8 * * *", "warmFloor": 1, "durationMinutes": 60},
                {"cron": cron, "warmFloor": 1, "durationMinutes": 60},
            ],
        }
    )
    result = validate_pool(body)
    assert isinstance(result, Invalid)
    assert result.message == f"spec.scaling.schedules[1].cron: {cron!r} never fires (no such date)"


def test_rare_but_real_cron_is_served() -> None:
    body = make_pool(
        scaling={
            "warmFloor": 0,
            "maxReplicas": 2,
            "schedules": [{"cron": "0 0 29 2 *", "warmFloor": 1, "durationMinutes": 60}],
        }
    )
    assert isinstance(validate_pool(body), InferencePool)


def test_field_unknown_to_the_operator_is_named() -> None:
    body = make_pool(futureField=True)
    result = validate_pool(body)
    assert isinstance(result, Invalid)
    assert result.message.startswith("spec.futureField: ")


def test_model_rule_message_already_names_its_field() -> None:
    result = validate_pool(make_pool(scaling={"warmFloor": 5, "maxReplicas": 2}))
    assert isinstance(result, Invalid)
    assert result.message == "spec.scaling.warmFloor must be <= spec.scaling.maxReplicas"


def test_status_is_not_validated() -> None:
    body = make_pool()
    body["status"] = {"somethingOld": 1, "kopf": {"progress": {}}}
    assert isinstance(validate_pool(body), InferencePool)
