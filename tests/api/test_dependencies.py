"""Every dependency is `async def`: FastAPI runs a plain `def` one in the threadpool, a hop on
every request that uses it (CONTRIBUTING, rule 8)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from src.main import ROUTERS


def _runs_in_the_loop(call: Any) -> bool:
    target = call if inspect.isfunction(call) else getattr(call, "__call__", call)  # noqa: B004
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _dependencies(dependency)


def test_no_dependency_hops_to_the_threadpool() -> None:
    routes = [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]
    assert len(routes) > 50
    blocking = {
        f"{route.path}: {dependency.call!r}"
        for route in routes
        for dependency in _dependencies(route.dependant)
        if dependency.call is not None and not _runs_in_the_loop(dependency.call)
    }
    assert blocking == set()
