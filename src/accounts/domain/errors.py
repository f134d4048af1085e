"""Errors the council's rules raise; entrypoints turn them into 4xx or dead letters."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule of the council was broken by the input."""


class ValidationProblem(DomainError):
    """One field broke one rule; the message names both."""

    def __init__(self, field: str, rule: str, value: Any = None) -> None:
        self.field = field
        self.rule = rule
        self.value = value
        super().__init__(f"{field} {rule}")


class ImmutableField(ValidationProblem):
    """Someone tried to change a field that is fixed once the account exists."""

    def __init__(self, field: str) -> None:
        super().__init__(field, "cannot be changed once the account exists")
