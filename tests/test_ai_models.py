"""The shipped models with the real multilingual-e5-small, the default EMBEDDING_MODEL (loaded
once per session): similar-posts and board-suggest rank by meaning, in Korean, in English and
across the two, and show each user only what they may read. (bench/ai_eval_set.json holds the
larger evaluation: tests/test_ai_eval.py.)
"""

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

import cli
from config import settings
from database import UNLIMITED, SessionLocal
from ml.base import AIModel
from ml.encoder import DIMENSIONS, MULTILINGUAL_E5_SMALL, from_bytes, get_encoder
from models import Board, Post, PostEmbedding, User
from schemas import JobPublic
from services.ai import jobs as ai_service
from tests.ai_models import GateModel
from tests.conftest import Person
from tests.conftest import ended as ended_job

API = "/api/v1"

pytestmark = pytest.mark.usefixtures("sentence_encoder")

MakeBoard = Callable[..., Board]
MakePost = Callable[..., Post]


def run_job(client: TestClient, person: Person, model: str, text: str) -> Any:
    response = client.post(f"{API}/ai/models/{model}/jobs", json={"input": text}, headers=person.headers)
    assert response.status_code == 202, response.text
    job = client.get(
        f"{API}/ai/jobs/{response.json()['id']}", params={"wait": 30}, headers=person.headers
    ).json()
    assert job["status"] == "succeeded", job
    return job["result"]


def submit(client: TestClient, person: Person, model: str, text: str) -> int:
    response = client.post(f"{API}/ai/models/{model}/jobs", json={"input": text}, headers=person.headers)
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def ended(client: TestClient, person: Person, job_id: int) -> dict[str, Any]:
    job = ended_job(client, person, job_id)
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture
def gate(extra_models: list[AIModel], app_settings: dict[str, Any]) -> Iterator[GateModel]:
    """A test-only model whose batch holds the runner's one worker (the app this test starts
    has one) until the test opens it."""
    app_settings["AI_WORKERS"] = 1
    model = GateModel()
    extra_models.append(model)  # in the registry of the app this test starts
    yield model
    model.gate.set()


def similar_titles(client: TestClient, person: Person, text: str) -> list[str]:
    return [post["title"] for post in run_job(client, person, "similar-posts", text)["posts"]]


def suggested_boards(client: TestClient, person: Person, draft: str) -> list[str]:
    return [board["name"] for board in run_job(client, person, "board-suggest", draft)["boards"]]


def write_posts(make_post: MakePost, board: Board, author: Person, posts: list[tuple[str, str]]) -> None:
    for title, content in posts:
        make_post(board, author, name=title, content=content)
    ai_service.reindex()


# --- similar-posts --------------------------------------------------------------------------

ENGLISH_POSTS = [
    ("Sourdough bread baking tips", "Feed your starter the night before and bake at a high temperature."),
    ("Fixing a KeyError in Python", "Use dict.get() when a key may be missing from the dictionary."),
    ("Best hiking trails near Seoul", "Bukhansan has granite peaks and well-marked trails."),
]


@pytest.mark.db
@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("my python dictionary lookup raises an exception", "Fixing a KeyError in Python"),
        ("how to make bread at home", "Sourdough bread baking tips"),
        ("mountain walks around Seoul", "Best hiking trails near Seoul"),
    ],
)
def test_similar_posts_ranks_the_post_on_the_same_topic_first(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person, question: str, expected: str
) -> None:
    write_posts(make_post, make_board("general"), user, ENGLISH_POSTS)
    titles = similar_titles(client, user, question)
    assert titles[0] == expected
    assert len(titles) == 3


@pytest.mark.db
def test_similar_posts_ranks_the_korean_post_on_the_same_topic_first(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person
) -> None:
    write_posts(
        make_post,
        make_board("자유게시판"),
        user,
        [
            ("김치찌개 레시피", "돼지고기와 신김치로 김치찌개를 끓이는 법을 공유합니다."),
            ("파이썬 설치 오류", "윈도우에 파이썬을 설치하면 경로 오류가 납니다."),
            ("북한산 등산 후기", "주말에 친구들과 북한산 백운대까지 등산했습니다."),
        ],
    )
    assert similar_titles(client, user, "파이썬을 설치하는데 오류가 나요")[0] == "파이썬 설치 오류"


KOREAN_POSTS = [
    ("오늘 날씨 정말 좋네요", "하늘이 맑고 바람도 시원해서 산책하기 딱 좋은 날이에요."),
    ("파이썬 설치 오류", "윈도우에 파이썬을 설치하면 경로 오류가 납니다."),
    ("김치찌개 레시피", "돼지고기와 신김치로 김치찌개를 끓이는 법을 공유합니다."),
]


@pytest.mark.db
def test_a_posts_exact_korean_title_finds_that_post_first(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person
) -> None:
    """What a newcomer saw with all-MiniLM-L6-v2: "파이썬 설치 오류" ranked the weather first."""
    write_posts(make_post, make_board("자유게시판"), user, KOREAN_POSTS)
    assert similar_titles(client, user, "파이썬 설치 오류")[0] == "파이썬 설치 오류"


@pytest.mark.db
@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("I get an error installing python on windows", "파이썬 설치 오류"),
        ("how do I cook kimchi stew with pork", "김치찌개 레시피"),
        ("빵을 집에서 굽는 방법", "Sourdough bread baking tips"),
        ("서울 근처 등산로 추천", "Best hiking trails near Seoul"),
    ],
)
def test_a_question_finds_the_post_on_its_subject_in_the_other_language(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person, question: str, expected: str
) -> None:
    write_posts(make_post, make_board("general"), user, KOREAN_POSTS + ENGLISH_POSTS)
    assert similar_titles(client, user, question)[0] == expected


@pytest.mark.db
def test_similar_posts_scores_are_cosines_best_first(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person
) -> None:
    write_posts(make_post, make_board("general"), user, ENGLISH_POSTS)
    posts = run_job(client, user, "similar-posts", "baking bread")["posts"]
    scores = [post["score"] for post in posts]
    assert scores == sorted(scores, reverse=True)
    assert all(-1 <= score <= 1 for score in scores)
    assert {"id", "board_id", "title", "score"} == set(posts[0])


@pytest.mark.db
def test_a_restricted_boards_posts_never_appear_for_an_outsider(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person, other_user: Person
) -> None:
    staff = make_board("staff room", is_public=False, members=(user,))
    write_posts(
        make_post, staff, user, [("Salary negotiation notes", "Raises for the bread bakers next year.")]
    )
    write_posts(make_post, make_board("lobby"), user, [("Welcome", "Say hello to everyone here.")])
    assert "Salary negotiation notes" in similar_titles(client, user, "salary raises for bakers")
    assert similar_titles(client, other_user, "salary raises for bakers") == ["Welcome"]


@pytest.mark.db
def test_jobs_of_one_batch_each_see_only_what_their_owner_may_read(
    gate: GateModel,  # first: registered before the app starts (and adds its AI row)
    client: TestClient,
    make_board: MakeBoard,
    make_post: MakePost,
    user: Person,
    other_user: Person,
    admin: Person,
) -> None:
    staff = make_board("staff room", is_public=False, members=(user,))
    write_posts(make_post, staff, user, [("Salary negotiation notes", "Raises for the bread bakers.")])
    lobby = make_board("lobby")
    write_posts(make_post, lobby, user, [("Welcome", "Say hello to everyone here.")])
    make_post(lobby, user, name="Deleted salary post", content="Salary raises", is_visible=False)
    ai_service.reindex()
    # The one worker is busy with the gate's batch while the three jobs queue: they run as one.
    submit(client, user, "test-gate", "hold")
    assert gate.started.wait(10)
    people = {"member": user, "outsider": other_user, "administrator": admin}
    job_ids = {
        name: submit(client, person, "similar-posts", "salary raises") for name, person in people.items()
    }
    gate.gate.set()
    jobs = {name: ended(client, people[name], job_id) for name, job_id in job_ids.items()}
    assert len({job["started_date"] for job in jobs.values()}) == 1, "the jobs did not run as one batch"
    titles = {name: {post["title"] for post in job["result"]["posts"]} for name, job in jobs.items()}
    assert titles == {
        "member": {"Salary negotiation notes", "Welcome"},
        "outsider": {"Welcome"},
        "administrator": {"Salary negotiation notes", "Welcome", "Deleted salary post"},
    }


@pytest.mark.db
def test_hidden_posts_never_appear(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person
) -> None:
    board = make_board("general")
    make_post(board, user, name="Deleted bread post", content="Sourdough bread", is_visible=False)
    write_posts(make_post, board, user, [("Kept post", "Anything at all")])
    assert similar_titles(client, user, "sourdough bread") == ["Kept post"]


# --- board-suggest --------------------------------------------------------------------------

ENGLISH_BOARDS = {
    "Cooking": (
        "recipes, baking and kitchen tips",
        [
            ("Kimchi stew recipe", "Pork and aged kimchi simmered for an hour."),
            ("Sourdough starter help", "My starter smells like acetone."),
            ("Best knife for vegetables", "Looking for a santoku under $100."),
        ],
    ),
    "Programming": (
        "code, bugs and software questions",
        [
            ("KeyError in Python", "My dict lookup fails when the key is missing."),
            ("CSS grid layout", "How do I center a div in a grid cell?"),
            ("Git merge conflict", "How do I resolve conflicts after a rebase?"),
        ],
    ),
    "Travel": (
        "destinations, trips and travel stories",
        [
            ("Bukhansan hiking trip", "We climbed to Baegundae peak last weekend."),
            ("Cheap flights to Tokyo", "Any tips for booking flights in spring?"),
            ("Jeju itinerary", "Three days on the island, what should we see?"),
        ],
    ),
}


@pytest.fixture
def english_boards(make_board: MakeBoard, make_post: MakePost, user: Person) -> dict[str, Board]:
    boards = {}
    for name, (information, posts) in ENGLISH_BOARDS.items():
        boards[name] = make_board(name)
        with SessionLocal() as session:
            session.get(Board, boards[name].id).information = information  # type: ignore[union-attr]
            session.commit()
        write_posts(make_post, boards[name], user, posts)
    return boards


@pytest.mark.db
@pytest.mark.parametrize(
    ("draft", "expected"),
    [
        (
            "Why does my JavaScript promise never resolve?\nThe then() callback is never called.",
            "Programming",
        ),
        ("How long should I knead bread dough?\nMy loaf comes out dense every time.", "Cooking"),
        ("Where to stay in Busan\nLooking for a hotel near Haeundae beach.", "Travel"),
    ],
)
def test_board_suggest_ranks_the_fitting_board_first(
    client: TestClient, english_boards: dict[str, Board], user: Person, draft: str, expected: str
) -> None:
    ranked = suggested_boards(client, user, draft)
    assert ranked[0] == expected
    assert sorted(ranked) == sorted(ENGLISH_BOARDS)


@pytest.mark.db
def test_board_suggest_ranks_the_fitting_korean_board_first(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person
) -> None:
    boards = {
        "요리": [
            ("된장찌개 끓이는 법", "된장과 두부, 애호박을 넣고 끓입니다."),
            ("김치볶음밥 레시피", "김치와 밥을 볶습니다."),
        ],
        "프로그래밍": [
            ("파이썬 오류 질문", "코드를 실행하면 오류가 납니다."),
            ("자바 설치", "자바 설치 경로 질문"),
        ],
        "여행": [
            ("제주도 여행 후기", "제주도 여행지 추천합니다."),
            ("부산 여행 일정", "부산 2박 3일 여행 일정"),
        ],
    }
    for name, posts in boards.items():
        write_posts(make_post, make_board(name), user, posts)
    assert suggested_boards(client, user, "파이썬 코드에서 오류가 나는데 질문입니다")[0] == "프로그래밍"
    assert suggested_boards(client, user, "강릉 여행 일정 추천해 주세요")[0] == "여행"


@pytest.mark.db
def test_board_suggest_offers_only_the_boards_i_may_use(
    client: TestClient, make_board: MakeBoard, user: Person, other_user: Person
) -> None:
    make_board("Programming", members=())
    make_board("Secret programming club", is_public=False, members=(user,))
    make_board("Hidden programming", is_visible=False)
    assert sorted(suggested_boards(client, user, "python code")) == ["Programming", "Secret programming club"]
    assert suggested_boards(client, other_user, "python code") == ["Programming"]


@pytest.mark.db
def test_board_suggest_jobs_of_one_batch_each_get_their_owners_boards(
    gate: GateModel, client: TestClient, make_board: MakeBoard, user: Person, other_user: Person
) -> None:
    make_board("Programming", members=())
    make_board("Secret programming club", is_public=False, members=(user,))
    submit(client, user, "test-gate", "hold")
    assert gate.started.wait(10)
    mine = submit(client, user, "board-suggest", "python code")
    theirs = submit(client, other_user, "board-suggest", "python code")
    gate.gate.set()
    ranked = {
        job_id: ended(client, person, job_id) for job_id, person in ((mine, user), (theirs, other_user))
    }
    assert ranked[mine]["started_date"] == ranked[theirs]["started_date"]
    assert sorted(board["name"] for board in ranked[mine]["result"]["boards"]) == [
        "Programming",
        "Secret programming club",
    ]
    assert [board["name"] for board in ranked[theirs]["result"]["boards"]] == ["Programming"]


# --- results read later: only what the reader may still read -----------------------------


def job_result(client: TestClient, person: Person, job_id: int, **params: object) -> Any:
    response = client.get(f"{API}/ai/jobs/{job_id}", params=params, headers=person.headers)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def listed_result(client: TestClient, person: Person, job_id: int) -> Any:
    response = client.get(f"{API}/ai/jobs", headers=person.headers)
    assert response.status_code == 200, response.text
    [job] = [job for job in response.json()["items"] if job["id"] == job_id]
    return job["result"]


def titles_in(result: Any) -> list[str]:
    return [post["title"] for post in result["posts"]]


def set_board_access(client: TestClient, admin: Person, person: Person, board_ids: list[int]) -> None:
    response = client.put(
        f"{API}/admin/users/{person.id}/boards", json={"board_ids": board_ids}, headers=admin.headers
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def staff_and_lobby(make_board: MakeBoard, make_post: MakePost, user: Person) -> tuple[Board, Board]:
    """A restricted board the user may use, and a public one, each with a post on salaries."""
    staff = make_board("staff room", is_public=False, members=(user,))
    lobby = make_board("lobby")
    write_posts(make_post, staff, user, [("Salary negotiation notes", "Raises for the bread bakers.")])
    write_posts(make_post, lobby, user, [("Salary survey", "How much do bakers earn?")])
    return staff, lobby


@pytest.mark.db
def test_a_similar_posts_result_no_longer_lists_a_post_of_a_board_i_lost(
    client: TestClient, staff_and_lobby: tuple[Board, Board], user: Person, admin: Person
) -> None:
    job_id = submit(client, user, "similar-posts", "salary raises")
    assert sorted(titles_in(ended(client, user, job_id)["result"])) == [
        "Salary negotiation notes",
        "Salary survey",
    ]
    set_board_access(client, admin, user, [])
    assert titles_in(job_result(client, user, job_id)) == ["Salary survey"]
    assert titles_in(job_result(client, user, job_id, wait=5)) == ["Salary survey"]
    assert titles_in(listed_result(client, user, job_id)) == ["Salary survey"]
    # The rule lets administrators read every post.
    assert sorted(titles_in(job_result(client, admin, job_id))) == [
        "Salary negotiation notes",
        "Salary survey",
    ]


@pytest.mark.db
def test_a_similar_posts_result_no_longer_lists_a_post_hidden_since(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person, admin: Person
) -> None:
    write_posts(
        make_post, make_board("lobby"), user, [("Sourdough tips", "Feed the starter."), ("Bread", "Bake")]
    )
    job_id = submit(client, user, "similar-posts", "sourdough bread")
    result = ended(client, user, job_id)["result"]
    assert sorted(titles_in(result)) == ["Bread", "Sourdough tips"]
    [tips] = [post["id"] for post in result["posts"] if post["title"] == "Sourdough tips"]
    assert client.delete(f"{API}/posts/{tips}", headers=user.headers).status_code == 204
    assert titles_in(job_result(client, user, job_id)) == ["Bread"]
    assert titles_in(listed_result(client, user, job_id)) == ["Bread"]
    assert sorted(titles_in(job_result(client, admin, job_id))) == ["Bread", "Sourdough tips"]


@pytest.mark.db
def test_a_similar_posts_result_no_longer_lists_the_posts_of_a_board_hidden_since(
    client: TestClient, staff_and_lobby: tuple[Board, Board], user: Person, admin: Person
) -> None:
    staff, _ = staff_and_lobby
    job_id = submit(client, user, "similar-posts", "salary raises")
    assert len(titles_in(ended(client, user, job_id)["result"])) == 2
    hidden = client.patch(f"{API}/admin/boards/{staff.id}", json={"is_visible": False}, headers=admin.headers)
    assert hidden.status_code == 200, hidden.text
    assert titles_in(job_result(client, user, job_id)) == ["Salary survey"]


@pytest.mark.db
def test_a_long_poll_that_reads_the_job_again_lists_only_what_its_reader_may_still_read(
    client: TestClient,
    staff_and_lobby: tuple[Board, Board],
    user: Person,
    admin: Person,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = submit(client, user, "similar-posts", "salary raises")
    done = ended(client, user, job_id)
    set_board_access(client, admin, user, [])
    # A wait that began while the job ran and heard nothing of its ending reads it again (the
    # watch has no job events: it hears nothing).
    running = JobPublic.model_validate({**done, "status": "running", "result": None, "is_finished": False})
    with SessionLocal() as session:
        reader = session.get(User, user.id)
        assert reader is not None
        session.expunge(reader)
    job = asyncio.run(ai_service.wait_for_job(ai_service.JobWatch(running, UNLIMITED, reader), wait=0.01))
    assert job.is_finished
    assert titles_in(job.result) == ["Salary survey"]


@pytest.mark.db
def test_a_board_suggest_result_no_longer_offers_a_board_i_lost(
    client: TestClient, make_board: MakeBoard, user: Person, admin: Person
) -> None:
    make_board("Programming")
    secret = make_board("Secret programming club", is_public=False, members=(user,))
    job_id = submit(client, user, "board-suggest", "python code")
    offered = ended(client, user, job_id)["result"]["boards"]
    assert sorted(board["name"] for board in offered) == ["Programming", "Secret programming club"]
    set_board_access(client, admin, user, [])
    assert [board["name"] for board in job_result(client, user, job_id)["boards"]] == ["Programming"]
    assert [board["name"] for board in listed_result(client, user, job_id)["boards"]] == ["Programming"]
    assert len(job_result(client, admin, job_id)["boards"]) == 2
    set_board_access(client, admin, user, [secret.id])  # given back: offered again
    assert len(job_result(client, user, job_id)["boards"]) == 2


# --- post embeddings ------------------------------------------------------------------------


def stored_vector(post_id: int) -> np.ndarray | None:
    with SessionLocal() as session:
        row = session.scalar(select(PostEmbedding).where(PostEmbedding.post_id == post_id))
        return None if row is None else from_bytes(row.vector)


def wait_for_vector(post_id: int, *, other_than: np.ndarray | None = None) -> np.ndarray:
    """The runner embeds in the background; nothing announces it, so look until it is there."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        vector = stored_vector(post_id)
        if vector is not None and (other_than is None or not np.array_equal(vector, other_than)):
            return vector
        time.sleep(0.05)
    raise AssertionError(f"post {post_id} was not embedded")


@pytest.fixture
def indexing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(settings, "AI_INDEX_POSTS", True)
    yield


@pytest.mark.db
@pytest.mark.usefixtures("indexing")
def test_writing_and_editing_a_post_embeds_it(
    client: TestClient, make_board: MakeBoard, user: Person
) -> None:
    board = make_board("general")
    response = client.post(
        f"{API}/boards/{board.id}/posts", json={"name": "Bread", "content": "Sourdough"}, headers=user.headers
    )
    assert response.status_code == 201, response.text
    post_id = response.json()["id"]
    first = wait_for_vector(post_id)
    assert first.shape == (DIMENSIONS,)
    assert np.isclose(np.linalg.norm(first), 1.0, atol=1e-4)
    edited = client.patch(f"{API}/posts/{post_id}", json={"content": "Python KeyError"}, headers=user.headers)
    assert edited.status_code == 200, edited.text
    wait_for_vector(post_id, other_than=first)
    with SessionLocal() as session:
        assert session.get(PostEmbedding, post_id).model_name == MULTILINGUAL_E5_SMALL  # type: ignore[union-attr]


@pytest.mark.db
def test_reindex_embeds_the_posts_that_have_no_embedding(
    make_board: MakeBoard, make_post: MakePost, user: Person
) -> None:
    board = make_board("general")
    posts = [make_post(board, user, name=f"post {i}", content="text") for i in range(3)]
    result = CliRunner().invoke(cli.app, ["reindex"])
    assert result.exit_code == 0, result.output
    assert "3 post(s) embedded" in result.output
    assert all(stored_vector(post.id) is not None for post in posts)
    again = CliRunner().invoke(cli.app, ["reindex"])
    assert "0 post(s) embedded" in again.output


# --- the model process ----------------------------------------------------------------------


def test_a_model_process_that_died_is_started_again(
    client: TestClient, make_board: MakeBoard, make_post: MakePost, user: Person
) -> None:
    write_posts(make_post, make_board("general"), user, ENGLISH_POSTS)
    encoder = get_encoder()
    dead = encoder.child_pids  # the app runs the model in child processes (AI_MODEL_PROCESS)
    assert dead
    for pid in dead:
        os.kill(pid, signal.SIGKILL)
    assert similar_titles(client, user, "how to make bread at home")[0] == "Sourdough bread baking tips"
    assert encoder.child_pids and set(encoder.child_pids).isdisjoint(dead)


def test_a_batch_never_waits_for_another_model_processs_batch() -> None:
    encoder = get_encoder()
    encoder.load()
    pool = encoder._child
    assert pool is not None
    busy = pool.processes[0]
    with busy._lock:  # what a batch computing in that process holds
        # Each batch asks the encoder to load first; a loaded one must answer at once.
        loading = threading.Thread(target=encoder.load)
        loading.start()
        loading.join(timeout=5)
        assert not loading.is_alive(), "load() waited for the other process's batch"
