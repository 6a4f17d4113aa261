"""JSON from a server, parsed in one place with one error mapping.

A hostile body can be malformed, nested deeply enough to exhaust the parser's recursion, or
hold numbers too long for ``int()``; each is a ProtocolError naming what was being read and
quoting (scrubbed, bounded) only its start.
"""

from __future__ import annotations

import json

from .errors import ProtocolError, excerpt

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from typing import Any

_loads = json.loads


def parse_json(data: bytes | str, what: str, provider: str = "") -> Any:
    """``data`` as JSON; ProtocolError (naming ``what``) when it is not."""
    try:
        return _loads(data)
    except (ValueError, RecursionError) as exc:
        # ValueError covers malformed JSON and integers past the int-string limit.
        kind = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
        raise ProtocolError(f"{what} is {kind}: '{excerpt(data, 60)}'", provider=provider
                            ) from None
