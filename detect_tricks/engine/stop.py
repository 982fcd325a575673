"""A clean stop on SIGINT/SIGTERM: the loop saves a checkpoint and exits after its step."""

from __future__ import annotations

import logging
import signal
from typing import Any

logger = logging.getLogger(__name__)


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves and exits after the current step.

    A second Ctrl-C interrupts at once (the default behaviour).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning(
            "Received %s: stopping after this step and saving a checkpoint "
            "(press Ctrl-C again to quit at once)",
            signal.Signals(signum).name,
        )

    def __enter__(self) -> StopRequest:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
