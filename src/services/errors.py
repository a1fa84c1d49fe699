"""Domain errors. Services raise these; `src.api.errors` turns each into RFC 9457 problem+json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class FieldError:
    field: str
    message: str
    location: str = "body"

    def as_dict(self) -> dict[str, Any]:
        return {"in": self.location, "field": self.field, "message": self.message}


@dataclass
class DomainError(Exception):
    detail: str
    errors: list[FieldError] = field(default_factory=list)

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __str__(self) -> str:
        return self.detail


class BadRequest(DomainError):
    pass


class InvalidCursor(BadRequest):
    slug = "invalid-cursor"
    title = "The cursor is not valid"


class InvalidInput(DomainError):
    status = 422
    slug = "validation-error"
    title = "The request is not valid"

    @classmethod
    def at(cls, field_name: str, message: str, location: str = "body") -> InvalidInput:
        return cls(message, [FieldError(field_name, message, location)])


class NotFound(DomainError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict with the current state"


class Forbidden(DomainError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class InsufficientScope(DomainError):
    status = 403
    slug = "insufficient-scope"
    title = "The token lacks a required scope"


class ConsentRequired(DomainError):
    status = 403
    slug = "consent-required"
    title = "The factory has not consented to disclose its full findings to you"


class Unauthenticated(DomainError):
    status = 401
    slug = "invalid-token"
    title = "Missing or invalid access token"


class TokenMissing(Unauthenticated):
    """No bearer token at all, so the challenge names no error (RFC 6750 §3.1)."""
