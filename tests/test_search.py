"""Search (GET /api/v1/search and a board list's `q`): Korean words found inside compounds and
before particles, English ignoring case and plurals, every word of the query required; ranked
title above content above comment, or newest first; a snippet with the words marked and the rest
escaped; only what the reader may read, by the one access rule, not even counted otherwise; and an
index that follows every write in the write's own transaction, rebuilt by `cli.py search reindex`
and filled by its migration. The same cases run on SQLite (FTS5) and on MariaDB (posting tables).
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, delete, func, insert, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import models
import search_text
from cli import app as cli_app
from config import settings as app_settings
from crud import posts as posts_crud
from crud import search as search_crud
from database import SessionLocal, make_engine
from schemas import PostUpdate
from services import posts as posts_service
from services import search as search_service
from tests.conftest import IS_MARIADB, TEST_DATABASE_URL, Person, alembic_config, recreate_mariadb_database

pytestmark = pytest.mark.db  # both full-text indexes must find the same posts

API = app_settings.API_PREFIX
MakePost = Callable[..., models.Post]
MakeComment = Callable[..., models.Comment]
MakeBoard = Callable[..., models.Board]


@pytest.fixture
def board(make_board: MakeBoard) -> models.Board:
    return make_board("free talk")


def search(client: TestClient, person: Person, q: str, **params: Any) -> dict[str, Any]:
    """By keyword unless asked otherwise (tests/test_search_semantic.py tests the others)."""
    response = client.get(
        f"{API}/search", params={"q": q, "mode": "keyword", **params}, headers=person.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def found(client: TestClient, person: Person, q: str, **params: Any) -> list[int]:
    return [item["id"] for item in search(client, person, q, **params)["items"]]


def on_board(client: TestClient, person: Person, board: models.Board, q: str, **params: Any) -> list[int]:
    response = client.get(f"{API}/boards/{board.id}/posts", params={"q": q, **params}, headers=person.headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


# --- the analyzer --------------------------------------------------------------------------------


def matches(query: str, text: str) -> bool:
    return search_text.query(query).found_in(token.term for token in search_text.tokens(text))


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("김치", "김치찌개 끓이는 법"),
        ("찌개", "김치찌개 끓이는 법"),
        ("파이썬", "파이썬은 쉬워요"),
        ("김치찌개", "오늘은 김치찌개!"),
        ("밥", "김밥 한 줄"),  # a lone syllable at a word's end
        ("밥", "밥솥이 고장났어요"),  # ... and at its start
        ("Cats", "my cat"),
        ("cat", "CATS"),
        ("cities", "a city"),
        ("boxes", "one box"),
        ("cache", "the caches"),
        ("house", "two houses"),
        ("classes", "a class"),
        ("100%", "100% sure"),
        ("c++", "C++ tips"),
        ("café", "CAFÉ"),
        ("\uff26\uff41\uff53\uff54", "fast"),  # full-width letters read as their plain forms (NFKC)
        ("😀", "좋아요 😀"),
    ],
)
def test_the_analyzer_finds_a_word_in_the_forms_it_takes(query: str, text: str) -> None:
    assert matches(query, text)


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("김치", "김밥"),
        ("김치찌개", "김치 그리고 찌개"),  # the pairs must run on: 치찌 is not there
        ("cat", "category"),
        ("cafe", "café"),
        ("100%", "100 percent"),
    ],
)
def test_the_analyzer_does_not_find_what_is_not_there(query: str, text: str) -> None:
    assert not matches(query, text)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_finds_itself_and_its_snippet_is_escaped(text: str) -> None:
    query = search_text.query(text)
    if query:
        assert query.found_in(token.term for token in search_text.tokens(text))
    assert "<" not in search_text.snippet(text, query).replace("<mark>", "").replace("</mark>", "")


def test_every_term_is_a_token_neither_database_drops() -> None:
    """InnoDB ignores tokens shorter than 3 characters and the words of its stopword list; every
    term has a two-letter prefix that begins no stopword."""
    words = search_text.terms("a I the www 밥 1 ꥠ").split()
    assert len(words) == 7
    assert all(len(word) >= 3 for word in words)
    assert not {"a", "i", "the", "www"} & set(words)


@pytest.mark.parametrize(
    ("query", "texts", "needed"),
    [
        ("김치", ("김치찌개", "본문"), 1),
        ("김치 찌개", ("김치", "찌개 끓이기"), 2),
        ("밥", ("제목", "김밥"), 2),  # a prefix, in the second text
        ("김치", ("제목", "본문"), None),
    ],
)
def test_found_by_says_how_many_texts_it_takes_to_match(
    query: str, texts: tuple[str, ...], needed: int | None
) -> None:
    """What `matched_in` is told from (the title; the title and the content; neither: a comment)."""
    assert search_text.query(query).found_by(*texts) == needed


# Korean runs and a prefix, English plurals, a one-letter word, symbols, accents NFKC composes and one
# it keeps as a mark (a word drops it), and ß (case-folds to two letters: positions move).
PIECES = [
    "김치",
    "찌개",
    "파이썬은",
    "밥",
    "cat",
    "Cats",
    "keyboards",
    "a",
    "100%",
    "😀",
    "é",
    "e\u0301",
    "c\u0353at",  # a mark NFKC keeps (no letter c with it): the word's term is "cat"
    "ß",
]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from([*PIECES, " ", " ", "\n", "\t", "\u3000", ".", "-"]), max_size=30),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=3),
)
def test_reading_from_where_a_match_may_begin_misses_no_match(pieces: list[str], asked: list[str]) -> None:
    """Snippets and `matched_in` skip a text's terms before the first place the query's words
    could stand: no term they skip matches, and they answer as reading the whole text does."""
    text, query = "".join(pieces), search_text.query(" ".join(asked))
    normalized = search_text.normalized(text)
    folded = normalized.casefold()
    start = query.reading_start(folded)
    assert start == 0 or folded[start - 1] in " \n\t"
    every = search_text.tokens(text)
    if len(folded) == len(normalized):  # else the tokens' positions are not the folded text's
        assert not [token for token in every if token.start < start and query.span(token)]
    terms = [token.term for token in every]
    assert query.found_by(text) == (1 if query.found_in(terms) else None)
    title = [token.term for token in search_text.tokens("제목")]  # holds none of the pieces
    assert query.found_by("제목", text) == (2 if query.found_in([*title, *terms]) else None)


def test_a_snippet_marks_the_words_and_escapes_everything_else() -> None:
    query = search_text.query("김치")
    snippet = search_text.snippet('<script>alert("김치")</script> 김치찌개 & 밥', query)
    assert snippet == (
        "&lt;script&gt;alert(&quot;<mark>김치</mark>&quot;)&lt;/script&gt; <mark>김치</mark>찌개 &amp; 밥"
    )


def test_a_snippet_is_a_window_around_the_first_match() -> None:
    text = "filler " * 50 + "the needle is here\nand then " + "more " * 50
    snippet = search_text.snippet(text, search_text.query("needle"))
    assert snippet.startswith("…") and snippet.endswith("…")
    assert "<mark>needle</mark> is here and then" in snippet
    assert len(snippet) < search_text.SNIPPET_CHARS + 40


# --- matching through the API ----------------------------------------------------------------------


def test_korean_words_are_found_inside_compounds_and_before_particles(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    stew = make_post(board, user, name="저녁 메뉴", content="오늘은 김치찌개를 끓였어요")
    python = make_post(board, user, name="입문", content="파이썬은 처음이에요")
    make_post(board, user, name="점심", content="김밥")
    assert found(client, user, "김치") == [stew.id]
    assert found(client, user, "파이썬") == [python.id]


def test_english_ignores_case_and_plurals(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    cat = make_post(board, user, name="my cat", content="sleeps all day")
    make_post(board, user, name="category theory", content="functors")
    assert found(client, user, "Cats") == [cat.id]


def test_every_word_of_the_query_must_be_found(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    both = make_post(board, user, name="김치찌개", content="돼지고기를 넣어요")
    make_post(board, user, name="김치볶음밥", content="참치를 넣어요")
    assert found(client, user, "김치 돼지고기") == [both.id]


def test_the_words_may_be_spread_over_title_and_content(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    post = make_post(board, user, name="레시피", content="김치찌개 끓이는 법")
    [item] = search(client, user, "김치 레시피")["items"]
    assert (item["id"], item["matched_in"], item["snippet"]) == (
        post.id,
        "content",
        "<mark>김치</mark>찌개 끓이는 법",
    )


def test_a_title_match_ranks_above_a_content_match(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    in_content = make_post(board, user, name="저녁", content="김치찌개를 먹었어요")
    in_title = make_post(board, user, name="김치찌개 레시피", content="돼지고기와 두부")
    for n in range(3):  # words found everywhere weigh nothing (InnoDB): some posts without them
        make_post(board, user, name=f"다른 글 {n}", content="날씨가 좋아요")
    body = search(client, user, "김치찌개")
    assert [(item["id"], item["matched_in"]) for item in body["items"]] == [
        (in_title.id, "title"),
        (in_content.id, "content"),
    ]


def test_one_syllable_finds_the_words_it_begins_or_ends_title_first_and_with_other_words(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost, make_comment: MakeComment
) -> None:
    in_content = make_post(board, user, name="점심", content="김밥 한 줄")
    in_title = make_post(board, user, name="밥솥 추천", content="고장났어요")
    in_comment = make_post(board, user, name="저녁", content="국수")
    make_comment(in_comment, user, content="밥은요?")
    make_post(board, user, name="추천", content="국수")
    body = search(client, user, "밥")
    assert [(item["id"], item["matched_in"]) for item in body["items"]] == [
        (in_title.id, "title"),
        (in_content.id, "content"),
        (in_comment.id, "comment"),
    ]
    assert found(client, user, "추천 밥") == [in_title.id]


def test_a_visible_comment_finds_its_post(
    client: TestClient,
    user: Person,
    other_user: Person,
    board: models.Board,
    make_post: MakePost,
    make_comment: MakeComment,
) -> None:
    post = make_post(board, user, name="주말 계획", content="뭐 하지")
    make_comment(post, other_user, content="김치찌개 맛집에 가요 <b>꼭</b>")
    [item] = search(client, user, "김치")["items"]
    assert (item["id"], item["matched_in"]) == (post.id, "comment")
    assert item["snippet"] == "<mark>김치</mark>찌개 맛집에 가요 &lt;b&gt;꼭&lt;/b&gt;"
    assert (item["board_name"], item["author"]) == ("free talk", {"id": user.id, "name": user.name})


def test_a_hidden_comment_finds_nothing(
    client: TestClient, admin: Person, board: models.Board, make_post: MakePost, make_comment: MakeComment
) -> None:
    post = make_post(board, admin, name="주말 계획", content="뭐 하지")
    make_comment(post, admin, content="김치찌개", is_visible=False)
    assert search(client, admin, "김치") == {
        "items": [],
        "total": 0,
        "total_exact": True,
        "offset": 0,
        "limit": 20,
        "mode": "keyword",
        "fallback": None,
    }


def test_a_post_with_markup_comes_back_escaped(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    make_post(board, user, name="XSS", content='<script>alert("hi")</script> cookie & <img src=x>')
    [item] = search(client, user, "cookies")["items"]
    assert item["snippet"] == (
        "&lt;script&gt;alert(&quot;hi&quot;)&lt;/script&gt; <mark>cookie</mark> &amp; &lt;img src=x&gt;"
    )


@pytest.mark.parametrize("q", ["a", "the", "ꥠ", "䶶", "😀", "_", "\\", "%"])
def test_words_neither_database_indexes_on_its_own_are_found(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost, q: str
) -> None:
    """One-letter words, stopwords, letters newer than InnoDB's table, symbols."""
    hit = make_post(board, user, name=f"x {q} y", content="text")
    make_post(board, user, name="x y", content="text")
    assert found(client, user, q) == [hit.id]


# --- who finds what --------------------------------------------------------------------------------


@pytest.fixture
def member(make_user: Callable[..., Person]) -> Person:
    return make_user("member")


@pytest.fixture
def outsider(make_user: Callable[..., Person]) -> Person:
    return make_user("outsider")


@pytest.fixture
def staff_post(make_board: MakeBoard, make_post: MakePost, member: Person) -> models.Post:
    """A post on a restricted board, whose access list has `member` only."""
    restricted = make_board("staff", is_public=False, members=(member,))
    return make_post(restricted, member, name="김치찌개 회식", content="금요일")


def test_a_restricted_boards_post_is_found_by_its_members_only(
    client: TestClient, staff_post: models.Post, member: Person, outsider: Person
) -> None:
    assert search(client, outsider, "김치")["total"] == 0
    assert found(client, outsider, "김치", board_id=staff_post.board_id) == []
    assert found(client, member, "김치") == [staff_post.id]


def test_readers_of_one_kind_share_the_statement_and_each_gets_their_own_answer(
    client: TestClient, staff_post: models.Post, member: Person, outsider: Person
) -> None:
    post = staff_post
    assert search(client, member, "김치")["total"] == 1
    built = posts_crud.search_statements_built()
    assert search(client, outsider, "김치")["total"] == 0
    assert found(client, member, "김치") == [post.id]
    # The reader is a parameter of the statement, not part of it: nothing was built for them.
    assert posts_crud.search_statements_built() == built


def test_a_hidden_boards_post_is_found_by_administrators_only(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person, admin: Person
) -> None:
    hidden = make_board("old", is_visible=False, members=(user,))
    post = make_post(hidden, user, name="김치찌개", content="옛날 글")
    assert search(client, user, "김치")["total"] == 0
    assert found(client, admin, "김치") == [post.id]


def test_a_hidden_post_is_found_by_administrators_only(
    client: TestClient, board: models.Board, make_post: MakePost, user: Person, admin: Person
) -> None:
    post = make_post(board, user, name="김치찌개", content="지운 글", is_visible=False)
    assert search(client, user, "김치")["total"] == 0
    [item] = search(client, admin, "김치")["items"]
    assert (item["id"], item["is_visible"]) == (post.id, False)


def test_a_hidden_posts_comment_finds_nothing(
    client: TestClient, board: models.Board, make_post: MakePost, make_comment: MakeComment, user: Person
) -> None:
    post = make_post(board, user, name="제목", content="내용", is_visible=False)
    make_comment(post, user, content="김치찌개")
    assert search(client, user, "김치")["total"] == 0


# --- filters, order, pages -------------------------------------------------------------------------


def test_filters_narrow_by_board_author_and_dates(
    client: TestClient,
    make_board: MakeBoard,
    make_post: MakePost,
    user: Person,
    other_user: Person,
) -> None:
    first, second = make_board("first"), make_board("second")
    day = datetime(2026, 3, 10, 12, tzinfo=UTC)
    early = make_post(first, user, name="김치 1", create_date=day.replace(day=1))
    middle = make_post(first, other_user, name="김치 2", create_date=day)
    late = make_post(second, user, name="김치 3", create_date=day.replace(day=20))
    assert found(client, user, "김치", board_id=first.id) == [middle.id, early.id]
    assert found(client, user, "김치", author=other_user.name.upper()) == [middle.id]
    assert found(client, user, "김치", since="2026-03-10") == [late.id, middle.id]
    assert found(client, user, "김치", until="2026-03-10") == [middle.id, early.id]
    assert found(client, user, "김치", since="2026-03-10", until="2026-03-10") == [middle.id]
    assert found(client, user, "김치", author="nobody") == []


def test_latest_puts_the_newest_first(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    in_title = make_post(board, user, name="김치찌개", content="맛있다")
    in_content = make_post(board, user, name="저녁", content="김치찌개")
    for n in range(3):
        make_post(board, user, name=f"다른 글 {n}", content="날씨")
    assert found(client, user, "김치찌개") == [in_title.id, in_content.id]
    assert found(client, user, "김치찌개", sort="latest") == [in_content.id, in_title.id]


def test_pages_walk_every_match_once_and_total_counts_them(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    ids = {make_post(board, user, name=f"apple {n}").id for n in range(5)}
    make_post(board, user, name="banana")
    pages = [search(client, user, "apples", sort="latest", offset=offset, limit=2) for offset in (0, 2, 4)]
    assert [page["total"] for page in pages] == [5, 5, 5]
    seen = [item["id"] for page in pages for item in page["items"]]
    assert seen == sorted(ids, reverse=True)


# --- words in more posts than a search ranks -------------------------------------------------------


@pytest.fixture
def window_of_three(monkeypatch: pytest.MonkeyPatch) -> None:
    """A search ranks the newest 3 matches of each side first (1,000 in the app)."""
    monkeypatch.setattr(search_service, "WINDOWS", (3, 24, None))


@pytest.mark.usefixtures("window_of_three")
def test_a_word_in_more_posts_than_the_window_is_ranked_among_its_newest_and_total_says_more(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    oldest = make_post(board, user, name="apple apple apple", content="the best title of all")
    newer = [make_post(board, user, name=f"note {n}", content="an apple").id for n in range(4)]
    page = search(client, user, "apple", limit=2)
    # The oldest would rank first (the word in its title); the window holds the newest only.
    assert oldest.id not in [item["id"] for item in page["items"]]
    assert {item["id"] for item in page["items"]} <= set(newer)
    assert (page["total"], page["total_exact"]) == (4, False)
    assert search(client, user, "title")["total_exact"] is True


@pytest.mark.usefixtures("window_of_three")
def test_a_window_without_enough_readable_matches_is_widened(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, member: Person, outsider: Person
) -> None:
    public, staff = make_board("public"), make_board("staff", is_public=False, members=(member,))
    readable = [make_post(public, member, name=f"apple {n}").id for n in range(3)]
    for n in range(5):  # newer, and out of the outsider's reach
        make_post(staff, member, name=f"apple staff {n}")
    page = search(client, outsider, "apple", sort="latest")
    assert [item["id"] for item in page["items"]] == readable[::-1]
    assert (page["total"], page["total_exact"]) == (3, True)


@pytest.mark.usefixtures("window_of_three")
def test_a_page_past_the_window_is_answered_from_a_wider_one(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    ids = [make_post(board, user, name=f"apple {n}").id for n in range(6)]
    pages = [search(client, user, "apple", sort="latest", offset=offset, limit=2) for offset in (0, 2, 4)]
    assert [item["id"] for page in pages for item in page["items"]] == ids[::-1]
    assert [page["total_exact"] for page in pages] == [False, False, True]


@pytest.mark.usefixtures("window_of_three")
def test_comments_beyond_the_window_are_taken_when_the_page_needs_them(
    client: TestClient,
    user: Person,
    board: models.Board,
    make_post: MakePost,
    make_comment: MakeComment,
) -> None:
    post = make_post(board, user, name="주말", content="뭐 하지")
    for n in range(6):
        make_comment(post, user, content=f"apple {n}")
    page = search(client, user, "apple")
    assert ([item["id"] for item in page["items"]], page["total"], page["total_exact"]) == (
        [post.id],
        1,
        True,
    )


def test_keyword_candidates_rank_as_the_relevance_page(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost
) -> None:
    """The keyword side a hybrid ranking fuses with (services/search.keyword_candidates)."""
    make_post(board, user, name="저녁", content="김치찌개를 먹었어요")
    make_post(board, user, name="김치찌개 레시피", content="돼지고기")
    for n in range(3):
        make_post(board, user, name=f"다른 글 {n}", content="날씨")
    with SessionLocal() as session:
        reader = session.get(models.User, user.id)
        assert reader is not None
        candidates = search_service.keyword_candidates(
            session,
            user=reader,
            query=search_text.query("김치찌개"),
            filters=search_service.Filters(),
            limit=10,
        )
    assert [post_id for post_id, _ in candidates] == found(client, user, "김치찌개")
    assert candidates[0][1] > candidates[1][1] > 0


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"q": ""}, "invalid_input"),
        ({"q": "   "}, "invalid_input"),
        ({"q": "x" * 101}, "invalid_input"),
        ({}, "invalid_input"),
        ({"q": "\u200b\u0301"}, "no_search_terms"),  # a zero-width space, a lone accent
        ({"q": "a", "sort": "views"}, "invalid_input"),
        ({"q": "a", "mode": "magic"}, "invalid_input"),
        ({"q": "a", "since": "yesterday"}, "invalid_input"),
        ({"q": "a", "until": "2026-02-30"}, "invalid_input"),
        ({"q": "a", "since": "2026-03-02", "until": "2026-03-01"}, "invalid_date_range"),
        ({"q": "a", "board_id": 0}, "invalid_input"),
        ({"q": "a", "limit": 101}, "invalid_input"),
    ],
)
def test_a_search_that_asks_nothing_is_a_422(
    client: TestClient, user: Person, params: dict[str, Any], code: str
) -> None:
    response = client.get(f"{API}/search", params=params, headers=user.headers)
    assert (response.status_code, response.json()["code"]) == (422, code)


def test_a_query_of_100_characters_is_taken(client: TestClient, user: Person) -> None:
    assert search(client, user, "가" * 100)["total"] == 0


# --- a board list's q --------------------------------------------------------------------------------


def test_a_board_list_finds_what_search_finds_on_that_board(
    client: TestClient,
    user: Person,
    make_board: MakeBoard,
    make_post: MakePost,
    make_comment: MakeComment,
) -> None:
    board, elsewhere = make_board("cats"), make_board("dogs")
    in_title = make_post(board, user, name="Cats", content="they sleep")
    by_comment = make_post(board, user, name="question", content="what to feed")
    make_comment(by_comment, user, content="my cat eats fish")
    make_post(elsewhere, user, name="cat", content="not this board")
    assert on_board(client, user, board, "cat") == [by_comment.id, in_title.id]
    assert on_board(client, user, board, "cat", sort="comments") == [by_comment.id, in_title.id]
    assert sorted(found(client, user, "cat", board_id=board.id)) == [in_title.id, by_comment.id]


# --- the index follows every write ------------------------------------------------------------------


def write(client: TestClient, person: Person, board: models.Board, name: str, content: str) -> int:
    response = client.post(
        f"{API}/boards/{board.id}/posts", json={"name": name, "content": content}, headers=person.headers
    )
    assert response.status_code == 201, response.text
    post_id: int = response.json()["id"]
    return post_id


def test_a_new_post_is_found_at_once(client: TestClient, user: Person, board: models.Board) -> None:
    post_id = write(client, user, board, "파이썬 설치", "윈도우에서 파이썬을 설치했어요")
    assert found(client, user, "파이썬") == [post_id]


def test_after_an_edit_the_old_words_are_gone_and_the_new_ones_found(
    client: TestClient, user: Person, board: models.Board
) -> None:
    post_id = write(client, user, board, "김치찌개", "돼지고기")
    response = client.patch(
        f"{API}/posts/{post_id}", json={"name": "된장찌개", "content": "두부"}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    assert (found(client, user, "김치"), found(client, user, "돼지고기")) == ([], [])
    assert found(client, user, "된장 두부") == [post_id]


def test_a_deleted_post_is_not_found_and_a_restored_one_is_again(
    client: TestClient, user: Person, admin: Person, board: models.Board
) -> None:
    post_id = write(client, user, board, "김치찌개", "돼지고기")
    assert client.delete(f"{API}/posts/{post_id}", headers=user.headers).status_code == 204
    assert search(client, user, "김치")["total"] == 0
    response = client.patch(f"{API}/posts/{post_id}", json={"is_visible": True}, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert found(client, user, "김치") == [post_id]


def test_comments_are_found_when_written_and_edited_and_lost_when_deleted(
    client: TestClient, user: Person, other_user: Person, admin: Person, board: models.Board
) -> None:
    post_id = write(client, user, board, "주말", "뭐 하지")
    response = client.post(
        f"{API}/posts/{post_id}/comments", json={"content": "김치찌개"}, headers=other_user.headers
    )
    assert response.status_code == 201, response.text
    comment = f"{API}/comments/{response.json()['id']}"
    assert found(client, user, "김치") == [post_id]
    assert client.patch(comment, json={"content": "된장찌개"}, headers=other_user.headers).status_code == 200
    assert (found(client, user, "김치"), found(client, user, "된장")) == ([], [post_id])
    assert client.patch(comment, json={"is_visible": False}, headers=admin.headers).status_code == 200
    assert found(client, user, "된장") == []
    assert client.patch(comment, json={"is_visible": True}, headers=admin.headers).status_code == 200
    assert found(client, user, "된장") == [post_id]
    assert client.delete(comment, headers=other_user.headers).status_code == 204
    assert found(client, user, "된장") == []


def test_an_edit_rolled_back_leaves_the_index_as_it_was(
    monkeypatch: pytest.MonkeyPatch, client: TestClient, user: Person, board: models.Board
) -> None:
    """The terms are written in the edit's own transaction: what it undoes, it undoes there too."""
    post_id = write(client, user, board, "김치찌개", "돼지고기")
    with SessionLocal() as session:
        post, author = session.get(models.Post, post_id), session.get(models.User, user.id)
        assert post is not None and author is not None
        monkeypatch.setattr(session, "commit", session.rollback)
        posts_service.update(
            session, post=post, user=author, changes=PostUpdate(name="된장찌개"), ai_backend=None
        )
    assert (found(client, user, "김치"), found(client, user, "된장")) == ([post_id], [])


# --- rebuilding and migrating ---------------------------------------------------------------------------


def empty_the_index() -> None:
    with SessionLocal() as session:
        if IS_MARIADB:  # its posting tables (migration 0009) are the index proper
            session.execute(text("DELETE FROM fts_comment_term"))
            session.execute(text("DELETE FROM fts_post_term"))
        session.execute(delete(models.CommentSearch))
        session.execute(delete(models.PostSearch))
        session.commit()


def test_reindex_rebuilds_an_emptied_index(
    client: TestClient, user: Person, board: models.Board, make_post: MakePost, make_comment: MakeComment
) -> None:
    post = make_post(board, user, name="김치찌개", content="돼지고기")
    other = make_post(board, user, name="주말", content="뭐 하지")
    make_comment(other, user, content="파이썬 공부")
    empty_the_index()
    assert (found(client, user, "김치"), found(client, user, "파이썬")) == ([], [])
    result = CliRunner().invoke(cli_app, ["search", "reindex"])
    assert result.exit_code == 0, result.output
    assert "2 post(s) and 1 comment(s) indexed" in result.output
    assert (found(client, user, "김치"), found(client, user, "파이썬")) == ([post.id], [other.id])


def scratch_url(tmp_path: Path) -> Iterator[str]:
    if not IS_MARIADB:
        yield f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
        return
    parsed = make_url(TEST_DATABASE_URL)
    url = parsed.set(database=f"{parsed.database}_search").render_as_string(hide_password=False)
    recreate_mariadb_database(url)
    yield url
    server = create_engine(parsed.set(database=""))
    with server.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{make_url(url).database}`"))
    server.dispose()


@pytest.fixture
def migration_database(tmp_path: Path) -> Iterator[str]:
    yield from scratch_url(tmp_path)


def full_text_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        names = set(inspector.get_table_names())
        for table in ("post_search", "comment_search"):
            if table in names:
                names |= {index["name"] for index in inspector.get_indexes(table) if index["name"]}
        return {name for name in names if name.startswith(models.FULL_TEXT_PREFIX)}
    finally:
        engine.dispose()


def test_the_migration_indexes_the_posts_and_comments_there_are(migration_database: str) -> None:
    config = alembic_config(migration_database)
    command.upgrade(config, "0006")
    engine = make_engine(migration_database)
    try:
        with engine.begin() as conn:
            user_id = conn.execute(
                insert(models.User).values(name="minji", email="m@example.com", password_hash="x")
            ).inserted_primary_key[0]
            board_id = conn.execute(
                insert(models.Board).values(name="b", information="")
            ).inserted_primary_key[0]
            post_id = conn.execute(
                insert(models.Post).values(
                    board_id=board_id, user_id=user_id, name="김치찌개", content="돼지고기"
                )
            ).inserted_primary_key[0]
            conn.execute(
                insert(models.Comment).values(post_id=post_id, user_id=user_id, content="파이썬은 쉬워요")
            )
        command.upgrade(config, "head")
        with Session(engine) as session:
            kind = search_crud.database_kind(session)
            for q in ("김치", "돼지", "파이썬"):
                keywords = search_crud.Keywords(kind, search_text.query(q))
                ids = (
                    session.execute(search_crud.matching_post_ids(keywords.shape), keywords.params)
                    .scalars()
                    .all()
                )
                assert ids == [post_id], q
            assert session.scalar(select(func.count()).select_from(models.PostSearch)) == 1
        assert full_text_names(migration_database)  # FTS5 tables, or the posting tables
        command.downgrade(config, "0006")
        assert full_text_names(migration_database) == set()
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("since", "until"), [("0001-01-01", "9999-12-31"), ("9999-12-31", None), (None, "0001-01-01")]
)
def test_the_widest_dates_are_taken(
    client: TestClient,
    user: Person,
    board: models.Board,
    make_post: MakePost,
    since: str | None,
    until: str | None,
) -> None:
    post = make_post(board, user, name="김치")
    dates = {key: value for key, value in (("since", since), ("until", until)) if value is not None}
    expected = [post.id] if since != "9999-12-31" and until != "0001-01-01" else []
    assert found(client, user, "김치", **dates) == expected
