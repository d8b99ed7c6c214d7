"""The pod volumes of a replica: weight cache, model repository, model source, scratch (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from warmpool.api.resource import InferencePool
from warmpool.render.common import Obj
from warmpool.render.config import RenderConfig

CACHE_VOLUME = "model-cache"
REPOSITORY_VOLUME = "model-repository"
SOURCE_VOLUME = "model-source"
TMP_VOLUME = "tmp"
SHM_VOLUME = "dshm"
TOKEN_VOLUME = "warmup-token"
SAMPLES_VOLUME = "warmup-samples"
PROMPTS_VOLUME = "warmup-prompts"
CREDENTIALS_VOLUME = "model-credentials"
REF_VOLUME = "model-ref"

#: Where the warm-up sidecar finds its API credentials (the path client libraries look at).
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
SAMPLES_MOUNT_PATH = "/etc/warmpool/samples"
PROMPTS_MOUNT_PATH = "/etc/warmpool/prompts"
#: Where a pre-pull pod (no --dest) keeps its use reference of the cached model (`--ref-dir`):
#: a pod volume, gone with the pod, so the reference ends with it.
REF_MOUNT_PATH = "/var/lib/warmpool/ref"
#: Where a gs:// pool's credentials Secret is mounted as files (a service-account key file).
CREDENTIALS_MOUNT_PATH = "/var/run/secrets/warmpool/credentials"


def cache_volume(pool: InferencePool) -> Obj:
    """The weight cache per spec.cache.kind: node hostPath, a PVC, or a sized emptyDir."""
    cache = pool.spec.cache
    if cache.kind == "node":
        # DirectoryOrCreate: the first pod on a fresh node creates the cache root.
        return {"name": CACHE_VOLUME, "hostPath": {"path": cache.path, "type": "DirectoryOrCreate"}}
    if cache.kind == "pvc":
        return {"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": cache.claim_name}}
    empty_dir: Obj = {}
    if cache.size_limit is not None:
        empty_dir["sizeLimit"] = str(cache.size_limit)
    return {"name": CACHE_VOLUME, "emptyDir": empty_dir}


@dataclass(frozen=True)
class ModelSource:
    """Where the prefetcher reads the weights from, as seen inside its container."""

    uri: str
    """The uri handed to `warmpool prefetch --uri`."""
    volume: Obj | None = None
    """A read-only volume holding the source (pvc://, file:///); None for remote sources."""
    mount_path: str | None = None
    """Where `volume` is mounted in the prefetch container."""


def model_source(pool: InferencePool, config: RenderConfig) -> ModelSource:
    """Translate spec.model.uri for the prefetcher.

    `pvc://claim/path` mounts the claim read-only and reads `file://<mount>/path`; `file:///path`
    (a directory on the node) mounts that host directory read-only the same way. Remote uris
    pass through unchanged.

    The mount path names the source (namespace and claim, or the node path) because the uri is
    part of the node cache's key: two pools reading different claims through one fixed path
    would share a cache entry and serve each other's weights.
    """
    uri = pool.spec.model.uri
    parts = urlsplit(uri)
    base = config.source_mount_path.rstrip("/")
    if parts.scheme == "pvc":
        mount = f"{base}/pvc/{pool.metadata.namespace}/{parts.netloc}"
        volume: Obj = {
            "name": SOURCE_VOLUME,
            "persistentVolumeClaim": {"claimName": parts.netloc, "readOnly": True},
        }
        return ModelSource(f"file://{mount}{parts.path.rstrip('/')}", volume, mount)
    if parts.scheme == "file":
        host_path = parts.path.rstrip("/") or "/"
        mount = f"{base}/node{host_path}"
        volume = {"name": SOURCE_VOLUME, "hostPath": {"path": host_path, "type": "Directory"}}
        return ModelSource(f"file://{mount}", volume, mount)
    return ModelSource(uri)


def scratch_volumes(config: RenderConfig) -> list[Obj]:
    """/tmp for every container (read-only root filesystems) and a memory-backed /dev/shm."""
    return [
        {"name": TMP_VOLUME, "emptyDir": {}},
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": config.shm_size_limit}},
    ]


def token_volume() -> Obj:
    """The warm-up sidecar's API credentials: a short-lived, auto-rotated audience-default token,
    the cluster CA and the namespace, like the kubelet's own automount (which is off)."""
    return {
        "name": TOKEN_VOLUME,
        "projected": {
            "defaultMode": 0o444,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


def samples_volume(config_map: str) -> Obj:
    """Recorded warm-up requests (spec.warmup.samplesConfigMap), read-only."""
    return {"name": SAMPLES_VOLUME, "configMap": {"name": config_map}}


def prompts_volume(config_map: str) -> Obj:
    """Prompts of a streaming warm-up (spec.warmup.llm.promptsConfigMap), read-only."""
    return {"name": PROMPTS_VOLUME, "configMap": {"name": config_map}}


def credentials_file_volume(pool: InferencePool) -> Obj | None:
    """For gs:// models, the credentials Secret also as files, read-only.

    Google's client libraries read a key *file* named by GOOGLE_APPLICATION_CREDENTIALS; the
    Secret holds the key file under some key and that variable set to
    `/var/run/secrets/warmpool/credentials/<that key>`. Other schemes take credentials from the
    environment only.
    """
    secret = pool.spec.model.credentials_secret
    if not secret or urlsplit(pool.spec.model.uri).scheme != "gs":
        return None
    return {"name": CREDENTIALS_VOLUME, "secret": {"secretName": secret, "defaultMode": 0o440}}
