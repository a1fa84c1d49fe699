"""Settings: every knob is a `WEFT_`-prefixed environment variable (see README, "Configuration")."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'var' / 'weft.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEFT_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    base_url: str = "http://127.0.0.1:8000"

    token_issuer: str = "https://weft.example"
    token_audience: str = "weft-api"
    token_lifetime_seconds: int = Field(default=900, ge=60, le=86400)
    token_leeway_seconds: int = Field(default=30, ge=0, le=300)

    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_import_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)

    rate_limit_per_minute: int = Field(default=600, ge=1)
    token_rate_limit_per_minute: int = Field(default=60, ge=1)
    redis_url: str | None = None
    rate_limit_key_prefix: str = Field(default="weft-ratelimit", min_length=1)

    scorecard_min_suppliers: int = Field(default=5, ge=2)
    scorecard_min_buyers: int = Field(default=5, ge=2)

    webhook_allow_insecure: bool = False
    webhook_allow_networks: Annotated[
        list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode
    ] = Field(default_factory=list)
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=60)
    webhook_concurrency: int = Field(default=64, ge=1, le=1024)
    webhook_lease_seconds: int = Field(default=60, ge=5)
    access_log_flush_seconds: float = Field(default=1.0, ge=0, le=60)
    # Six measured best for a worker under 16 concurrent reads (docs/benchmarks.md).
    read_connections: int = Field(default=6, ge=1, le=64)
    opentelemetry: bool = False

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must be a sqlite:// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://"):
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("webhook_allow_networks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
