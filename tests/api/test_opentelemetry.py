"""FastAPI's own OpenTelemetry spans reach a configured tracer provider only with
`WEFT_OPENTELEMETRY` set. Each case runs in a process of its own: OpenTelemetry's global tracer
provider can be set once per process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from src.config import PROJECT_ROOT

SERVE_ONE_REQUEST = """
import sys

from fastapi.testclient import TestClient
from opentelemetry import trace

from src.config import Settings
from src.main import create_app


class RecordingTracer(trace.NoOpTracer):
    def start_span(self, name, *args, **kwargs):
        print("span:", name, flush=True)
        return super().start_span(name, *args, **kwargs)


class RecordingProvider(trace.TracerProvider):
    def get_tracer(self, *args, **kwargs):
        return RecordingTracer()


trace.set_tracer_provider(RecordingProvider())
settings = Settings(
    database_url=sys.argv[1], opentelemetry=sys.argv[2] == "on", log_level="WARNING"
)
with TestClient(create_app(settings)) as client:
    assert client.get("/healthz").status_code == 200
"""


def _spans(database_url: str, setting: str) -> list[str]:
    finished = subprocess.run(
        [sys.executable, "-c", SERVE_ONE_REQUEST, database_url, setting],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [
        line.removeprefix("span: ")
        for line in finished.stdout.splitlines()
        if line.startswith("span: ")
    ]


@pytest.mark.usefixtures("engine")
def test_spans_reach_the_configured_provider_with_the_setting_on(database_url: str) -> None:
    assert "fastapi.endpoint" in _spans(database_url, "on")


@pytest.mark.usefixtures("engine")
def test_no_spans_with_the_setting_off(database_url: str) -> None:
    assert _spans(database_url, "off") == []
