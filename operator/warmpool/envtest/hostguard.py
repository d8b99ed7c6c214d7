"""The few host-wide things a real node touches, and how each is put back.

Everything else a node changes lives in namespaces the harness creates (realnode.py). What
cannot: the kubelet's cgroups (a cgroup root of the node's own, removed at teardown), the
kernel sysctls the kubelet rewrites at start (saved and restored; shared by every node on the
machine through a lock file, so the last node to stop restores what the first one found), and
processes (every process in the node's namespaces or cgroups is killed at teardown).
:func:`host_state` lists what a test compares before and after.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")

# The kubelet's setupKernelTunables (protectKernelDefaults: false) writes these; they are
# not namespaced.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
_PROC_SYS = Path("/proc/sys")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class HostSysctls:
    """The kubelet's global sysctls, saved by the first node on the machine to start and
    restored by the last one to stop (a record of holders in ``state_file``, under a lock;
    holders that died without releasing are dropped)."""

    def __init__(self, state_file: Path, holder: str) -> None:
        self.state_file = state_file
        self.holder = holder
        self._lock = state_file.with_suffix(".lock")

    def _read(self) -> dict[str, object]:
        try:
            data: dict[str, object] = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {"original": {}, "holders": {}}
        return data

    @staticmethod
    def _live(holders: dict[str, int]) -> dict[str, int]:
        return {name: pid for name, pid in holders.items() if _pid_alive(pid)}

    def acquire(self) -> None:
        with _locked(self._lock):
            data = self._read()
            holders = self._live(dict(data.get("holders", {})))  # type: ignore[call-overload]
            if not holders:
                data["original"] = {name: read_sysctl(name) for name in KUBELET_SYSCTLS}
            holders[self.holder] = os.getpid()
            data["holders"] = holders
            self.state_file.write_text(json.dumps(data, indent=2) + "\n")

    def release(self) -> None:
        with _locked(self._lock):
            data = self._read()
            holders = self._live(dict(data.get("holders", {})))  # type: ignore[call-overload]
            holders.pop(self.holder, None)
            if holders:
                data["holders"] = holders
                self.state_file.write_text(json.dumps(data, indent=2) + "\n")
                return
            original: dict[str, str] = dict(data.get("original", {}))  # type: ignore[call-overload]
            for name, value in original.items():
                if read_sysctl(name) != value:
                    (_PROC_SYS / name).write_text(value + "\n")
            self.state_file.unlink(missing_ok=True)


def read_sysctl(name: str) -> str:
    return (_PROC_SYS / name).read_text().strip()


def cgroup_hierarchies() -> list[Path]:
    """The mounted cgroup hierarchies (cgroup v1 controllers, and v2's ``unified``)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        mount_point = Path(fields[4])
        if fstype in ("cgroup", "cgroup2") and CGROUP_FS in mount_point.parents:
            found.append(mount_point)
    return sorted(set(found))


def create_cgroup_root(name: str) -> None:
    """``/<name>`` in every v1 hierarchy: the kubelet's cgroupRoot must exist. cpuset's
    needs its parent's CPUs and memory nodes before any task can join below it."""
    for hierarchy in cgroup_hierarchies():
        directory = hierarchy / name
        directory.mkdir(exist_ok=True)
        for key in ("cpuset.cpus", "cpuset.mems"):
            source = hierarchy / key
            if source.exists():
                (directory / key).write_text(source.read_text())


def cgroup_pids(name: str) -> set[int]:
    """Every process in a cgroup under ``/<name>`` of any hierarchy."""
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        for procs in (hierarchy / name).rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def remove_cgroup_root(name: str, timeout: float = 20.0) -> list[Path]:
    """Remove ``/<name>`` and everything below it from every hierarchy (deepest first;
    the kernel frees a cgroup a moment after its last task exits, so retry). Returns what
    could not be removed."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for hierarchy in cgroup_hierarchies():
            root = hierarchy / name
            if not root.exists():
                continue
            directories = sorted(
                (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts)
            )
            for directory in [*reversed(directories), root]:
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    left.append(directory)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)


def namespace_pids(inodes: set[int], kinds: tuple[str, ...] = ("net", "mnt")) -> set[int]:
    """Processes whose network or mount namespace is one of ``inodes``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for kind in kinds:
            try:
                if os.stat(entry / "ns" / kind).st_ino in inodes:
                    found.add(int(entry.name))
                    break
            except OSError:
                break
    return found


def kill_until_gone(find_pids: Callable[[], set[int]], timeout: float = 20.0) -> set[int]:
    """SIGKILL whatever ``find_pids()`` returns until it returns nothing (new processes may
    appear while a runtime dies); returns what is left at ``timeout``."""
    deadline = time.monotonic() + timeout
    own = os.getpid()
    while True:
        pids = {p for p in find_pids() if p != own}
        if not pids or time.monotonic() >= deadline:
            return pids
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def host_state(iptables_save: Path | None = None) -> dict[str, list[str]]:
    """What a node could leave behind on the host, as comparable lists: mounts, network
    namespaces, links, routes, iptables rules (when ``iptables_save`` is given), the
    kubelet's sysctls, and cgroups below the root of each hierarchy."""

    def run(*argv: str) -> list[str]:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        return sorted(line for line in result.stdout.splitlines() if line.strip())

    mounts = sorted(
        " ".join((fields[4], fields[fields.index("-") + 1]))
        for fields in (
            line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()
        )
    )
    netns_dir = Path("/run/netns")
    netns = sorted(p.name for p in netns_dir.glob("*")) if netns_dir.is_dir() else []
    state = {
        "mounts": mounts,
        "netns": netns,
        "links": [line.split("@")[0] for line in run("ip", "-o", "link", "show")],
        "routes": run("ip", "route", "show", "table", "all"),
        "sysctls": [f"{name}={read_sysctl(name)}" for name in KUBELET_SYSCTLS],
        "cgroups": sorted(
            str(p.relative_to(CGROUP_FS))
            for hierarchy in cgroup_hierarchies()
            for p in hierarchy.iterdir()
            if p.is_dir()
        ),
    }
    if iptables_save is not None:
        state["iptables"] = [
            line for line in run(str(iptables_save)) if not line.startswith(("#", ":"))
        ]
    return state
