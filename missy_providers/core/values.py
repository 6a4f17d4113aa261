"""Value: the base of the package's small value classes.

`dataclasses` would write these methods, but importing it pulls in `inspect`, and each
decorated class compiles generated code at import: together that was a third of
``missy providers``' start-up. A subclass lists its fields in ``__slots__``, declares their
types, and sets them once in ``__init__`` with :meth:`Value._set`.
"""

from __future__ import annotations

from collections.abc import Mapping


class Value:
    """Compared, hashed and shown by its fields (the ``__slots__``); immutable once built."""

    __slots__: tuple[str, ...] = ()

    def _set(self, **fields: object) -> None:
        setter = object.__setattr__
        for name, value in fields.items():
            setter(self, name, value)

    def _set_over(self, defaults: Mapping[str, object], given: Mapping[str, object]) -> None:
        """Set the ``given`` fields and the ``defaults`` for the rest; unknown names are an
        error, as for any constructor."""
        unknown = set(given) - set(defaults)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        self._set(**{**defaults, **given})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: build a new one")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def field_values(self) -> dict[str, object]:
        """Each field by name, in order (a JSON-ready dict when the values are)."""
        return dict(zip(self.__slots__, self._values(), strict=True))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Record(Value):
    """A Value whose fields may be changed after it is built (so it is not hashable)."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)


class Final:
    """A base for the classes the core takes by exact type (``type(x) is Secret``): they
    cannot be subclassed, because a subclass could show a check one value and the wire, a
    signature or a TLS context another."""

    __slots__ = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if Final not in cls.__bases__:
            raise TypeError(f"{cls.__bases__[0].__name__} cannot be subclassed")


def own_text(value: str) -> str:
    """``value``'s own characters as a plain ``str``. A ``str`` subclass can override what a
    check reads it with (``__iter__``, ``lower``, ``__eq__``, ``__hash__``) and what framing
    writes (``__str__``, ``__format__``), so that what is checked and what is sent differ:
    text that goes into a request is made plain before it is checked."""
    return value if type(value) is str else str.__str__(value)
