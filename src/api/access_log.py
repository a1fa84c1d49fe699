"""`/v1/factories/{id}/access-log`: who read a factory's full findings, and when."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from src.api.deps import Admin, SessionDep
from src.api.pagination import CursorQuery, LimitQuery, Page, page_of
from src.models.consents import AccessLogEntryRead
from src.services.consents import list_access_log

router = APIRouter(prefix="/v1", tags=["consents"])


@router.get(
    "/factories/{factory_id}/access-log",
    summary="Full-disclosure reads of a factory's findings, oldest first (programme)",
    responses={404: {"description": "No such factory"}},
)
def list_factory_access_log(
    request: Request,
    response: Response,
    session: SessionDep,
    _: Admin,
    factory_id: str,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[AccessLogEntryRead]:
    page = list_access_log(session, factory_id=factory_id, cursor=cursor, limit=limit)
    return page_of(request, response, page, lambda item: item)
