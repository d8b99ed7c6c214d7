"""``python -m warmpool.envtest up|down|status|run --state DIR``: keep a LocalCluster
running detached (for ``hack/demo.sh``), stop it, or report on it.

``up`` starts ``run`` as a background process in its own session and returns once the
cluster is ready; ``run`` holds the cluster until SIGTERM/SIGINT. The state directory
holds the cluster (``cluster/``), ``kubeconfig`` (admin), ``envtest.pid``,
``components.json`` (process groups, so ``down`` can clean up even after a crash),
``envtest.log`` and ``ready``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from warmpool.envtest import hostguard
from warmpool.envtest.cluster import LocalCluster
from warmpool.envtest.images import IMAGE_NAMES
from warmpool.envtest.process import kill_group, tail

_READY = "ready"
_PID = "envtest.pid"
_COMPONENTS = "components.json"
_LOG = "envtest.log"


def main(argv: list[str]) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m warmpool.envtest", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "run"])
    parser.add_argument("--state", type=Path, default=Path(".demo"), help="state directory")
    parser.add_argument("--gpu-nodes", type=int, default=2, help="fake GPU nodes to create")
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument(
        "--real-node", action="store_true", help="also start a real node (real-node-0)"
    )
    parser.add_argument("--real-node-gpus", type=int, default=2, help="fake GPUs of the real node")
    parser.add_argument(
        "--images",
        default=",".join(IMAGE_NAMES),
        help="built images to import into the real node (comma-separated names)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds `up` waits")
    args = parser.parse_args(argv)
    state: Path = args.state.resolve()
    if args.command == "up":
        return _up(state, args, args.timeout)
    if args.command == "down":
        return _down(state)
    if args.command == "status":
        return _status(state)
    return _run(state, args)


def _running_pid(state: Path) -> int | None:
    """The runner's pid, if the pid file names a live ``warmpool.envtest`` process (a
    stale file whose pid was reused by something else must never be signalled)."""
    try:
        pid = int((state / _PID).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid if b"warmpool.envtest" in cmdline else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _runs_program(pid: int, program: str) -> bool:
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return argv0.decode(errors="replace") == program


def _up(state: Path, args: argparse.Namespace, timeout: float) -> int:
    if _running_pid(state) is not None and (state / _READY).exists():
        print(f"cluster already running (state {state})")
        return 0
    state.mkdir(parents=True, exist_ok=True)
    (state / _READY).unlink(missing_ok=True)
    argv = [sys.executable, "-m", "warmpool.envtest", "run", "--state", str(state)]
    argv += ["--gpu-nodes", str(args.gpu_nodes), "--gpus-per-node", str(args.gpus_per_node)]
    argv += ["--real-node-gpus", str(args.real_node_gpus), "--images", args.images]
    argv += ["--real-node"] if args.real_node else []
    with (state / _LOG).open("ab") as log:
        runner = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while not (state / _READY).exists():
        if runner.poll() is not None:
            print(f"cluster failed to start; {state / _LOG}:\n{tail(state / _LOG, 60)}")
            return 1
        if time.monotonic() >= deadline:
            print(f"cluster not ready after {timeout:.0f}s; stopping it")
            _down(state)
            return 1
        time.sleep(0.5)
    print((state / _READY).read_text().strip())
    return 0


def _run(state: Path, args: argparse.Namespace) -> int:
    gpu_nodes, gpus_per_node, real_node_gpus = (
        args.gpu_nodes,
        args.gpus_per_node,
        args.real_node_gpus,
    )
    state.mkdir(parents=True, exist_ok=True)
    (state / _PID).write_text(f"{os.getpid()}\n")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    started = time.monotonic()
    cluster = LocalCluster(state / "cluster")
    try:
        cluster.start()
        groups = {p.name: {"pid": p.pid, "program": p.argv[0]} for p in cluster.processes}
        (state / _COMPONENTS).write_text(json.dumps(groups, indent=2) + "\n")
        for index in range(gpu_nodes):
            cluster.add_gpu_node(f"gpu-node-{index}", gpus=gpus_per_node)
        real = ""
        if args.real_node:
            images = tuple(name for name in args.images.split(",") if name)
            node = cluster.add_real_node("real-node-0", gpus=real_node_gpus, images=images)
            groups[node.name] = {"netns": str(node.netns_path), "cgroup": node.cgroup_root}
            (state / _COMPONENTS).write_text(json.dumps(groups, indent=2) + "\n")
            real = (
                f" and real node {node.name} ({real_node_gpus} fake GPUs, {node.startup_seconds})"
            )
        kubeconfig = state / "kubeconfig"
        kubeconfig.write_text(cluster.kubeconfig.read_text())
        kubeconfig.chmod(0o600)
        version = cluster.server_version()
        (state / _READY).write_text(
            f"Kubernetes {version} at {cluster.server} ready in "
            f"{time.monotonic() - started:.1f}s with {gpu_nodes} fake GPU node(s){real}; "
            f"kubeconfig {kubeconfig}; logs {cluster.logs_dir}; "
            f"seconds to healthy: {cluster.startup_seconds}\n"
        )
        print((state / _READY).read_text().strip(), flush=True)
        stop.wait()
    finally:
        (state / _READY).unlink(missing_ok=True)
        cluster.stop()
        (state / _COMPONENTS).unlink(missing_ok=True)
        (state / _PID).unlink(missing_ok=True)
    return 0


def _down(state: Path) -> int:
    pid = _running_pid(state)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    # Components left by a runner that was killed outright (normally they die with it:
    # see process._orphan_guard). Only a process that still runs the recorded program
    # is signalled: the pid of one that is gone may belong to someone else by now.
    try:
        groups: dict[str, dict[str, Any]] = json.loads((state / _COMPONENTS).read_text())
    except (FileNotFoundError, ValueError):
        groups = {}
    for group in groups.values():
        if "pid" in group and _runs_program(int(group["pid"]), str(group["program"])):
            kill_group(int(group["pid"]), grace_seconds=5)
        if "cgroup" in group:  # a real node's containers, left by a runner killed outright
            cgroup = str(group["cgroup"])
            hostguard.kill_until_gone(functools.partial(hostguard.cgroup_pids, cgroup))
            hostguard.remove_cgroup_root(cgroup)
    for name in (_COMPONENTS, _PID, _READY):
        (state / name).unlink(missing_ok=True)
    print(f"cluster stopped (state {state})")
    return 0


def _status(state: Path) -> int:
    if _running_pid(state) is not None and (state / _READY).exists():
        print((state / _READY).read_text().strip())
        return 0
    print(f"no cluster running (state {state})")
    return 1
