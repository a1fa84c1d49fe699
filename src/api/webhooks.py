"""`/v1/webhook-endpoints`: an organisation's endpoints, their secrets, test pings, delivery log
and manual retries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from src.api.deps import SessionDep, SettingsDep, WebhookManager
from src.api.pagination import CursorQuery, LimitQuery, Page, page_of
from src.models.webhooks import (
    DeliveryRead,
    DeliveryStatus,
    RetryFailed,
    RetryFailedResult,
    WebhookEndpointCreate,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)
from src.services import delivery, webhooks

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such endpoint of yours"}}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "Unsafe URL, unknown event type or a supply chain not yours"}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The endpoint is disabled, or the delivery already succeeded"}
}


@router.post(
    "",
    status_code=201,
    summary="Register a webhook endpoint",
    description="The answer holds the signing secret, shown only this once.",
    responses=INVALID,
)
def create_webhook_endpoint(
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: WebhookManager,
    body: WebhookEndpointCreate,
) -> WebhookEndpointWithSecret:
    created = webhooks.create_endpoint(session, principal=principal, data=body, settings=settings)
    response.headers["Location"] = f"/v1/webhook-endpoints/{created.id}"
    return created


@router.get("", summary="List your webhook endpoints")
def list_webhook_endpoints(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: WebhookManager,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[WebhookEndpointRead]:
    page = webhooks.list_endpoints(session, principal=principal, cursor=cursor, limit=limit)
    return page_of(request, response, page, lambda item: item)


@router.get("/{endpoint_id}", summary="One of your webhook endpoints", responses=NOT_FOUND)
def get_webhook_endpoint(
    session: SessionDep, principal: WebhookManager, endpoint_id: str
) -> WebhookEndpointRead:
    endpoint = webhooks.get_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    return webhooks.endpoint_read(endpoint)


@router.patch(
    "/{endpoint_id}",
    summary="Change an endpoint (enabling it again clears its failure state)",
    responses=NOT_FOUND | INVALID,
)
def update_webhook_endpoint(
    session: SessionDep,
    settings: SettingsDep,
    principal: WebhookManager,
    endpoint_id: str,
    body: WebhookEndpointUpdate,
) -> WebhookEndpointRead:
    return webhooks.update_endpoint(
        session, principal=principal, endpoint_id=endpoint_id, data=body, settings=settings
    )


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    summary="Delete an endpoint and its delivery log",
    responses=NOT_FOUND,
)
def delete_webhook_endpoint(
    session: SessionDep, principal: WebhookManager, endpoint_id: str
) -> Response:
    webhooks.delete_endpoint(session, principal=principal, endpoint_id=endpoint_id)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="Rotate the signing secret",
    description=(
        "Answers the new secret, shown only this once. For 24 hours every delivery carries two "
        "signatures in `webhook-signature`, one per secret, so receivers can switch at leisure."
    ),
    responses=NOT_FOUND,
)
def rotate_webhook_secret(
    session: SessionDep, principal: WebhookManager, endpoint_id: str
) -> WebhookEndpointWithSecret:
    return webhooks.rotate_secret(session, principal=principal, endpoint_id=endpoint_id)


@router.post(
    "/{endpoint_id}/test",
    summary="Send a test event now",
    description=(
        "Sends a `webhook.test` event to this endpoint at once (a single attempt, no retries) "
        "and answers the delivery with its outcome: status, response code, duration."
    ),
    responses=NOT_FOUND,
)
def send_test_webhook(
    session: SessionDep, settings: SettingsDep, principal: WebhookManager, endpoint_id: str
) -> DeliveryRead:
    return delivery.send_test_event(
        session, principal=principal, endpoint_id=endpoint_id, settings=settings
    )


@router.get(
    "/{endpoint_id}/deliveries",
    summary="The endpoint's delivery log",
    description="Each delivery with every attempt: response code, duration, first 1 KB.",
    responses=NOT_FOUND,
)
def list_webhook_deliveries(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: WebhookManager,
    endpoint_id: str,
    status: Annotated[DeliveryStatus | None, Query(description="Only this status")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[DeliveryRead]:
    page = webhooks.list_deliveries(
        session,
        principal=principal,
        endpoint_id=endpoint_id,
        status=status,
        cursor=cursor,
        limit=limit,
    )
    return page_of(request, response, page, lambda item: item)


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    summary="Send a delivery again",
    description="Due at once; the worker sends it with the same `webhook-id`.",
    responses=NOT_FOUND | CONFLICT,
)
def retry_webhook_delivery(
    session: SessionDep, principal: WebhookManager, endpoint_id: str, delivery_id: str
) -> DeliveryRead:
    return webhooks.retry_delivery(
        session, principal=principal, endpoint_id=endpoint_id, delivery_id=delivery_id
    )


@router.post(
    "/{endpoint_id}/retry-failed",
    status_code=202,
    summary="Send every failed delivery since a time again",
    responses=NOT_FOUND | CONFLICT,
)
def retry_failed_webhook_deliveries(
    session: SessionDep, principal: WebhookManager, endpoint_id: str, body: RetryFailed
) -> RetryFailedResult:
    retried = webhooks.retry_failed(
        session, principal=principal, endpoint_id=endpoint_id, since=body.since
    )
    return RetryFailedResult(retried=retried)
