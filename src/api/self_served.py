"""Routes that serve themselves: FastAPI documents them from their declaration, and their
endpoint takes the `Request`, reads what it needs and answers a `Response`. For the hottest reads
alone (the compliance summary, the factory page): FastAPI's request handling — solving
dependencies, parsing parameters, even for an endpoint that takes none — was 13 % of the
summary's time in-process and a fifth of the page's (docs/benchmarks.md)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

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
