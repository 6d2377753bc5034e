"""Delivery: fan-out, signing, the guarded HTTP client, retry policy, isolation."""
