"""Missy's network presets, as data: a name that stands for a service's hosts, domains and CIDRs.

Source: MissyLabs/missy ``missy/policy/presets.py`` at commit
5632c314f2dc719cbe9e6c8956d22fa712f22b29 (MIT); the table is restated here as data, not
code. ``network.presets: [anthropic, github]`` expands into ``allowed_hosts``,
``allowed_domains`` and ``allowed_cidrs`` after the entries written there, in the order given,
each entry once (as Missy does). A domain here is an exact name (``anthropic.com`` is that
host only, as in Missy); a ``host:port`` entry pins the port.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (import stays cheap)
if TYPE_CHECKING:
    from collections.abc import Sequence

# name -> (hosts, domains, cidrs)
PRESETS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "anthropic": (("api.anthropic.com",), ("anthropic.com",), ()),
    "openai": (("api.openai.com", "auth.openai.com", "chatgpt.com"), ("openai.com",), ()),
    "ollama": (("localhost:11434", "127.0.0.1:11434"), (), ("127.0.0.0/8",)),
    "github": (("api.github.com", "github.com"), ("github.com", "githubusercontent.com"), ()),
    "discord": (("discord.com", "gateway.discord.gg"),
                ("discord.com", "discord.gg", "discordapp.com"), ()),
    "home-assistant": (("localhost:8123", "127.0.0.1:8123"), (), ("127.0.0.0/8",)),
    "pypi": (("pypi.org", "files.pythonhosted.org"), ("pypi.org", "pythonhosted.org"), ()),
    "npm": (("registry.npmjs.org",), ("npmjs.org", "npmjs.com"), ()),
    "docker-hub": (("registry-1.docker.io", "auth.docker.io", "index.docker.io"),
                   ("docker.io", "docker.com"), ()),
    "huggingface": (("huggingface.co", "cdn-lfs.huggingface.co"), ("huggingface.co",), ()),
}


def expand(names: Sequence[str], hosts: Sequence[str], domains: Sequence[str],
           cidrs: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The three lists with each named preset's entries appended after them, first seen
    first, none twice. Every name must be a key of PRESETS (the config checks it first)."""
    out: tuple[list[str], list[str], list[str]] = (list(hosts), list(domains), list(cidrs))
    for name in names:
        for kept, added in zip(out, PRESETS[name], strict=True):
            for entry in added:
                if entry not in kept:
                    kept.append(entry)
    return tuple(out[0]), tuple(out[1]), tuple(out[2])
