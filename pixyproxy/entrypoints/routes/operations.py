"""For operators and orchestrators: liveness, readiness and the Prometheus scrape."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from pixyproxy.entrypoints.dependencies import services
from pixyproxy.entrypoints.request_id import request_id_var
from pixyproxy.entrypoints.routes.paths import twin_routes
from pixyproxy.entrypoints.schemas import Health, NotReady, Ready

router = APIRouter(tags=["operations"])


@twin_routes(router, ["GET"], "/healthz", response_model=Health, summary="The process is alive (no I/O)")
async def healthz() -> Health:
    return Health()


@twin_routes(
    router,
    ["GET"],
    "/readyz",
    response_model=Ready,
    summary="Dependencies are reachable",
    responses={503: {"model": NotReady, "description": "A dependency is not reachable."}},
)
async def readyz(request: Request) -> Response:
    readiness = await services(request).check_readiness()()
    if readiness.ready:
        return JSONResponse(Ready(status="ready", checks=readiness.checks).model_dump())
    failing = ", ".join(f"{name}: {state}" for name, state in readiness.checks.items() if state != "ok")
    body = NotReady(
        detail=f"not ready ({failing})",
        code="not_ready",
        request_id=request_id_var.get(),
        checks=readiness.checks,
    )
    return JSONResponse(body.model_dump(), status_code=503)


@twin_routes(router, ["GET"], "/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.container.metrics().render()
    return Response(body, media_type=content_type)
