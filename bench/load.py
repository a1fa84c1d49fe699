"""Drive a server with wrk and read its figures; start and stop uvicorn servers for a benchmark."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

WRK_HINT = "wrk is needed for the HTTP benchmarks: `apt-get install wrk` (Debian/Ubuntu)."


@dataclass(frozen=True)
class LoadResult:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    base: str
    pid: int


@contextmanager
def uvicorn_server(app: str, env: dict[str, str], *, factory: bool = False) -> Iterator[Server]:
    """One uvicorn worker on a free loopback port, for as long as the block runs."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if factory:
        command.append("--factory")
    process = subprocess.Popen(
        command, env=os.environ | env | {"WEFT_LOG_LEVEL": "WARNING"}, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(base + "/healthz" if "main" in app else base + "/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"{app} did not start on {base}")
        yield Server(base, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk printed a latency this does not read: {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _percentile(output: str, percent: int) -> str:
    """A line of wrk's latency distribution; anchored, as the stdev column also ends in `%`."""
    match = re.search(rf"^\s+{percent}%\s+(\S+)\s*$", output, re.MULTILINE)
    if match is None:
        raise ValueError(f"wrk printed no {percent}th percentile:\n{output}")
    return match.group(1)


def wrk(
    name: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    paths: list[str] | None = None,
    seconds: int = 10,
    connections: int = 16,
) -> LoadResult:
    """wrk -t1 -cN with latency percentiles; with `paths`, each request takes the next path."""
    if shutil.which("wrk") is None:
        raise SystemExit(WRK_HINT)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for key, value in (headers or {}).items():
        command += ["-H", f"{key}: {value}"]
    with tempfile.TemporaryDirectory() as tmp:
        if paths:
            script = Path(tmp) / "paths.lua"
            quoted = ",".join(f'"{path}"' for path in paths)
            script.write_text(
                f"local paths = {{{quoted}}}\nlocal i = 0\n"
                "request = function()\n  i = i % #paths + 1\n"
                "  return wrk.format(nil, paths[i])\nend\n"
            )
            command += ["-s", str(script)]
        output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _milliseconds(_percentile(output, 50))
    p99 = _milliseconds(_percentile(output, 99))
    errors_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return LoadResult(name, rps, p50, p99, int(errors_match.group(1)) if errors_match else 0)
