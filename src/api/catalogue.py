"""`GET /v1/catalogue`: the versioned compliance catalogue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Security

from src.api.deps import SessionDep, get_principal
from src.api.problems import problem
from src.models.catalogue import CatalogueRead
from src.services import catalogue as service

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.get(
    "/catalogue",
    summary="The compliance catalogue: clusters, compliance points and questions",
    description=(
        "The current version (the newest published) unless `version` names another. Findings "
        "always refer to the version they were assessed against."
    ),
    dependencies=[Security(get_principal)],
    responses={404: problem("No such catalogue version")},
)
def get_catalogue(
    session: SessionDep,
    version: Annotated[
        str | None, Query(max_length=20, description="A catalogue version", examples=["2026.1"])
    ] = None,
) -> CatalogueRead:
    return service.get_catalogue(session, version=version)
