"""The warm-up program against a REAL Triton (CPU, Python backend; hack/install-triton.sh).

Models (tests/models): ``warmup_curve`` has a genuine warm-up curve (lazy weights, per-shape
kernel compilation and autotuning: see its model.py), ``never_ready`` raises in initialize,
``drifting`` gets slower with every request. Nothing is mocked; the only stand-in is that no
pod exists here, so the program logs the condition instead of patching a pod (the writer is
tested against a real apiserver in tests/e2e/test_warmup_gate.py).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from warmup_harness import (
    CURVE_INPUTS,
    DRIFT_INPUTS,
    MODELS,
    SMALL_INPUTS,
    WarmupProcess,
    inference_count,
    run_once,
    triton_args,
)

from support.triton import TritonServer, free_port

pytestmark = pytest.mark.triton

# warmup_curve tunes one tiling candidate per request for its first TILE_CANDIDATES requests.
CURVE_TUNING_REQUESTS = 6
WINDOW = 5
DRIFT_MAX_REQUESTS = 35


def _write_samples(directory: Path) -> Path:
    """Two sample requests in KServe v2 JSON, as a mounted ConfigMap would hold them."""
    directory.mkdir()
    for index in range(2):
        data = [((i * 7 + index) % 13) / 13.0 for i in range(4 * 1024)]
        body = {
            "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [4, 1024], "data": data}]
        }
        (directory / f"sample-{index}.json").write_text(json.dumps(body))
    return directory


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_gate_opens_only_after_latency_is_steady(
    tritonserver: str, tmp_path: Path, protocol: str
) -> None:
    with TritonServer(
        MODELS, http_address="127.0.1.5", extra_args=triton_args("warmup_curve")
    ) as triton:
        url = triton.http_url if protocol == "http" else triton.grpc_url
        # HTTP: generated inputs, one request at a time; gRPC: ConfigMap-style samples, 2 in flight.
        source = (
            ["--inputs", CURVE_INPUTS]
            if protocol == "http"
            else ["--samples-dir", str(_write_samples(tmp_path / "samples")), "--concurrency", "2"]
        )
        code, gates, log = run_once(
            [
                "--protocol",
                protocol,
                "--url",
                url,
                "--model",
                "warmup_curve",
                # min-requests 1: only the rule itself keeps the gate shut through the curve.
                "--min-requests",
                "1",
                "--window",
                str(WINDOW),
                "--tolerance",
                "0.25",
                "--max-requests",
                "400",
                "--timeout",
                "240",
                *source,
            ],
            tmp_path / "warmup.log",
            timeout=300,
        )
        assert code == 0, log
        assert [g.reason for g in gates] == ["WarmupSucceeded"], log
        gate = gates[0]
        assert gate.status == "True"
        pairs = gate.pairs
        requests = int(pairs["requests"])
        # On flat latency the rule would open at 2 * WINDOW; the genuine curve keeps it shut
        # until the window before the last one holds no tuning request any more.
        assert requests > CURVE_TUNING_REQUESTS + WINDOW, log
        # The cold first request (weights + compile + tuning) is the slowest by far.
        assert float(pairs["firstMs"]) > float(pairs["steadyP50Ms"]), log
        assert pairs["serverReadyAt"] <= pairs["warmAt"]
        assert float(pairs["durationS"]) >= 0
        # Triton itself served exactly the requests the program reports.
        assert inference_count(triton.http_url, "warmup_curve") == requests


def test_model_that_never_loads_yields_model_not_ready(tritonserver: str, tmp_path: Path) -> None:
    with TritonServer(
        MODELS, http_address="127.0.1.6", extra_args=triton_args("never_ready"), wait_ready=False
    ) as triton:
        code, gates, log = run_once(
            [
                "--protocol",
                "grpc",
                "--url",
                triton.grpc_url,
                "--model",
                "never_ready",
                "--inputs",
                SMALL_INPUTS,
                "--timeout",
                "120",
            ],
            tmp_path / "warmup.log",
            timeout=180,
        )
    assert code == 1, log
    assert [(g.status, g.reason) for g in gates] == [("False", "ModelNotReady")], log
    # Triton's own load error is passed on: the program failed fast on it, not on the timeout.
    assert "fails to initialize on purpose" in gates[0].tail
    assert "serverReadyAt" not in gates[0].pairs


def test_no_server_yields_timeout(tmp_path: Path) -> None:
    url = f"127.0.1.9:{free_port('127.0.1.9')}"  # nothing listens there
    code, gates, log = run_once(
        ["--url", url, "--model", "m", "--inputs", SMALL_INPUTS, "--timeout", "1.5"],
        tmp_path / "warmup.log",
        timeout=60,
    )
    assert code == 1, log
    assert [(g.status, g.reason) for g in gates] == [("False", "Timeout")], log


def test_drifting_model_yields_not_steady_at_max_requests(
    tritonserver: str, tmp_path: Path
) -> None:
    # min-requests = (history + 1) * window: the documented setting that always compares the
    # last window with 4 earlier ones, so that machine noise cannot pass for a plateau.
    args = ["--min-requests", "25", "--window", "5", "--history", "4", "--tolerance", "0.1"]
    args += ["--max-requests", str(DRIFT_MAX_REQUESTS), "--timeout", "240"]
    with TritonServer(
        MODELS, http_address="127.0.1.7", extra_args=triton_args("drifting")
    ) as triton:
        code, gates, log = run_once(
            ["--url", triton.http_url, "--model", "drifting", "--inputs", DRIFT_INPUTS, *args],
            tmp_path / "warmup.log",
            timeout=300,
        )
        assert code == 1, log
        assert [(g.status, g.reason) for g in gates] == [("False", "NotSteady")], log
        pairs = gates[0].pairs
        assert pairs["requests"] == str(DRIFT_MAX_REQUESTS)
        assert float(pairs["lastP50Ms"]) > 1.1 * float(pairs["bestP50Ms"])
        assert inference_count(triton.http_url, "drifting") == DRIFT_MAX_REQUESTS


def test_wrong_inputs_yield_inference_failed(tritonserver: str, tmp_path: Path) -> None:
    with TritonServer(
        MODELS, http_address="127.0.1.8", extra_args=triton_args("drifting")
    ) as triton:
        code, gates, log = run_once(
            [
                "--url",
                triton.http_url,
                "--model",
                "drifting",
                "--inputs",
                SMALL_INPUTS,
                "--timeout",
                "120",
            ],
            tmp_path / "warmup.log",
            timeout=180,
        )
    assert code == 1, log
    assert [(g.status, g.reason) for g in gates] == [("False", "InferenceFailed")], log


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_sidecar_closes_the_gate_when_the_server_goes_and_rewarms_when_it_returns(
    tritonserver: str, tmp_path: Path
) -> None:
    address = "127.0.1.10"
    health = free_port(address)
    ports = {"http_port": free_port(address), "grpc_port": free_port(address)}
    args = [
        "--url",
        f"{address}:{ports['http_port']}",
        "--model",
        "warmup_curve",
        "--inputs",
        CURVE_INPUTS,
        "--tolerance",
        "0.25",
        "--timeout",
        "240",
        "--health-address",
        address,
        "--health-port",
        str(health),
        "--watch-interval",
        "0.5",
        "--watch-failures",
        "2",
    ]
    server = TritonServer(
        MODELS, http_address=address, extra_args=triton_args("warmup_curve"), **ports
    )
    with WarmupProcess(args, tmp_path / "warmup.log") as program:
        with server:
            first = program.wait_for_gate(1, timeout=240)
            assert [(g.status, g.reason) for g in first] == [("True", "WarmupSucceeded")]
            assert _get(f"http://{address}:{health}/healthz")[0] == 200
            assert _get(f"http://{address}:{health}/readyz")[0] == 200
            status = json.loads(_get(f"http://{address}:{health}/status")[1])
            assert status["phase"] == "warm" and status["reason"] == "WarmupSucceeded"
        # Triton is gone: the gate closes, the sidecar keeps running (and serving /healthz).
        second = program.wait_for_gate(2, timeout=60)
        assert (second[1].status, second[1].reason) == ("False", "ServerNotReady")
        assert _get(f"http://{address}:{health}/healthz")[0] == 200
        assert _get(f"http://{address}:{health}/readyz")[0] == 503
        # A new (cold) server on the same address: the sidecar warms it up and reopens the gate.
        with server:
            third = program.wait_for_gate(3, timeout=240)
            assert (third[2].status, third[2].reason) == ("True", "WarmupSucceeded")
            assert int(third[2].pairs["requests"]) == inference_count(
                server.http_url, "warmup_curve"
            )
        assert program.process is not None and program.process.poll() is None


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_inputs_come_from_model_metadata_when_none_are_given(
    tritonserver: str, tmp_path: Path, protocol: str
) -> None:
    # spec.warmup.inputs empty: the program reads names, datatypes and shapes from Triton's
    # model metadata once the model is ready, and warms up on generated data.
    address = "127.0.1.9" if protocol == "http" else "127.0.1.10"
    with TritonServer(
        MODELS, http_address=address, grpc_address=address, extra_args=triton_args("warmup_curve")
    ) as triton:
        url = triton.http_url if protocol == "http" else triton.grpc_url
        code, gates, log = run_once(
            ["--protocol", protocol, "--url", url, "--model", "warmup_curve", "--timeout", "240"],
            tmp_path / "warmup.log",
            timeout=300,
        )
        assert code == 0, log
        assert [(g.status, g.reason) for g in gates] == [("True", "WarmupSucceeded")], log
        assert "warm-up inputs from the model's metadata" in log
        assert inference_count(triton.http_url, "warmup_curve") == int(gates[0].pairs["requests"])
