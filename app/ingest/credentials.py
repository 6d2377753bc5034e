"""What each provider is given on source creation: secrets, client credentials, endpoints."""

from __future__ import annotations

import secrets

from app.security.secret_box import new_webhook_secret


def new_credentials(provider: str) -> dict[str, str]:
    """Fresh credentials; shown once (create or rotate), stored sealed."""
    if provider == "gofood":
        return {"notification_secret": secrets.token_hex(32)}
    if provider == "grabfood":
        return {
            "client_id": "grab_" + secrets.token_hex(8),
            "client_secret": secrets.token_urlsafe(36),
        }
    if provider == "shopeefood":
        return {"partner_key": secrets.token_hex(32)}
    if provider == "custom_pos":
        return {"secret": new_webhook_secret()}
    if provider == "qasir":
        return {}  # imports come through the tenant's own authenticated API calls
    raise ValueError(f"provider {provider!r} does not get generated credentials")


def endpoints(provider: str, ingest_url: str) -> dict[str, str]:
    """The URLs to configure on the provider's side."""
    if provider == "grabfood":
        return {
            "oauth_token": f"{ingest_url}/oauth/token",
            "submit_order": f"{ingest_url}/order",
            "push_order_state": f"{ingest_url}/order/state",
            "menu_sync_state": f"{ingest_url}/menu/sync-state",
            "integration_status": f"{ingest_url}/integration/status",
        }
    if provider == "qasir":
        return {"imports": ingest_url.replace("/v1/ingest/", "/v1/sources/") + "/imports"}
    if provider == "moka":
        return {}  # polled: nothing to configure at Moka beyond the OAuth authorization
    return {"webhook": ingest_url}
