"""Every `warmpool <program> --flag` the chart runs exists in the program it names.

The operator's and the activator's flags are implemented elsewhere (warmpool.controller.cli,
warmpool.activator.cli); this asks the programs themselves, so a renamed flag fails here
rather than in a CrashLoopBackOff: with the program's `build_parser()` when it has one (the
chart's arguments must parse, and every watched namespace must arrive), else its `--help`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import subprocess
import sys

import pytest
from chart_support import Manifest, Render, find

from support.components import in_ci
from warmpool.cli import PROGRAMS

# Every flag the templates can emit (extraArgs excluded: those are the user's). One watched
# namespace: the activator takes one at most (the chart refuses more).
VALUES = [
    "activator.enabled=true",
    "watchNamespaces={ml}",
    "prometheus.url=http://prometheus:9090",
    "prometheus.trafficQuery=sum(rate(x[1m]))",
]


def _commands(objects: list[Manifest]) -> dict[str, list[str]]:
    """Container args by program (args[0]); the images' ENTRYPOINT is `warmpool`."""
    commands: dict[str, list[str]] = {}
    for deployment in find(objects, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            commands[container["args"][0]] = container["args"][1:]
    return commands


def _program_module(program: str) -> str:
    module = PROGRAMS[program][0]
    if importlib.util.find_spec(module) is None:
        message = f"{module} (warmpool {program}) is not implemented yet"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return module


@pytest.mark.helm
def test_chart_runs_known_programs(render: Render) -> None:
    programs = set(_commands(render(set_values=VALUES)))
    assert programs == {"operator", "activator"}
    assert programs <= PROGRAMS.keys()


def _parsed_namespaces(module: object, args: list[str]) -> list[str] | None:
    """Parse `args` as the program does; the namespaces it would watch (None: cannot parse)."""
    parse_settings = getattr(module, "parse_settings", None)
    if parse_settings is not None:  # the operator: flags -> OperatorSettings
        settings = parse_settings(args, {})
        assert settings.standalone is True
        assert settings.health_port == 8080 and settings.metrics_port == 9090
        return list(settings.namespaces)
    build_parser = getattr(module, "build_parser", None)
    if build_parser is not None:  # the activator: an argparse parser
        parser: argparse.ArgumentParser = build_parser()
        namespace = parser.parse_args(args).namespace
        return [namespace] if isinstance(namespace, str) else list(namespace or [])
    return None


@pytest.mark.helm
@pytest.mark.parametrize(
    ("program", "values", "namespaces"),
    [
        ("operator", VALUES, ["ml"]),
        ("operator", [*VALUES[2:], "watchNamespaces={ml,research}"], ["ml", "research"]),
        ("activator", VALUES, ["ml"]),
    ],
    ids=["operator", "operator-namespaces", "activator"],
)
def test_chart_arguments_are_accepted(
    render: Render, program: str, values: list[str], namespaces: list[str]
) -> None:
    """The program parses the chart's arguments (SystemExit, a test error, on a bad flag)."""
    args = _commands(render(set_values=values))[program]
    module = importlib.import_module(_program_module(program))
    parsed = _parsed_namespaces(module, args)
    if parsed is not None:
        assert parsed == namespaces
        return
    result = subprocess.run(
        [sys.executable, "-m", "warmpool.cli", program, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    flags = {arg.split("=", 1)[0] for arg in args}
    missing = sorted(flag for flag in flags if flag not in result.stdout)
    assert missing == [], f"`warmpool {program}` does not know {missing}"
