"""OAuth2 client credentials (RFC 6749 §4.4) and the JWKS that verifies the tokens."""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from src.api.deps import SessionDep, SettingsDep
from src.services import signing_keys
from src.services.clients import authenticate_client
from src.services.tokens import InvalidScope, issue_token

router = APIRouter(tags=["authentication"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str


class OAuthError(BaseModel):
    error: str
    error_description: str


def _oauth_error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers=NO_STORE | headers,
    )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (unquote(client_id), unquote(secret)) if sep else None


FORM = "application/x-www-form-urlencoded"
TOKEN_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        FORM: {
            "schema": {
                "type": "object",
                "required": ["grant_type"],
                "properties": {
                    "grant_type": {"type": "string", "enum": ["client_credentials"]},
                    "scope": {
                        "type": "string",
                        "description": "Space-separated; a subset of the client's scopes",
                    },
                    "client_id": {"type": "string", "description": "client_secret_post only"},
                    "client_secret": {"type": "string", "description": "client_secret_post only"},
                },
            }
        }
    },
}


@dataclass(frozen=True)
class TokenForm:
    """The token request's parameters, or why they could not be read."""

    fields: dict[str, str]
    problem: str | None = None


async def read_token_form(request: Request) -> TokenForm:
    """Parses the body here rather than through `Form()`, so that a body of another media type, or
    one that cannot be parsed, gets an RFC 6749 `invalid_request` and not a problem+json."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM:
        return TokenForm({}, f"Send the parameters as {FORM} (RFC 6749, section 4.4.2).")
    try:
        # Parameters without a value count as omitted (RFC 6749, section 3.1).
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=False)
    except UnicodeDecodeError:
        return TokenForm({}, "The body is not UTF-8.")
    repeated = sorted(name for name, count in Counter(n for n, _ in pairs).items() if count > 1)
    if repeated:
        return TokenForm({}, f"Parameters sent more than once: {', '.join(repeated)}.")
    return TokenForm(dict(pairs))


@router.post(
    "/oauth/token",
    summary="Exchange client credentials for an access token",
    response_model=TokenResponse,
    responses={400: {"model": OAuthError}, 401: {"model": OAuthError}},
    openapi_extra={"requestBody": TOKEN_REQUEST_BODY},
)
def create_token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    form: Annotated[TokenForm, Depends(read_token_form)],
) -> Any:
    if form.problem is not None:
        return _oauth_error(400, "invalid_request", form.problem)
    grant_type = form.fields.get("grant_type")
    client_secret = form.fields.get("client_secret")
    basic = _basic_credentials(request.headers.get("authorization"))
    if basic is not None and client_secret is not None:
        return _oauth_error(
            400, "invalid_request", "Use one client authentication method, not two."
        )
    client_id = form.fields.get("client_id")
    credentials = basic or ((client_id, client_secret) if client_id and client_secret else None)
    if grant_type is None:
        return _oauth_error(400, "invalid_request", "grant_type is required.")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported.")
    client = authenticate_client(session, *credentials) if credentials else None
    if client is None:
        return _oauth_error(
            401,
            "invalid_client",
            "Unknown client, wrong secret, or revoked client.",
            **{"WWW-Authenticate": 'Basic realm="weft"'},
        )
    request.scope.setdefault("state", {})["client_id"] = client.id
    try:
        issued = issue_token(
            session, client=client, requested_scope=form.fields.get("scope"), settings=settings
        )
    except InvalidScope as exc:
        return _oauth_error(400, "invalid_scope", str(exc))
    return JSONResponse(
        TokenResponse(
            access_token=issued.access_token, expires_in=issued.expires_in, scope=issued.scope
        ).model_dump(),
        headers=NO_STORE,
    )


@router.get("/.well-known/jwks.json", summary="Public keys that verify access tokens")
def get_jwks(session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    return signing_keys.jwks(session, token_lifetime_seconds=settings.token_lifetime_seconds)
