"""Tenure events as the Tenure API publishes them (MTFH envelope, camelCase), made from a seeded generator.

A `TenureStory` is one tenure's life: created, updated (address, tenure type, end of tenure),
people added and removed, each event a second after the one before. Every id comes from the
generator, so a seed always gives the same events. Used by `accounts demo load` (through the
listener's own path) and by the tests' fixtures (`tests/fixtures/tenures.py`), so the demo's
events and the tests' are one shape.
"""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

TENURE_TYPES = {
    "SEC": "Secure",
    "INT": "Introductory",
    "NON": "Non-Secure",
    "LEA": "Leasehold (RTB)",
    "FRS": "Freehold (Serv)",
    "SHO": "Shared Owners",
    "TBB": "Temp B&B",
    "TGA": "Temp Hostel",
    "MPA": "Licence Temp Ac",
    "ASY": "Asylum Seeker",
    "ZZZ": "A type the council has not mapped",
}
STREETS = ["Hillman Street", "Mare Street", "Amhurst Road", "Dalston Lane", "Pembury Road", "Well Street"]
POSTCODES = ["E8 1DY", "E8 3RH", "E8 2PX", "N16 7UX", "E5 8QD", "E9 6NS"]
FORENAMES = ["Jane", "Amir", "Grace", "Tomasz", "Adaeze", "Li", "Patrick", "Fatima"]
SURNAMES = ["Smith", "Okafor", "Nowak", "Begum", "O'Brien", "Chen", "Da Silva", "Hughes"]
TITLES = ["Mr", "Mrs", "Ms", "Miss", "Dr"]
OFFICER = {"name": "Housing Officer", "email": "housing.officer@hackney.gov.uk"}
EPOCH = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_id(rng: random.Random) -> str:
    """A version-4 UUID drawn from the seeded generator (same seed, same ids)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def envelope(
    event_type: str,
    tenure_id: str,
    at: datetime,
    new_data: dict[str, Any] | None,
    old_data: dict[str, Any] | None = None,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    ids = rng or random.Random()
    return {
        "id": new_id(ids),
        "eventType": event_type,
        "sourceDomain": "Tenure",
        "sourceSystem": "TenureAPI",
        "version": "v1",
        "correlationId": new_id(ids),
        "dateTime": iso(at),
        "user": dict(OFFICER),
        "entityId": tenure_id,
        "eventData": {"oldData": old_data, "newData": new_data},
    }


def person(rng: random.Random, responsible: bool) -> dict[str, Any]:
    name = f"{rng.choice(TITLES)} {rng.choice(FORENAMES)} {rng.choice(SURNAMES)}"
    born = datetime(1940, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(0, 25000))
    return {
        "id": new_id(rng),
        "type": "Person",
        "fullName": name,
        "isResponsible": responsible,
        "dateOfBirth": born.strftime("%Y-%m-%dT00:00:00"),
        "personTenureType": "Tenant" if responsible else "HouseholdMember",
    }


def new_tenure(rng: random.Random, tenure_type: str | None = None, payment_reference: str = "") -> dict[str, Any]:
    code = tenure_type or rng.choice(list(TENURE_TYPES))
    number = rng.randrange(1, 300)
    street = rng.choice(STREETS)
    start = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(0, 3000))
    members = [person(rng, True)] + [person(rng, False) for _ in range(rng.randrange(0, 3))]
    return {
        "id": new_id(rng),
        "paymentReference": payment_reference,
        "startOfTenureDate": start.strftime("%Y-%m-%d"),
        "endOfTenureDate": None,
        "tenureType": {"code": code, "description": TENURE_TYPES.get(code, "Other")},
        "householdMembers": members,
        "tenuredAsset": {
            "id": new_id(rng),
            "type": "Dwelling",
            "fullAddress": f"{number} {street}, Hackney, London {rng.choice(POSTCODES)}",
            "uprn": str(rng.randrange(10**11, 10**12)),
            "propertyReference": f"{rng.randrange(0, 10**8):08d}",
            "isTemporaryAccommodation": code in ("TBB", "TGA", "MPA", "ASY"),
        },
        "isActive": True,
        "isTenanted": True,
        "terminated": {"isTerminated": False, "reasonForTermination": ""},
        "legacyReferences": [{"name": "uh_tag_ref", "value": f"{rng.randrange(10**6, 10**7)}/01"}],
    }


@dataclass
class TenureStory:
    """One tenure's events in the order they happened, and the tenure they leave behind."""

    tenure: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    clock: datetime = EPOCH
    rng: random.Random = field(default_factory=random.Random)

    @property
    def tenure_id(self) -> str:
        return str(self.tenure["id"])

    def _tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def _event(self, event_type: str, new_data: dict[str, Any], old_data: dict[str, Any] | None) -> None:
        self.events.append(envelope(event_type, self.tenure_id, self._tick(), new_data, old_data, self.rng))

    def created(self) -> TenureStory:
        self._event("TenureCreatedEvent", copy.deepcopy(self.tenure), None)
        return self

    def updated(self, **changes: Any) -> TenureStory:
        old = {key: copy.deepcopy(self.tenure.get(key)) for key in changes}
        self.tenure.update(copy.deepcopy(changes))
        self._event("TenureUpdatedEvent", copy.deepcopy(changes), old)
        return self

    def moved_to(self, full_address: str) -> TenureStory:
        asset = dict(self.tenure["tenuredAsset"], fullAddress=full_address)
        return self.updated(tenuredAsset=asset)

    def retyped(self, code: str) -> TenureStory:
        return self.updated(tenureType={"code": code, "description": TENURE_TYPES.get(code, "Other")})

    def ended(self, on: str = "2026-01-31") -> TenureStory:
        return self.updated(endOfTenureDate=on, terminated={"isTerminated": True, "reasonForTermination": "Deceased"})

    def _household(self, event_type: str, members: list[dict[str, Any]]) -> TenureStory:
        old = copy.deepcopy(self.tenure["householdMembers"])
        self.tenure["householdMembers"] = copy.deepcopy(members)
        self._event(event_type, {"householdMembers": copy.deepcopy(members)}, {"householdMembers": old})
        return self

    def person_added(self, rng: random.Random, responsible: bool = True) -> TenureStory:
        members = [*self.tenure["householdMembers"], person(rng, responsible)]
        return self._household("PersonAddedToTenureEvent", members)

    def person_removed(self, index: int = 0) -> TenureStory:
        members = [m for i, m in enumerate(self.tenure["householdMembers"]) if i != index]
        return self._household("PersonRemovedFromTenureEvent", members)


def story(rng: random.Random, *, tenure_type: str | None = None, payment_reference: str = "") -> TenureStory:
    return TenureStory(new_tenure(rng, tenure_type, payment_reference), rng=rng).created()
