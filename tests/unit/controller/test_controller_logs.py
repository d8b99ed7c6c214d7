from __future__ import annotations

import json
import logging

from warmpool.controller.logs import JSONFormatter


def test_json_log_lines_keep_kopf_object_context_and_drop_unserialisable_extras() -> None:
    record = logging.makeLogRecord(
        {
            "name": "kopf.objects",
            "levelname": "WARNING",
            "levelno": logging.WARNING,
            "msg": "Handler %r failed",
            "args": ("create",),
            "k8s_ref": {"kind": "InferencePool", "name": "llama", "namespace": "ml"},
            "settings": object(),
            "k8s_skip": False,
        }
    )
    line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "Handler 'create' failed"
    assert line["level"] == "WARNING"
    assert line["object"] == {"kind": "InferencePool", "name": "llama", "namespace": "ml"}
    assert "settings" not in line
    assert line["k8s_skip"] is False
