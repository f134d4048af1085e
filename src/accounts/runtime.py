"""How every process of the service sets itself up: its logs and its garbage collector.

Neutral ground: the CLI, the worker, the relay-and-sinks process and the HTTP layer all
take these from here, and this module imports nothing of theirs (so no import circle, and
the relay-and-sinks process configures its logs without importing FastAPI).
"""

from __future__ import annotations

import contextvars
import gc
import logging

from accounts.settings import Settings

# The correlation id of the request (or event) being handled, put on every log record.
correlation_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")

# The listener allocates quickly (a batch of 500 events made some 100,000 short-lived objects): at
# Python's default threshold (700) the cyclic collector ran about 2,000 times for 20,000 events, about
# a tenth of the worker's CPU. Collected less often, and without rescanning what startup made:
GC_THRESHOLDS = (10_000, 20, 20)


class CorrelationFilter(logging.Filter):
    """Puts the request's correlation id on every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id_var.get()
        return True


def configure_logging(settings: Settings) -> None:
    """One handler on the root logger, at the configured level, every line with its correlation id."""
    handler = logging.StreamHandler()
    handler.addFilter(CorrelationFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)


def tune_garbage_collector() -> None:
    """Freeze what exists now (modules, settings, engines: never garbage) and collect young objects less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
