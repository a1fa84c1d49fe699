"""The ceiling of the stack: an `async def` FastAPI route returning pre-encoded bytes, with no
auth and no database. `WEFT_BENCH_BODY_FILE` names the bytes to serve."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response

BODY = Path(os.environ["WEFT_BENCH_BODY_FILE"]).read_bytes()

app = FastAPI()


@app.get("/bare")
async def get_bare() -> Response:
    return Response(BODY, media_type="application/json")
