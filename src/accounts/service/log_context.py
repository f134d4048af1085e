"""What the work in hand is about, for its log lines: the correlation id, the event, the account.

Context variables, set where the work starts (a request by the HTTP layer, an event by the
listener) and read by the logging set-up (`accounts.runtime`), so every line logged meanwhile,
however deep, names them without each call passing them. Standard library only: the service
sets them, and the outer layers read them.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

# The correlation id of the request (or event) being handled; "-" when there is none.
correlation_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")
# The tenure event being handled, and the account a line is about, when there is one.
event_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)
account_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("account_id", default=None)


@contextlib.contextmanager
def about(*, event_id: Any = None, account_id: Any = None, correlation_id: Any = None) -> Iterator[None]:
    """Within the block, log lines name the event, the account and the correlation id given (those not None)."""
    tokens: list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]] = []
    for variable, value in (
        (event_id_var, event_id),
        (account_id_var, account_id),
        (correlation_id_var, correlation_id),
    ):
        if value is not None:
            tokens.append((variable, variable.set(str(value))))
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)
