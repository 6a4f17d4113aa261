"""What the process takes from outside its own code: environment variables, the home
directory, and the package's own modules loaded on first use. The one place for each.

Every variable read goes through :class:`ProcessEnvironment` (a read-only mapping over
``os.environ``), and ``~`` in a path is expanded here (that reads ``HOME``). Which variables
are read, and what each one can change, is docs/AUDIT.md question 8; the variables whose
values are credentials bound to one vendor's host are :data:`VENDOR_KEY_HOSTS`. The only
dynamic import is :func:`load_own`, of the package's own modules.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from .secret import Secret, get_logger

log = get_logger(__name__)

# A vendor's own key variable is sent only to that vendor's API host, however the config
# references it (implicitly, as `api_key: $OPENAI_API_KEY`, in `api_keys`, or in a header).
# Read-only: a caller's .clear() or [name] = ... cannot unbind a vendor's key by accident.
VENDOR_KEY_HOSTS: Mapping[str, str] = MappingProxyType(
    {"OPENAI_API_KEY": "api.openai.com", "OLLAMA_API_KEY": "ollama.com"})


class ProcessEnvironment(Mapping[str, str]):
    """``os.environ``, read one name at a time (each read is logged at DEBUG, by name only);
    listing it is refused, so nothing can copy the whole environment."""

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        log.debug("environment variable %s read", name)
        return os.environ[name]

    def __iter__(self) -> Iterator[str]:
        raise TypeError("the process environment is read by name, not listed")

    def __len__(self) -> int:
        raise TypeError("the process environment is read by name, not listed")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in os.environ

    def __repr__(self) -> str:
        return "ProcessEnvironment()"


ENVIRONMENT = ProcessEnvironment()


def secret_from(env: Mapping[str, str], name: str) -> Secret | None:
    """The variable ``name`` as a Secret (bound to its vendor's host when it is a vendor key
    variable), or None when it is unset or empty."""
    value = env.get(name, "")
    if not value:
        return None
    return Secret(value, origin=f"${name}", only_host=VENDOR_KEY_HOSTS.get(name))


def expand_user(path: str) -> str:
    """``~`` at the start of ``path`` expanded (from ``HOME``, or the password database; an
    empty ``HOME`` counts as unset, never as the file system's root)."""
    if path[:2] in ("~", "~/") and os.environ.get("HOME") == "":
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir + path[1:]
    return os.path.expanduser(path)


PACKAGE = "missy_providers"


def load_own(module: str, name: str) -> object:
    """``name`` from the package's own ``module`` (``providers.openai``): a provider class or
    a public name imported on first use, so that import stays cheap. Nothing outside the
    package can be named."""
    import importlib

    if not module.replace(".", "").replace("_", "").isalnum() or module.startswith("."):
        raise ValueError(f"not a module of {PACKAGE}: {module!r}")
    return getattr(importlib.import_module(f"{PACKAGE}.{module}"), name)
