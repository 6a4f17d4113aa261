"""Where AWS Bedrock's credentials come from, in one documented order (README, "AWS Bedrock"):

1. The config, one of: ``api_key`` / ``api_keys`` (Bedrock API keys, sent as ``Authorization:
   Bearer``), ``api_key_file``, ``aws_access_key_id`` + ``aws_secret_access_key`` (+
   ``aws_session_token``; each a literal or a ``$VAR``), or ``aws_profile`` (a profile of the
   shared credentials file).
2. ``AWS_BEARER_TOKEN_BEDROCK`` (a bearer key is preferred when it is set, as botocore does),
   sent only to the region's own ``bedrock-runtime`` host.
3. ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``).
4. The shared credentials file (``AWS_SHARED_CREDENTIALS_FILE``, else ``~/.aws/credentials``),
   profile ``AWS_PROFILE``, else ``default``: read when a call needs it, again when the file
   changed, and once after AWS refused what was read.

Never the instance metadata service, container credentials, SSO or ``credential_process``:
each is egress (or a program run) that the network policy would have to allow for a
credential, not for a model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from .core.errors import AuthenticationError, UsageError
from .core.secret import Secret
from .core.sigv4 import AwsCredentials
from .credentials import Renewable, WatchedFile, key_file_problem

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

    from .config import SecretResolver, _Problems
    from .core.wire import CallBudget

CREDENTIALS_FILE = "~/.aws/credentials"
BEARER_VARIABLE = "AWS_BEARER_TOKEN_BEDROCK"
ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
FILE_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
# The config's explicit sources: at most one of them.
EXPLICIT = ("api_key", "api_key_file", "aws_access_key_id", "aws_profile")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
SIGNING_NAME = "bedrock"  # the service model's signingName (the host says bedrock-runtime)


REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


def region_problem(value: Any) -> str | None:
    ok = isinstance(value, str) and REGION.fullmatch(value) is not None
    return None if ok else "an AWS region name such as 'us-east-1'"


def region_of(good: Mapping[str, Any], env: Mapping[str, str], use_env: bool,
              problems: _Problems, notes: list[str], path: tuple[str, ...]
              ) -> tuple[str, str]:
    """(region, where it came from): the config's ``region``; AWS_REGION or
    AWS_DEFAULT_REGION only with network.allow_env_base_url (the region names the host, and
    the environment decides egress only when the config says so)."""
    if "region" in good:
        return good["region"], "config"
    for var in REGION_VARIABLES:
        value = env.get(var, "").strip()
        if not value:
            continue
        if not use_env:
            notes.append(f"{'.'.join(path)}: {var} is set and ignored (the region names the "
                         "host); set region, or network.allow_env_base_url: true to let it "
                         "decide")
            break
        if problem := region_problem(value):
            problems.add(f"${var}: expected {problem}", *path, "region")
            return "", ""
        return value, f"env {var}"
    problems.add("missing required key 'region' (the AWS region: it names the host and "
                 "signs the requests)", *path)
    return "", ""


def default_base_url(region: str, source: str) -> tuple[str, str]:
    """The region's runtime endpoint, and where it came from (the environment's region)."""
    if not region:
        return "", "default"
    return f"https://{default_host(region)}", "default" if source == "config" else source


def default_host(region: str) -> str:
    """``bedrock-runtime.{region}.amazonaws.com`` (the China partition: ``.com.cn``)."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"bedrock-runtime.{region}.{suffix}"


def credentials_file(env: Mapping[str, str]) -> str:
    from .core.env import expand_user

    return expand_user(env.get("AWS_SHARED_CREDENTIALS_FILE") or CREDENTIALS_FILE)


def parse_profile(text: str, profile: str, path: str) -> AwsCredentials:
    """The SigV4 credentials of ``[profile]`` in a shared credentials file (INI, as botocore
    reads it). ValueError with the reason: never a line of the file, which may hold a key."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None) or next(
            (n for n, _ in getattr(exc, "errors", ())), None)
        where = f" at line {line}" if line else ""
        raise ValueError(f"{path} is not a valid credentials file ({type(exc).__name__}"
                         f"{where})") from None
    if not parser.has_section(profile):
        raise ValueError(f"{path} has no profile [{profile}]")
    section = parser[profile]
    key_id, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
    if not key_id or not secret:
        raise ValueError(f"profile [{profile}] of {path} needs aws_access_key_id and "
                         "aws_secret_access_key")
    token = section.get("aws_session_token") or section.get("aws_security_token")
    origin = f"{path} [{profile}]"
    try:
        return AwsCredentials(key_id.strip(), Secret(secret.strip(), origin=origin),
                              Secret(token.strip(), origin=origin) if token else None)
    except UsageError as exc:
        raise ValueError(f"profile [{profile}] of {path}: {exc}") from None


def read_profile(path: str, profile: str) -> AwsCredentials:
    """The profile's credentials from the file, if only its owner may read it."""
    from .core.files import read_private

    try:
        text = read_private(path, "shared credentials file")
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({type(exc).__name__})") from None
    return parse_profile(text, profile, path)


class AwsProfile(WatchedFile):
    """SigV4 credentials from a profile of the shared credentials file (a tool that rotates
    temporary credentials rewrites it); AWS refuses stale ones with 401 or 403."""

    def __init__(self, provider: str, path: str, profile: str) -> None:
        super().__init__(provider, path)
        self.profile = profile
        self.source = f"profile {profile} ({path}), SigV4"

    def _read(self) -> AwsCredentials:
        try:
            return read_profile(self.path, self.profile)
        except ValueError as exc:
            raise AuthenticationError(str(exc), provider=self.provider) from None

    def _same(self, held: Any, other: Any) -> bool:
        return isinstance(other, AwsCredentials) and held.access_key_id == \
            other.access_key_id and held.secret_access_key.same_value(other.secret_access_key)


class GivenAws(Renewable):
    """SigV4 credentials given once (the config's, or the AWS_* variables'): nothing to read
    again after a refusal."""

    renews = False

    def __init__(self, provider: str, credentials: AwsCredentials, source: str) -> None:
        super().__init__(provider)
        self._held, self.source = credentials, source

    def renew(self, rejected: Any, budget: CallBudget) -> bool:
        return False


class BedrockAuth:
    """What the config says about a Bedrock provider's credentials (see the module's order):
    bearer keys for the ring, or SigV4 credentials, or a profile to read; ``source`` for
    display; the referenced variables that are not set."""

    def __init__(self) -> None:
        self.keys: tuple[Secret, ...] = ()
        self.source = "none"
        self.unset: list[str] = []
        self.aws: AwsCredentials | None = None
        self.profile = self.file = ""


def resolve(good: Mapping[str, Any], env: Mapping[str, str], base_url: str, region: str,
            problems: _Problems, path: tuple[str, ...], notes: list[str],
            resolve_secret: SecretResolver | None) -> BedrockAuth:
    """The credentials of the Bedrock provider at ``path`` (``good``: its checked keys)."""
    from urllib.parse import urlsplit

    from .config import _credential, _resolve_keys

    auth = BedrockAuth()
    given = [k for k in EXPLICIT if k in good] + (["api_keys"] if "api_keys" in good and
                                                   "api_key" not in good else [])
    if len(given) > 1:
        problems.add(f"give one source of credentials, not {' and '.join(given)}", *path,
                     given[1])
        return auth
    for key in FILE_KEYS[1:]:
        if key in good and "aws_access_key_id" not in good:
            problems.add("needs aws_access_key_id beside it", *path, key)
    kind = given[0] if given else ""
    if kind in ("api_key", "api_keys"):
        keys, auth.source, unset, _ = _resolve_keys("bedrock", good, base_url, env, problems,
                                                    *path, resolve=resolve_secret,
                                                    from_env=False)
        auth.keys, auth.unset = keys, list(unset)
    elif kind == "aws_access_key_id":
        _given_keys(auth, good, env, problems, path, resolve_secret, _credential)
    elif kind == "aws_profile":
        _profile(auth, credentials_file(env), good["aws_profile"], problems, path)
    elif kind == "":
        _from_environment(auth, env, (urlsplit(base_url).hostname or "").lower(), region,
                          problems, path, notes)
    return auth


def _given_keys(auth: BedrockAuth, good: Mapping[str, Any], env: Mapping[str, str],
                problems: _Problems, path: tuple[str, ...],
                resolve_secret: SecretResolver | None, credential: Any) -> None:
    """``aws_access_key_id`` (not a secret: it is in every Authorization header) and the
    secret access key and session token beside it, each a literal or a ``$VAR``."""
    from .config import Unset, _env_name

    ref = good["aws_access_key_id"]
    name = _env_name(ref)
    key_id = ref if name is None else env.get(name, "")
    if name is not None and not key_id:
        auth.unset.append(name)
    if "aws_secret_access_key" not in good:
        problems.add("needs aws_secret_access_key beside it", *path, "aws_access_key_id")
        return
    values = [credential(good[k], env, problems, *path, k, resolve=resolve_secret)
              if k in good else None for k in FILE_KEYS[1:]]
    auth.unset += [v for v in values if isinstance(v, Unset)]
    secret, token = values
    if auth.unset or not isinstance(secret, Secret):
        auth.source = f"unset {', '.join('$' + v for v in auth.unset)}" if auth.unset else \
            "none"
        return
    try:
        auth.aws = AwsCredentials(key_id, secret, token if isinstance(token, Secret) else None)
    except UsageError as exc:
        problems.add(str(exc), *path, "aws_access_key_id")
        return
    shown = "config" if name is None else f"env {name}"
    auth.source = f"{shown} aws_access_key_id, SigV4"


def _profile(auth: BedrockAuth, file: str, profile: str, problems: _Problems,
             path: tuple[str, ...]) -> None:
    try:
        if problem := key_file_problem(file, False, "shared credentials file"):
            raise ValueError(f"{problem} ({file})")
        read_profile(file, profile)
    except ValueError as exc:
        problems.add(str(exc), *path, "aws_profile")
        return
    auth.profile, auth.file = profile, file
    auth.source = f"profile {profile} ({file}), SigV4"


def _from_environment(auth: BedrockAuth, env: Mapping[str, str], host: str, region: str,
                      problems: _Problems, path: tuple[str, ...], notes: list[str]) -> None:
    where = ".".join(path)
    bearer = env.get(BEARER_VARIABLE, "")
    if bearer and region and host == default_host(region):
        from .core.headers import header_value_problem

        if problem := header_value_problem(bearer, credential=True):
            problems.add(f"${BEARER_VARIABLE}: {problem}", *path)
            return
        auth.keys = (Secret(bearer, origin=f"${BEARER_VARIABLE}",
                            only_host=default_host(region)),)
        auth.source = f"env {BEARER_VARIABLE}"
        return
    if bearer:
        notes.append(f"{where}: {BEARER_VARIABLE} is set and not used: it goes only to "
                     f"{default_host(region) if region else 'the region host'}; write "
                     f"api_key: ${BEARER_VARIABLE} to send it to this base_url")
    key_id = env.get(ENV_KEYS[0], "")
    if key_id:
        secret = env.get(ENV_KEYS[1], "")
        if not secret:
            auth.unset.append(ENV_KEYS[1])
            auth.source = f"unset ${ENV_KEYS[1]}"
            notes.append(f"{where}: {ENV_KEYS[0]} is set and {ENV_KEYS[1]} is not: set both "
                         "(the shared credentials file is not read while AWS_ACCESS_KEY_ID "
                         "is set)")
            return
        token = env.get(ENV_KEYS[2], "")
        try:
            auth.aws = AwsCredentials(key_id, Secret(secret, origin=f"${ENV_KEYS[1]}"),
                                      Secret(token, origin=f"${ENV_KEYS[2]}") if token else None)
        except UsageError as exc:
            problems.add(f"${ENV_KEYS[0]}: {exc}", *path)
            return
        auth.source = f"env {ENV_KEYS[0]}, SigV4"
        return
    file = credentials_file(env)
    if not os.path.exists(file):
        return
    named = env.get("AWS_PROFILE", "")
    try:
        if problem := key_file_problem(file, False, "shared credentials file"):
            raise ValueError(f"{problem} ({file})")
        read_profile(file, named or "default")
    except ValueError as exc:
        if named or "has no profile" not in str(exc):
            problems.add(str(exc), *path)
        return
    auth.profile, auth.file = named or "default", file
    auth.source = f"profile {auth.profile} ({file}), SigV4"
