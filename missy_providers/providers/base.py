"""BaseProvider: the one interface, and the plumbing every provider shares.

A provider subclass supplies small mapping functions (build the request body, parse a
response, accumulate stream items, read an error body); sending, streaming, error mapping and
key handling are written once, here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from ..config import KEY_ENV_VARS, ProviderConfig, Secret
from ..content import CACHE_TTLS, Text
from ..content import estimate_tokens as content_tokens
from ..core.errors import (
    AuthenticationError,
    ContentRefused,
    MissyError,
    OverloadedError,
    PolicyViolation,
    ProtocolError,
    ProviderError,
    ProviderUnavailable,
    RequestTimeout,
    ToolArgumentsError,
    UsageError,
    at_boundary,
    excerpt,
)
from ..core.headers import Credential
from ..core.http import ClientCert, PolicyHTTPClient, Response, Timeouts
from ..core.secret import get_logger, sanitize
from ..core.values import Value
from ..core.wire import MAX_SECONDS, CallBudget
from ..events import NO_TRACE, Hooks, Trace
from ..eventstream import EventStreamDecoder
from ..keys import KeyRing, ring_for
from ..limits import CircuitBreaker, RateLimiter
from ..retry import RetryPolicy, is_retryable
from ..streams import NDJSONDecoder, SSEDecoder
from ..types import (
    CompletionResponse,
    Message,
    ModelInfo,
    Refusal,
    StreamEvent,
    TokenCount,
    Tool,
    as_messages,
    as_tools,
    token_count,
)
from . import controls
from .error_mapping import classify_error, classify_stream_error, sse_error, str_or_none
from .streaming import Accumulator, StreamResponse
from .surface import (
    METADATA_OPTIONS,
    HostSurface,
    call_metadata,
    metadata_problem,
    standalone_config,
    without_repeated_system,
)

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from ..aio import AsyncStream
    from ..core.sigv4 import AwsSigner
    from ..credentials import CredentialCallback, Renewable

log = get_logger(__name__)

# A server's own error message is shown in full up to this length (a raw body excerpt: 200).
MAX_SERVER_MESSAGE_CHARS = 500
# Per-call limits over the provider's config: read timeout, overall deadline, retries.
CALL_LIMITS = ("timeout", "total_timeout", "max_retries")
OPTIONS = frozenset({"model", "max_tokens", "temperature", "stop", "system", "cache",
                     "schema", "schema_name", "reasoning", "tool_choice",
                     "parallel_tool_calls", "headers", "provider_options", *CALL_LIMITS,
                     "raise_on_refusal", *METADATA_OPTIONS})
# What a request asks for: SSE, NDJSON or AWS event-stream frames for a stream, else JSON.
ACCEPT = {"sse": "text/event-stream", "ndjson": "application/x-ndjson",
          "eventstream": "application/vnd.amazon.eventstream"}


def _model_problem(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def _max_tokens_problem(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v > 0
    return None if ok else "a whole number > 0"


def _temperature_problem(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 2
    return None if ok else "a number from 0 to 2"


def _stop_problem(v: Any) -> str | None:
    ok = isinstance(v, str) or (isinstance(v, (list, tuple))
                                and all(isinstance(s, str) for s in v))
    return None if ok else "a string or a list of strings"


def _system_problem(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def _seconds_problem(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= MAX_SECONDS
    return None if ok else f"a number of seconds > 0 and <= {MAX_SECONDS} (a day)"


def _cache_problem(v: Any) -> str | None:
    ok = v is True or v is False or v in CACHE_TTLS
    return None if ok else f"True, False or a ttl in {sorted(CACHE_TTLS)}"


def _retries_problem(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100
    return None if ok else "a whole number from 0 to 100"


# What each common option must be (None when it fits), checked before anything is sent.
OPTION_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "model": _model_problem, "max_tokens": _max_tokens_problem,
    "temperature": _temperature_problem, "stop": _stop_problem, "system": _system_problem,
    "timeout": _seconds_problem, "total_timeout": _seconds_problem,
    "max_retries": _retries_problem, "cache": _cache_problem,
    "prompt_cache_key": _model_problem, "schema": controls.schema_problem,
    "schema_name": _model_problem, "reasoning": controls.reasoning_problem,
    "tool_choice": controls.tool_choice_problem,
    "parallel_tool_calls": controls.bool_problem, "headers": controls.mapping_problem,
    "provider_options": controls.mapping_problem,
    "reasoning_summary": controls.summary_problem,
    "reasoning_budget": controls.budget_problem,
    "raise_on_refusal": controls.bool_problem,
    "think": controls.think_problem,
    "session_id": metadata_problem, "task_id": metadata_problem,
}


class Outgoing(Value):
    """One logical request: its method, URL and body, its extra headers (config ``headers``
    and the call's, checked), this call's limits and budget, and its trace (call events)."""

    __slots__ = ("body", "stream", "timeouts", "max_retries", "trace", "headers", "budget",
                 "method", "url")
    body: dict[str, Any] | None
    stream: bool
    timeouts: Timeouts
    max_retries: int
    trace: Trace
    headers: Mapping[str, Any]
    budget: CallBudget
    method: str
    url: str

    def __init__(self, body: dict[str, Any] | None, stream: bool, timeouts: Timeouts,
                 max_retries: int, budget: CallBudget, trace: Trace = NO_TRACE,
                 headers: Mapping[str, Any] | None = None, method: str = "POST",
                 url: str = "") -> None:
        self._set(body=body, stream=stream, timeouts=timeouts, max_retries=max_retries,
                  trace=trace, headers=headers or {}, budget=budget, method=method, url=url)


def finished(trace: Trace, response: CompletionResponse) -> None:
    trace.emit("call_finished", latency_ms=trace.elapsed_ms(), attempts=trace.attempts,
               usage=response.usage, finish_reason=response.finish_reason,
               stop_reason=response.stop_reason, request_id=response.request_id,
               refusal=None if response.refusal is None else
               {"category": response.refusal.category})


def request_id(response: Response) -> str:
    """The server's request id (its own words: sanitized, bounded, like any outside text)."""
    given = response.header("request-id") or response.header("x-request-id") or \
        response.header("x-amzn-requestid")
    return sanitize(given, 200) if given else ""


# What a mapping raises when a server's JSON is not the shape it reads: made a ProtocolError
# (never a bare TypeError out of a public call) by :func:`unexpected_shape`.
SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError, ValueError, RecursionError)


def unexpected_shape(exc: BaseException, what: str, provider: str) -> ProtocolError:
    return ProtocolError(f"{what} of an unexpected shape ({type(exc).__name__}: "
                         f"{sanitize(str(exc), 60)})", provider=provider)
AVAILABILITY_TIMEOUT = Timeouts(connect=2.0, read=3.0, total=5.0)
# Failures that say the provider itself is unwell (they open the circuit breaker); a 4xx says
# the request was wrong, and a 429 that the provider is up but busy with us.
BREAKER_FAILURES = (ProviderUnavailable, OverloadedError, RequestTimeout)


class Probe(Value):
    """The outcome of a live check: ``reason`` is what an operator needs to act on it."""

    __slots__ = ("ok", "reason", "latency_ms", "models")
    ok: bool
    reason: str
    latency_ms: float | None
    models: list[str]

    def __init__(self, ok: bool, reason: str, latency_ms: float | None = None,
                 models: list[str] | None = None) -> None:
        self._set(ok=ok, reason=reason, latency_ms=latency_ms,
                  models=[] if models is None else models)


def parse_tool_arguments(raw: str | None, *, tool: str, provider: str) -> dict[str, Any]:
    """A tool call's argument JSON -> dict. Empty means no arguments; anything else that is not
    a JSON object is an error that keeps the raw text (never a silent ``{}``)."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise ToolArgumentsError(f"tool call {tool!r} has arguments that are not a JSON "
                                 f"object ({len(raw)} chars; see .raw)", raw=raw,
                                 provider=provider)
    return value


class _SSEAtEnd(SSEDecoder):
    """SSE, where a last event without its blank line is still the server's last word."""

    def close(self, *, dispatch_unterminated: bool = True) -> list[Any]:
        return super().close(dispatch_unterminated=dispatch_unterminated)


def _partial(accumulator: Accumulator) -> CompletionResponse | None:
    try:
        return accumulator.partial()
    except (MissyError, *SHAPE_ERRORS):  # the pieces are broken: nothing whole to give back
        return None


def estimate_tokens(messages: Sequence[Message]) -> int:
    """A prompt's tokens before the server counts them: about four characters a token, and
    content.py's estimates for images and documents. Used only by the client-side
    tokens_per_minute limit, corrected by the real usage afterwards."""
    return sum([len(c) // 4 if c.__class__ is str else content_tokens(c)
                for c in [m.content for m in messages]]) + 1


def system_parts(messages: Sequence[Message], system: str | None) -> list[Text]:
    """``system`` and every system message's text, in order (a system turn holds only text);
    for APIs with a top-level system field."""
    parts = [Text(system)] if system else []
    for m in messages:
        if m.role != "system":
            continue
        if isinstance(m.content, str):
            parts += [Text(m.content)] if m.content else []
            continue
        for part in m.content:
            if not isinstance(part, Text):
                raise UsageError(f"a system message holds only text, not a {part.kind} part")
            parts.append(part)
    return parts


def system_prompt(messages: Sequence[Message], system: str | None) -> str:
    """The system parts' text, joined."""
    return "\n\n".join(p.text for p in system_parts(messages, system) if p.text)


class BaseProvider(HostSurface):
    """The interface every provider implements; subclasses fill in the mapping hooks."""

    provider_type: ClassVar[str] = ""
    stream_format: ClassVar[str] = "sse"  # or "ndjson"
    key_required: ClassVar[bool] = True  # the API itself refuses requests without a key
    always_streams: ClassVar[bool] = False  # the backend accepts only streamed requests
    probe_path: ClassVar[str | None] = None  # GET path under base_url for a live check
    extra_options: ClassVar[frozenset[str]] = frozenset()  # options beyond OPTIONS
    _known_options: frozenset[str] | None = None  # OPTIONS | extra_options, once
    # How the key is presented: the core puts it into this header, after the scheme.
    auth_header: ClassVar[str] = "Authorization"
    auth_scheme: ClassVar[str] = "Bearer"
    refreshes_tokens: ClassVar[bool] = False  # a login token that a 401 refreshes (Codex)
    # The statuses after which a renewable credential (a key file, a host's callback) is read
    # again, once in a call.
    renew_statuses: ClassVar[tuple[int, ...]] = (401,)

    def __init__(self, config: ProviderConfig | Mapping[str, Any],
                 client: PolicyHTTPClient | None = None,
                 keys: KeyRing | None = None, hooks: Hooks | None = None) -> None:
        """``config`` and ``client`` come from a registry; built directly, a provider takes
        its config (or a mapping of its settings) and makes its own policy client, allowing
        its own endpoint (see :meth:`close`)."""
        config = standalone_config(config, self.provider_type)
        if client is None:
            from ..config import Config, http_client

            client = http_client(Config(providers={config.name: config}))
            self.owns_client = True
        self.config = config
        self.client = client
        self.hooks = hooks if hooks is not None else Hooks()  # call events (events.py)
        self.keys = keys if keys is not None else ring_for(config)
        self.limiter = RateLimiter(config.name, config.requests_per_minute,
                                   config.tokens_per_minute, config.max_wait_seconds)
        self.breaker = CircuitBreaker(config.name, config.circuit_breaker_threshold,
                                      config.circuit_breaker_cooldown_seconds)
        self.sleep: Callable[[float], None] = time.sleep  # replaceable in tests
        self.timeouts = Timeouts.of(config.timeout, total=config.total_timeout)
        # Mutual TLS to this provider's base_url only (the client's own, if any, elsewhere).
        self.client_cert = ClientCert(config.client_cert, config.client_key,
                                      where=("providers", config.name)) \
            if config.client_cert else None
        if self.client_cert is not None:
            self.client_cert.check()
        self.credential: Renewable | None = self.renewable()

    def renewable(self) -> Renewable | None:
        """The credential read when a call needs it, from the config (``api_key_file``), or
        None: the key ring's keys are used."""
        if not self.config.key_file:
            return None
        from ..credentials import KeyFile

        return KeyFile(self.name, self.config.key_file, self.config.key_source,
                       systemd=self.config.key_file_systemd)

    def use_credential_provider(self, callback: CredentialCallback) -> None:
        """Take bearer tokens from the host's ``callback`` (``credential_provider=``) instead
        of the config's credentials: called with this provider's name when there is none or
        it expired, and once more after a 401; sent as ``Authorization: Bearer``."""
        from ..credentials import HostCallback

        self.credential = HostCallback(self.name, callback)
        self.keys = KeyRing(())  # the config's keys are not sent beside the host's token

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def wire_api(self) -> str:
        """The API whose request shape this provider sends (its type's, or for Azure the one
        its config chooses): the controls and library keys of that API apply."""
        return self.provider_type

    @property
    def model(self) -> str:
        return self.config.model

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r})"

    # --- the interface --------------------------------------------------------------------

    @at_boundary
    def complete(self, messages: Sequence[Message], **opts: Any) -> CompletionResponse:
        """Send the conversation, return the whole response."""
        return self._complete(messages, None, opts)

    @at_boundary
    def complete_with_tools(self, messages: Sequence[Message], tools: Sequence[Tool],
                            system: str | None = None, *, stream: bool = False,
                            **opts: Any) -> Any:
        """Completion that may answer with tool calls; ``stream=True`` returns a
        StreamResponse whose events include complete tool calls."""
        if system is not None:
            opts["system"] = system
        if stream:
            return self._stream(messages, tools, opts)
        return self._complete(messages, tools, opts)

    @at_boundary
    def stream(self, messages: Sequence[Message], system: str | None = None,
               **opts: Any) -> StreamResponse:
        """Stream text deltas as they arrive (see StreamResponse)."""
        if system is not None:
            opts["system"] = system
        return self._stream(messages, None, opts)

    # --- the asyncio API (aio.py): the same calls on the client's bounded thread pool -----

    async def acomplete(self, messages: Sequence[Message], **opts: Any) -> CompletionResponse:
        from ..aio import run

        return await run(self.client.executor(), self.complete, messages, **opts)

    async def acomplete_with_tools(self, messages: Sequence[Message], tools: Sequence[Tool],
                                   system: str | None = None, **opts: Any) -> Any:
        from ..aio import run

        return await run(self.client.executor(), self.complete_with_tools, messages, tools,
                         system, **opts)

    def astream(self, messages: Sequence[Message], system: str | None = None,
                **opts: Any) -> AsyncStream:
        """``async with provider.astream(messages) as stream: async for text in stream``."""
        from ..aio import AsyncStream

        return AsyncStream(self.client.executor(),
                           lambda: self.stream(messages, system, **opts))

    async def ais_available(self) -> bool:
        from ..aio import run

        return await run(self.client.executor(), self.is_available)

    def is_available(self) -> bool:
        """Whether the provider is ready: credentials present (providers that can, probe the
        service too). Never raises."""
        return self.has_credentials()

    def probe(self, timeout: Timeouts = AVAILABILITY_TIMEOUT) -> Probe:
        """A live check through the policy client: is the service reachable and are the
        credentials accepted? The same key choice as a call (a refused key rotates to the
        next). Never raises; the reason says what failed."""
        if not self.has_credentials():
            return Probe(False, self.missing_credentials())
        if self.probe_path is None:
            return Probe(True, "credentials present (this API has no cheap live check)")
        started = time.monotonic()
        try:
            data = self._get_json(self.probe_path, timeout)
        except PolicyViolation as exc:
            return Probe(False, f"refused by policy: {exc}")
        except AuthenticationError as exc:
            ms = (time.monotonic() - started) * 1000
            return Probe(False, f"auth failed (HTTP {exc.status})" if exc.status else str(exc),
                         ms)
        except MissyError as exc:
            if isinstance(exc, ProviderError) and exc.status is not None:
                return Probe(False, f"HTTP {exc.status} from {self.probe_path}",
                             (time.monotonic() - started) * 1000)
            return Probe(False, f"unreachable: {exc}")
        try:
            models = self.models_from(data)
        except SHAPE_ERRORS as exc:
            return Probe(False, f"unreachable: {unexpected_shape(exc, 'model list', self.name)}")
        # A ring whose key was refused works on another one: say which, so it gets replaced.
        refused = ", ".join(f"#{i}" for i in self.keys.cooling())
        return Probe(True, f"OK (refused, skipped for now: key {refused})" if refused else "OK",
                     (time.monotonic() - started) * 1000, models)

    @at_boundary
    def list_models(self) -> list[str]:
        """The model names the provider offers (``GET`` its model list through the policy
        client, with the same key choice as a call); a UsageError for an API without one."""
        data = self._get_json(self._listing_path())
        try:
            return self.models_from(data)
        except SHAPE_ERRORS as exc:
            raise unexpected_shape(exc, "model list", self.name) from None

    def _listing_path(self) -> str:
        """The path that lists models; a UsageError for an API without one."""
        path = self.models_path
        if path is None:
            raise UsageError(f"{self.name}: {self.provider_type} has no endpoint that lists "
                             f"models; name the model in providers.{self.name}.model")
        return path

    @property
    def models_path(self) -> str | None:
        return self.probe_path

    def _get_json(self, path: str, timeout: Timeouts = AVAILABILITY_TIMEOUT) -> Any:
        """A GET under base_url, as one call: the ring's key (rotating on 401/403/429 like a
        completion), within its own budget; a JSON object or a typed error."""
        return self._json_call("GET", path, None, timeout)

    def _json_call(self, method: str, path: str, body: dict[str, Any] | None,
                   timeout: Timeouts = AVAILABILITY_TIMEOUT, max_retries: int = 0,
                   headers: Mapping[str, Any] | None = None,
                   limit: str = "the live check's timeout") -> Any:
        """One request under base_url that answers a JSON object, as one call through the
        policy client: the ring's key, this call's budget (CallBudget.for_call: its time and
        sends), retries as for a completion; a JSON object or a typed error."""
        budget = self._budget(timeout.total, max_retries, limit)
        # Each send is an `attempt` call event like a completion's: the call log records it
        # (and, failing to, stops it before it is sent).
        call = Outgoing(body, False, timeout, max_retries, budget, self.hooks.trace(self.name),
                        headers=headers, method=method, url=self.config.base_url + path)
        with self._send_with_retries(call) as response:
            data = response.json()
        if not isinstance(data, Mapping):
            raise ProtocolError(f"{path} answer is not a JSON object", provider=self.name)
        return data

    @property
    def needs_key(self) -> bool:
        """Whether a request needs a key: the API requires one, or the config names one (a
        provider configured with keys never sends a request without one, even to a server
        that would take it)."""
        return self.key_required or self.config.keys_configured

    # --- counting a prompt, and what the API says of a model -------------------------------

    # A POST path under base_url that counts a prompt's tokens, and the body keys it takes
    # (from the request a call would send); None: the API has no such endpoint.
    count_path: ClassVar[str | None] = None
    count_keys: ClassVar[frozenset[str]] = frozenset()

    @at_boundary
    def count_tokens(self, messages: Sequence[Message], tools: Sequence[Tool] | None = None,
                     system: str | None = None, *, model: str | None = None) -> TokenCount:
        """The prompt's input tokens: counted by the API's own endpoint where it has one
        (through the policy client, within a call budget), else estimated (about four
        characters a token); the result says which (``exact``, ``source``)."""
        opts: dict[str, Any] = {}
        if system is not None:
            opts["system"] = system
        if model is not None:
            opts["model"] = model
        checked, tool_list = self._checked(messages, tools, opts)
        path = self.count_path
        if path is None:
            return TokenCount(self.estimate_prompt(checked, tool_list, system), False,
                              "estimate")
        body = self.build_body(checked, tool_list, opts, stream=False)
        body = {k: v for k, v in body.items() if k in self.count_keys}
        headers = controls.checked_headers(dict(self.config.headers), self.provider_type,
                                           self.name)
        data = self._json_call("POST", path, body, self.timeouts, self.config.max_retries,
                               headers, "total_timeout")
        if "input_tokens" not in data:
            raise ProtocolError(f"{path} answer has no input_tokens", provider=self.name)
        return TokenCount(token_count(data, "input_tokens"), True, f"POST {path}")

    def estimate_prompt(self, messages: Sequence[Message], tools: Sequence[Tool] | None,
                        system: str | None) -> int:
        """The client-side estimate: the messages, the system prompt and the tool schemas."""
        schemas = json.dumps(self.get_tool_schema(tools)) if tools else ""
        return estimate_tokens(messages) + content_tokens(system or "") + \
            content_tokens(schemas)

    @at_boundary
    def model_info(self, name: str | None = None) -> ModelInfo:
        """What the API says about one model (default: the configured one): context window,
        output limit, capabilities; None wherever it says nothing. From the model list here;
        APIs with a per-model endpoint override it."""
        name = name or self.model
        for info in self._list_model_info():
            if info.name == name:
                return info
        raise ProviderError(f"model {name!r} is not in the list of {self.models_path}; check "
                            f"the name (missy models lists them)", provider=self.name)

    @at_boundary
    def list_model_info(self) -> list[ModelInfo]:
        """:meth:`model_info` of every model the provider lists."""
        return self._list_model_info()

    def _list_model_info(self) -> list[ModelInfo]:
        path = self._listing_path()
        data = self._get_json(path)
        try:
            items = data.get("data")
            return [self.info_from(m, f"GET {path}") for m in items or []
                    if isinstance(m, Mapping)]
        except SHAPE_ERRORS as exc:
            raise unexpected_shape(exc, "model list", self.name) from None

    def info_from(self, entry: Mapping[str, Any], source: str) -> ModelInfo:
        """One entry of the model list as ModelInfo (OpenAI's shape and compatible servers')."""
        from .model_facts import from_compatible

        return from_compatible(entry, source)

    def missing_credentials(self) -> str:
        """What to do when there are none (for probes and errors)."""
        unset = self.config.unset_keys
        if unset:
            names = ", ".join(f"${v}" for v in unset)
            verb = "is" if len(unset) == 1 else "are"
            return (f"no key: {names} {verb} not set or {verb} empty (referenced by "
                    f"providers.{self.name})")
        env = KEY_ENV_VARS.get(self.provider_type)
        return f"no key: set providers.{self.name}.api_key" + (f" or {env}" if env else "")

    def models_from(self, data: Any) -> list[str]:
        """Model names from the probe's answer (a ``{"data": [{"id": ...}]}`` list)."""
        items = data.get("data") if isinstance(data, Mapping) else None
        return [str(m.get("id")) for m in items or [] if isinstance(m, Mapping)]

    def has_credentials(self) -> bool:
        """Whether the credentials it needs are configured; no network."""
        if self.credential is not None:
            return self.credential.available()
        return not self.needs_key or self.keys.current() is not None

    def credential_source(self) -> str:
        """Where the credentials come from, for display (never the credential)."""
        return self.credential.source if self.credential is not None else \
            self.config.key_source

    def get_tool_schema(self, tools: Sequence[Tool]) -> list[dict[str, Any]]:
        """Tools in this provider's native schema."""
        raise NotImplementedError

    # --- hooks for subclasses -------------------------------------------------------------

    def endpoint(self) -> str:
        raise NotImplementedError

    def auth_headers(self, key: Secret | None) -> dict[str, Any]:
        """The headers that authenticate a request: the key, as a Credential the core reveals
        only when it frames the request, plus the API's protocol headers."""
        headers = self.protocol_headers()
        if key is not None:
            headers[self.auth_header] = Credential(key, self.auth_scheme)
        return headers

    def protocol_headers(self) -> dict[str, Any]:
        """Headers every request of this API carries (a version, an organization)."""
        return {}

    def build_body(self, messages: Sequence[Message], tools: Sequence[Tool] | None,
                   opts: Mapping[str, Any], *, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    def parse_response(self, data: Any) -> CompletionResponse:
        raise NotImplementedError

    def new_accumulator(self) -> Accumulator:
        raise NotImplementedError

    def error_details(self, data: Any) -> tuple[str, str | None]:
        """(message, error type) from an error body; covers the common shapes."""
        if isinstance(data, Mapping):
            err = data.get("error")
            if isinstance(err, Mapping):
                etype = err.get("type") or err.get("code")
                return str(err.get("message") or etype or "error"), str_or_none(etype)
            if isinstance(err, str):
                return err, None
            detail = data.get("detail") or data.get("message")
            if detail:
                return str(detail), None
        return "", None

    # --- plumbing -------------------------------------------------------------------------

    def _check_opts(self, opts: Mapping[str, Any]) -> None:
        known = self._known_options
        if known is None:
            known = self._known_options = OPTIONS | self.extra_options
        if not known.issuperset(opts):
            unknown = set(opts) - known
            raise UsageError(f"{self.name}: unknown option(s) {sorted(unknown)}; known: "
                             f"{sorted(known)}")
        for name, value in opts.items():
            check = OPTION_CHECKS.get(name)
            expected = check(value) if check is not None else None
            if expected:
                raise UsageError(f"{self.name}: option {name} must be {expected}, got "
                                 f"{value!r}"[:200])

    def _attempt(self, call: Outgoing, key: Secret | None) -> Response:
        """One HTTP exchange with one key; an error status becomes its typed error. With a
        renewable credential (a key file, a host's callback), what it holds now; after a
        refusal (``renew_statuses``), read again and sent once more if it changed (once a
        call: CallBudget.take_refresh)."""
        source = self.credential
        if source is None:
            if self.needs_key and key is None:
                raise AuthenticationError(self.missing_credentials(), provider=self.name)
            return self._exchange(call, self.auth_headers(key))
        held = source.current(call.budget)
        try:
            return self._send_as(call, held)
        except AuthenticationError as exc:
            if exc.status not in self.renew_statuses or \
                    not call.budget.take_refresh(self.name) or \
                    not source.renew(held, call.budget):
                raise
            log.info("%s: HTTP %s; sending once more with the credential read again from %s",
                     self.name, exc.status, source.source)
        return self._send_as(call, source.current(call.budget))

    def _send_as(self, call: Outgoing, credential: Any) -> Response:
        """One exchange with a renewable credential: a bearer token, or the provider's key."""
        assert self.credential is not None
        if self.credential.bearer:
            headers = self.protocol_headers()
            headers["Authorization"] = Credential(credential, "Bearer")
            return self._exchange(call, headers)
        return self._exchange(call, self.auth_headers(credential))

    def _exchange(self, call: Outgoing, headers: dict[str, Any],
                  signer: AwsSigner | None = None) -> Response:
        """One request to the provider's API: every send to it goes through here (a retry, a
        rotation to another key, a re-send with a credential read again, Codex's re-send after
        a token refresh), so each waits for ``requests_per_minute`` and is one ``attempt``
        call event, before the core counts it against the budget and sends it."""
        headers.update(call.headers)  # checked: none of them can be an auth header
        if call.method == "POST":
            headers["Accept"] = ACCEPT[self.stream_format] if call.stream else \
                "application/json"
        url = call.url or self.endpoint()
        try:
            self.limiter.acquire(0, call.budget, self.sleep, tokens=False)
        except MissyError as exc:  # the limit's wait is too long: a retry would wait as long
            exc.should_retry = False
            raise
        trace = call.trace
        if trace:
            trace.attempt(url, trace.key_index)
        response = self.client.request(call.method, url,
                                       headers=headers, json=call.body, timeout=call.timeouts,
                                       stream=True, provider=self.name,
                                       allow_plain_http=self.config.allow_plain_http,
                                       budget=call.budget, client_cert=self.client_cert,
                                       signer=signer)
        if response.status >= 400:
            raise self.error_from(response)
        if not call.stream:
            try:
                response.read()
            except MissyError as exc:
                # The server answered with success and began the body: it did the work, so
                # sending the request again could do it twice.
                exc.should_retry = False
                raise
        return response

    def _budget(self, total: float, max_retries: int, limit: str = "total_timeout"
                ) -> CallBudget:
        """A budget for one call to this provider alone (the registry makes one for a
        fallback chain): its total time, and its sends by the formula of
        :meth:`CallBudget.sends_for`."""
        return CallBudget.for_call(total, [self.send_plan(max_retries)], limit)

    def send_plan(self, max_retries: int | None = None) -> tuple[int, int, bool, bool]:
        """What bounds this provider's sends in one call (CallBudget.for_call): its keys, its
        retries (this call's, else the config's), whether it refreshes a login token, and
        whether it reads its credential again after a refusal (one more send)."""
        retries = self.config.max_retries if max_retries is None else max_retries
        rereads = self.credential is not None and self.credential.renews
        return len(self.keys), retries, self.refreshes_tokens, rereads

    def _send(self, call: Outgoing, estimated_tokens: int = 0) -> Response:
        """One logical request: circuit breaker and the prompt's tokens_per_minute first (the
        limiter's wait is part of the call's deadline), then attempts with retries and key
        rotation (the only place the package retries; each send waits for
        requests_per_minute in :meth:`_exchange`)."""
        self.breaker.before_call()
        try:
            self.limiter.acquire(estimated_tokens, call.budget, self.sleep, request=False)
            response = self._send_with_retries(call)
        except BREAKER_FAILURES:
            self.breaker.record_failure()
            raise
        except BaseException:  # every outcome settles a half-open probe
            self.breaker.record_other()
            raise
        self.breaker.record_success()
        return response

    def _send_with_retries(self, call: Outgoing) -> Response:
        """Attempts until one succeeds. Only a key's own failure moves to another key: a
        401/403 (the key is refused: not used again in this call, and skipped by later calls
        for the ring's cool-down) or a 429 (out of rate); each key at most once, at once,
        without using a retry. Any other retryable failure is retried with the same key,
        after a backoff that must end before the call's deadline. The core counts every
        send against the call's budget and refuses one past it."""
        policy: RetryPolicy | None = None  # made on the first failure only
        avoid: set[int] = set()
        retries = 0
        index = self.keys.start()
        assert index is not None
        while True:
            trace = call.trace
            if trace:  # the key the sends of this attempt use (Trace.attempt records them)
                trace.key_index = index
            try:
                return self._attempt(call, self.keys.key_at(index))
            except ProviderError as exc:
                if exc.status in (401, 403, 429) and len(self.keys) > 1:
                    if exc.status != 429:
                        self.keys.refused(index)
                    avoid.add(index)
                    following = self.keys.pick(avoid)
                    if following is not None:
                        # Another key may not share this one's fate or limit: try it at once.
                        self.keys.move_to(following, from_index=index)
                        log.warning("%s: HTTP %s with key #%d; rotating to key #%d",
                                    self.name, exc.status, index, following)
                        trace.emit("key_rotated", from_index=index, to_index=following,
                                   why=f"HTTP {exc.status}")
                        index = following
                        continue
                if retries >= call.max_retries or not is_retryable(exc):
                    raise
                policy = policy or RetryPolicy(max_retries=call.max_retries)
                import random  # on the retry path only

                delay = policy.delay(retries, getattr(exc, "retry_after", None),
                                     random.random())  # noqa: S311 (jitter, not crypto)
                if delay is None or delay > call.budget.remaining():
                    raise  # the server's own error says more than "out of time"
                log.info("%s: %s; retry %d of %d in %.2fs", self.name, type(exc).__name__,
                         retries + 1, policy.max_retries, delay)
                trace.emit("retry", reason=f"HTTP {exc.status}" if exc.status else
                           type(exc).__name__, wait_s=round(delay, 3))
                call.budget.wait(delay, self.sleep, self.name, "backing off before a retry")
                retries += 1

    def _checked(self, messages: object, tools: object, opts: dict[str, Any]
                 ) -> tuple[list[Message], list[Tool] | None]:
        """The arguments of a call, checked before any I/O (types, ranges, known options)."""
        self._check_opts(opts)
        checked = as_messages(messages)
        without_repeated_system(checked, opts)
        return checked, None if tools is None else as_tools(tools)

    def call_limits(self, opts: dict[str, Any]) -> tuple[Timeouts, int]:
        """This call's timeouts and retries (per-call options over the config), taken out of
        ``opts``."""
        limits = {k: opts.pop(k) for k in CALL_LIMITS if k in opts}
        timeouts = self.timeouts
        if "timeout" in limits or "total_timeout" in limits:
            read = float(limits.get("timeout", timeouts.read))
            timeouts = Timeouts(connect=min(timeouts.connect, read), read=read,
                                total=float(limits.get("total_timeout", timeouts.total)))
        return timeouts, int(limits.get("max_retries", self.config.max_retries))

    def _outgoing(self, messages: list[Message], tools: list[Tool] | None,
                  opts: dict[str, Any], stream: bool, trace: Trace,
                  budget: CallBudget | None = None) -> Outgoing:
        """The request body and this call's limits and budget (a fallback chain's, or this
        call's own: it starts now, before any rate-limit wait)."""
        timeouts, max_retries = self.call_limits(opts)
        if budget is None:
            budget = self._budget(timeouts.total, max_retries)
        headers = {**dict(self.config.headers), **opts.pop("headers", {})}
        extra = controls.layered(dict(self.config.options), opts.pop("provider_options", {}))
        body = self.build_body(messages, tools, opts, stream=stream)
        wire_api = self.wire_api
        controls.CONTROLS[wire_api](body, opts, tools, self.name)
        if extra:
            controls.merge_options(body, extra, wire_api, self.name, "provider_options")
        return Outgoing(body, stream, timeouts, max_retries, budget, trace,
                        controls.checked_headers(headers, self.provider_type, self.name),
                        url=self.request_url(opts, stream))

    def request_url(self, opts: Mapping[str, Any], stream: bool) -> str:
        """This call's URL when it depends on the call (Bedrock's model is in the path);
        "" for :meth:`endpoint`."""
        return ""

    def _parsed(self, data: Any) -> CompletionResponse:
        """A whole JSON answer as a CompletionResponse; a shape the mapping cannot read is a
        ProtocolError, not a KeyError."""
        try:
            return self.parse_response(data)
        except MissyError:
            raise
        except SHAPE_ERRORS as exc:
            raise unexpected_shape(exc, "response", self.name) from None

    def _complete(self, messages: Sequence[Message], tools: Sequence[Tool] | None,
                  opts: dict[str, Any], trace: Trace | None = None,
                  tier: str | None = None, budget: CallBudget | None = None
                  ) -> CompletionResponse:
        trace = self.hooks.trace(self.name) if trace is None else trace
        messages, tools = self._checked(messages, tools, opts)
        if self.always_streams:
            return self._stream(messages, tools, opts, trace, tier, budget).response
        schema = opts.get("schema")
        refuse = bool(opts.get("raise_on_refusal"))
        if trace:
            trace.emit("call_started", model=opts.get("model") or self.model, tier=tier,
                       stream=False, **call_metadata(opts))
        try:
            call = self._outgoing(messages, tools, opts, False, trace, budget)
            # Only a tokens_per_minute limit needs the estimate: a long history is not
            # measured for nothing.
            estimate = estimate_tokens(messages) if self.limiter.tokens else 0
            http_response = self._send(call, estimate)
            response = self._parsed(http_response.json())
        except MissyError as exc:
            trace.failed(exc)
            raise
        response.request_id = request_id(http_response)
        self.limiter.settle(estimate, response.usage.get("total_tokens", 0))
        try:  # an answer that is not the asked-for JSON fails the call, as on a stream
            self._structured(response, schema, refuse)
        except MissyError as exc:
            trace.failed(exc)
            raise
        finished(trace, response)
        return response

    def _structured(self, response: CompletionResponse, schema: Mapping[str, Any] | None,
                    refuse: bool = False) -> CompletionResponse:
        """With ``schema=``: the answer decoded into ``.parsed`` (or StructuredOutputError); a
        refusal is not an answer to decode (ContentRefused with ``raise_on_refusal``)."""
        if refuse:
            response.raise_for_refusal()
        if schema and response.refusal is None:
            response.parsed = controls.parse_structured(response.content, schema, self.name)
        return response

    def _stream(self, messages: Sequence[Message], tools: Sequence[Tool] | None,
                opts: dict[str, Any], trace: Trace | None = None,
                tier: str | None = None, budget: CallBudget | None = None) -> StreamResponse:
        trace = self.hooks.trace(self.name) if trace is None else trace
        messages, tools = self._checked(messages, tools, opts)
        schema = opts.get("schema")
        refuse = bool(opts.get("raise_on_refusal"))
        if trace:
            trace.emit("call_started", model=opts.get("model") or self.model, tier=tier,
                       stream=True, **call_metadata(opts))
        try:
            call = self._outgoing(messages, tools, opts, True, trace, budget)
            estimate = estimate_tokens(messages) if self.limiter.tokens else 0
            response = self._send(call, estimate)
        except MissyError as exc:
            trace.failed(exc)
            raise
        if self.stream_format == "sse" and response.header("content-type").partition(";")[0] \
                .strip().lower() == "application/json":
            # A server that ignored `stream` (or answered in JSON): a whole answer, not a
            # truncated stream. (NDJSON needs no such rule: one JSON object is one line.)
            return StreamResponse(self._whole(response, estimate, trace, schema, refuse),
                                  response)
        return StreamResponse(self._events(response, estimate, trace, schema, refuse), response)

    def _whole(self, response: Response, estimate: int, trace: Trace,
               schema: Mapping[str, Any] | None = None, refuse: bool = False
               ) -> Iterator[StreamEvent]:
        """A complete JSON answer to a streamed request, as the events a stream would give."""
        try:
            data = response.json()
            if isinstance(data, Mapping) and data.get("error"):
                self.raise_stream_error(data)
            final = self._structured(self._parsed(data), schema, refuse)
        except MissyError as exc:
            trace.failed(exc)
            raise
        finally:
            response.close()
        final.request_id = request_id(response)
        self.limiter.settle(estimate, final.usage.get("total_tokens", 0))
        finished(trace, final)
        if final.reasoning:
            yield StreamEvent("reasoning", final.reasoning)
        if final.content:
            yield StreamEvent("text", final.content)
        if final.refusal is not None:
            yield StreamEvent("refusal", final.refusal.text)
        for call in final.tool_calls:
            yield StreamEvent("tool_call", tool_call=call)
        yield StreamEvent("done", response=final)

    def new_decoder(self) -> Any:
        """The sans-IO decoder of this API's stream framing: SSE, NDJSON, or AWS event-stream
        messages (``feed(bytes)`` -> items, ``close()`` -> the last ones)."""
        if self.stream_format == "ndjson":
            return NDJSONDecoder()
        if self.stream_format == "eventstream":
            return EventStreamDecoder()
        return _SSEAtEnd()

    def _events(self, response: Response, estimate: int = 0, trace: Trace = NO_TRACE,
                schema: Mapping[str, Any] | None = None, refuse: bool = False
                ) -> Iterator[str | StreamEvent]:
        """What the caller reads: each text delta as a ``str``, every other event as a
        StreamEvent, then the ``done`` event with the final response. One generator from the
        socket's bytes to the caller (the decoder and the accumulator are plain calls), so a
        delta costs one frame switch, not one per layer."""
        accumulator = self.new_accumulator()
        feed = accumulator.feed
        announced: set[str] = set()
        waiting = bool(trace)  # for the first_token event
        decoder = self.new_decoder()
        try:
            try:
                for chunk in response.iter_raw():
                    for item in decoder.feed(chunk):
                        for event in feed(item):
                            if isinstance(event, str):
                                if waiting:
                                    waiting, trace.first_token = False, True
                                    trace.emit("first_token", ms=trace.elapsed_ms())
                            elif event.tool_call is not None:
                                announced.add(event.tool_call.id)
                            elif waiting and event.text:
                                waiting, trace.first_token = False, True
                                trace.emit("first_token", ms=trace.elapsed_ms())
                            yield event
                for item in decoder.close():  # a last event without its blank line counts
                    for event in feed(item):
                        yield event
                item = chunk = b""  # the last raw bytes are not kept past the loop
                try:
                    final = accumulator.finish()
                except ProtocolError as exc:
                    raise ProtocolError(f"{exc.message}; {response.bytes_received} bytes "
                                        "received", provider=self.name) from None
            except MissyError as exc:
                if type(exc) is ProtocolError and not exc.provider:  # from a decoder
                    raise ProtocolError(exc.message, provider=self.name) from None
                raise
            except SHAPE_ERRORS as exc:
                raise unexpected_shape(exc, "stream item", self.name) from None
            final.request_id = request_id(response)
            self.limiter.settle(estimate, final.usage.get("total_tokens", 0))
            self._structured(final, schema, refuse)
            finished(trace, final)
            for call in final.tool_calls:  # APIs that only know a call is whole at the end
                if call.id not in announced:
                    yield StreamEvent("tool_call", tool_call=call)
            yield StreamEvent("done", response=final)
        except MissyError as exc:
            exc.partial = _partial(accumulator)  # what arrived, for the caller to keep
            trace.failed(exc)
            raise
        finally:
            response.close()

    def error_from(self, response: Response) -> ProviderError:
        """The typed error for an HTTP error response."""
        status = response.status
        try:
            body = response.read(limit=1024 * 1024)
            data: Any = json.loads(body) if body.strip() else None
        except MissyError:
            data, body = None, b""
        except (ValueError, RecursionError):  # not JSON: the body itself is the message
            data = sse_error(body)
        message, etype = self.error_details(data)
        etype = etype or self.error_type_header(response)
        message = excerpt(message, MAX_SERVER_MESSAGE_CHARS) if message else \
            excerpt(body.strip()) or excerpt(response.reason)
        body_request_id = data.get("request_id") if isinstance(data, Mapping) else None
        kw: dict[str, Any] = {"provider": self.name, "status": status, "error_type": etype,
                              "request_id": request_id(response) or
                              str_or_none(body_request_id)}
        error = classify_error(status, message, response.header, kw)
        should_retry = response.header("x-should-retry").lower()
        if should_retry in ("true", "false"):
            error.should_retry = should_retry == "true"
        if isinstance(error, ContentRefused):  # what the filter flagged, as on an answer
            error.response = CompletionResponse(
                "", self.model, self.name, stop_reason=etype or "",
                refusal=self.refusal_of_error(data) or Refusal())
        return error

    def error_type_header(self, response: Response) -> str | None:
        """The error's name when the API gives it in a header, not the body (Bedrock's
        ``x-amzn-ErrorType``); else None."""
        return None

    def refusal_of_error(self, data: Any) -> Refusal | None:
        """What a content filter's error body says it flagged (Azure's categories)."""
        return None

    def raise_stream_error(self, data: Any) -> None:
        """An error object inside a 200 stream, as the typed error it names."""
        message, etype = self.error_details(data)
        message = excerpt(message, MAX_SERVER_MESSAGE_CHARS) if message else \
            "error event in stream"
        raise classify_stream_error(message, {"provider": self.name, "error_type": etype})
