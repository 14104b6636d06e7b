"""Passwords, access tokens and opaque tokens: the only module that knows the algorithms."""

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.orm import Session

from config import settings
from crud import users as users_crud
from database import utcnow
from errors import Unauthorized, banned
from logs import remember_user
from models import User

JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"


@lru_cache
def _password_hash() -> PasswordHash:
    return PasswordHash(
        (
            Argon2Hasher(
                time_cost=settings.PASSWORD_HASH_TIME_COST,
                memory_cost=settings.PASSWORD_HASH_MEMORY_KIB,
                parallelism=settings.PASSWORD_HASH_PARALLELISM,
            ),
        )
    )


@lru_cache
def _dummy_hash() -> str:
    return _password_hash().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _password_hash().hash(password)


def prepare_dummy_hash() -> None:
    """Makes the dummy hash ahead of the first login, so that login does not pay for it."""
    _dummy_hash()


def verify_password(password: str, password_hash: str | None) -> bool:
    """Checks a password. With no account (None), or an account whose hash no hasher knows
    (an unusable password), it still spends one verify on a dummy hash of the same cost, so
    timing does not tell those cases from a wrong password."""
    hasher = _password_hash()
    if password_hash is not None and any(h.identify(password_hash) for h in hasher.hashers):
        return hasher.verify(password, password_hash)
    hasher.verify(password, _dummy_hash())
    return False


def unusable_password_hash() -> str:
    """A value no password verifies against (not a valid Argon2 string)."""
    return "!" + secrets.token_hex(16)


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    token_version: int
    expires_at: float  # the token's exp, a Unix time: a live socket closes then


def token_claims(token: str | None) -> AccessClaims:
    """The claims of the request's bearer token; Unauthorized when there is none or it is not
    a valid access token."""
    if not token:
        raise Unauthorized("not authenticated")
    return decode_access_token(token)


def vetted_user(user: User | None, claims: AccessClaims) -> User:
    """The user the claims name, as loaded, if the token still speaks for them."""
    if user is None or user.deleted_date is not None:
        raise Unauthorized("this token is no longer valid", code="token_revoked")
    # A ban also ends the tokens' version; the ban is named first so the user learns why.
    if user.is_banned:
        raise banned()
    if user.token_version != claims.token_version:
        raise Unauthorized("this token is no longer valid", code="token_revoked")
    remember_user(user.id)  # the request's log records name the user from here on
    return user


def authenticate(session: Session, token: str | None) -> User:
    """The user a bearer token names, checked with one query: the token must be signed, unexpired,
    of the user's current token version, and the user neither banned nor deleted."""
    return claimed_user(session, token_claims(token))


def claimed_user(session: Session, claims: AccessClaims) -> User:
    """The user checked claims name, as authenticate lets them through."""
    return vetted_user(users_crud.get(session, claims.user_id), claims)


def create_access_token(user_id: int, token_version: int) -> str:
    now = utcnow()
    claims = {
        "sub": str(user_id),
        "ver": token_version,
        "type": ACCESS_TOKEN_TYPE,
        "iat": now,
        "exp": now + timedelta(minutes=settings.ACCESS_TOKEN_MINUTES),
    }
    return jwt.encode(claims, settings.signing_key, algorithm=JWT_ALGORITHM)


def decode_access_token(token: str) -> AccessClaims:
    """The claims of a valid access token; Unauthorized otherwise. A token is verified once and
    remembered (a client sends the same one with each request until it expires): the string
    fixes the signature check and the claims, so only the expiry is checked on each use."""
    claims = _verified_access_token(token)
    if time.time() >= claims.expires_at:
        raise Unauthorized("access token expired", code="token_expired")
    return claims


@lru_cache(maxsize=4096)
def _verified_access_token(token: str) -> AccessClaims:
    """The claims of a signed access token. A refused token raises, and lru_cache keeps no
    exceptions, so nothing is remembered for it."""
    try:
        claims = jwt.decode(
            token,
            settings.signing_key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("access token expired", code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid access token", code="invalid_token") from exc
    try:
        if claims.get("type") != ACCESS_TOKEN_TYPE:
            raise ValueError("not an access token")
        return AccessClaims(
            user_id=int(claims["sub"]), token_version=int(claims["ver"]), expires_at=float(claims["exp"])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise Unauthorized("invalid access token", code="invalid_token") from exc


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)


def hash_opaque_token(token: str) -> str:
    """Refresh and reset tokens are 256-bit random, so a plain SHA-256 is enough to store
    them: a leaked table gives nothing usable, and look-up stays one indexed query."""
    return hashlib.sha256(token.encode()).hexdigest()
