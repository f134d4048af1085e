"""The wire models: what clients send and read, as the OpenAPI document shows them.

Field names are the existing clients' camelCase. Read-only audit fields that the
real clients send (createdBy, ...) are accepted and ignored: the token decides who.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from accounts.domain.account import (
    AccountStatus,
    AccountTenure,
    AccountType,
    ConsolidatedCharge,
    PrimaryTenant,
    RentGroupType,
    TenureTypeRef,
)
from accounts.domain.ledger import POSTABLE_TYPES, Direction, PostingRequest, TransactionType
from accounts.domain.polarity import DEFAULT_TARGET_TYPES
from accounts.service.accounts import NewAccount


def _storable(value: str) -> str:
    """Text every database can hold: no NUL characters, no lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _number(value: Any) -> Any:
    """Money is a JSON number: "12.50" (a string) and true (a boolean) are refused, not coerced."""
    if isinstance(value, str | bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a JSON number, such as 317.54")
    return value


def _date_text(value: Any) -> Any:
    """Dates are ISO-8601 strings; a bare number is not taken as seconds since 1970."""
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO-8601 date or date-time string, such as 2021-04-01")
    return value


MONEY_SCHEMA: dict[str, Any] = {
    "type": "number",
    "description": "An exact amount in pounds with at most two decimal places",
    # NUMERIC(14,2): less than a trillion either way (MONEY_LIMIT).
    "exclusiveMinimum": -1_000_000_000_000,
    "exclusiveMaximum": 1_000_000_000_000,
    "multipleOf": 0.01,
    "examples": [317.54],
}
# A ledger amount: always more than zero (its type says which way it moves what is owed).
AMOUNT_SCHEMA: dict[str, Any] = {**MONEY_SCHEMA, "exclusiveMinimum": 0, "examples": [125.5]}
# What `_storable` and a blank check refuse, as JSON Schema patterns (ECMA regexes; \s differs from Python's
# str.isspace, so the whitespace Python strips is spelled out).
NO_NUL_PATTERN = r"^[^\u0000]*$"
PYTHON_SPACE = r"\t\n\u000b\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_PATTERN = rf"^[^\u0000]*[^\u0000{PYTHON_SPACE}][^\u0000]*$"


@dataclass(frozen=True)
class _Storable:
    """Text every database can hold (`_storable`), declared in the schema by `pattern`."""

    pattern: str = NO_NUL_PATTERN

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(_storable, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {**handler(schema), "pattern": self.pattern}


Storable = _Storable()
StorableNotBlank = _Storable(NOT_BLANK_PATTERN)
Text = Annotated[str, StringConstraints(max_length=200), Storable]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=100), Storable]
Money = Annotated[
    Decimal,
    BeforeValidator(_number),
    Field(max_digits=14, decimal_places=2, allow_inf_nan=False),
    WithJsonSchema(MONEY_SCHEMA),
]
MoneyOut = Annotated[Decimal, WithJsonSchema(MONEY_SCHEMA)]
Date = Annotated[datetime, BeforeValidator(_date_text)]
PaymentReference = Annotated[str, StringConstraints(pattern=r"^[0-9]{9,10}$")]


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class ChargeIn(Wire):
    type: ShortText
    frequency: ShortText
    amount: Money


class TenureTypeIn(Wire):
    code: Annotated[str, StringConstraints(min_length=1, max_length=10), Storable]
    description: Annotated[str, StringConstraints(max_length=100), Storable] = ""


class PrimaryTenantIn(Wire):
    id: UUID
    fullName: Text


class TenureIn(Wire):
    tenureId: UUID
    tenureType: TenureTypeIn | None = None
    fullAddress: Annotated[str, StringConstraints(max_length=500), Storable] | None = None
    primaryTenants: Annotated[list[PrimaryTenantIn], Field(max_length=50)] = []

    def to_domain(self) -> AccountTenure:
        return AccountTenure(
            tenure_id=self.tenureId,
            tenure_type=TenureTypeRef(self.tenureType.code, self.tenureType.description) if self.tenureType else None,
            full_address=self.fullAddress,
            primary_tenants=tuple(PrimaryTenant(p.id, p.fullName) for p in self.primaryTenants),
        )


def _as_utc(value: datetime | None) -> datetime | None:
    """Dates without a zone (`2021-04-01`) are taken as UTC."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the range of dates this service can hold") from None


# The domain's rule, declared: a Master account has no parent.
MASTER_HAS_NO_PARENT: dict[str, Any] = {
    "if": {"properties": {"accountType": {"const": AccountType.MASTER.value}}, "required": ["accountType"]},
    "then": {"properties": {"parentAccountId": {"type": "null"}}},
}


class AccountFields(Wire):
    """The fields a client may set, shared by create and the result of a patch."""

    targetType: Annotated[str, StringConstraints(min_length=1, max_length=40), Storable] = Field(
        description="A target type from GET /api/v1/target-types",
        json_schema_extra={"enum": [target.name for target in DEFAULT_TARGET_TYPES]},
    )
    targetId: UUID
    accountType: AccountType
    paymentReference: PaymentReference | None = Field(
        default=None, description="9 or 10 digits; allocated with a check digit when left out"
    )
    rentGroupType: RentGroupType | None = None
    agreementType: Annotated[str, StringConstraints(max_length=100), Storable] | None = None
    accountBalance: Money = Decimal("0.00")
    consolidatedBalance: Money = Decimal("0.00")
    parentAccountId: UUID | None = None
    startDate: Date | None = None
    endDate: Date | None = None
    endReasonCode: Annotated[str, StringConstraints(max_length=50), Storable] | None = None
    accountStatus: AccountStatus = AccountStatus.ACTIVE
    consolidatedCharges: Annotated[list[ChargeIn], Field(max_length=50)] = []
    tenure: TenureIn | None = None

    @field_validator("startDate", "endDate")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _as_utc(value)

    def domain_fields(self) -> dict[str, Any]:
        """Keyword arguments for the domain `Account` (and `NewAccount`)."""
        return {
            "target_type": self.targetType,
            "target_id": self.targetId,
            "account_type": self.accountType,
            "rent_group_type": self.rentGroupType,
            "agreement_type": self.agreementType,
            "account_balance": self.accountBalance,
            "consolidated_balance": self.consolidatedBalance,
            "parent_account_id": self.parentAccountId,
            "start_date": self.startDate,
            "end_date": self.endDate,
            "end_reason_code": self.endReasonCode,
            "account_status": self.accountStatus,
            "consolidated_charges": tuple(
                ConsolidatedCharge(c.type, c.frequency, c.amount) for c in self.consolidatedCharges
            ),
            "tenure": self.tenure.to_domain() if self.tenure else None,
        }


class AccountCreate(AccountFields):
    """POST /api/v1/accounts. createdBy and friends are accepted but the token decides them."""

    model_config = ConfigDict(json_schema_extra=MASTER_HAS_NO_PARENT)

    createdBy: Text | None = Field(default=None, description="Ignored: taken from the bearer token")
    lastUpdatedBy: Text | None = Field(default=None, description="Ignored: taken from the bearer token")
    createdAt: Date | None = Field(default=None, description="Ignored: set by the service")
    lastUpdatedAt: Date | None = Field(default=None, description="Ignored: set by the service")

    paymentReference: Annotated[
        PaymentReference | None,
        WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^([0-9]{9,10}|\s*)$"}, {"type": "null"}]}),
    ] = Field(default=None, description="9 or 10 digits; allocated with a check digit when empty or left out")

    @field_validator("paymentReference", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        """The listener sends the tenure's reference, which is empty until finance gives one."""
        return None if isinstance(value, str) and not value.strip() else value

    def to_command(self) -> NewAccount:
        fields = self.domain_fields()
        return NewAccount(payment_reference=self.paymentReference, **fields)


class AccountPatched(AccountFields):
    """An account document after a patch: every field, re-validated."""

    id: UUID
    paymentReference: PaymentReference
    createdBy: str
    createdAt: datetime
    lastUpdatedBy: str
    lastUpdatedAt: datetime


def merge_patch_schema() -> dict[str, Any]:
    """The JSON Schema of an account merge patch (RFC 7386): any of the fields a client may set, and nothing else.

    null removes a field, which only a field an account may lack survives; a nested object (the tenure, its
    type) is merged into the one the account has, so its fields are all optional here.
    """
    schema = AccountFields.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    kept = set(AccountPatched.model_json_schema()["required"])

    def nullable(field: dict[str, Any]) -> dict[str, Any]:
        branches = field.get("anyOf", [field])
        return field if any(b.get("type") == "null" for b in branches) else {"anyOf": [field, {"type": "null"}]}

    def partial(name: str) -> dict[str, Any]:
        """A nested model as a merge patch of it: every field optional, null only where the field may be left out."""
        model = defs[name]
        required = set(model.get("required", []))
        properties = {}
        for key, field in model["properties"].items():
            field = {k: v for k, v in field.items() if k != "default"}
            branches = field.get("anyOf", [field])
            nested = [b["$ref"].rsplit("/", 1)[1] for b in branches if b.get("$ref", "").endswith("In")]
            if nested:
                field = {"anyOf": [partial(nested[0]), {"type": "null"}]}
            properties[key] = field if key in required else nullable(field)
        return {"type": "object", "properties": properties, "additionalProperties": False}

    properties: dict[str, Any] = {}
    for name, field in schema["properties"].items():
        field.pop("default", None)
        if name == "tenure":
            properties[name] = {"anyOf": [partial("TenureIn"), {"type": "null"}]}
        elif name in kept:
            branches = [b for b in field.get("anyOf", [field]) if b.get("type") != "null"]
            properties[name] = {**field, "anyOf": branches} if "anyOf" in field else field
        else:
            properties[name] = nullable(field)
    return {
        "type": "object",
        "title": "AccountMergePatch",
        "description": (
            "The fields to change; null removes a field (and so resets a balance to 0.00). "
            f"{', '.join(READ_ONLY_FIELDS)} may also be sent with the values the account has (a whole document "
            "read and sent back); any change to them is refused"
        ),
        "properties": properties,
        "additionalProperties": False,
        **MASTER_HAS_NO_PARENT,  # as on a create: a patch making the account a Master does not give it a parent
        "$defs": defs,
    }


# The account document's fields a client cannot set; a merge patch may carry them unchanged.
READ_ONLY_FIELDS = ("id", "createdAt", "createdBy", "lastUpdatedAt", "lastUpdatedBy")


def unknown_fields(patch: Any, schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> list[str]:
    """The names in a merge patch that its schema (`merge_patch_schema`) does not know, at any depth.

    A merge patch is checked as sent: merged, `{"spelling mistake": null}` would change nothing and pass unseen.
    """
    if not isinstance(patch, dict):
        return []
    branches = [defs[b["$ref"].rsplit("/", 1)[1]] if "$ref" in b else b for b in schema.get("anyOf", [schema])]
    objects = [b for b in branches if b.get("type") == "object" and "properties" in b]
    if not objects:
        return []
    properties = objects[0]["properties"]
    found = []
    for key, value in patch.items():
        if key in properties:
            found += unknown_fields(value, properties[key], defs, f"{prefix}{key}.")
        elif not (prefix == "" and key in READ_ONLY_FIELDS):
            found.append(f"{prefix}{key}")
    return found


class ChargeOut(BaseModel):
    type: str
    frequency: str
    amount: MoneyOut


class TenureTypeOut(BaseModel):
    code: str
    description: str


class PrimaryTenantOut(BaseModel):
    id: UUID
    fullName: str


class TenureOut(BaseModel):
    tenureId: UUID
    tenureType: TenureTypeOut | None
    fullAddress: str | None
    primaryTenants: list[PrimaryTenantOut]


class AccountResponse(BaseModel):
    """An account as every client reads it. Money is a JSON number with two decimals."""

    id: UUID
    parentAccountId: UUID | None
    paymentReference: str
    targetType: str
    targetId: UUID
    accountType: AccountType
    rentGroupType: RentGroupType | None
    agreementType: str | None
    accountBalance: MoneyOut
    consolidatedBalance: MoneyOut
    createdBy: str
    createdAt: datetime
    lastUpdatedBy: str
    lastUpdatedAt: datetime
    startDate: datetime | None
    endDate: datetime | None
    endReasonCode: str | None
    accountStatus: AccountStatus
    consolidatedCharges: list[ChargeOut]
    tenure: TenureOut | None


class AccountList(BaseModel):
    accountResponseList: list[AccountResponse]


class TargetTypeResponse(BaseModel):
    name: str
    polarity: str = Field(description="NegativeIsArrears or PositiveIsArrears")
    description: str


class TargetTypeList(BaseModel):
    targetTypes: list[TargetTypeResponse]


class EventsAccepted(BaseModel):
    accepted: int
    ids: list[UUID]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


JSON_PATCH_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "RFC 6902 operations. Paths may omit the leading slash; an extra operationType key is ignored.",
    "items": {
        "type": "object",
        "required": ["op", "path"],
        "properties": {
            "op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]},
            # A field of the account, never the whole document ("" or "/").
            "path": {"type": "string", "pattern": r"^([\s\S]{2,}|[^/])$"},
            "from": {"type": "string", "pattern": r"^([\s\S]{2,}|[^/])$"},
            "value": {},
            "operationType": {},
        },
        # What each operation needs besides its path (RFC 6902 4.1-4.6).
        "allOf": [
            {
                "if": {"properties": {"op": {"enum": ["add", "replace", "test"]}}},
                "then": {"required": ["value"]},
            },
            {"if": {"properties": {"op": {"enum": ["move", "copy"]}}}, "then": {"required": ["from"]}},
        ],
    },
    "maxItems": 100,
}


# The ledger ------------------------------------------------------------------------------------

# The types a client may post: Reversal has its own route, OpeningBalance is the migration's and a create's.
PostableType = StrEnum("PostableType", {t.name: t.value for t in TransactionType if t in POSTABLE_TYPES})  # type: ignore[misc]


def _day_text(value: Any) -> Any:
    """A transaction date is an ISO-8601 date string (`2026-04-06`): no number, no time of day."""
    if not isinstance(value, str) or len(value.strip()) != 10:
        raise ValueError("must be an ISO-8601 date, such as 2026-04-06")
    return value


Day = Annotated[date, BeforeValidator(_day_text)]
# The days that have a rent week (rent_week.FIRST_DAY 0001-04-02 to LAST_DAY 9999-04-04), as a pattern beside
# the date format: JSON Schema has no bounds for dates.
RENT_DAY_PATTERN = (
    r"^(0001-(04-(0[2-9]|[12][0-9]|30)|0[5-9]-[0-9]{2}|1[0-2]-[0-9]{2})"
    r"|(000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-[0-9]{2}-[0-9]{2}"
    r"|9999-(0[1-3]-[0-9]{2}|04-0[1-4]))$"
)
RentDay = Annotated[Day, WithJsonSchema({"type": "string", "format": "date", "pattern": RENT_DAY_PATTERN})]


class TransactionIn(Wire):
    """POST /api/v1/accounts/{id}/transactions. createdBy is accepted but the token decides it."""

    model_config = ConfigDict(
        json_schema_extra={
            # The domain's rule, declared: an Adjustment says which way it moves what is owed, nothing else does.
            "if": {"properties": {"transactionType": {"const": TransactionType.ADJUSTMENT.value}}},
            "then": {"required": ["direction"], "properties": {"direction": {"enum": [d.value for d in Direction]}}},
            "else": {"properties": {"direction": {"type": "null"}}},
        }
    )

    id: UUID = Field(description="Chosen by the client: posting the same id again posts nothing twice")
    transactionType: PostableType
    amount: Annotated[Money, WithJsonSchema(AMOUNT_SCHEMA)] = Field(
        description="Greater than zero, at most two decimal places"
    )
    transactionDate: RentDay = Field(description="The day it applies; its rent week is worked out from it")
    direction: Direction | None = Field(default=None, description="Only on an Adjustment, which requires it")
    description: Annotated[str, StringConstraints(max_length=500), Storable] | None = None
    reference: Annotated[str, StringConstraints(max_length=100), Storable] | None = Field(
        default=None, description="A bank's or paypoint's reference"
    )
    createdBy: Text | None = Field(default=None, description="Ignored: taken from the bearer token")

    def to_request(self) -> PostingRequest:
        return PostingRequest(
            id=self.id,
            transaction_type=TransactionType(self.transactionType),
            amount=self.amount,
            transaction_date=self.transactionDate,
            direction=self.direction,
            description=self.description,
            reference=self.reference,
        )


class ReversalIn(Wire):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500), StorableNotBlank]
    id: UUID | None = Field(default=None, description="The Reversal's own id; a retry with it posts nothing twice")


class TransactionOut(BaseModel):
    id: UUID
    accountId: UUID
    transactionType: TransactionType
    amount: MoneyOut
    direction: Direction
    transactionDate: date
    postedAt: datetime
    periodNo: int = Field(description="The rent week in its rent year (1: the week of the first Monday of April)")
    financialYear: int = Field(description="The year its rent year starts in")
    description: str | None
    reference: str | None
    createdBy: str
    reversesId: UUID | None
    balanceAfter: MoneyOut = Field(description="The account balance after it (in a statement: in statement order)")


class StatementOut(BaseModel):
    accountId: UUID
    openingBalance: MoneyOut = Field(description="The balance before the page's first transaction")
    closingBalance: MoneyOut = Field(description="The balance after the page's last transaction")
    transactions: list[TransactionOut]
    nextCursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class LedgerDifferenceOut(BaseModel):
    accountId: UUID
    accountBalance: MoneyOut
    ledgerBalance: MoneyOut
