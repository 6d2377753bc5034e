"""Provider adapters: each provider's wire shapes and a pure normalize() to canonical events."""
