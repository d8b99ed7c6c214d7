"""ComponentProcess.kill / respawn, the pieces LocalCluster.restart_apiserver and restart_etcd
are made of, on a real (trivial) process: no control plane needed."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from warmpool.envtest import poll_until
from warmpool.envtest.process import ComponentProcess

# Prints its working directory and one variable, then waits to be stopped.
PROGRAM = (
    "import os, sys, time; print(os.getcwd(), os.environ['MARK'], flush=True); time.sleep(600)"
)


def test_kill_is_a_sigkill_and_respawn_runs_the_same_command_in_the_same_place(
    tmp_path: Path,
) -> None:
    log = tmp_path / "component.log"
    first = ComponentProcess(
        "demo", [sys.executable, "-c", PROGRAM], log, cwd=tmp_path, env={"MARK": "same-env"}
    )
    second: ComponentProcess | None = None
    try:
        poll_until(lambda: "same-env" in log.read_text(), what="first output", timeout=30)
        first.kill()
        assert first.exit_code() == -signal.SIGKILL

        second = first.respawn()
        assert second.pid != first.pid
        assert (second.name, second.argv, second.cwd, second.env) == (
            first.name,
            first.argv,
            first.cwd,
            first.env,
        )
        poll_until(lambda: log.read_text().count("same-env") == 2, what="second output", timeout=30)
        # One log, appended to: both runs' command lines and output, in order.
        text = log.read_text()
        assert text.count(f"# {sys.executable} -c") == 2
        assert text.count(f"{tmp_path} same-env") == 2
        assert second.exit_code() is None
    finally:
        first.stop(grace_seconds=5)
        if second is not None:
            second.stop(grace_seconds=5)
    assert second.exit_code() is not None
