"""Routes that serve themselves: FastAPI documents them from their declaration, and their
endpoint takes the `Request`, reads what it needs and answers a `Response`. For the hottest reads
alone (the compliance summary, the factory page): FastAPI's request handling — solving
dependencies, parsing parameters, even for an endpoint that takes none — was 13 % of the
summary's time in-process and a fifth of the page's (docs/benchmarks.md)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from src.api.deps import documented_security

QueryModel = TypeVar("QueryModel", bound=BaseModel)


class ServedAsIs(APIRoute):
    """A route whose endpoint takes only the `Request`, handed to it as is: FastAPI's hook for
    custom route classes."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        dependant = self.dependant
        solved = (
            dependant.path_params, dependant.query_params, dependant.header_params,
            dependant.cookie_params, dependant.body_params, dependant.dependencies,
        )  # fmt: skip
        if any(solved) or dependant.request_param_name is None:
            raise TypeError(f"{self.name} must take only the Request: nothing else is solved")
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


def add_served_as_is(
    app: FastAPI,
    path: str,
    endpoint: Callable[[Request], Coroutine[Any, Any, Response]],
    *,
    scopes: Sequence[str],
    parameters: list[dict[str, Any]],
    **documentation: Any,
) -> None:
    """Adds a GET route serving itself to the app itself, not through a router: FastAPI 0.165
    resolves an included router as a branch on every request it serves. `parameters` and the
    `scopes` the endpoint checks are documented as FastAPI would document them."""
    app.router.add_api_route(
        path,
        endpoint,
        methods=["GET"],
        response_class=Response,
        openapi_extra={"parameters": parameters, **documented_security(scopes)},
        route_class_override=ServedAsIs,
        **documentation,
    )


def query_of(request: Request, model: type[QueryModel]) -> QueryModel:
    """The request's query parameters validated by `model`, as FastAPI validates a query model:
    a bad value is the same 422 problem, naming the parameter."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": ("query", *problem["loc"])} for problem in error.errors()]
        ) from None


def documented_query(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The OpenAPI parameters FastAPI writes for `Annotated[model, Query()]`, for a route that
    validates its query itself (`query_of`)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema["properties"].items():
        documented = {
            key: value for key, value in field.items() if (key, value) != ("default", None)
        }
        # pydantic leaves the title off a field that refers to another schema; FastAPI does not.
        documented.setdefault("title", name.replace("_", " ").title())
        parameter = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": documented,
        }
        if "description" in documented:
            parameter["description"] = documented["description"]
        parameters.append(parameter)
    return parameters
