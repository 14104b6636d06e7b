import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def readiness_problems(session: Session) -> list[str]:
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        log.exception("database not reachable")
        return ["database unreachable"]
    return []
