"""Password protection for indi-web: off unless ``indi-web --password`` is given.

``indi-web --set-password`` stores a salted scrypt hash of a password (the scrypt parameters with
it) and an API token in ``CONF/indi-web-auth.json``, mode 0600; ``indi-web --show-token`` prints the
token (creating it on first use). With ``--password`` every request needs either

* the session cookie set by ``POST /api/auth/login`` with ``{"password": "..."}`` (HttpOnly,
  SameSite=Strict; valid until ``POST /api/auth/logout`` or indi-web exits), or
* ``Authorization: Bearer TOKEN`` (scripts, and anything else that is not a browser).

Always reachable, so that the page can show its login form: ``/``, ``/static/...``,
``/api/auth/status`` (``{"required": bool, "authenticated": bool}``; authenticated is true when no
password is required), ``/api/auth/login`` and ``/api/auth/logout``. Anything else answers 401
``{"detail": "..."}`` without credentials, and the WebSocket ``/ws`` is refused before it opens (as
it is when its Origin is another site's and the credentials are a cookie). Secrets are compared with
``hmac.compare_digest``; the password is never stored, the token is (the file is the owner's only).

Without ``--password`` nothing changes: KStars/Ekos send no credentials, so a protected indi-web
cannot be driven by them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from getpass import getpass
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

__all__ = ["Auth", "AuthError", "AuthMiddleware", "AUTH_FILE", "COOKIE", "router", "auth_path", "hash_password",
           "verify_password", "set_password", "show_token", "read_new_password"]

log = logging.getLogger("indi.web")

AUTH_FILE = "indi-web-auth.json"
COOKIE = "indi_web_session"
SESSION_SECONDS = 30 * 24 * 3600
MAX_SESSIONS = 256
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}
MAX_SCRYPT_MEMORY = 256 * 1024 * 1024
OPEN_PATHS = ("/", "/favicon.ico", "/api/auth/status", "/api/auth/login", "/api/auth/logout")
OPEN_PREFIXES = ("/static/",)


class AuthError(Exception):
    """The auth file cannot be read or written, or a password cannot be set (one line for the user)."""


def auth_path(conf_dir: str) -> str:
    return os.path.join(conf_dir, AUTH_FILE)


# -------------------------------------------------------------------------------- the record
def hash_password(password: str) -> dict[str, Any]:
    """A salted scrypt hash of the password, with its parameters."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, maxmem=MAX_SCRYPT_MEMORY, **SCRYPT)
    return {"scheme": "scrypt", **SCRYPT, "salt": salt.hex(), "hash": digest.hex()}


def verify_password(password: str, record: dict[str, Any]) -> bool:
    """True if the password matches a record made by hash_password."""
    try:
        if record.get("scheme") != "scrypt":
            return False
        n, r, p, dklen = (int(record[k]) for k in ("n", "r", "p", "dklen"))
        salt, expected = bytes.fromhex(record["salt"]), bytes.fromhex(record["hash"])
        if not (1 < n <= 2 ** 20 and 0 < r <= 32 and 0 < p <= 16 and 16 <= dklen <= 128):
            return False
        digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                                maxmem=MAX_SCRYPT_MEMORY)
    except (KeyError, TypeError, ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest, expected)


def read_record(path: str) -> dict[str, Any]:
    """The stored record ({} if there is none); AuthError if it cannot be read."""
    try:
        with open(path, encoding="utf-8") as file:
            record = json.load(file)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise AuthError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise AuthError(f"{path} is not a valid auth file ({exc}): remove it and set the password again "
                        f"with indi-web --set-password") from None
    if not isinstance(record, dict):
        raise AuthError(f"{path} is not a valid auth file: remove it and set the password again "
                        f"with indi-web --set-password")
    return record


def write_record(path: str, record: dict[str, Any]) -> None:
    """Write the record atomically, readable by its owner only (0600)."""
    directory = os.path.dirname(path) or "."
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (json.dumps(record, indent=2) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise AuthError(f"cannot write {path}: {exc.strerror}") from None


def _ensure_token(record: dict[str, Any]) -> bool:
    """Give the record an API token if it has none; True if one was made."""
    if isinstance(record.get("token"), str) and record["token"]:
        return False
    record["token"] = secrets.token_urlsafe(32)
    return True


def read_new_password(stdin=None, ask: Callable[[str], str] = getpass) -> str:
    """A new password: asked twice on a terminal, else the first line of standard input."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        first = ask("New indi-web password: ")
        if first != ask("Repeat it: "):
            raise AuthError("the two passwords differ: nothing was changed")
    else:
        first = stdin.readline().rstrip("\r\n")
    if not first:
        raise AuthError("the password is empty: nothing was changed")
    return first


def set_password(conf_dir: str, password: str) -> str:
    """Store the password's hash (and a token, if none yet); the file's path."""
    path = auth_path(conf_dir)
    record = read_record(path)
    record["version"] = 1
    record["password"] = hash_password(password)
    _ensure_token(record)
    write_record(path, record)
    return path


def show_token(conf_dir: str) -> str:
    """The API token, made and stored the first time."""
    path = auth_path(conf_dir)
    record = read_record(path)
    if _ensure_token(record):
        record.setdefault("version", 1)
        write_record(path, record)
    return record["token"]


# --------------------------------------------------------------------------- the running side
class Auth:
    """Whether a password is required, and who has proved they know it (sessions) or the token.

    The auth file is read again when it changes, so that a new password (``--set-password`` while
    indi-web runs) takes effect at once; it also ends every session.
    """

    def __init__(self, conf_dir: str, required: bool = False) -> None:
        self.path = auth_path(conf_dir)
        self.required = required
        self._key = secrets.token_bytes(32)          # signs session cookies; sessions end with the process
        self._sessions: dict[str, float] = {}        # session id -> expiry (time.time())
        self._record: dict[str, Any] = {}
        self._stamp: tuple[int, ...] | None = None
        self._login_lock = asyncio.Lock()            # one scrypt at a time: guessing stays slow
        if required:
            self.check_configured()

    def check_configured(self) -> None:
        """AuthError (with what to do) unless a password is stored."""
        record = read_record(self.path)
        if not isinstance(record.get("password"), dict):
            raise AuthError(f"--password: no password is set ({self.path} holds none): set one with "
                            f"indi-web --set-password first")
        self._load(force=True)

    def _load(self, force: bool = False) -> dict[str, Any]:
        try:
            st = os.stat(self.path)
            stamp: tuple[int, ...] | None = (st.st_ino, st.st_mtime_ns, st.st_size)  # written by replacing it
        except OSError:
            stamp = None
        if force or stamp != self._stamp:
            try:
                record = read_record(self.path)
            except AuthError as exc:
                log.error("%s", exc)
                record = {}
            if record.get("password") != self._record.get("password") and self._stamp is not None:
                self._sessions.clear()
                log.info("the indi-web password changed: every session ended")
            self._record, self._stamp = record, stamp
        return self._record

    # --- credentials
    def token_ok(self, token: str) -> bool:
        stored = self._load().get("token")
        return isinstance(stored, str) and bool(stored) and hmac.compare_digest(token.encode(), stored.encode())

    def _sign(self, sid: str) -> str:
        return hmac.new(self._key, sid.encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        """A new session's cookie value."""
        now = time.time()
        for sid in [s for s, expiry in self._sessions.items() if expiry < now]:
            del self._sessions[sid]
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[min(self._sessions, key=self._sessions.__getitem__)]
        sid = secrets.token_urlsafe(24)
        self._sessions[sid] = now + SESSION_SECONDS
        return f"{sid}.{self._sign(sid)}"

    def session_ok(self, cookie: str) -> bool:
        self._load()
        sid, _, mac = cookie.partition(".")
        if not sid or not mac or not hmac.compare_digest(mac.encode(), self._sign(sid).encode()):
            return False
        expiry = self._sessions.get(sid)
        return expiry is not None and expiry > time.time()

    def end_session(self, cookie: str) -> None:
        if self.session_ok(cookie):
            self._sessions.pop(cookie.partition(".")[0], None)

    async def login(self, password: str) -> bool:
        record = self._load().get("password")
        if not isinstance(record, dict):
            return False
        async with self._login_lock:
            return await asyncio.to_thread(verify_password, password, record)

    def credentials(self, headers: dict[str, str], cookies: dict[str, str]) -> str | None:
        """How a request proves itself: "token", "cookie", or None."""
        authorization = headers.get("authorization", "")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip() and self.token_ok(value.strip()):
            return "token"
        cookie = cookies.get(COOKIE)
        if cookie and self.session_ok(cookie):
            return "cookie"
        return None

    def allows(self, request: Request) -> bool:
        return not self.required or self.credentials(dict(request.headers), request.cookies) is not None


def _open_path(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _cookies(header: str) -> dict[str, str]:
    cookies = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            cookies[name.strip()] = value.strip().strip('"')
    return cookies


def _same_origin(headers: dict[str, str]) -> bool:
    """A WebSocket handshake without Origin (not a browser) or from the page's own host."""
    origin = headers.get("origin")
    if not origin:
        return True
    if origin == "null":   # a sandboxed or file: page
        return False
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


class AuthMiddleware:
    """ASGI middleware: with a password required, refuse requests and WebSockets without credentials."""

    def __init__(self, app, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or not self.auth.required or _open_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        how = self.auth.credentials(headers, _cookies(headers.get("cookie", "")))
        if kind == "websocket" and how == "cookie" and not _same_origin(headers):
            how = None  # another site's page using our cookie
        if how is not None:
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            message = await receive()
            if message.get("type") == "websocket.connect":
                await send({"type": "websocket.close", "code": 1008, "reason": "authentication required"})
            return
        response = JSONResponse({"detail": "authentication required: log in, or send Authorization: Bearer TOKEN "
                                           "(indi-web --show-token)"}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="indi-web"'})
        await response(scope, receive, send)


# ------------------------------------------------------------------------------------ routes
router = APIRouter()


class Login(BaseModel):
    password: str


def _auth(request: Request) -> Auth:
    return request.app.state.web.auth


@router.get("/api/auth/status", tags=["Auth"])
async def auth_status(request: Request) -> dict[str, bool]:
    """``{"required": bool, "authenticated": bool}``: whether a password is needed, and whether this
    request has access (always true when no password is needed)."""
    auth = _auth(request)
    return {"required": auth.required, "authenticated": auth.allows(request)}


@router.post("/api/auth/login", tags=["Auth"])
async def auth_login(login: Login, request: Request) -> JSONResponse:
    """Log in with ``{"password": "..."}``: sets the session cookie; 401 if the password is wrong."""
    auth = _auth(request)
    if not auth.required:
        return JSONResponse({"required": False, "authenticated": True})
    if not await auth.login(login.password):
        client = request.client.host if request.client else "?"
        log.warning("failed login from %s", client)
        raise HTTPException(401, "wrong password")
    response = JSONResponse({"required": True, "authenticated": True})
    response.set_cookie(COOKIE, auth.new_session(), max_age=SESSION_SECONDS, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@router.post("/api/auth/logout", tags=["Auth"])
async def auth_logout(request: Request) -> JSONResponse:
    """End this browser's session (the cookie is removed)."""
    auth = _auth(request)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        auth.end_session(cookie)
    response = JSONResponse({"required": auth.required, "authenticated": not auth.required})
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
