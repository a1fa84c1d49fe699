"""`/v1/imports`: the programme uploads factories, assessments and survey files."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile

from src.api.deps import Admin, SessionDep, SettingsDep
from src.api.pagination import CursorQuery, LimitQuery, Page, page_of
from src.api.problems import problem
from src.models.imports import ImportKind, ImportRead
from src.services import imports as service

router = APIRouter(prefix="/v1", tags=["imports"])


@router.post(
    "/imports",
    status_code=201,
    summary="Import a file of factories, assessments or survey responses (programme)",
    description=(
        "Multipart form: `kind` (`factories`, `assessments` or `survey`) and `file` (UTF-8). "
        "Every row is checked and each bad one listed as `{line, field, message}`, `line` "
        "counting from the top of the file (a CSV header is line 1).\n\n"
        "- `factories` (CSV): `programme_code,name,country,address,os_id,sector,workers_total,"
        "workers_women,status,enrolled_on`. A row updates the factory with its `programme_code` "
        "or enrols one; a blank cell leaves that field as it is. All or nothing.\n"
        "- `assessments` (JSON Lines): `factory` (programme code or id), `cycle`, `kind`, "
        "`announced`, `visit_start`, `visit_end`, `catalogue_version` (default: current), "
        "`publish`, `findings` (`[{question, compliant, note}]`). Each assessment is written on "
        "its own: a bad one leaves nothing behind, the good ones stay (`partial`).\n"
        "- `survey` (CSV): `period,buyer,factory,question,rating`. All or nothing.\n\n"
        "Importing the same file again changes nothing; the counts say `unchanged`."
    ),
    responses={
        413: problem("The file is larger than the import limit"),
        422: problem("`kind` or `file` is missing or not valid"),
    },
)
def create_import(
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: Admin,
    kind: Annotated[ImportKind, Form(description="What the file holds")],
    file: Annotated[UploadFile, File(description="The CSV or JSON Lines file, UTF-8")],
) -> ImportRead:
    record = service.run_import(
        session,
        kind=kind,
        filename=file.filename or "",
        source=file.file,
        settings=settings,
        client_id=principal.client_id,
    )
    response.headers["Location"] = f"/v1/imports/{record.id}"
    return service.import_read(record)


@router.get(
    "/imports",
    response_model=Page[ImportRead],
    summary="List imports, oldest first (programme)",
)
def list_imports(
    request: Request,
    response: Response,
    session: SessionDep,
    _: Admin,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[ImportRead]:
    page = service.list_imports(session, cursor=cursor, limit=limit)
    return page_of(request, response, page, lambda item: item)


@router.get(
    "/imports/{import_id}",
    summary="One import with its counts and bad rows (programme)",
    responses={404: problem("No such import")},
)
def get_import(session: SessionDep, _: Admin, import_id: str) -> ImportRead:
    return service.get_import(session, import_id=import_id)
