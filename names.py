"""Look-alike user names: one key per name, the same for names a reader cannot tell apart.

The key is Unicode's confusable skeleton (UTS #39), computed by ICU, the reference implementation:
"admin" spelled with a Cyrillic a (U+0430), "rninji" (r, n) and "admin" with an invisible
zero-width joiner each share the key of "admin". Names are unique ignoring case, so the key ignores
case too: skeleton(NFKC_Casefold(skeleton(name))). The skeleton comes first so capitals that look
alike keep their likeness ("HOST" with a Cyrillic capital EN, U+041D, is "HOST"; folded first it
would hold U+043D, a small-capital shape like no Latin letter); it comes again after folding so
that lower-case forms meet their look-alikes ("Admin" with a Cyrillic capital A, U+0410, folds to
one with a Cyrillic small a, which is "admin").

Imports nothing of the app: models, schemas and migrations all use it.
"""

import icu

# Deleted accounts are renamed deleted-user-<id>; nobody may take such a name or a look-alike.
DELETED_USER_PREFIX = "deleted-user-"

# One Hangul syllable's skeleton is up to seven code points (its jamo, some as look-alikes), so a
# 64-character name's is at most 448; the rest leaves room for migration 0005's "#<id>".
SKELETON_MAX_CHARS = 512

# Both are safe to share between threads: getSkeleton and normalize only read them.
_SPOOF_CHECKER = icu.SpoofChecker()
_NFKC_CASEFOLD = icu.Normalizer2.getNFKCCasefoldInstance()


def _skeleton(text: str) -> str:
    return str(_SPOOF_CHECKER.getSkeleton(0, text))  # the type argument is ignored since ICU 58


def name_skeleton(name: str) -> str:
    """The key two names share when they look alike, ignoring case."""
    return _skeleton(_NFKC_CASEFOLD.normalize(_skeleton(name)))


_RESERVED_SKELETON = name_skeleton(DELETED_USER_PREFIX)


def is_reserved(name: str) -> bool:
    """A name that is, or looks like, a deleted account's placeholder ("deleted-user-7" spelled
    with a Cyrillic e too): user 7's account could no longer be deleted once such a name is taken."""
    return name_skeleton(name).startswith(_RESERVED_SKELETON)
