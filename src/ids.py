"""Opaque, prefixed, creation-time-sortable ids (`fac_01JD...`), built on ULIDs."""

from ulid import ULID

PREFIXES = frozenset(
    {
        "org",
        "sub",
        "cli",
        "key",
        "fac",
        "sc",
        "lnk",
        "cns",
        "asm",
        "rem",
        "imp",
        "whe",
        "evt",
        "msg",
        "scd",
        "tok",
    }
)


def new_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{ULID()}"
