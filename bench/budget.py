"""What a ratio to the bare endpoint allows: the bare endpoint again, each request first keeping
the CPU busy for a set time, as a fraction of the bare endpoint's requests/s in the same run.

A route reaching 40 % of the ceiling may spend only as much CPU per request over the bare
endpoint as the spin that reaches 40 % here; on a VM, a slower server also pays more per
response written (the client's core sleeps between responses and is woken for each).

    python -m bench.budget [MICROSECONDS ...]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.load import LoadResult, uvicorn_server, wrk

SECONDS = 10
SPINS_US = (0, 50, 100, 150, 200, 250)
# The size of a compliance summary (the bench's full summaries are 5–7 KB, public ones ~2 KB).
BODY_BYTES = 4096


def _bare(spin_us: int, bodies: str) -> LoadResult:
    env = {"WEFT_BENCH_BODIES": bodies, "WEFT_BENCH_SPIN_US": str(spin_us)}
    with uvicorn_server("bench.bare_app:app", env) as server:
        return wrk(f"bare + {spin_us} µs of CPU", f"{server.base}/bare/body", seconds=SECONDS)


def main(spins: list[int]) -> None:
    with tempfile.TemporaryDirectory() as bodies:
        Path(bodies, "body.json").write_bytes(b'{"padding":"' + b"x" * (BODY_BYTES - 14) + b'"}')
        ceiling = _bare(0, bodies).requests_per_second
        print(f"{'bare':<30} {ceiling:,.0f} req/s", flush=True)
        for spin in spins:
            result = _bare(spin, bodies)
            print(
                f"{result.name:<30} {result.requests_per_second:,.0f} req/s "
                f"({result.requests_per_second / ceiling:.0%}), p50 {result.p50_ms:.1f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main([int(value) for value in sys.argv[1:]] or [spin for spin in SPINS_US if spin])
