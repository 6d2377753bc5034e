"""Every shape that crosses a boundary: canonical events, provider payloads, API bodies. No IO."""
