"""Which route a request is for, found in one place: the route the router put in the scope, or, for a
request answered before routing (a refused key, a body too large), the route the router would pick.

Routes are opened out of included routers; the router's own `matches` decides, so this cannot drift from
how requests are actually routed.
"""

from collections.abc import Iterable, Iterator

from starlette.routing import BaseRoute, Match

UNMATCHED = "<unmatched>"


def leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes themselves; FastAPI keeps an included router as one entry of the app's routes."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from leaf_routes(included.routes)
        else:
            yield route


def template(route: BaseRoute | None) -> str:
    """The path template (convertors left out), with and without a trailing slash counted as one route."""
    path = getattr(route, "path_format", None)
    return (path.rstrip("/") or "/") if path else UNMATCHED


class RouteTable:
    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self._source = routes
        self._leaves: list[BaseRoute] | None = None

    @property
    def leaves(self) -> list[BaseRoute]:
        if self._leaves is None:  # on first use: every route is registered by then
            self._leaves = list(leaf_routes(self._source))
        return self._leaves

    def route_for(self, scope) -> BaseRoute | None:
        """The matched route: the router's choice when it ran, else a full match, else a partial one."""
        route = scope.get("route")
        if route is not None:
            return route
        partial = None
        for candidate in self.leaves:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                return candidate
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        return partial

    def allowed_methods(self, scope) -> list[str]:
        """Every method the path's own routes serve (one route per method may share a path). The path's
        routes are those of the first template that matches it: `/image/jobs` is not `/image/{guid}`."""
        allowed: set[str] = set()
        first = None
        for candidate in self.leaves:
            match, _ = candidate.matches(scope)
            if match is Match.NONE:
                continue
            first = first or template(candidate)
            if template(candidate) == first:
                allowed.update(getattr(candidate, "methods", None) or ())
        return sorted(allowed)
