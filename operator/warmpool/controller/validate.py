"""Is a pool's spec one this operator can serve? (pure)

The apiserver's schema and CEL rules refuse most bad specs at the door. What passes them and is
still unservable ends here, with a message that names the field: a time zone unknown to the
operator's tzdata, a cron expression croniter rejects, or anything the operator's models refuse
because the CRD installed is older than the operator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from croniter import croniter
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


def check_crons(pool: InferencePool) -> list[str]:
    problems: list[str] = []
    for index, schedule in enumerate(pool.spec.scaling.schedules):
        if not croniter.is_valid(schedule.cron):
            problems.append(
                f"spec.scaling.schedules[{index}].cron: {schedule.cron!r} is not a valid "
                "cron expression"
            )
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
