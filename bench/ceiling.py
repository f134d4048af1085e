"""The ceilings for the API reads and the events intake: bare Starlette endpoints.

`GET /api/v1/accounts/{id}` returns a constant account; `POST /api/v1/events` reads the body
and parses it with orjson, answering 202 with the count (the intake's ceiling: the same
bodies' transfer and a JSON parse, nothing checked, nothing queued).

Served by the same server (uvicorn, one worker, the same log level, so the same loop
and HTTP parser) as `accounts serve`, and loaded by the same generator in the same
run, it is the most any account read could do on this machine: no auth, no
database, no serialising.

Run as `python -m bench.ceiling --port N`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from accounts.domain.account import (
    Account,
    AccountTenure,
    AccountType,
    ConsolidatedCharge,
    PrimaryTenant,
    RentGroupType,
    TenureTypeRef,
    to_wire,
)


def _account_json() -> bytes:
    at = datetime(2024, 4, 1, 9, 0, tzinfo=UTC)
    target = UUID("8a3b4f4e-0f6b-4bbf-9d0e-2c4b1f5e6a7d")
    account = Account(
        id=UUID("0b6f3c1e-2d4a-4f7e-9c1b-5a6d7e8f9a0b"),
        target_type="Tenure",
        target_id=target,
        account_type=AccountType.MASTER,
        payment_reference="1000000009",
        created_by="bench@localhost",
        created_at=at,
        last_updated_by="bench@localhost",
        last_updated_at=at,
        rent_group_type=RentGroupType.HOUSING_REVENUE,
        agreement_type="Master Account",
        account_balance=Decimal("-1234.56"),
        consolidated_balance=Decimal("-1234.56"),
        start_date=at,
        consolidated_charges=(ConsolidatedCharge("Rent", "Weekly", Decimal("123.45")),),
        tenure=AccountTenure(
            target,
            TenureTypeRef("SEC", "Secure"),
            "12 Mare Street, Hackney, London E8 1DY",
            (PrimaryTenant(UUID("5a3b4f4e-0f6b-4bbf-9d0e-2c4b1f5e6a7d"), "Mrs Jane Smith"),),
        ),
    )
    return orjson.dumps(to_wire(account), default=lambda value: orjson.Fragment(str(value)))


ACCOUNT = _account_json()


async def account(_request: Request) -> Response:
    return Response(ACCOUNT, media_type="application/json")


async def events(request: Request) -> Response:
    body = orjson.loads(await request.body())
    return Response(orjson.dumps({"accepted": len(body) if isinstance(body, list) else 1}), 202)


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/api/v1/accounts/{id}", account),
            Route("/api/v1/accounts", account),
            Route("/api/v1/events", events, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # The same call `accounts serve` makes.
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level, workers=1)


if __name__ == "__main__":
    main()
