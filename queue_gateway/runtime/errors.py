"""The one error every service shares: it cannot start (or keep running) until a person fixes something."""

from __future__ import annotations


class CannotStart(Exception):
    """A service cannot start or keep running; ``str()`` is one sentence saying what to fix (and which setting).

    Each service's main() prints it as ``detectbot <service>: <sentence>`` and exits with ``exit_code``.
    """

    exit_code = 2
