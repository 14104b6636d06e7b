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
    summary="The database and Redis answer; the AI models can load",
    responses={503: {"model": Readiness, "description": "Not ready: `problems` says why."}},
)
def read_ready(session: SessionDep, runtime: RuntimeDep) -> JSONResponse:
    problems = health.readiness_problems(session, runtime.ai)
    status_code = 503 if problems else 200
    return JSONResponse(
        {"status": "fail" if problems else "ok", "problems": problems}, status_code=status_code
    )
