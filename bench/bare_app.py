"""The ceiling of the stack: `async def` FastAPI routes returning pre-encoded bytes, with no auth
and no database. `WEFT_BENCH_BODIES` names a directory: each file `<name>.json` in it is served
at `/bare/<name>`, so that each read is compared with the same bytes as its own answer.
`WEFT_BENCH_SPIN_US`, if set, keeps the CPU busy that many microseconds per request first (for
`bench.budget`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response

SPIN_SECONDS = int(os.environ.get("WEFT_BENCH_SPIN_US", "0")) / 1_000_000

app = FastAPI()


def _serving(body: bytes) -> Callable[[], Coroutine[Any, Any, Response]]:
    async def get_bare() -> Response:
        if SPIN_SECONDS:
            until = time.perf_counter() + SPIN_SECONDS
            while time.perf_counter() < until:
                pass
        return Response(body, media_type="application/json")

    return get_bare


# One fixed path per body: a path parameter would add FastAPI's parsing to the ceiling.
for body_file in sorted(Path(os.environ["WEFT_BENCH_BODIES"]).glob("*.json")):
    app.add_api_route(f"/bare/{body_file.stem}", _serving(body_file.read_bytes()))
