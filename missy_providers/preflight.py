"""Checks of the local files a config names (CA bundle, audit log, Codex auth file).

Loading a config validates its values; these look at the disk, so they run where the files
are used (the HTTP client checks its bundle and audit log when it is built, the Codex provider
its auth file when it reads it) and together in ``missy config check``. Each problem is a
ConfigError with its key path, so none surfaces later as a traceback.
"""

from __future__ import annotations

import os

from .errors import ConfigError

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from .settings import Config

PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
MAX_BUNDLE_BYTES = 16 * 1024 * 1024


def ca_bundle_problem(path: str) -> str | None:
    """Why ``path`` is not a usable PEM bundle, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_BUNDLE_BYTES)
    except FileNotFoundError:
        return "the CA bundle file does not exist"
    except IsADirectoryError:
        return "the CA bundle is a directory; give a PEM file"
    except OSError as exc:
        return f"cannot read the CA bundle ({type(exc).__name__})"
    if PEM_CERTIFICATE not in head:
        return "the CA bundle holds no PEM certificate ('-----BEGIN CERTIFICATE-----')"
    return None


def writable_file_problem(path: str, what: str) -> str | None:
    """Why ``path`` cannot be appended to (a missing or read-only directory), or None."""
    if os.path.isdir(path):
        return f"the {what} is a directory; give a file path"
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        return f"the {what}'s directory {directory} does not exist"
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            return f"the {what} is not writable"
    elif not os.access(directory, os.W_OK | os.X_OK):
        return f"the {what}'s directory {directory} is not writable"
    return None


def json_file_problem(path: str) -> str | None:
    """Why an existing ``path`` is not a JSON object, or None (a missing file is no problem
    here: the provider says how to create it)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read {path} ({type(exc).__name__})"
    except (ValueError, RecursionError):
        return f"{path} is not valid JSON"
    if not isinstance(data, dict):
        return f"{path} is not a JSON object"
    return None


def local_file_problems(config: Config) -> list[ConfigError]:
    """Every problem with the files ``config`` names, each with its key path."""
    found: list[ConfigError] = []
    net = config.network
    if net.ca_bundle and (problem := ca_bundle_problem(net.ca_bundle)):
        found.append(ConfigError(problem, ("network", "ca_bundle"), config.source))
    if net.audit_log and (problem := writable_file_problem(net.audit_log, "audit log")):
        found.append(ConfigError(problem, ("network", "audit_log"), config.source))
    if config.call_log and (problem := writable_file_problem(config.call_log, "call log")):
        found.append(ConfigError(problem, ("observability", "call_log"), config.source))
    for name, p in config.providers.items():
        if p.enabled and p.provider_type == "openai-codex" and not p.keys and p.auth_file:
            if problem := json_file_problem(p.auth_file):
                found.append(ConfigError(problem, ("providers", name, "auth_file"),
                                         config.source))
    return found
