"""Inbound provider traffic: source credentials, provider authentication, filing events."""
