from __future__ import annotations

import pytest

from warmpool.controller.settings import ActivatorRef, parse_settings


def test_defaults() -> None:
    settings = parse_settings([], environ={})
    assert settings.namespaces == ()
    assert settings.clusterwide
    assert settings.activator is None
    assert settings.health_port == 8080
    assert settings.metrics_port == 9090
    assert settings.standalone
    assert settings.scaling_interval_seconds == 10.0


def test_flags_override_environment() -> None:
    env = {
        "WARMPOOL_NAMESPACE": "a,b",
        "WARMPOOL_METRICS_PORT": "9999",
        "WARMPOOL_LOG_FORMAT": "json",
    }
    settings = parse_settings(["--namespace", "c", "--metrics-port", "1234"], environ=env)
    assert settings.namespaces == ("c",)
    assert settings.metrics_port == 1234
    assert settings.log_format == "json"
    from_env = parse_settings([], environ=env)
    assert from_env.namespaces == ("a", "b")
    assert from_env.metrics_port == 9999


def test_activator_service_is_namespace_slash_name() -> None:
    settings = parse_settings(["--activator-service", "warmpool-system/activator"], environ={})
    assert settings.activator == ActivatorRef("warmpool-system", "activator")
    with pytest.raises(SystemExit):
        parse_settings(["--activator-service", "activator"], environ={})
