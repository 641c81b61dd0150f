"""Provider and model names as every source spells them, mapped to one canonical form."""

from __future__ import annotations

from nano_export.pricing import PRICES

_PROVIDER_ALIASES = {
    "openai": "openai",
    "open-ai": "openai",
    "open_ai": "openai",
    "anthropic": "anthropic",
    "claude": "anthropic",
    "ollama": "ollama",
}

# Short names used in nano-agent's evaluation tables and prompts, mapped to full model ids.
MODEL_ALIASES = {
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4.1": "claude-opus-4-1-20250805",
    "claude-opus-4": "claude-opus-4-20250514",
    "claude-sonnet-4": "claude-sonnet-4-20250514",
    "claude-3-haiku": "claude-3-haiku-20240307",
    "gpt-oss-20b": "gpt-oss:20b",
    "gpt-oss-120b": "gpt-oss:120b",
}

_PROVIDER_OF_MODEL = {p.model: p.provider for p in PRICES}


def normalize_provider(name: str) -> str:
    """``OpenAI`` → ``openai``; unknown providers are kept as given, trimmed and lower-cased."""
    key = name.strip().lower()
    return _PROVIDER_ALIASES.get(key, key)


def normalize_model(name: str) -> str:
    """A model alias or id as its full id: ``claude-opus-4-1`` → ``claude-opus-4-1-20250805``."""
    key = name.strip()
    return MODEL_ALIASES.get(key.lower(), key)


def provider_for_model(model: str) -> str | None:
    """The provider of a (normalised) model id, when the pricing table or its name tells."""
    known = _PROVIDER_OF_MODEL.get(model)
    if known:
        return known
    lowered = model.lower()
    if lowered.startswith("claude"):
        return "anthropic"
    if lowered.startswith(("gpt-oss", "llama", "qwen", "mistral", "gemma")) or ":" in lowered:
        return "ollama"
    if lowered.startswith(("gpt-", "o1", "o3", "o4")):
        return "openai"
    return None


def normalize(model: str, provider: str | None = None) -> tuple[str, str]:
    """Normalise a (model, provider) pair; the provider is inferred from the model when missing."""
    full = normalize_model(model)
    prov = normalize_provider(provider) if provider else provider_for_model(full)
    return prov or "unknown", full
