"""`/v1/events`: the event feed, for integrators who pull instead of receiving webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from src.api.deps import EventsReader, SessionDep
from src.api.pagination import LimitQuery, Page
from src.models.events import EventRead
from src.services import event_feed

router = APIRouter(prefix="/v1", tags=["events"])


@router.get(
    "/events",
    summary="The events you may receive, oldest first",
    description=(
        "The same events and bodies as webhooks, under the same rules, checked when you read. "
        "Start without `after`; then always pass the last `next_cursor` you got: it is set even "
        "on the last page, so polling with it returns only newer events. `has_more` says whether "
        "more are waiting now. An event is listed about a second after a worker has processed "
        "it, and kept at least 30 days."
    ),
    responses={400: {"description": "The cursor is not valid"}},
)
def list_events(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: EventsReader,
    after: Annotated[
        str | None, Query(max_length=1000, description="`next_cursor` of the previous page")
    ] = None,
    types: Annotated[
        str | None, Query(max_length=2000, description="Comma-separated event types")
    ] = None,
    limit: LimitQuery = 50,
) -> Page[EventRead]:
    wanted = [t.strip() for t in (types or "").split(",") if t.strip()]
    events, next_cursor, has_more = event_feed.list_events(
        session, principal=principal, after=after, types=wanted, limit=limit
    )
    if has_more and next_cursor is not None:
        next_url = request.url.include_query_params(after=next_cursor)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return Page[EventRead](data=events, next_cursor=next_cursor, has_more=has_more)
