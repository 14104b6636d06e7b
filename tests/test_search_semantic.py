"""Search by meaning (services/search_semantic.py): the fusion of rankings, and the question
embedded in the model processes beside other work (services/ai/backends.QueryEmbeddings)."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config import settings
from ml.encoder import SentenceEncoder
from models import Board, Post
from services.ai import jobs as ai_service
from services.ai.backends import QueryEmbeddings
from services.ai.similar_posts import SimilarPosts
from services.search_semantic import fuse
from tests.conftest import Person

API = settings.API_PREFIX
MakeBoard = Callable[..., Board]
MakePost = Callable[..., Post]


def test_fusion_ranks_what_both_rankings_place_high_first() -> None:
    keyword = [1, 2, 3, 4]
    meaning = [3, 5, 1]
    # 1: 1/61 + 1/63; 3: 1/63 + 1/61 (a tie, 1 seen first); 2: 1/62; 5: 1/62; 4: 1/64
    assert fuse([keyword, meaning]) == [1, 3, 2, 5, 4]


def test_fusion_of_one_ranking_keeps_its_order() -> None:
    assert fuse([[7, 3, 9]]) == [7, 3, 9]
    assert fuse([[], []]) == []


# --- through the API, with the real multilingual-e5-small ----------------------------------------

RICE_COOKER = ("전기밥솥이 안 켜져요", "취사 버튼을 눌러도 아무 반응이 없네요. 수리를 맡겨야 할까요?")
OTHERS = [
    ("주말에 북한산 등산", "백운대까지 올라갔다 왔어요. 단풍이 예뻤습니다."),
    ("Sourdough starter tips", "Feed the starter the night before you bake."),
    ("파이썬 설치 오류", "윈도우에 파이썬을 설치했는데 PATH 오류가 나요."),
]


def search(client: TestClient, person: Person, q: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"{API}/search", params={"q": q, **params}, headers=person.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def write_embedded(
    make_post: MakePost, board: Board, author: Person, posts: list[tuple[str, str]]
) -> list[int]:
    ids = [make_post(board, author, name=title, content=content).id for title, content in posts]
    ai_service.reindex()  # their vectors, as the app stores them after a write
    return ids


@pytest.fixture
def ready_client(client: TestClient, sentence_encoder: SentenceEncoder) -> TestClient:
    sentence_encoder.load()  # the model processes are up: a search by meaning runs at once
    return client


@pytest.mark.db
def test_hybrid_finds_a_post_that_shares_no_word_with_the_query(
    ready_client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person
) -> None:
    """The issue's case: "밥솥 고장" and a post about a rice cooker that will not turn on."""
    [cooker, *_] = write_embedded(make_post, make_board("생활"), user, [RICE_COOKER, *OTHERS])
    assert search(ready_client, user, "밥솥 고장", mode="keyword")["items"] == []
    body = search(ready_client, user, "밥솥 고장")
    assert (body["mode"], body["fallback"]) == ("hybrid", None)
    [first, *_] = body["items"]
    assert (first["id"], first["matched_in"]) == (cooker, "meaning")
    assert first["snippet"].startswith("취사 버튼을 눌러도")
    # ... and across languages, by meaning alone
    semantic = search(ready_client, user, "my rice cooker is broken", mode="semantic")
    assert semantic["mode"] == "semantic"
    assert semantic["items"][0]["id"] == cooker


@pytest.mark.db
def test_hybrid_ranks_a_keyword_match_that_is_also_near_first(
    ready_client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person
) -> None:
    board = make_board("개발")
    python, *_ = write_embedded(make_post, board, user, [OTHERS[2], RICE_COOKER, OTHERS[0]])
    body = search(ready_client, user, "파이썬 설치")
    assert body["items"][0]["id"] == python
    assert body["items"][0]["matched_in"] == "title"
    assert "<mark>" in body["items"][0]["snippet"]


@pytest.mark.db
def test_a_search_by_meaning_never_shows_or_counts_what_the_reader_may_not_read(
    ready_client: TestClient,
    make_board: MakeBoard,
    make_post: MakePost,
    user: Person,
    other_user: Person,
) -> None:
    closed = make_board("운영진", is_public=False, members=(other_user,))
    [cooker] = write_embedded(make_post, closed, other_user, [RICE_COOKER])
    write_embedded(make_post, make_board("자유"), user, OTHERS)
    for mode in ("semantic", "hybrid"):
        body = search(ready_client, user, "밥솥 고장", mode=mode)
        assert cooker not in [item["id"] for item in body["items"]]
        assert body["total"] == len(body["items"])
    assert search(ready_client, other_user, "밥솥 고장", mode="semantic")["items"][0]["id"] == cooker


class UnloadableSimilarPosts(SimilarPosts):
    """similar-posts whose files are missing (what check_loadable finds at start)."""

    def missing(self) -> str | None:
        return "no model files (removed for this test)"


@pytest.mark.db
@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_a_search_by_meaning_answers_by_keyword_when_the_model_cannot_run_and_says_why(
    extra_models: list[Any],
    start_app: Callable[..., TestClient],
    make_board: MakeBoard,
    make_post: MakePost,
    user: Person,
    mode: str,
) -> None:
    extra_models.append(UnloadableSimilarPosts())
    client = start_app()
    post = make_post(make_board("생활"), user, name="김치찌개 레시피", content="맛있어요")
    body = search(client, user, "김치", mode=mode)
    assert body["mode"] == "keyword"
    assert body["fallback"] == "answered by keyword: the embedding model cannot load here"
    assert [item["id"] for item in body["items"]] == [post.id]


@pytest.mark.db
def test_a_question_asked_again_is_not_embedded_again(
    ready_client: TestClient,
    make_board: MakeBoard,
    make_post: MakePost,
    user: Person,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_embedded(make_post, make_board("생활"), user, [RICE_COOKER, *OTHERS])
    embedded: list[str] = []
    embed = QueryEmbeddings._computed

    def counted(self: QueryEmbeddings, text: str, *, timeout: float) -> Any:
        embedded.append(text)
        return embed(self, text, timeout=timeout)

    monkeypatch.setattr(QueryEmbeddings, "_computed", counted)
    first = search(ready_client, user, "밥솥 고장")
    again = search(ready_client, user, "밥솥 고장", offset=1)
    assert (first["mode"], again["mode"]) == ("hybrid", "hybrid")
    assert again["items"] == first["items"][1:]
    search(ready_client, user, "밥솥이 고장났어요")
    assert embedded == ["밥솥 고장", "밥솥이 고장났어요"]
