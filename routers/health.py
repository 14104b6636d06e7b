from fastapi import APIRouter
from fastapi.responses import JSONResponse

from deps import RuntimeDep, SessionDep
from schemas import Readiness
from services import health

router = APIRouter(tags=["health"])


@router.get("/health", summary="The process is up")
def read_health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Readiness,
    summary="The database and Redis answer; the AI models can load (and how re-embedding goes)",
    responses={503: {"model": Readiness, "description": "Not ready: `problems` says why."}},
)
def read_ready(session: SessionDep, runtime: RuntimeDep) -> JSONResponse:
    readiness = health.readiness(session, runtime.ai)
    return JSONResponse(readiness.model_dump(mode="json"), status_code=503 if readiness.problems else 200)
