"""Text for the seeded community: Korean and English titles, posts and comments, made from
phrase pools with a seeded random generator so every run seeds the same data."""

import random

BOARDS: list[tuple[str, str]] = [
    ("자유게시판", "무엇이든 자유롭게 이야기하는 곳"),
    ("질문과 답변", "Questions and answers: ask anything, answer kindly"),
    ("개발", "Python, FastAPI, databases and everything in between"),
    ("공지사항", "운영진 공지와 업데이트"),
    ("맛집", "동네 맛집, 카페, 레시피 공유"),
    ("여행", "Travel stories, tips and photos"),
    ("취미", "게임, 음악, 운동, 사진 — 취미 생활 이야기"),
    ("중고거래", "사고 팔고 나누는 곳"),
    ("Career", "Jobs, interviews, resumes and side projects"),
    ("건의사항", "Feedback about the site"),
]
# Share of posts per board: a busy free board and a long quiet tail, as real sites have.
BOARD_WEIGHTS = [26, 18, 13, 3, 9, 8, 8, 7, 5, 3]

GIVEN_NAMES = [
    "minji",
    "jiwoo",
    "seoyeon",
    "hajun",
    "doyun",
    "eunwoo",
    "siwoo",
    "jiho",
    "yuna",
    "chaewon",
    "sumin",
    "hyunwoo",
    "junseo",
    "daeun",
    "yerin",
    "taeyang",
    "sora",
    "jimin",
    "kyungmin",
    "hana",
    "alex",
    "sam",
    "jordan",
    "taylor",
    "casey",
    "morgan",
    "riley",
    "jamie",
    "chris",
    "dana",
]
KOREAN_NAMES = [
    "김민지",
    "이서연",
    "박지우",
    "최하준",
    "정도윤",
    "강은우",
    "조시우",
    "윤지호",
    "장유나",
    "임채원",
]

KO_TOPICS = [
    "FastAPI",
    "SQLAlchemy",
    "맥북",
    "자취",
    "이직",
    "강아지",
    "고양이",
    "제주도",
    "부산 여행",
    "캠핑",
    "러닝",
    "헬스",
    "커피",
    "라면",
    "떡볶이",
    "주식",
    "전세",
    "면접",
    "코딩 테스트",
    "영어 공부",
    "자전거",
    "등산",
    "사진",
    "기타 연습",
    "넷플릭스",
    "독서",
    "요리",
    "이사",
    "중고 노트북",
    "키보드",
]
KO_TITLE_TEMPLATES = [
    "{t} 질문 있습니다",
    "{t} 관련해서 조언 부탁드려요",
    "{t} 후기 남깁니다",
    "요즘 {t} 어떻게 하시나요?",
    "{t} 처음 해봤는데 생각보다 좋네요",
    "{t} 추천 좀 해주세요",
    "{t} 때문에 고민입니다",
    "[정보] {t} 정리해봤어요",
    "{t} 하시는 분 계신가요",
    "오늘 {t} 다녀왔습니다",
]
EN_TOPICS = [
    "FastAPI",
    "MariaDB",
    "SQLite WAL",
    "async Python",
    "remote work",
    "a used bike",
    "Seoul",
    "Busan",
    "home coffee",
    "running shoes",
    "mechanical keyboards",
    "job interviews",
    "rent",
    "camping gear",
    "film cameras",
    "sourdough",
    "Rust",
    "Docker",
    "a first marathon",
    "houseplants",
]
EN_TITLE_TEMPLATES = [
    "Question about {t}",
    "Any advice on {t}?",
    "My experience with {t}",
    "Is {t} worth it in 2026?",
    "{t}: what I learned",
    "Looking for recommendations: {t}",
    "Help! {t} is driving me crazy",
    "[Guide] Getting started with {t}",
    "Anyone else into {t}?",
    "Quick review of {t}",
]
KO_SENTENCES = [
    "안녕하세요, 가입한 지 얼마 안 된 초보입니다.",
    "검색해봐도 잘 안 나와서 여기에 질문 올려봅니다.",
    "혹시 비슷한 경험 있으신 분 계신가요?",
    "지난주에 직접 해봤는데 생각보다 훨씬 괜찮았어요.",
    "가격 대비 만족도가 높아서 주변에도 추천하고 있습니다.",
    "처음에는 어렵게 느껴졌는데 하다 보니 익숙해지더라고요.",
    "다만 주말에는 사람이 너무 많아서 평일에 가시는 걸 추천드려요.",
    "공식 문서를 읽어보니 설정을 바꾸면 해결된다고 하네요.",
    "저는 결국 다른 방법으로 해결했는데 공유드립니다.",
    "댓글로 의견 남겨주시면 정말 감사하겠습니다.",
    "사진은 용량 때문에 다음 글에 올릴게요.",
    "요즘 날씨가 좋아서 밖에 나가기 딱 좋네요.",
    "회사 일이 바빠서 한동안 못 들어왔어요.",
    "결론부터 말씀드리면, 저는 만족합니다.",
    "혹시 더 좋은 방법 아시는 분은 알려주세요.",
    "이 글이 누군가에게 도움이 되었으면 좋겠습니다.",
    "생각보다 시간이 오래 걸려서 조금 지쳤어요.",
    "다음에는 친구들이랑 같이 가보려고 합니다.",
    "에러 메시지는 아래에 붙여 넣었습니다.",
    "버전을 올렸더니 문제가 사라졌어요.",
]
EN_SENTENCES = [
    "Hi everyone, long-time lurker, first post.",
    "I searched the board but could not find a clear answer.",
    "Has anyone here run into the same thing?",
    "I tried it last weekend and it went better than expected.",
    "The price is fair for what you get, and support was quick to answer.",
    "It felt hard at first, but after a week it became second nature.",
    "Avoid weekends if you can; it gets crowded after noon.",
    "The docs say a single setting fixes this, but it did not for me.",
    "In the end I solved it another way, details below.",
    "Any comments or corrections are very welcome.",
    "I will post photos in a follow-up once I sort them.",
    "The weather has been great for getting outside lately.",
    "Work has been busy, so I have not been around much.",
    "Short version: I am happy with it.",
    "If you know a better approach, please share it.",
    "Hope this helps someone searching for the same problem.",
    "It took longer than I planned, but it was worth it.",
    "Next time I will bring a few friends along.",
    "The full error message is pasted below.",
    "Upgrading to the latest version made the problem go away.",
]
KO_COMMENTS = [
    "좋은 정보 감사합니다!",
    "저도 같은 문제 겪었는데 덕분에 해결했어요.",
    "오 이거 궁금했는데 감사합니다 ㅎㅎ",
    "저는 조금 다르게 생각해요. 상황에 따라 다를 것 같습니다.",
    "혹시 자세한 설정 공유 가능하실까요?",
    "추천 감사합니다. 주말에 가볼게요!",
    "ㅋㅋㅋ 완전 공감합니다",
    "버전이 어떻게 되나요?",
    "후기 잘 봤습니다. 사진도 기대할게요.",
    "저도 궁금합니다. 답변 달리면 알려주세요.",
]
EN_COMMENTS = [
    "Thanks, this is really helpful!",
    "Same problem here, your fix worked for me too.",
    "Interesting, I had the opposite experience.",
    "Could you share your config?",
    "Great write-up, bookmarked.",
    "Which version are you on?",
    "+1, would love to hear how it turns out.",
    "I think it depends a lot on the use case.",
    "Tried it today, works like a charm.",
    "Not sure I agree, but thanks for sharing.",
]


def user_names(count: int, rng: random.Random) -> list[str]:
    """Unique names in the app's alphabet (letters of any script, digits, '_', '.', '-')."""
    names: list[str] = []
    for index in range(1, count + 1):
        if index % 7 == 0:
            base = rng.choice(KOREAN_NAMES)
        else:
            base = (
                rng.choice(GIVEN_NAMES)
                + rng.choice(["", "_", "."])
                + rng.choice(["kim", "lee", "park", "dev", "x"])
            )
        names.append(f"{base}{index}")
    return names


def title(rng: random.Random, korean: bool) -> str:
    if korean:
        return rng.choice(KO_TITLE_TEMPLATES).format(t=rng.choice(KO_TOPICS))[:64]
    return rng.choice(EN_TITLE_TEMPLATES).format(t=rng.choice(EN_TOPICS))[:64]


def post_content(rng: random.Random, korean: bool) -> str:
    sentences = KO_SENTENCES if korean else EN_SENTENCES
    paragraphs = []
    for _ in range(rng.choice((1, 2, 2, 3, 3, 4, 6))):
        paragraphs.append(" ".join(rng.choices(sentences, k=rng.randint(2, 6))))
    return "\n\n".join(paragraphs)


def comment_content(rng: random.Random) -> str:
    pool = KO_COMMENTS if rng.random() < 0.7 else EN_COMMENTS
    text = " ".join(rng.choices(pool, k=rng.choice((1, 1, 1, 2, 3))))
    return text[:256]


NO_MATCH_QUERY = "우주선"  # in no post: the "nothing" scenario's, a search's cost before any match

# The search scenario's queries, taken in turn at random (the same list every run): topic words in
# Korean and English (each in a few percent of the posts), two-word queries, words inside compounds
# and behind particles, a word no post holds, and common words that most posts and comments hold
# (their match sets are the costly ones).
SEARCH_QUERIES = [
    "떡볶이",
    "제주도",
    "고양이",
    "라면",  # also inside 라면은-style phrases
    "부산 여행",
    "코딩 테스트",
    "중고 노트북",
    "sourdough",
    "Docker",
    "mechanical keyboard",  # the plural folds: keyboards
    "job interviews",
    "film cameras",
    "에러 메시지",
    NO_MATCH_QUERY,
    "추천",  # common: in most posts' sentences and many comments
    "사진",  # common
    "the",  # common English
    "감사합니다",  # common in comments
]
