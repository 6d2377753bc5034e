"""arq workers: delivery, sweeping and retention jobs, each a small module."""
