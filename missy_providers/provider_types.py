"""Provider types a host application adds in code: ``register_type("acpx", AcpxProvider)``.

The built-in types are the table in registry.py (imported on first use); a host's own types
live here, for the whole process (docs/AUDIT.md lists this table as process-wide state), so
that a config naming one loads, and the registry builds it like a built-in. Never from entry
points or any other discovery: a type exists only because the host's code registered it.
"""

from __future__ import annotations

from .core.errors import UsageError

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from .providers.base import BaseProvider

BUILTIN_TYPES = ("anthropic", "openai", "openai-codex", "ollama", "azure-openai", "bedrock")
# A host's types, by name. Written only by register_type; a name is never re-bound.
HOST_TYPES: dict[str, type[BaseProvider]] = {}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def register_type(name: str, cls: type[BaseProvider]) -> None:
    """Make ``name`` a provider type (``providers.x.name: <name>`` in a config) built by
    ``cls``, a subclass of BaseProvider taking ``(config, client, keys, hooks)`` like the
    built-in ones; ``cls.default_base_url`` (if set) is its base_url when the config gives none.
    Registering the same class again does nothing; another class for a taken name, or a
    built-in name, is a UsageError."""
    from .providers.base import BaseProvider

    if not isinstance(name, str) or not name or len(name) > 40 or \
            not set(name) <= _NAME_CHARS:
        raise UsageError(f"a provider type name is 1-40 lower-case letters, digits, '-' or "
                         f"'_', got {name!r}"[:120])
    if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
        raise UsageError(f"register_type({name!r}, ...) takes a subclass of BaseProvider, got "
                         f"{cls!r}"[:160])
    if name in BUILTIN_TYPES:
        raise UsageError(f"{name!r} is a built-in provider type; register yours under another "
                         "name")
    known = HOST_TYPES.get(name)
    if known is not None and known is not cls:
        raise UsageError(f"provider type {name!r} is already registered as "
                         f"{known.__qualname__}; a type is never re-bound")
    HOST_TYPES[name] = cls


def known_types() -> tuple[str, ...]:
    """Every provider type a config may name: the built-in ones, then the host's."""
    return (*BUILTIN_TYPES, *HOST_TYPES)
