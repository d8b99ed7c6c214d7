"""Is a pool's spec one this operator can serve? (pure)

The apiserver's schema and CEL rules refuse most bad specs at the door. What passes them and is
still unservable ends here, with a message that names the field: a time zone unknown to the
operator's tzdata, a cron expression croniter rejects, or anything the operator's models refuse
because the CRD installed is older than the operator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from croniter import CroniterBadDateError, croniter
from pydantic import ValidationError

from warmpool.api.resource import InferencePool


@dataclass(frozen=True)
class Invalid:
    """Why a spec cannot be served; `message` starts with the field it is about."""

    message: str


def field_path(loc: Sequence[str | int]) -> str:
    """`('spec', 'scaling', 'schedules', 0, 'timezone')` -> `spec.scaling.schedules[0].timezone`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _strip(message: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def format_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming its field."""
    lines: list[str] = []
    for item in error.errors():
        path = field_path([p for p in item["loc"] if isinstance(p, str | int)])
        message = _strip(str(item["msg"]))
        # Model-level rules already name their fields (`spec.scaling.warmFloor must be ...`).
        lines.append(message if message.startswith("spec.") else f"{path}: {message}")
    return "; ".join(lines)


#: Any fixed instant will do: an expression that fires at all fires within croniter's search
#: horizon from any start, and a fixed one keeps this check pure.
_CRON_PROBE_START = datetime(2000, 1, 1, tzinfo=UTC)


def check_crons(pool: InferencePool) -> list[str]:
    problems: list[str] = []
    for index, schedule in enumerate(pool.spec.scaling.schedules):
        field = f"spec.scaling.schedules[{index}].cron"
        if not croniter.is_valid(schedule.cron):
            problems.append(f"{field}: {schedule.cron!r} is not a valid cron expression")
            continue
        # Valid syntax can still name a date that never comes (`0 0 31 2 *`): the schedule
        # would then fail on every scaling tick instead of once, here.
        try:
            croniter(schedule.cron, _CRON_PROBE_START).get_next(datetime)
        except CroniterBadDateError:
            problems.append(f"{field}: {schedule.cron!r} never fires (no such date)")
    return problems


def validate_pool(body: Mapping[str, Any]) -> InferencePool | Invalid:
    """The pool as a model, or why it cannot be served."""
    # Status is the operator's own output: a stale or foreign status must not make a spec invalid.
    manifest = {key: value for key, value in body.items() if key != "status"}
    try:
        pool = InferencePool.from_manifest(manifest)
    except ValidationError as error:
        return Invalid(format_validation_error(error))
    problems = check_crons(pool)
    if problems:
        return Invalid("; ".join(problems))
    return pool
