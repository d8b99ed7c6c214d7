"""The replica Deployment: containers, identity, volumes, placement, security."""

from __future__ import annotations

import dataclasses
from typing import Any

import kubernetes_validate
import pytest
from render_cases import (
    CONFIG,
    KUBERNETES_VERSION,
    POOL_UID,
    container,
    make_pool,
    pod_spec,
    server_deployment,
)

from warmpool.api.resource import InferencePool
from warmpool.render import build_children, model_fingerprint, prepull_node_label_key

MODEL = {"uri": "s3://models/llama"}


def _deployment(pool: InferencePool, replicas: int = 2) -> dict[str, Any]:
    return server_deployment(build_children(pool, CONFIG, replicas=replicas), pool)


def _pod(spec: dict[str, Any]) -> dict[str, Any]:
    return pod_spec(_deployment(make_pool(spec)))


def test_prefetch_then_warmup_sidecar_then_triton() -> None:
    pod = _pod({"model": MODEL})
    assert [c["name"] for c in pod["initContainers"]] == ["prefetch", "warmup"]
    assert "restartPolicy" not in pod["initContainers"][0]
    assert pod["initContainers"][1]["restartPolicy"] == "Always"
    assert [c["name"] for c in pod["containers"]] == ["triton"]
    assert pod["readinessGates"] == [{"conditionType": "warmpool.dev/warm"}]


def test_only_the_warmup_sidecar_holds_a_token() -> None:
    pod = _pod({"model": MODEL})
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "llama-warmup"
    token = next(v for v in pod["volumes"] if v["name"] == "warmup-token")
    sources = token["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"][0]["path"] == "namespace"
    holders = [
        c["name"]
        for c in [*pod["initContainers"], *pod["containers"]]
        if any(m["name"] == "warmup-token" for m in c["volumeMounts"])
    ]
    assert holders == ["warmup"]
    mount = next(m for m in container(pod, "warmup")["volumeMounts"] if m["name"] == "warmup-token")
    assert mount == {
        "name": "warmup-token",
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        "readOnly": True,
    }


def test_warmup_disabled_has_no_sidecar_gate_or_token() -> None:
    pod = _pod({"model": MODEL, "warmup": {"enabled": False}})
    assert [c["name"] for c in pod["initContainers"]] == ["prefetch"]
    assert "readinessGates" not in pod
    assert all(v["name"] != "warmup-token" for v in pod["volumes"])


def test_gpus_only_when_counted() -> None:
    gpu = container(_pod({"model": MODEL, "server": {"gpu": {"count": 2}}}), "triton")
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert gpu["resources"]["requests"]["nvidia.com/gpu"] == "2"
    cpu_pod = _pod({"model": MODEL, "server": {"gpu": {"count": 0}}})
    cpu = container(cpu_pod, "triton")
    assert "nvidia.com/gpu" not in cpu.get("resources", {}).get("limits", {})
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"} in cpu["env"]


def test_custom_gpu_resource_and_product_selector() -> None:
    pod = _pod(
        {
            "model": MODEL,
            "server": {
                "gpu": {"count": 1, "product": "NVIDIA-L4", "resourceName": "amd.com/gpu"},
                "nodeSelector": {"pool": "gpu"},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        }
    )
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4", "pool": "gpu"}
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert container(pod, "triton")["resources"]["limits"] == {"amd.com/gpu": "1"}


@pytest.mark.parametrize(
    ("cache", "expected"),
    [
        ({}, {"hostPath": {"path": "/var/cache/warmpool", "type": "DirectoryOrCreate"}}),
        (
            {"kind": "node", "path": "/data/models"},
            {"hostPath": {"path": "/data/models", "type": "DirectoryOrCreate"}},
        ),
        (
            {"kind": "pvc", "claimName": "weights"},
            {"persistentVolumeClaim": {"claimName": "weights"}},
        ),
        ({"kind": "ephemeral", "sizeLimit": "20Gi"}, {"emptyDir": {"sizeLimit": "20Gi"}}),
        ({"kind": "ephemeral"}, {"emptyDir": {}}),
    ],
)
def test_cache_volume_per_kind(cache: dict[str, Any], expected: dict[str, Any]) -> None:
    pod = _pod({"model": MODEL, "cache": cache})
    volume = next(v for v in pod["volumes"] if v["name"] == "model-cache")
    assert volume == {"name": "model-cache", **expected}
    # The server reads the cache (the repository links point into it), never writes it.
    mount = next(m for m in container(pod, "triton")["volumeMounts"] if m["name"] == "model-cache")
    assert mount["readOnly"] is True
    assert mount["mountPath"] == next(
        m["mountPath"]
        for m in container(pod, "prefetch")["volumeMounts"]
        if m["name"] == "model-cache"
    )


def test_pvc_model_uri_mounts_the_claim_read_only() -> None:
    pod = _pod({"model": {"uri": "pvc://weights-claim/models/bert"}})
    volume = next(v for v in pod["volumes"] if v["name"] == "model-source")
    assert volume["persistentVolumeClaim"] == {"claimName": "weights-claim", "readOnly": True}
    prefetch = container(pod, "prefetch")
    mount = next(m for m in prefetch["volumeMounts"] if m["name"] == "model-source")
    assert mount == {
        "name": "model-source",
        "mountPath": "/mnt/model-source/pvc/ml/weights-claim",
        "readOnly": True,
    }
    assert "--uri=file:///mnt/model-source/pvc/ml/weights-claim/models/bert" in prefetch["args"]
    assert all(m["name"] != "model-source" for m in container(pod, "triton")["volumeMounts"])


def test_credentials_come_from_the_secret_never_inline() -> None:
    pod = _pod({"model": {**MODEL, "credentialsSecret": "store-keys"}})
    prefetch = container(pod, "prefetch")
    assert prefetch["envFrom"] == [{"secretRef": {"name": "store-keys"}}]
    assert not any("store-keys" in arg for arg in prefetch["args"])
    assert all("envFrom" not in c for c in [container(pod, "warmup"), container(pod, "triton")])
    assert prefetch["terminationMessagePath"] == "/dev/termination-log"


def test_server_args_and_probes() -> None:
    pod = _pod(
        {
            "model": {**MODEL, "name": "llama_v3"},
            "server": {
                "args": ["--log-verbose=1"],
                "ports": {"http": 9000, "grpc": 9001, "metrics": 9002},
            },
            "warmup": {"timeoutSeconds": 1200},
        }
    )
    triton = container(pod, "triton")
    assert triton["command"] == ["tritonserver"]
    assert triton["args"][0] == "--model-repository=/models"
    assert "--load-model=llama_v3" in triton["args"]
    assert {"--http-port=9000", "--grpc-port=9001", "--metrics-port=9002"} <= set(triton["args"])
    assert triton["args"][-1] == "--log-verbose=1"  # the user's last, so it wins
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    startup = triton["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1200
    # Scale-down drains: proxies forget the pod before Triton stops, in-flight requests finish.
    assert triton["lifecycle"] == {"preStop": {"sleep": {"seconds": CONFIG.drain_seconds}}}
    assert "--exit-timeout-secs=30" in triton["args"]
    assert pod["terminationGracePeriodSeconds"] > CONFIG.drain_seconds + 30
    # The prefetcher links the model where --load-model finds it.
    assert "--dest=/models/llama_v3" in container(pod, "prefetch")["args"]


def test_restricted_security_everywhere() -> None:
    pod = _pod({"model": MODEL})
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in [*pod["initContainers"], *pod["containers"]]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True
        # A read-only root needs a writable /tmp.
        assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])


def test_rollout_never_removes_a_warm_replica_first() -> None:
    deployment = _deployment(make_pool({"model": MODEL}), replicas=5)
    assert deployment["spec"]["replicas"] == 5
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert deployment["spec"]["selector"] == {"matchLabels": {"warmpool.dev/pool": "llama"}}
    owner = deployment["metadata"]["ownerReferences"][0]
    assert owner["uid"] == POOL_UID
    assert owner["controller"] is True


def test_prepull_adds_a_preferred_affinity_for_verified_nodes() -> None:
    pool = make_pool({"model": {**MODEL, "revision": "r2"}, "cache": {"prepull": True}})
    pod = pod_spec(_deployment(pool))
    term = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    expression = term["preference"]["matchExpressions"][0]
    assert expression["key"] == prepull_node_label_key("ml", "llama")
    assert expression["values"] == [model_fingerprint(pool.spec.model)]
    assert "podAntiAffinity" in pod["affinity"]
    plain = _pod({"model": MODEL})
    assert "nodeAffinity" not in plain["affinity"]
    assert "podAntiAffinity" in plain["affinity"]


def test_prepare_node_cache_hands_the_cache_to_the_agent_user() -> None:
    config = dataclasses.replace(CONFIG, prepare_node_cache=True)
    pool = make_pool({"model": MODEL, "cache": {"prepull": True}})
    children = build_children(pool, config, replicas=1)
    for workload in (o for o in children if o["kind"] in {"Deployment", "DaemonSet"}):
        if workload["metadata"]["name"] == "llama-headroom":
            continue
        first = workload["spec"]["template"]["spec"]["initContainers"][0]
        assert first["name"] == "cache-owner"
        assert first["command"] == ["chown", "1000:1000", "/var/cache/warmpool"]
        assert first["securityContext"]["runAsUser"] == 0
        assert first["securityContext"]["capabilities"] == {"add": ["CHOWN"], "drop": ["ALL"]}
        assert first["securityContext"]["allowPrivilegeEscalation"] is False
        kubernetes_validate.validate(workload, KUBERNETES_VERSION, strict=True)
    # Off by default, and never for caches that are not a node directory.
    assert (
        container(_pod({"model": MODEL}), "prefetch") == _pod({"model": MODEL})["initContainers"][0]
    )
    pvc = pod_spec(
        server_deployment(
            build_children(
                make_pool({"model": MODEL, "cache": {"kind": "pvc", "claimName": "c"}}),
                config,
                replicas=1,
            ),
            make_pool({"model": MODEL}),
        )
    )
    assert pvc["initContainers"][0]["name"] == "prefetch"


def test_gcs_credentials_are_also_mounted_as_files() -> None:
    pool = make_pool(
        {
            "model": {"uri": "gs://bucket/bert", "credentialsSecret": "gcp-key"},
            "cache": {"prepull": True},
        }
    )
    children = build_children(pool, CONFIG, replicas=1)
    for workload in (server_deployment(children, pool), children[-2]):
        pod = pod_spec(workload)
        volume = next(v for v in pod["volumes"] if v["name"] == "model-credentials")
        assert volume["secret"]["secretName"] == "gcp-key"
        prefetch = container(pod, "prefetch")
        mount = next(m for m in prefetch["volumeMounts"] if m["name"] == "model-credentials")
        assert mount == {
            "name": "model-credentials",
            "mountPath": "/var/run/secrets/warmpool/credentials",
            "readOnly": True,
        }
        assert prefetch["envFrom"] == [{"secretRef": {"name": "gcp-key"}}]
        kubernetes_validate.validate(workload, KUBERNETES_VERSION, strict=True)
    # Only gs:// needs a key file: S3 and the hub read their credentials from the environment.
    s3 = _pod({"model": {"uri": "s3://bucket/m", "credentialsSecret": "keys"}})
    assert all(v["name"] != "model-credentials" for v in s3["volumes"])


def _prefetch_uri(uri: str, namespace: str = "ml") -> str:
    pod = pod_spec(_deployment(make_pool({"model": {"uri": uri}}, namespace=namespace)))
    args: list[str] = container(pod, "prefetch")["args"]
    return next(a for a in args if a.startswith("--uri="))


def test_local_sources_get_distinct_uris() -> None:
    # The uri is part of the node cache key: two sources must never look alike to the
    # prefetcher, or one pool would be served the other's weights.
    uris = {
        _prefetch_uri("pvc://claim-a/model"),
        _prefetch_uri("pvc://claim-b/model"),
        _prefetch_uri("pvc://claim-a/model", namespace="other"),
        _prefetch_uri("file:///srv/models/a"),
        _prefetch_uri("file:///srv/models/b"),
    }
    assert len(uris) == 5
    assert (
        _prefetch_uri("file:///srv/models/a") == "--uri=file:///mnt/model-source/node/srv/models/a"
    )
