"""Dead letters: the tenure events the listener could not apply, listed with their reasons, and replayed.

`accounts events dead-letters` / `accounts events replay` and the /interim page go through this one
service. A replay publishes the letter's body again, as it came, and marks the letter replayed: the
listener then applies it (its cause mended meanwhile) or dead-letters it again as a new letter.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from accounts.service.accounts import Clock, utc_now
from accounts.service.ports import TENURE_TOPIC
from accounts.service.unit_of_work import DeadLetter, UnitOfWork


class EventPublisher(Protocol):
    """A broker connection, or the API's shared publisher."""

    def publish_many(self, topic: str, items: list[tuple[bytes, str, str]]) -> None: ...


class NoSuchDeadLetter(Exception):
    def __init__(self, dead_letter_id: int) -> None:
        super().__init__(f"no dead letter {dead_letter_id} waits to be replayed")
        self.dead_letter_id = dead_letter_id


@dataclass(frozen=True)
class DeadLetterPage:
    letters: list[DeadLetter]
    total: int  # waiting to be replayed, on every page
    next_after: int | None  # the `after` of the next page; None on the last


@dataclass(frozen=True)
class ReplayOutcome:
    """What became of a replayed letter, as far as the store can tell."""

    letter: DeadLetter
    state: str  # applied | dead-lettered again | waiting | published
    again: DeadLetter | None = None  # the new letter, when dead-lettered again


@dataclass
class DeadLetterService:
    uow_factory: Callable[..., UnitOfWork]
    clock: Clock = utc_now

    def list(self, include_replayed: bool = False) -> builtins.list[DeadLetter]:
        with self.uow_factory(read_only=True) as uow:
            return uow.dead_letters.list(include_replayed)

    def page(self, *, after: int | None = None, limit: int = 50) -> DeadLetterPage:
        """Those waiting to be replayed, oldest first, `limit` at a time."""
        with self.uow_factory(read_only=True) as uow:
            letters = uow.dead_letters.list(after=after, limit=limit + 1)
            total = uow.dead_letters.count()
        more = len(letters) > limit
        letters = letters[:limit]
        return DeadLetterPage(letters, total, letters[-1].id if more else None)

    def replay(self, publisher: EventPublisher, ids: Sequence[int] | None = None) -> builtins.list[DeadLetter]:
        """Publish again the letters with these ids (None: every one waiting); each then marked replayed.

        NoSuchDeadLetter when an id named is unknown or already replayed (nothing is published then).
        """
        with self.uow_factory(read_only=True) as uow:
            if ids is None:
                chosen = uow.dead_letters.list()
            else:
                found = {number: uow.dead_letters.get(number) for number in dict.fromkeys(ids)}
                for number, letter in found.items():
                    if letter is None or letter.replayed_at is not None:
                        raise NoSuchDeadLetter(number)
                chosen = [letter for letter in found.values() if letter is not None]
        for letter in chosen:
            # One at a time, each marked as soon as it is published: a failure midway leaves the rest waiting.
            publisher.publish_many(TENURE_TOPIC, [(letter.body, _group(letter), f"replay-{letter.id}-{_nonce()}")])
            with self.uow_factory() as uow:
                uow.dead_letters.mark_replayed(letter.id, self.clock())
                uow.commit()
        return chosen

    def outcomes(self, limit: int = 10) -> builtins.list[ReplayOutcome]:
        """The letters replayed last, each with what became of it: applied, dead-lettered again, or waiting."""
        with self.uow_factory(read_only=True) as uow:
            return [self._outcome(uow, letter) for letter in uow.dead_letters.replayed(limit)]

    def outcome(self, dead_letter_id: int) -> ReplayOutcome | None:
        with self.uow_factory(read_only=True) as uow:
            letter = uow.dead_letters.get(dead_letter_id)
            return None if letter is None else self._outcome(uow, letter)

    @staticmethod
    def _outcome(uow: UnitOfWork, letter: DeadLetter) -> ReplayOutcome:
        if not letter.event_id:  # not even an id could be read from it: only that it was published again
            return ReplayOutcome(letter, "published")
        later = [other for other in uow.dead_letters.by_event_id(letter.event_id) if other.id > letter.id]
        if later:
            return ReplayOutcome(letter, "dead-lettered again", later[0])
        with contextlib.suppress(ValueError):
            if uow.processed_events.seen(uuid.UUID(letter.event_id)):
                return ReplayOutcome(letter, "applied")
        return ReplayOutcome(letter, "waiting")


def _group(letter: DeadLetter) -> str:
    """The letter's tenure (its events stay in order), as it was published the first time."""
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(letter.body).get("entityId") or "replay")
    return "replay"


def _nonce() -> str:
    return uuid.uuid4().hex[:8]
