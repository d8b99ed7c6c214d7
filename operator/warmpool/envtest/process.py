"""One component process: started in its own process group, logged to a file, stopped
for sure (SIGTERM to the group, SIGKILL after a grace period)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path


class ComponentProcess:
    """A running component (etcd, kube-apiserver, ...) whose output goes to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self.started_at = time.monotonic()
        with log_path.open("ab") as log:
            log.write(f"# {' '.join(self.argv)}\n".encode())
            log.flush()
            # A new session puts the component (and anything it forks) in its own process
            # group, so stop() can signal all of it and Ctrl-C in a terminal does not race
            # the orderly teardown.
            self._popen = subprocess.Popen(
                [*_orphan_guard(), *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The process id (also its process-group id)."""
        return self._popen.pid

    def exit_code(self) -> int | None:
        """The exit status (negative: killed by that signal) once the process has exited,
        else None. It does not reap the process: see stop()."""
        if self._popen.returncode is not None:
            return self._popen.returncode
        info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def respawn(self) -> ComponentProcess:
        """A new process with this one's command line, directory, environment and log (the
        log is appended to, with the command line as a separator). Stop this one first."""
        return ComponentProcess(self.name, self.argv, self.log_path, cwd=self.cwd, env=self.env)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the component's log."""
        return tail(self.log_path, lines)

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM the process group, wait up to ``grace_seconds``, then SIGKILL it.

        The leader is reaped only after the group's SIGKILL: until then it exists (if
        only as a zombie), so its process-group id cannot have been reused by someone
        else's processes that the signal would hit."""
        if self._popen.returncode is not None:
            return
        if self.exit_code() is None:
            _signal_group(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_seconds
            while self.exit_code() is None and time.monotonic() < deadline:
                time.sleep(0.05)
        # Children that outlived the leader (or a leader that ignored SIGTERM) go now.
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout=grace_seconds)

    def kill(self) -> None:
        """SIGKILL the process group at once (a crash: no shutdown code runs) and reap it."""
        if self._popen.returncode is not None:
            return
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout=30)


def _orphan_guard() -> list[str]:
    """``setpriv --pdeathsig KILL --``: the component dies with the Python process that
    started it even when that process is killed before its teardown runs (SIGKILL, a hard
    timeout), instead of leaving an apiserver running on a shared machine. The kernel
    signals when the *thread* that forked exits, so only the main thread uses it; a
    cluster started from another thread relies on stop() alone."""
    if threading.current_thread() is not threading.main_thread():
        return []
    # util-linux, Essential in Debian; found even when a caller's PATH is minimal.
    setpriv = shutil.which("setpriv") or shutil.which("setpriv", path="/usr/bin:/bin")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def kill_group(pgid: int, grace_seconds: float = 10.0) -> None:
    """Stop a process group known only by id (``down`` after a crashed ``up``)."""
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
