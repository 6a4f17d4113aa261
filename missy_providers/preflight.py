"""Checks of the local files a config names (CA bundle, audit log, Codex auth file).

Loading a config validates its values; these look at the disk, so they run where the files
are used (the HTTP client checks its bundle and audit log when it is built, the Codex provider
its auth file when it reads it) and together in ``missy config check``. Each problem is a
ConfigError with its key path, so none surfaces later as a traceback.
"""

from __future__ import annotations

from .core.errors import ConfigError
from .core.files import ca_bundle_problem, writable_file_problem

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from .settings import Config

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


def local_file_notes(config: Config) -> list[str]:
    """What is missing but not wrong: a Codex login that has not been made yet."""
    import os.path

    return [f"providers.{name}.auth_file: {p.auth_file} does not exist yet; run `codex login` "
            f"(calls to {name!r} fail until then)"
            for name, p in config.providers.items()
            if p.enabled and p.provider_type == "openai-codex" and not p.keys and p.auth_file
            and not os.path.exists(p.auth_file)]


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
