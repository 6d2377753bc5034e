"""Security building blocks: SSRF vetting of webhook targets, sealing of stored secrets."""
