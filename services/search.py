"""Search: the posts a user may read that hold the words of a query (GET /search, and a board
list's `q`), and the index it reads, kept in step with every write of a title, content or comment.

Matching is keyword matching on the search index (search_text.py says what a word is,
crud/search.py how each database finds them). The access rule is services/access.post_readable_by
(as post_reader_rule), applied by the same statement that matches: what a user may not read is
never in the answer, nor in its total. Visibility is read from the posts and comments when
searching, so hiding, deleting or restoring one needs no change to the index.

By meaning (`mode=semantic`) the posts nearest the query in the sentence encoder's space are
found among the readable ones (services/search_semantic.py); `hybrid` (the default) fuses that
ranking with the keyword one by reciprocal rank fusion, so a query that shares no word with a post
still finds it, and one that does ranks it high. Both look at the best CANDIDATES of each ranking,
so their `total` counts those the filters keep. When the model cannot embed the query now (still
loading; the models run on Celery workers), the answer is by keyword and `fallback` says why.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.orm import Session

import search_text
from crud import posts as posts_crud
from crud import search as search_crud
from crud.authors import with_author
from crud.posts import SearchResults
from crud.search import Keywords
from database import RequestSlots
from errors import Unprocessable
from models import User
from schemas import SearchHit, SearchPage, SearchRequest, SearchSort
from search_text import Query
from services import access, search_semantic, security
from services.ai.runtime import NO_APP, AIRuntime
from services.security import AccessClaims

DAY = timedelta(days=1)
CANDIDATES = search_semantic.CANDIDATES  # the best of each ranking a hybrid answer fuses
# How many of the newest matches of the posts, and of the comments, a keyword search ranks: a
# common word is in most posts, and ranking them all would cost a search more than a site's size
# allows. A wider window when the readable matches in one do not reach the page asked for (a
# narrow filter, a reader kept out of most boards, a deep page); at last every match.
WINDOWS = (search_crud.FIRST_WINDOW, 8 * search_crud.FIRST_WINDOW, None)


@dataclass(frozen=True)
class Filters:
    """What narrows a search besides its words."""

    board_id: int | None = None
    author: str | None = None
    since: date | None = None  # written on this day (UTC) or later
    until: date | None = None  # written on this day (UTC) or earlier


def parsed(q: str) -> Query:
    """The query's terms; 422 for a query with nothing to search for (only spaces and marks)."""
    query = search_text.query(q)
    if not query:
        raise Unprocessable("the query has no words to search for", code="no_search_terms")
    return query


async def answer(
    db: RequestSlots,
    *,
    claims: AccessClaims,
    request: SearchRequest,
    offset: int,
    limit: int,
    ai: AIRuntime = NO_APP,
) -> SearchPage:
    """GET /search: the user the token's claims name and their page (search), in one trip to a
    worker thread. A search's statements take milliseconds, too long for the event loop even
    in-process; a route that took the session and the user as dependencies made two more trips
    and cost a search about 1 ms more."""

    def page(session: Session) -> SearchPage:
        user = security.claimed_user(session, claims)
        return search(session, user=user, request=request, offset=offset, limit=limit, ai=ai)

    return await db.run(page, inline=False)


def search(
    session: Session,
    *,
    user: User,
    request: SearchRequest,
    offset: int,
    limit: int,
    ai: AIRuntime = NO_APP,
) -> SearchPage:
    """One page of the posts the user may read that match the request, best first or newest
    first, each with a snippet of where it matched."""
    query = parsed(request.q)
    filters = Filters(request.board_id, request.author, request.since, request.until)
    if filters.since is not None and filters.until is not None and filters.since > filters.until:
        raise Unprocessable("since is after until", code="invalid_date_range")
    fallback = None
    if request.mode != "keyword":
        nearest = search_semantic.nearest_post_ids(
            session, ai=ai, reader=user, q=request.q, board_id=filters.board_id
        )
        if not isinstance(nearest, str):
            return _by_meaning(
                session,
                user=user,
                query=query,
                request=request,
                filters=filters,
                nearest=nearest,
                offset=offset,
                limit=limit,
            )
        fallback = f"answered by keyword: {nearest}"
    found = _keyword_results(
        session, user=user, query=query, filters=filters, sort=request.sort, offset=offset, limit=limit
    )
    return SearchPage(
        items=hits(session, query=query, rows=found.rows),
        total=found.total,
        total_exact=not found.overflow,
        offset=offset,
        limit=limit,
        mode="keyword",
        fallback=fallback,
    )


def _by_meaning(
    session: Session,
    *,
    user: User,
    query: Query,
    request: SearchRequest,
    filters: Filters,
    nearest: list[int],
    offset: int,
    limit: int,
) -> SearchPage:
    """A semantic or hybrid page: the nearest posts by meaning (fused with the best keyword
    matches for hybrid) that meet the filters, best first or newest first."""
    keyword: list[int] = []
    # Every post near enough was taken, and every keyword match (or there may be more).
    exact = len(nearest) < CANDIDATES
    if request.mode == "hybrid":
        best = keyword_candidates(session, user=user, query=query, filters=filters, limit=CANDIDATES)
        keyword = [post_id for post_id, _ in best]
        exact = exact and len(keyword) < CANDIDATES
    ranked = search_semantic.fuse([keyword, nearest]) if keyword else nearest
    rule = access.post_reader_rule(user)
    found = posts_crud.readable_ids_among(
        session, ranked, readable=rule.condition, readable_params=rule.params, **_filter_values(filters)
    )
    if request.sort == "latest":
        found.sort(reverse=True)
    page = posts_crud.search_rows(
        session, [(post_id, None) for post_id in found[offset : offset + limit]], total=len(found)
    )
    return SearchPage(
        items=hits(session, query=query, rows=page, keyword_ids=set(keyword)),
        total=len(found),
        total_exact=exact,
        offset=offset,
        limit=limit,
        mode=request.mode,
        fallback=None,
    )


def keyword_candidates(
    session: Session, *, user: User, query: Query, filters: Filters, limit: int
) -> list[tuple[int, float]]:
    """The `limit` best keyword matches the user may read, best first: (post id, score), the score
    on the database's own scale (compare ranks, not scores, across databases or rankings)."""
    found = _keyword_results(
        session,
        user=user,
        query=query,
        filters=filters,
        sort="relevance",
        offset=0,
        limit=limit,
        read_rows=False,
    )
    return [(post_id, float(score)) for post_id, score in found.rows]


def _keyword_results(
    session: Session,
    *,
    user: User,
    query: Query,
    filters: Filters,
    sort: SearchSort,
    offset: int,
    limit: int,
    read_rows: bool = True,
) -> SearchResults:
    """A page of the keyword matches the user may read, from the newest matches of the first
    window, or of a wider one while the readable matches in it do not reach the page."""
    keywords = Keywords(search_crud.database_kind(session), query)
    rule, values = access.post_reader_rule(user), _filter_values(filters)
    for window in WINDOWS:
        listing = posts_crud.search_listing(
            keywords, readable=rule.condition, readable_params=rule.params, sort=sort, window=window, **values
        )
        found = posts_crud.search_page(session, listing, offset=offset, limit=limit, read_rows=read_rows)
        if not found.overflow or found.total >= offset + limit:
            break
    return found


def _filter_values(filters: Filters) -> dict[str, Any]:
    """The filters as crud/posts.py's search statements take them."""
    return {
        "board_id": filters.board_id,
        "author": filters.author,
        "since": None if filters.since is None else _midnight(filters.since),
        "before": None
        if filters.until is None or filters.until == date.max
        else _midnight(filters.until + DAY),
    }


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def hits(
    session: Session, *, query: Query, rows: Sequence[Any], keyword_ids: set[int] | None = None
) -> list[SearchHit]:
    """Search results from crud/posts.search_listing's rows: where each matched (its title, its
    content, or else one of its comments: one more query for those) and a snippet of it.
    keyword_ids: the posts the keywords matched, when the rows were found by meaning too (None:
    all of them were)."""
    found = with_author(rows)
    matched_in = [
        _matched_in(
            query,
            fields["name"],
            fields["content"],
            by_keywords=keyword_ids is None or fields["id"] in keyword_ids,
        )
        for fields in found
    ]
    in_comments = [
        fields["id"] for fields, where in zip(found, matched_in, strict=True) if where == "comment"
    ]
    comments = search_crud.matching_comments(session, query=query, post_ids=in_comments)
    results = []
    for fields, where in zip(found, matched_in, strict=True):
        if where == "title":
            text = fields["name"]
        elif where in ("content", "meaning"):
            text = fields["content"]
        else:
            text = comments.get(fields["id"], "")
        snippet = search_text.snippet(text, query)
        results.append(SearchHit.model_validate({**fields, "matched_in": where, "snippet": snippet}))
    return results


def _matched_in(query: Query, title: str, content: str, *, by_keywords: bool) -> str:
    """Where the query matches the post: the title alone, else title and content together (the
    match the index made), else a comment (the index found the post by one), or, for a post the
    keywords did not find, its meaning (the snippet its beginning)."""
    texts_needed = query.found_by(title, content)
    if texts_needed is None:
        return "comment" if by_keywords else "meaning"
    return ("title", "content")[texts_needed - 1]


def board_keywords(session: Session, q: str | None) -> Keywords | None:
    """A board list's `q` as the index takes it; None (the whole board) for a blank one, or one
    with nothing to search for."""
    query = search_text.query(q or "")
    return Keywords(search_crud.database_kind(session), query) if query else None


# --- keeping the index in step -------------------------------------------------------------------

REINDEX_BATCH = 500


def reindex(session: Session, *, progress: Callable[[int], None] = lambda done: None) -> tuple[int, int]:
    """Writes every post's and comment's terms again (after a change to the analyzer, or to fill
    an index whose rows went missing), a batch to a transaction, so searches go on meanwhile;
    `progress` hears how many rows each batch wrote. How many posts and comments it wrote."""
    posts = _rewrite(session, search_crud.posts_after, search_crud.index_posts, progress)
    comments = _rewrite(session, search_crud.comments_after, search_crud.index_comments, progress)
    return posts, comments


def _rewrite(
    session: Session,
    read: Callable[..., Sequence[Any]],
    write: Callable[[Session, Sequence[Any]], None],
    progress: Callable[[int], None],
) -> int:
    written = last_id = 0
    while batch := read(session, after_id=last_id, limit=REINDEX_BATCH):
        write(session, batch)
        session.commit()
        last_id = batch[-1][0]
        written += len(batch)
        progress(len(batch))
    return written


def to_reindex(session: Session) -> int:
    """How many rows reindex will write (posts and comments): a progress bar's length."""
    return sum(search_crud.counts(session))
