"""The HTTP side of the gateway: Litestar app factory, auth, errors, one module per resource."""
