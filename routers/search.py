from typing import Annotated

from fastapi import APIRouter, Query

from deps import DatabaseDep, Pagination, RuntimeDep, TokenClaims
from routers.responses import AUTHENTICATED, errors, refusal
from schemas import SearchPage, SearchRequest
from services import search as search_service

router = APIRouter(tags=["posts"], responses=AUTHENTICATED)

REFUSED_QUERY = refusal(
    "The request failed validation (q blank or over 100 characters; a date, sort or mode that is "
    "none), or it asks nothing: a query with no words to search for (`no_search_terms`), since "
    "after until (`invalid_date_range`).",
    "no_search_terms",
    "invalid_date_range",
)


@router.get(
    "/search",
    response_model=SearchPage,
    summary="Search the posts I may read",
    responses=errors(422, notes={422: REFUSED_QUERY}),
)
async def search_posts(
    request: Annotated[SearchRequest, Query()],
    page: Pagination,
    database: DatabaseDep,
    claims: TokenClaims,
    runtime: RuntimeDep,
) -> SearchPage:
    return await search_service.answer(
        database, claims=claims, request=request, offset=page.offset, limit=page.limit, ai=runtime.ai
    )
