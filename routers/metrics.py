"""GET /metrics: Prometheus's text format (services/metrics.py), for the clients METRICS_ALLOW
names. main.py includes it only when METRICS_ENABLED; an operator's page, not the API's, so it
is left out of /openapi.json."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

import edge
from deps import RuntimeDep, SessionDep
from errors import NotFound
from services.metrics import CONTENT_TYPE, Metrics

router = APIRouter(include_in_schema=False)

# Headers a proxy puts the client's address in: a request with one came through a proxy.
PROXY_HEADERS = (edge.FORWARDED_FOR, b"forwarded", b"x-real-ip")


async def admitted_metrics(request: Request, runtime: RuntimeDep) -> Metrics:
    """The app's metrics, for a client METRICS_ALLOW names (403 metrics_not_allowed else).
    The client is the peer, or behind TRUSTED_PROXIES the address they forwarded; a proxy the
    app does not trust (its headers are there, its peer is not in TRUSTED_PROXIES) hides the
    client, so the request is refused."""
    metrics = runtime.metrics
    if metrics is None:
        raise NotFound("page")
    scope = request.scope
    peer = edge.parse_address(scope["client"][0]) if scope.get("client") else None
    proxied = any(name in PROXY_HEADERS for name, _ in scope["headers"])
    stranger = proxied and (peer is None or not edge.is_trusted(peer, metrics.trusted_proxies))
    metrics.admit(edge.client_ip(scope, metrics.trusted_proxies), forwarded_by_stranger=stranger)
    return metrics


AdmittedMetrics = Annotated[Metrics, Depends(admitted_metrics)]


@router.get("/metrics")
def read_metrics(metrics: AdmittedMetrics, session: SessionDep) -> Response:
    return Response(metrics.scrape(session), media_type=CONTENT_TYPE)
