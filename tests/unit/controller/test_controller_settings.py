from __future__ import annotations

import pytest

from warmpool.controller.settings import ActivatorRef, parse_settings
from warmpool.render.config import RenderConfig


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


def test_render_settings_come_from_flags_and_environment() -> None:
    defaults = parse_settings([], environ={}).render_config()
    assert defaults == RenderConfig(agent_image=defaults.agent_image)
    settings = parse_settings(
        [
            "--agent-image=mirror.example/agent:1",
            "--agent-image-pull-policy=Always",
            "--prepare-node-cache",
        ],
        environ={"WARMPOOL_PAUSE_IMAGE": "mirror.example/pause:3.10"},
    )
    config = settings.render_config()
    assert config.agent_image == "mirror.example/agent:1"
    assert config.agent_image_pull_policy == "Always"
    assert config.pause_image == "mirror.example/pause:3.10"
    assert config.prepare_node_cache is True
    with pytest.raises(SystemExit):
        parse_settings(["--agent-image-pull-policy=Sometimes"], environ={})
