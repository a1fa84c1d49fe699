"""The ceiling of the stack: an `async def` FastAPI route returning pre-encoded bytes, with no
auth and no database. `WEFT_BENCH_BODY_FILE` names the bytes to serve; `WEFT_BENCH_SPIN_US`, if
set, keeps the CPU busy that many microseconds per request first (for `bench.budget`)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response

BODY = Path(os.environ["WEFT_BENCH_BODY_FILE"]).read_bytes()
SPIN_SECONDS = int(os.environ.get("WEFT_BENCH_SPIN_US", "0")) / 1_000_000

app = FastAPI()


@app.get("/bare")
async def get_bare() -> Response:
    if SPIN_SECONDS:
        until = time.perf_counter() + SPIN_SECONDS
        while time.perf_counter() < until:
            pass
    return Response(BODY, media_type="application/json")
