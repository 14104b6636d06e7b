"""The words of a text as search stores and matches them: one analyzer, in Python, for the index
on both databases and for the queries, so that SQLite and MariaDB find the same posts.

- The text is taken in Unicode's compatibility form (NFKC) and case-folded.
- Letters and digits make words ("FastAPI" -> fastapi). An English word loses its plural ending
  and a final e or y ("Cats" and "cat", "cities" and "city", "caches" and "cache" meet).
- Hangul, Chinese characters and kana run on without spaces, a Korean word glued to its particles
  and compounds ("파이썬은", "김치찌개"). A run is cut into overlapping pairs of characters plus its
  last character alone ("김치찌개" -> 김치 치찌 찌개 개), and a query matches when all its pairs are
  there: "김치" inside "김치찌개", "파이썬" inside "파이썬은", without a dictionary. A query of one
  such character ("밥") matches every term that begins with it ("밥솥", and "김밥"'s last "밥").
- Anything else that is not space (punctuation, symbols, emoji, letters the databases' tokenizers
  do not know) is a term of its own: "100%" finds "100%".

A query matches a text when the text has every term of the query (AND).

Terms are written so that both engines' full-text tokenizers take each one whole and none drops
it: a two-letter prefix (InnoDB ignores tokens shorter than innodb_ft_min_token_size, 3, and the
words of its stopword list, none of which begins with the prefix), and only characters that both
SQLite's unicode61 tokenizer and InnoDB's parser take for letters: those that were letters or
digits in Unicode 3.2, in the Basic Multilingual Plane. (InnoDB's character table predates much of
later Unicode: 2,021 of today's letters, Hangul Jamo Extended among them, are separators to it.)
Any other character is written as its code point in hexadecimal.

Pure functions; the database side is crud/search.py.
"""

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from html import escape
from typing import NamedTuple

WORD_PREFIX = "qw"  # words and pairs of Hangul, Chinese characters or kana
SYMBOL_PREFIX = "qs"  # any other character, as its code point in hexadecimal
MAX_WORD_CHARS = 40  # a longer word is cut (InnoDB skips tokens over 84 characters)

# Scripts written without spaces between words, cut into pairs of characters.
_PAIRED_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul Compatibility Jamo
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF),  # Hangul Syllables
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
)


def _is_paired(char: str) -> bool:
    return any(low <= ord(char) <= high for low, high in _PAIRED_RANGES)


def _character_classes() -> dict[str, str]:
    """Regular-expression classes of the Basic Multilingual Plane: word characters, paired
    characters, marks (kept inside a word, left out of its term) and spaces (including control
    and unassigned characters). Everything else is a symbol."""
    members: dict[str, list[int]] = {"word": [], "paired": [], "mark": [], "space": []}
    for point in range(0x10000):
        char = chr(point)
        category = unicodedata.category(char)
        if 0xD800 <= point <= 0xDFFF:
            members["space"].append(point)
        elif unicodedata.ucd_3_2_0.category(char)[0] in "LN":
            paired = _is_paired(char)
            members["paired" if paired else "word"].append(point)
        elif category[0] == "M":
            members["mark"].append(point)
        elif category[0] in "ZC":
            members["space"].append(point)
    return {name: _as_class(points) for name, points in members.items()}


def _as_class(points: list[int]) -> str:
    """Code points (ascending) as the inside of a regular expression's [...]: ranges."""
    parts: list[str] = []
    start = previous = points[0]
    for point in [*points[1:], -1]:
        if point == previous + 1:
            previous = point
            continue
        parts.append(re.escape(chr(start)) + (f"-{re.escape(chr(previous))}" if previous > start else ""))
        start = previous = point
    return "".join(parts)


_CLASSES = _character_classes()
_TOKENS = re.compile(
    f"(?P<word>[{_CLASSES['word']}][{_CLASSES['word']}{_CLASSES['mark']}]*)"
    f"|(?P<paired>[{_CLASSES['paired']}]+)"
    f"|[{_CLASSES['mark']}{_CLASSES['space']}]+"
    "|(?P<symbol>.)",
    re.DOTALL,
)
_MARKS = re.compile(f"[{_CLASSES['mark']}]")
_BREAKS = (" ", "\n", "\t")  # spaces no term runs across (a search for each is quick)


class Token(NamedTuple):  # a tuple: a snippet makes hundreds, and a frozen dataclass costs 3x as much
    """A term of a text and where it stands in normalized(text): [start, end)."""

    term: str
    start: int
    end: int


def normalized(text: str) -> str:
    """The text in Unicode's compatibility form (NFKC): what terms and snippets are read from."""
    return unicodedata.normalize("NFKC", text)


def tokens(text: str) -> list[Token]:
    """Every term of the text, in order, repeats included."""
    return list(_tokens(normalized(text)))


def terms(text: str) -> str:
    """The text's terms as the index stores them: separated by spaces."""
    return " ".join(token.term for token in _tokens(normalized(text)))


def _tokens(text: str) -> Iterator[Token]:
    return _tokens_from(*_folded(text))


def _tokens_from(folded: str, origin: list[int] | None, begin: int = 0) -> Iterator[Token]:
    """The terms of a folded text (_folded's) from `begin`, a position no term runs across (the
    text's start, or just past a space)."""
    for match in _TOKENS.finditer(folded, begin):
        kind, found = match.lastgroup, match.group()
        start, end = match.span()
        if kind == "word":
            word = _singular(_MARKS.sub("", found))[:MAX_WORD_CHARS]
            yield _token(WORD_PREFIX + word, start, end, origin)
        elif kind == "paired":
            for at in range(start, end - 1):
                yield _token(WORD_PREFIX + folded[at : at + 2], at, at + 2, origin)
            yield _token(WORD_PREFIX + found[-1], end - 1, end, origin)
        elif kind == "symbol" and unicodedata.category(found)[0] not in "ZC":  # outside the plane above
            yield _token(f"{SYMBOL_PREFIX}{ord(found):x}", start, end, origin)


def _folded(text: str) -> tuple[str, list[int] | None]:
    """The text case-folded, and where each of its characters comes from in the text (None when
    each character folds to one: the usual case)."""
    folded = text.casefold()
    if len(folded) == len(text):
        return folded, None
    origin: list[int] = []
    for position, char in enumerate(text):  # "ß" folds to "ss": two characters from one
        origin.extend([position] * len(char.casefold()))
    return folded, origin


def _token(term: str, start: int, end: int, origin: list[int] | None) -> Token:
    if origin is None:
        return Token(term, start, end)
    return Token(term, origin[start], origin[end - 1] + 1)


_SIBILANT_ES = ("ses", "xes", "zes", "ches", "shes")
_NOT_PLURAL_S = ("ss", "us", "is")
MIN_STEM = 3


def _singular(word: str) -> str:
    """An English word without its plural ending, then without a final e, and a final y read as i,
    so that the singular and the plural meet: cats/cat, cities/city (citi), boxes/box,
    caches/cache (cach), houses/house (hous). Each step only while at least MIN_STEM letters stay;
    other words are kept as they are. Not a stemmer: both sides of a match go through it."""
    if not (word.isascii() and word.isalpha()):
        return word
    if word.endswith("ies") and len(word) - 2 >= MIN_STEM:
        word = word[:-3] + "i"
    elif word.endswith(_SIBILANT_ES) and len(word) - 2 >= MIN_STEM:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(_NOT_PLURAL_S) and len(word) - 1 >= MIN_STEM:
        word = word[:-1]
    if word.endswith("e") and len(word) - 1 >= MIN_STEM:
        word = word[:-1]
    elif word.endswith("y") and len(word) >= MIN_STEM:
        word = word[:-1] + "i"
    return word


# --- queries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """What a text must hold to match: every one of `terms`, and for each of `prefixes` a term
    that begins with it (a lone Hangul syllable, Chinese character or kana)."""

    terms: tuple[str, ...]
    prefixes: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.terms or self.prefixes)

    def found_in(self, terms: Iterable[str]) -> bool:
        """Whether a text with these terms matches: what the index answers, worked out in Python."""
        present = set(terms)
        return all(term in present for term in self.terms) and all(
            any(term.startswith(prefix) for term in present) for prefix in self.prefixes
        )

    def found_by(self, *texts: str) -> int | None:
        """How many of these texts, read in order, it takes to find every term (1: the first
        holds them all; 2: the first two together; ...); None when all of them together do not
        match. Each text is read only from where a match may begin and as far as it takes."""
        wanted, prefixes = set(self.terms), list(self.prefixes)
        if not self:
            return 0  # asks for nothing
        folded_texts = [_folded(normalized(text)) for text in texts]
        joined = " ".join(folded for folded, _ in folded_texts)
        # A quick no (a post found by its comments is not read to its end), unless a mark in the
        # text, which its word's term drops, stands between the letters of a run.
        if self._runs and not _MARKS.search(joined) and any(run not in joined for run in self._runs):
            return None
        for read, (folded, origin) in enumerate(folded_texts, start=1):
            for token in _tokens_from(folded, origin, self.reading_start(folded)):
                wanted.discard(token.term)
                if prefixes:
                    prefixes = [prefix for prefix in prefixes if not token.term.startswith(prefix)]
                if not wanted and not prefixes:
                    return read
        return None

    def reading_start(self, folded: str) -> int:
        """Where reading a folded text's terms (_folded's) may begin without missing any match of
        this query: just past the last space before the first place where one of its runs stands
        (a term the query has cannot begin earlier). 0 when that cannot be told: a term without a
        run (a symbol, a word outside ASCII), or a mark in the text (a word drops its marks, so
        its term need not stand in the text as it is)."""
        runs = self._term_runs
        if not runs or None in runs or _MARKS.search(folded):
            return 0
        first = min((at for run in runs if run and (at := folded.find(run)) != -1), default=len(folded))
        return max(folded.rfind(space, 0, first) for space in _BREAKS) + 1

    @cached_property
    def _runs(self) -> tuple[str, ...]:
        """Strings a matching text holds, once normalized and case-folded: the characters of each
        pair or lone character (Hangul, Chinese characters, kana), and of each English word or
        number all but the last letter (which a plural or a final e or y may have changed)."""
        return tuple(run for run in self._term_runs if run)

    @cached_property
    def _term_runs(self) -> tuple[str | None, ...]:
        """Each term's and prefix's run (see _runs), None for one that has none."""
        runs: list[str | None] = []
        for term in (*self.terms, *self.prefixes):
            word = term[len(WORD_PREFIX) :] if term.startswith(WORD_PREFIX) else ""
            if word and all(_is_paired(char) for char in word):
                runs.append(word)
            elif word.isascii() and word.isalnum():
                runs.append((word[:-1] if word.isalpha() else word) or None)  # "a": no run
            else:
                runs.append(None)
        return tuple(runs)

    def span(self, token: Token) -> tuple[int, int] | None:
        """What of the token the query matches: all of it for one of its terms, its first
        character for a prefix (the lone character the query names); None for nothing."""
        if token.term in self.terms:
            return token.start, token.end
        if any(token.term.startswith(prefix) for prefix in self.prefixes):
            return token.start, token.start + 1
        return None


def query(text: str) -> Query:
    """The query a search box's text asks: the text's terms, except that a run of paired
    characters gives only its pairs (the last character alone would not be found inside a longer
    run), and a run of one character matches as a prefix."""
    found: dict[str, None] = {}
    prefixes: dict[str, None] = {}
    folded, _ = _folded(normalized(text))
    for match in _TOKENS.finditer(folded):
        kind, run = match.lastgroup, match.group()
        if kind == "paired" and len(run) == 1:
            prefixes[WORD_PREFIX + run] = None
        elif kind == "paired":
            found.update(dict.fromkeys(WORD_PREFIX + run[i : i + 2] for i in range(len(run) - 1)))
        else:
            found.update(dict.fromkeys(token.term for token in _tokens(run)))
    return Query(tuple(found), tuple(prefixes))


# --- snippets ----------------------------------------------------------------------------------

SNIPPET_CHARS = 120  # the most characters a snippet shows of its text
SNIPPET_LEAD = 30  # of them, at most this many before the first match
ELLIPSIS = "…"
_SPACES = re.compile(r"\s+")


def snippet(text: str, query: Query) -> str:
    """A short window of the text around its first match, as HTML: every character escaped, and
    the query's matches wrapped in <mark>...</mark>. Line breaks and runs of space read as one
    space. With no match in it, the window is the text's start."""
    text = normalized(text)
    marked = _marked_spans(text, query)
    first = marked[0][0] if marked else 0
    start = max(0, first - SNIPPET_LEAD)
    if start > 0:  # begin at a word's start where one is near
        space = text.find(" ", start, first)
        start = space + 1 if space != -1 else start
    end = min(len(text), start + SNIPPET_CHARS)
    pieces = [ELLIPSIS] if start > 0 else []
    position = start
    for mark_start, mark_end in marked:  # in order, apart, none before the window
        if mark_start >= end:
            break
        stop = min(mark_end, end)
        pieces += [_escaped(text[position:mark_start]), f"<mark>{_escaped(text[mark_start:stop])}</mark>"]
        position = stop
    pieces.append(_escaped(text[position:end]))
    if end < len(text):
        pieces.append(ELLIPSIS)
    return "".join(pieces).strip()


def _marked_spans(text: str, query: Query) -> list[tuple[int, int]]:
    """Where the query matches in the (normalized) text, overlapping and touching spans merged, up
    to SNIPPET_CHARS past the first."""
    spans: list[tuple[int, int]] = []
    folded, origin = _folded(text)
    for token in _tokens_from(folded, origin, query.reading_start(folded)):
        if spans and token.start >= spans[0][0] + SNIPPET_CHARS:
            break  # past any window around the first match: the rest is not shown
        span = query.span(token)
        if span is None:
            continue
        start, end = span
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def _escaped(text: str) -> str:
    return escape(_SPACES.sub(" ", text))
