"""pwbi-gateway: provider and POS events in, canonical signed webhooks out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pwbi-gateway")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
