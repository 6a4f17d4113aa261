"""The Codex CLI's ChatGPT OAuth tokens (``$CODEX_HOME/auth.json``): read, refresh, write back.

Every token is a Secret from the moment it is read. The refresh goes through the policy client
like every other request, within the call's budget (at most one refresh a call); refresh
tokens rotate (the one just used is dead), so the new tokens are written back atomically by
the core (:func:`missy_providers.core.files.write_json_private`: 0600, temp file + rename).
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import AbstractContextManager

from ..config import codex_auth_file
from ..core.errors import AuthenticationError, MissyError, ProtocolError
from ..core.files import PRIVATE_MODE, write_json_private
from ..core.headers import header_value_problem
from ..core.http import PolicyHTTPClient, Timeouts
from ..core.secret import Secret, excerpt, get_logger
from ..core.wire import CallBudget
from ..events import NO_TRACE, Trace

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

log = get_logger(__name__)

CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"  # the Codex CLI's public OAuth client id
REFRESH_MARGIN_SECONDS = 300  # refresh an access token this long before its `exp`
ACCOUNT_CLAIM = "https://api.openai.com/auth"
LOGIN_HINT = "run `codex login` to sign in again"
TOKEN_FIELDS = ("id_token", "access_token", "refresh_token")


def default_auth_file() -> str:
    return codex_auth_file()


class CodexCredentials:
    """Access token, refresh token and account id from ``auth.json``. Thread-safe: concurrent
    callers that find the same stale token do one refresh between them."""

    def __init__(self, path: str, token_url: str, client: PolicyHTTPClient,
                 provider: str) -> None:
        self.path, self.token_url, self.client, self.provider = path, token_url, client, provider
        self._lock = threading.Lock()
        self._tokens: dict[str, Any] = {}
        self._loaded_mtime: float | None = None

    def __repr__(self) -> str:
        return f"CodexCredentials(path={self.path!r})"

    def exists(self) -> bool:
        return os.path.isfile(self.path)

    def _load(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise AuthenticationError(f"no Codex credentials at {self.path}; {LOGIN_HINT} or "
                                      "set api_key", provider=self.provider) from None
        except (OSError, ValueError) as exc:
            raise AuthenticationError(f"cannot read {self.path} ({type(exc).__name__}); "
                                      f"{LOGIN_HINT}", provider=self.provider) from None
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, dict) or not isinstance(tokens.get("access_token"), str) \
                or not tokens["access_token"]:
            raise AuthenticationError(f"{self.path} holds no ChatGPT tokens; {LOGIN_HINT}",
                                      provider=self.provider)
        self._tokens, self._loaded_mtime = self._held(tokens), mtime

    def _held(self, tokens: dict[str, Any]) -> dict[str, Any]:
        """The tokens with each credential held as a Secret (so the scrubber knows it and no
        repr shows it), checked as header values like any key."""
        held: dict[str, Any] = {}
        for name, value in tokens.items():
            if name in TOKEN_FIELDS and isinstance(value, str) and value:
                if problem := header_value_problem(value, credential=True):
                    raise AuthenticationError(f"{self.path}: tokens.{name}: {problem}; "
                                              f"{LOGIN_HINT}", provider=self.provider)
                value = Secret(value, origin=f"{self.path} tokens.{name}")
            held[name] = value
        return held

    def _reload_if_changed(self) -> None:
        try:
            mtime: float | None = os.stat(self.path).st_mtime
        except OSError:
            mtime = None
        if not self._tokens or mtime != self._loaded_mtime:
            self._load()

    def _locked(self, budget: CallBudget) -> AbstractContextManager[None]:
        """The tokens' lock, waited for no longer than the call's deadline (another call may
        be refreshing them)."""
        return budget.locked(self._lock, self.provider,
                             "waiting for another call's token refresh")

    def check(self, budget: CallBudget) -> None:
        """Load the tokens (a broken auth.json raises here), never refreshing them: a live
        check changes nothing on disk."""
        with self._locked(budget):
            self._reload_if_changed()

    def current(self, budget: CallBudget, trace: Trace = NO_TRACE) -> tuple[Secret, str]:
        """(access token, account id), refreshed first when it expires within the margin
        (the refresh counts against ``budget``, the call's, and is an ``attempt`` of
        ``trace``, its call events)."""
        with self._locked(budget):
            self._reload_if_changed()
            exp = self._tokens["access_token"].jwt_claims().get("exp")
            if isinstance(exp, (int, float)) and exp - time.time() < REFRESH_MARGIN_SECONDS:
                self._refresh_locked(budget, trace)
            return self._tokens["access_token"], self._account_id()

    def _account_id(self) -> str:
        account = self._tokens.get("account_id")
        if not account:
            for token in (self._tokens.get("id_token"), self._tokens.get("access_token")):
                claims = token.jwt_claims() if isinstance(token, Secret) else {}
                claim = claims.get(ACCOUNT_CLAIM) or {}
                account = claim.get("chatgpt_account_id") if isinstance(claim, dict) else None
                if account:
                    break
        return str(account or "")

    def refresh_after_401(self, rejected_token: Secret, budget: CallBudget,
                          trace: Trace = NO_TRACE) -> None:
        """The server refused ``rejected_token``. If another thread or process has already
        replaced it, use theirs; otherwise refresh (once in a call: a second 401 in the same
        call means the login itself is no longer valid)."""
        with self._locked(budget):
            self._reload_if_changed()
            current = self._tokens.get("access_token")
            if isinstance(current, Secret) and not current.same_value(rejected_token):
                return
            self._refresh_locked(budget, trace)

    def _refresh_locked(self, budget: CallBudget, trace: Trace) -> None:
        refresh_token = self._tokens.get("refresh_token")
        if not refresh_token:
            raise AuthenticationError(f"the access token expired and {self.path} has no "
                                      f"refresh token; {LOGIN_HINT}", provider=self.provider)
        if not budget.take_refresh(self.provider):
            raise AuthenticationError(f"ChatGPT refused the token refreshed earlier in this "
                                      f"call; {LOGIN_HINT}", provider=self.provider, status=401)
        # The Secret itself goes in the body: the core reveals it only when it encodes.
        body = {"client_id": CLIENT_ID, "grant_type": "refresh_token",
                "refresh_token": refresh_token}
        log.info("%s: refreshing the ChatGPT access token", self.provider)
        trace.attempt(self.token_url, None)  # a request on the wire like any other
        with self.client.request("POST", self.token_url, json=body,
                                 timeout=Timeouts(connect=10, read=30, total=60),
                                 provider=self.provider, budget=budget,
                                 credential_body=True) as response:
            try:
                data = response.json()
            except MissyError:
                data = None
        if response.status != 200 or not isinstance(data, dict):
            code = ""
            if isinstance(data, dict):
                err = data.get("error")
                code = excerpt(str((err.get("code") if isinstance(err, dict) else err)
                                   or data.get("code") or ""))  # a code: quoted short
            raise AuthenticationError(f"token refresh failed ({code or 'no error code'}); "
                                      f"{LOGIN_HINT}", provider=self.provider,
                                      status=response.status)
        new = self._held({k: data[k] for k in TOKEN_FIELDS
                          if isinstance(data.get(k), str) and data[k]})
        if "access_token" not in new:
            raise ProtocolError("token refresh answer has no access_token",
                                provider=self.provider)
        self._tokens = {**self._tokens, **new}
        self._persist()

    def _persist(self) -> None:
        """Write the new tokens into auth.json atomically, keeping its other fields; the file
        ends 0600 whatever its mode was (it holds a refresh token)."""
        from datetime import datetime, timezone

        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            mode = os.stat(self.path).st_mode & 0o777
        except (OSError, ValueError, RecursionError):
            data, mode = {}, PRIVATE_MODE
        if not isinstance(data, dict):
            data = {}
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); it is written back as 0600",
                        self.path, mode)
        data["tokens"] = dict(self._tokens)  # Secrets: revealed by the core, into the file
        data["last_refresh"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        write_json_private(self.path, data)
        self._loaded_mtime = os.stat(self.path).st_mtime
