"""`accounts demo load`: a year of realistic rent accounts, loaded through the service's own paths.

Nothing here writes to the database itself; each step is the path production takes:

1. tenures: tenure events (`accounts.demo.tenures`) through `TenureEventHandler.handle_many`, the
   listener's path, which creates each tenure's Master account with its payment reference;
2. rents: each account's consolidated charges set through `AccountService.change` (the API's PATCH);
3. each rent week in turn: its charge run (`ChargeRunService`), then a payment file of the week's
   payments (`PaymentFileService.import_file`), as the bank's file would be imported.

Who pays what is a function of the seed, the tenure's place in the list and the week's Monday alone
(each week's draws come from a generator seeded with all three), so a seed gives the same data,
and running the load again doubles nothing: the events are processed once (their ids), a week's
charges are posted once (their ids), a payment once (its bank reference).
"""

from __future__ import annotations

import csv
import io
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from accounts.demo.tenures import STREETS, TenureStory, new_tenure
from accounts.domain import payment_reference as prn
from accounts.domain.account import AccountType, Actor, ConsolidatedCharge
from accounts.domain.arrears import weekly_charge
from accounts.domain.charges import to_pence
from accounts.domain.events import parse_envelope
from accounts.domain.payment_file import HEADER
from accounts.domain.polarity import ZERO
from accounts.domain.rent_week import rent_week_of
from accounts.service.accounts import AccountService, Clock, utc_now
from accounts.service.arrears import WorklistQuery, WorklistService
from accounts.service.charge_runs import ChargeRunService
from accounts.service.payment_files import PaymentFileService, SuspenseService
from accounts.service.tenure_events import TenureEventHandler

T = TypeVar("T")

DEFAULT_TENURES = 300
DEFAULT_WEEKS = 52
DEFAULT_SEED = 1
DEMO_ACTOR = Actor("accounts demo load", "demo@localhost")
# Correlation ids of the demo's own changes: the same seed and step, the same id.
DEMO_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:housing-finance-accounts:demo")
EVENT_BATCH = 500
METHODS = ("Direct Debit", "Standing Order", "Bank Transfer", "PayPoint", "Post Office", "Debit Card")
# Tenure types as a council's stock has them: mostly secure tenancies, some leaseholders and
# temporary accommodation.
TYPE_WEIGHTS = {"SEC": 60, "INT": 8, "NON": 4, "LEA": 10, "SHO": 3, "FRS": 1, "TGA": 5, "TBB": 4, "MPA": 3, "ASY": 2}


class Habit(StrEnum):
    """How a tenant pays, which decides where their account ends up on the arrears worklist."""

    PAYS = "pays every week"  # now and then misses a week and pays two the next
    MONTHLY = "pays four weeks at a time"
    LATE = "pays a week late"
    PARTLY = "pays part of the rent"
    STOPPED = "stopped paying some weeks ago"
    CREDIT = "pays a little more"
    FORMER = "a former tenant, now and then paying to the ended account"


HABIT_WEIGHTS = {
    Habit.PAYS: 70,
    Habit.MONTHLY: 9,
    Habit.LATE: 5,
    Habit.PARTLY: 5,
    Habit.STOPPED: 6,
    Habit.CREDIT: 3,
    Habit.FORMER: 2,
}


@dataclass(frozen=True)
class DemoTenant:
    """One tenure of the demo: its events, its rent and how its tenant pays."""

    index: int
    story: TenureStory
    charges: tuple[ConsolidatedCharge, ...]
    habit: Habit
    starts: date
    share: Decimal  # what share of the rent a PARTLY tenant pays; the extra a CREDIT one pays, in pounds
    stops_weeks_before: int  # a STOPPED tenant's last payment, in weeks before the current week


@dataclass(frozen=True)
class DemoPayment:
    payment_reference: str
    amount: Decimal
    payment_date: date
    method: str
    reference: str


def _weighted(rng: random.Random, weights: dict[T, int]) -> T:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _rent(rng: random.Random, code: str) -> tuple[ConsolidatedCharge, ...]:
    """Charges as the council's data has them: weekly rents, monthly leasehold service charges."""

    def pounds(low: int, high: int) -> Decimal:
        return Decimal(rng.randrange(low * 100, high * 100)) / 100

    if code in ("LEA", "SHO", "FRS"):
        charges = [ConsolidatedCharge("Service Charge", "Monthly", pounds(60, 220))]
        if code == "SHO":
            charges.append(ConsolidatedCharge("Rent", "Monthly", pounds(350, 650)))
        return tuple(charges)
    if code in ("TGA", "TBB", "MPA", "ASY"):
        return (ConsolidatedCharge("Rent", "Weekly", pounds(160, 320)),)
    charges = [ConsolidatedCharge("Rent", "Weekly", pounds(90, 165))]
    if rng.random() < 0.4:
        charges.append(ConsolidatedCharge("Tenant Service Charge", "Weekly", pounds(3, 18)))
    return tuple(charges)


def demo_tenants(count: int, seed: int, first_monday: date, current_monday: date) -> list[DemoTenant]:
    """`count` tenures and their tenants, the same for a seed: most started years ago, a few this year."""
    rng = random.Random(seed)
    tenants = []
    clock = datetime.combine(first_monday - timedelta(days=7), time(9), UTC)
    for index in range(count):
        code = _weighted(rng, TYPE_WEIGHTS)
        habit = _weighted(rng, HABIT_WEIGHTS)
        tenure = new_tenure(rng, code)
        if habit is Habit.FORMER:
            starts = first_monday - timedelta(days=rng.randrange(800, 6000))
            ended = first_monday - timedelta(days=rng.randrange(30, 300))
            tenure["endOfTenureDate"] = ended.isoformat()
            tenure["terminated"] = {"isTerminated": True, "reasonForTermination": "Moved"}
        elif rng.random() < 0.06 and current_monday > first_monday:  # a tenancy that began during the year
            weeks = (current_monday - first_monday).days // 7
            starts = first_monday + timedelta(weeks=rng.randrange(1, weeks + 1))
        else:
            starts = first_monday - timedelta(days=rng.randrange(30, 9000))
        tenure["startOfTenureDate"] = starts.isoformat()
        tale = TenureStory(tenure, clock=clock + timedelta(minutes=index), rng=rng).created()
        if rng.random() < 0.1:
            tale.moved_to(f"Flat {rng.randrange(1, 40)}, {rng.choice(STREETS)}, Hackney, London")
        if rng.random() < 0.1:
            tale.person_added(rng, responsible=False)
        share = Decimal(rng.randrange(50, 90)) / 100 if habit is Habit.PARTLY else Decimal(rng.randrange(2, 20))
        tenants.append(DemoTenant(index, tale, _rent(rng, code), habit, starts, share, rng.randrange(2, 30)))
    return tenants


def _paid_on(rng: random.Random, monday: date) -> date:
    """Rent is due in advance: paid on the Friday to Monday before the week it is for."""
    return monday - timedelta(days=rng.randrange(0, 4))


def week_payments(
    tenant: DemoTenant, reference: str, seed: int, monday: date, current_monday: date
) -> list[DemoPayment]:
    """What the tenant pays in the week starting `monday`: drawn from (seed, tenant, Monday) alone."""
    if monday < tenant.starts - timedelta(days=tenant.starts.weekday()):
        return []
    rng = random.Random(f"{seed}:{tenant.index}:{monday.isoformat()}")
    due = weekly_charge(tenant.charges, monday)
    bank = f"DEMO{seed}-{tenant.index:05d}-{monday:%Y%m%d}"
    method = METHODS[tenant.index % len(METHODS)]
    amount = ZERO
    habit = tenant.habit
    if habit is Habit.PAYS:
        missed = rng.random() < 0.04
        missed_last = random.Random(f"{seed}:{tenant.index}:{(monday - timedelta(days=7)).isoformat()}").random() < 0.04
        amount = ZERO if missed else due * (2 if missed_last and monday > tenant.starts else 1)
    elif habit is Habit.MONTHLY:
        amount = due * 4 if (monday.toordinal() // 7) % 4 == tenant.index % 4 else ZERO
    elif habit is Habit.LATE:
        amount = weekly_charge(tenant.charges, monday - timedelta(days=7)) if monday > tenant.starts else ZERO
    elif habit is Habit.PARTLY:
        amount = to_pence(due * tenant.share)
    elif habit is Habit.STOPPED:
        amount = due if monday < current_monday - timedelta(weeks=tenant.stops_weeks_before) else ZERO
    elif habit is Habit.CREDIT:
        amount = due + tenant.share
    elif habit is Habit.FORMER:
        amount = Decimal(rng.randrange(10, 40)) if rng.random() < 0.03 else ZERO
    if amount <= ZERO:
        return []
    return [DemoPayment(reference, amount, _paid_on(rng, monday), method, bank)]


def stray_payments(seed: int, monday: date, references: list[str]) -> list[DemoPayment]:
    """Now and then a payment no account can take (one week in eight at least, so any eight weeks have one):
    a mistyped payment reference, or someone else's number."""
    rng = random.Random(f"{seed}:stray:{monday.isoformat()}")
    if not references or ((monday.toordinal() // 7) % 8 != seed % 8 and rng.random() > 0.1):
        return []
    amount = Decimal(rng.randrange(2000, 20000)) / 100
    bank = f"DEMO{seed}-STRAY-{monday:%Y%m%d}"
    typed = rng.choice(references)
    position = rng.randrange(len(typed))
    typed = typed[:position] + str((int(typed[position]) + rng.randrange(1, 10)) % 10) + typed[position + 1 :]
    if rng.random() < 0.4 or typed in references or prn.has_valid_check_digit(typed):
        typed = f"{rng.randrange(10**7, 10**8)}"  # a council tax number, say: 8 digits, no account's
    return [DemoPayment(typed, amount, monday - timedelta(days=rng.randrange(0, 3)), "Bank Transfer", bank)]


def payment_file(payments: list[DemoPayment]) -> str:
    """The week's payments as the bank's CSV file."""
    out = io.StringIO()
    out.write(HEADER + "\r\n")
    writer = csv.writer(out)
    for payment in payments:
        writer.writerow(
            [
                payment.payment_reference,
                payment.amount,
                payment.payment_date.isoformat(),
                payment.method,
                payment.reference,
            ]
        )
    return out.getvalue()


def _set_charges(charges: tuple[ConsolidatedCharge, ...]) -> Callable[[object], dict[str, Any]]:
    return lambda _account: {"consolidated_charges": charges}


@dataclass
class DemoReport:
    """What a load did, and what a user now sees."""

    tenures: int = 0
    events_applied: int = 0
    events_seen_before: int = 0
    rents_set: int = 0
    weeks: int = 0
    charges_posted: int = 0
    charges_seen_before: int = 0
    payments_posted: int = 0
    payments_seen_before: int = 0
    to_suspense: int = 0
    rejected: list[str] = field(default_factory=list)
    in_arrears: int = 0
    suspense_open: int = 0
    first_week: date | None = None
    last_week: date | None = None

    def summary(self) -> str:
        weeks = (
            f"{self.weeks} week(s) {self.first_week.isoformat()} to {self.last_week.isoformat()}"
            if self.first_week and self.last_week
            else "no weeks"
        )
        return (
            f"demo data: {self.tenures} tenures ({self.events_applied} events applied, {self.events_seen_before} "
            f"seen before), {weeks}: {self.charges_posted} charges posted ({self.charges_seen_before} there "
            f"already), {self.payments_posted} payments posted ({self.payments_seen_before} there already), "
            f"{self.to_suspense} to suspense, {len(self.rejected)} rejected; now {self.in_arrears} accounts in "
            f"arrears on the worklist, {self.suspense_open} suspense items open"
        )


@dataclass
class DemoLoader:
    """Loads the demonstration data through the services production uses (see the module's docstring)."""

    tenure_events: TenureEventHandler
    accounts: AccountService
    charge_runs: ChargeRunService
    payment_files: PaymentFileService
    worklist: WorklistService
    suspense: SuspenseService
    clock: Clock = utc_now

    def load(
        self,
        tenures: int = DEFAULT_TENURES,
        weeks: int = DEFAULT_WEEKS,
        seed: int = DEFAULT_SEED,
        progress: Callable[[float, str], None] | None = None,
    ) -> DemoReport:
        """Load `tenures` tenures and `weeks` rent weeks ending with the current one; `progress(share, words)`."""
        if tenures < 1 or weeks < 1:
            raise ValueError("tenures and weeks must be 1 or more")
        today = self.clock().date()
        current = rent_week_of(today).starts
        first = current - timedelta(weeks=weeks - 1)
        report = DemoReport(tenures=tenures, first_week=first, last_week=current)
        tenants = demo_tenants(tenures, seed, first, current)
        self._tenures(tenants, report)
        references = self._rents(tenants, seed, report)
        if progress is not None:
            progress(0.1, f"{tenures} tenures")
        known = sorted(references.values())
        for number in range(weeks):
            monday = first + timedelta(weeks=number)
            self._charge(monday, report)
            payments = [
                payment
                for tenant in tenants
                for payment in week_payments(tenant, references[tenant.index], seed, monday, current)
            ]
            payments += stray_payments(seed, monday, known)
            self._pay(monday, seed, [p for p in payments if p.payment_date <= today], report)
            report.weeks += 1
            if progress is not None:
                progress(0.1 + 0.9 * (number + 1) / weeks, f"week starting {monday.isoformat()}")
        self._count(report)
        return report

    def _tenures(self, tenants: list[DemoTenant], report: DemoReport) -> None:
        """The tenure events, a batch at a time, as the listener applies a batch from the broker."""
        events = [parse_envelope(event) for tenant in tenants for event in tenant.story.events]
        for start in range(0, len(events), EVENT_BATCH):
            for outcome in self.tenure_events.handle_many(events[start : start + EVENT_BATCH]):
                if isinstance(outcome, Exception):
                    raise outcome
                if outcome.detail.startswith("duplicate"):
                    report.events_seen_before += 1
                else:
                    report.events_applied += 1

    def _rents(self, tenants: list[DemoTenant], seed: int, report: DemoReport) -> dict[int, str]:
        """Each account's rent (its consolidated charges), as a PATCH sets them; the payment references."""
        references = {}
        correlation = uuid.uuid5(DEMO_NAMESPACE, f"{seed}:rents")
        for tenant in tenants:
            account = self.accounts.by_target(uuid.UUID(tenant.story.tenure_id), AccountType.MASTER)[-1]
            references[tenant.index] = account.payment_reference
            _, changed = self.accounts.change(account.id, _set_charges(tenant.charges), DEMO_ACTOR, correlation)
            report.rents_set += changed
        return references

    def _charge(self, monday: date, report: DemoReport) -> None:
        run = self.charge_runs.start(monday, DEMO_ACTOR)
        run = self.charge_runs.run(run.id)
        report.charges_posted += run.charges_posted
        report.charges_seen_before += run.charges_skipped

    def _pay(self, monday: date, seed: int, payments: list[DemoPayment], report: DemoReport) -> None:
        if not payments:
            return
        correlation = uuid.uuid5(DEMO_NAMESPACE, f"{seed}:payments:{monday.isoformat()}")
        text = io.StringIO(payment_file(payments), newline="")
        result = self.payment_files.import_file(text, DEMO_ACTOR, correlation)
        report.payments_posted += result.posted
        report.payments_seen_before += result.already_imported
        report.to_suspense += result.suspense
        report.rejected += [f"week starting {monday}: line {line.line}: {line.reason}" for line in result.rejected]

    def _count(self, report: DemoReport) -> None:
        """What a user now sees: the accounts on the arrears worklist, the suspense items open."""
        page = self.worklist.page(WorklistQuery(limit=1000))
        report.in_arrears = len(page.entries)
        while page.next_page is not None:
            page = self.worklist.page(WorklistQuery(limit=1000, after=page.next_page))
            report.in_arrears += len(page.entries)
        items = self.suspense.list(limit=1000)
        report.suspense_open = len(items.items)
        while items.next_page is not None:
            items = self.suspense.list(limit=1000, after=items.next_page)
            report.suspense_open += len(items.items)
