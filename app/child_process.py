"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """preexec_fn for Popen: on Linux, SIGTERM this child when its parent dies.

    `pwbi-gateway run` stops its children on Ctrl-C; this covers the parent being killed
    outright (kill -9, a closed terminal), which would otherwise leave them running.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
