"""ModelRouter: picks the fast, primary or premium model tier by how complex a prompt looks."""

from __future__ import annotations

from .config import ProviderConfig

TIERS = ("fast", "primary", "premium")
FAST_WORDS = frozenset({"what", "how", "when", "where", "who", "list", "show"})
PREMIUM_WORDS = frozenset({"debug", "architect", "refactor", "analyze", "optimize", "complex"})
FAST_MAX_CHARS = 80  # shorter than this (with a question word and no tools) is fast
PREMIUM_MIN_CHARS = 500  # longer than this is premium
PREMIUM_MIN_HISTORY = 10  # more turns than this is premium
PREMIUM_MIN_TOOLS = 3  # more tools than this is premium


class ModelRouter:
    """The rules, in order: fast when the prompt is under 80 characters, no tools are offered
    and one of its whitespace-split, lower-cased words is a simple question word; premium when
    a word names hard work, history is over 10 turns, over 3 tools are offered, or the prompt
    is over 500 characters; primary otherwise."""

    def score_complexity(self, prompt: str, history_length: int = 0, tool_count: int = 0) -> str:
        words = set(prompt.lower().split())
        if len(prompt) < FAST_MAX_CHARS and tool_count == 0 and words & FAST_WORDS:
            return "fast"
        if (words & PREMIUM_WORDS or history_length > PREMIUM_MIN_HISTORY
                or tool_count > PREMIUM_MIN_TOOLS or len(prompt) > PREMIUM_MIN_CHARS):
            return "premium"
        return "primary"

    def select_model(self, config: ProviderConfig, tier: str) -> str:
        """The tier's model, or the provider's ``model`` when that tier has none."""
        if tier == "fast":
            return config.fast_model or config.model
        if tier == "premium":
            return config.premium_model or config.model
        return config.model

    def route(self, config: ProviderConfig, prompt: str, history_length: int = 0,
              tool_count: int = 0) -> str:
        """The model for this prompt on this provider."""
        return self.select_model(config, self.score_complexity(prompt, history_length,
                                                               tool_count))
