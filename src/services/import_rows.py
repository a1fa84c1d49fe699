"""What every import reads with: the uploaded bytes as text lines, a CSV header, and pydantic
errors as row errors `{line, field, message}`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from pydantic import ValidationError

from src.models.imports import ImportRowError

# A line longer than this is refused without being held whole in memory.
MAX_LINE_BYTES = 8 * 1024 * 1024


def decode_lines(
    source: BinaryIO,
    errors: list[ImportRowError],
    *,
    on_read: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """The file's lines as UTF-8 text, read one at a time (a BOM is dropped). A line that is not
    UTF-8 or is too long is reported and read as an empty line, so every later line keeps its
    number. `on_read` is told how many bytes each step read."""
    number = 0
    while raw := source.readline(MAX_LINE_BYTES):
        number += 1
        if on_read is not None:
            on_read(len(raw))
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            _skip_rest_of_line(source, on_read)
            errors.append(
                ImportRowError(
                    line=number, field="line", message=f"Longer than {MAX_LINE_BYTES} bytes."
                )
            )
            yield "\n"
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(
                ImportRowError(
                    line=number,
                    field="line",
                    message=f"Not valid UTF-8: byte 0x{raw[exc.start]:02x} at position "
                    f"{exc.start + 1}; save the file as UTF-8.",
                )
            )
            yield "\n"
            continue
        yield text.removeprefix("\ufeff") if number == 1 else text


def _skip_rest_of_line(source: BinaryIO, on_read: Callable[[int], None] | None) -> None:
    while rest := source.readline(MAX_LINE_BYTES):
        if on_read is not None:
            on_read(len(rest))
        if rest.endswith(b"\n"):
            return


def read_header(
    header: Sequence[str] | None, expected: Sequence[str], errors: list[ImportRowError]
) -> dict[str, int] | None:
    """The position of each expected column, or None (with line-1 errors added) when the rows
    cannot be read: no header, or a missing or repeated column. An unknown column is reported too,
    but the rows are still checked."""
    spelled = ",".join(expected)
    if header is None:
        errors.append(
            ImportRowError(
                line=1, field="header", message=f"The file is empty; expected {spelled}."
            )
        )
        return None
    columns: dict[str, int] = {}
    readable = True
    for position, raw in enumerate(header):
        name = raw.strip()
        if name in columns:
            errors.append(ImportRowError(line=1, field=name, message="Column appears twice."))
            readable = False
        elif name not in expected:
            errors.append(
                ImportRowError(line=1, field=name, message=f"Unknown column; expected {spelled}.")
            )
        columns.setdefault(name, position)
    for name in expected:
        if name not in columns:
            errors.append(ImportRowError(line=1, field=name, message="Missing column."))
            readable = False
    return {name: columns[name] for name in expected} if readable else None


def validation_errors(line: int, exc: ValidationError, *, whole: str) -> list[ImportRowError]:
    """One row error per problem pydantic found; `whole` names the field of a problem with the
    row as a whole (its syntax, or a rule across fields)."""
    return [
        ImportRowError(
            line=line,
            field=".".join(str(part) for part in error["loc"]) or whole,
            message=error["msg"].removeprefix("Value error, "),
        )
        for error in exc.errors()
    ]
