"""The benchmark's agent tasks: one shared catalog of typed tools, and a checker per task.

Every task runs against the same catalog of 15 deterministic tools (no network), so
a model always chooses among them. Each run gets a fresh `World`: it records every
tool call that reached a tool (with its validated arguments) and keeps the state of
the tool that fails once. A task's checker reads the finished run as an `Outcome`
and returns `None` when it is right, else the reason it is not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from penguiflow import ModelRegistry, Node, build_catalog, tool
from penguiflow.catalog import NodeSpec

__all__ = [
    "TASKS",
    "Call",
    "Outcome",
    "Task",
    "World",
    "answer_text",
    "build_tools",
    "has_number",
    "select_tasks",
]

# -- data ------------------------------------------------------------------------------

EMPLOYEES: dict[str, tuple[int, str, str]] = {
    # name: (employee id, department, manager)
    "Alice Moreau": (101, "Research", "Eva Stone"),
    "Bruno Lind": (102, "Sales", "Dana Okafor"),
    "Chen Wei": (103, "Sales", "Dana Okafor"),
    "Dana Okafor": (104, "Operations", "Frank Ruiz"),
    "Eva Stone": (105, "Research", "Frank Ruiz"),
}
DEPARTMENTS: dict[str, tuple[int, str, int]] = {
    # name: (budget in euros, head, floor)
    "Research": (480_000, "Eva Stone", 3),
    "Sales": (265_000, "Chen Wei", 2),
    "Operations": (730_000, "Dana Okafor", 7),
}
CUSTOMERS: dict[int, tuple[str, str, str]] = {
    # id: (name, city, tier)
    77: ("Marta Silva", "Porto", "gold"),
    78: ("Jonas Berg", "Bergen", "silver"),
    79: ("Lea Roux", "Nantes", "gold"),
}
ORDERS: dict[int, tuple[int, list[str], str, str]] = {
    # id: (customer id, SKUs, status, tracking code)
    1042: (77, ["B-200"], "shipped", "ZX-9981"),
    2001: (78, ["A-100", "C-300"], "processing", ""),
}
PRICES_EUR = {"A-100": 40.0, "B-200": 25.0, "C-300": 60.0}
STOCK = {"A-100": 37, "B-200": 58, "C-300": 12}
WEATHER: dict[tuple[str, date], tuple[str, int]] = {
    ("Oslo", date(2025, 3, 14)): ("light snow", 3),
    ("Madrid", date(2025, 3, 14)): ("sunny", 19),
    ("Lisbon", date(2025, 6, 21)): ("clear skies", 27),
}
EUR_PER_UNIT = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "JPY": 0.0062}
DOCS = (
    "Rate limits: the default limit is 120 requests per minute per API key.",
    "Retries: a failed call is retried 3 times with exponential backoff.",
    "Timeouts: each request times out after 30 seconds.",
    "Webhooks: deliveries are signed with HMAC-SHA256.",
    "Pagination: list endpoints return 50 items per page.",
)
APPROVAL_CODE = "AP-553"


class Currency(StrEnum):
    EUR = "EUR"
    USD = "USD"
    GBP = "GBP"
    JPY = "JPY"


class Room(StrEnum):
    orion = "orion"
    vega = "vega"
    lyra = "lyra"


class RefundReason(StrEnum):
    damaged = "damaged"
    late_delivery = "late_delivery"
    wrong_item = "wrong_item"


# -- tool models -----------------------------------------------------------------------


class EmployeeQuery(BaseModel):
    name: str = Field(description="Full name, e.g. 'Alice Moreau'")


class Employee(BaseModel):
    employee_id: int
    name: str
    department: str
    manager: str


class DepartmentQuery(BaseModel):
    department: str


class Department(BaseModel):
    department: str
    budget_eur: int
    head: str
    floor: int


class OrderQuery(BaseModel):
    order_id: int


class Order(BaseModel):
    order_id: int
    customer_id: int
    skus: list[str]
    status: str


class CustomerQuery(BaseModel):
    customer_id: int


class Customer(BaseModel):
    customer_id: int
    name: str
    city: str
    tier: str


class SkuQuery(BaseModel):
    sku: str = Field(description="Stock keeping unit, e.g. 'A-100'")


class Price(BaseModel):
    sku: str
    price_eur: float


class Stock(BaseModel):
    sku: str
    quantity: int


class WeatherQuery(BaseModel):
    city: str
    day: date = Field(description="ISO date, YYYY-MM-DD")


class Forecast(BaseModel):
    city: str
    day: date
    forecast: str
    high_c: int


class Conversion(BaseModel):
    amount: float
    from_currency: Currency
    to_currency: Currency


class Money(BaseModel):
    amount: float
    currency: Currency


class DateRange(BaseModel):
    start: date
    end: date


class Days(BaseModel):
    days: int


class Numbers(BaseModel):
    values: list[float]


class Total(BaseModel):
    total: float


class MeetingRequest(BaseModel):
    attendees: list[str] = Field(description="Full names of the attendees")
    day: date
    duration_minutes: int
    room: Room


class Meeting(BaseModel):
    meeting_id: str


class DocsQuery(BaseModel):
    query: str
    max_results: int = 3


class DocsResults(BaseModel):
    results: list[str]


class TrackingQuery(BaseModel):
    tracking_code: str


class Shipment(BaseModel):
    tracking_code: str
    status: str
    location: str


class RefundApproval(BaseModel):
    order_id: int
    amount_eur: float
    reason: RefundReason


class ApprovalRequested(BaseModel):
    status: str


class RefundOrder(BaseModel):
    order_id: int
    amount_eur: float
    approval_code: str = Field(description="The code given when the refund was approved")


class Refund(BaseModel):
    refund_id: str
    amount_eur: float


# -- the world a run acts on -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call that reached a tool: its name and validated arguments (JSON data)."""

    tool: str
    args: dict[str, Any]
    failed: bool = False


@dataclass(slots=True)
class World:
    """What one run's tools did: every call, and the state of the flaky tool."""

    calls: list[Call] = field(default_factory=list)
    shipment_calls: int = 0

    def record(self, name: str, args: BaseModel, *, failed: bool = False) -> None:
        self.calls.append(Call(name, args.model_dump(mode="json"), failed))


class ShipmentServiceError(RuntimeError):
    """The shipment service's first answer: a temporary outage."""

    suggestion = "The outage is temporary: call get_shipment again with the same code."


class ToolError(LookupError):
    """A deterministic tool was asked for something it does not know."""


@dataclass(frozen=True, slots=True)
class ToolDef:
    name: str
    func: Callable[..., Any]
    args_model: type[BaseModel]
    out_model: type[BaseModel]


def build_tools(world: World) -> list[ToolDef]:
    """The 15 tools, bound to `world` (a fresh one per run)."""

    @tool(desc="Look up an employee by full name: id, department and manager.", side_effects="read")
    async def get_employee(args: EmployeeQuery, ctx: Any) -> Employee:
        world.record("get_employee", args)
        if args.name not in EMPLOYEES:
            raise ToolError(f"no employee named {args.name!r}")
        employee_id, department, manager = EMPLOYEES[args.name]
        return Employee(
            employee_id=employee_id, name=args.name, department=department, manager=manager
        )

    @tool(desc="Look up a department: budget in euros, head and floor.", side_effects="read")
    async def get_department(args: DepartmentQuery, ctx: Any) -> Department:
        world.record("get_department", args)
        if args.department not in DEPARTMENTS:
            raise ToolError(f"no department {args.department!r}; known: {sorted(DEPARTMENTS)}")
        budget, head, floor = DEPARTMENTS[args.department]
        return Department(department=args.department, budget_eur=budget, head=head, floor=floor)

    @tool(desc="Look up an order by its number: customer id, SKUs and status.", side_effects="read")
    async def get_order(args: OrderQuery, ctx: Any) -> Order:
        world.record("get_order", args)
        if args.order_id not in ORDERS:
            raise ToolError(f"no order {args.order_id}")
        customer_id, skus, status, _ = ORDERS[args.order_id]
        return Order(order_id=args.order_id, customer_id=customer_id, skus=skus, status=status)

    @tool(desc="Look up a customer by id: name, city and loyalty tier.", side_effects="read")
    async def get_customer(args: CustomerQuery, ctx: Any) -> Customer:
        world.record("get_customer", args)
        if args.customer_id not in CUSTOMERS:
            raise ToolError(f"no customer {args.customer_id}")
        name, city, tier = CUSTOMERS[args.customer_id]
        return Customer(customer_id=args.customer_id, name=name, city=city, tier=tier)

    @tool(desc="The unit price in euros of a product (by SKU).", side_effects="read")
    async def get_product_price(args: SkuQuery, ctx: Any) -> Price:
        world.record("get_product_price", args)
        if args.sku not in PRICES_EUR:
            raise ToolError(f"no product {args.sku!r}")
        return Price(sku=args.sku, price_eur=PRICES_EUR[args.sku])

    @tool(desc="How many units of a product (by SKU) are in stock.", side_effects="read")
    async def get_stock(args: SkuQuery, ctx: Any) -> Stock:
        world.record("get_stock", args)
        if args.sku not in STOCK:
            raise ToolError(f"no product {args.sku!r}")
        return Stock(sku=args.sku, quantity=STOCK[args.sku])

    @tool(desc="The weather forecast for a city on a day.", side_effects="read")
    async def get_weather(args: WeatherQuery, ctx: Any) -> Forecast:
        world.record("get_weather", args)
        key = (args.city, args.day)
        if key not in WEATHER:
            raise ToolError(f"no forecast for {args.city} on {args.day.isoformat()}")
        forecast, high = WEATHER[key]
        return Forecast(city=args.city, day=args.day, forecast=forecast, high_c=high)

    @tool(desc="Convert an amount of money between currencies.", side_effects="pure")
    async def convert_currency(args: Conversion, ctx: Any) -> Money:
        world.record("convert_currency", args)
        eur = args.amount * EUR_PER_UNIT[args.from_currency.value]
        amount = round(eur / EUR_PER_UNIT[args.to_currency.value], 2)
        return Money(amount=amount, currency=args.to_currency)

    @tool(desc="The number of days from the start date to the end date.", side_effects="pure")
    async def days_between(args: DateRange, ctx: Any) -> Days:
        world.record("days_between", args)
        return Days(days=(args.end - args.start).days)

    @tool(desc="Add up a list of numbers.", side_effects="pure")
    async def sum_numbers(args: Numbers, ctx: Any) -> Total:
        world.record("sum_numbers", args)
        return Total(total=round(sum(args.values), 6))

    @tool(desc="Book a meeting room for some attendees on a day.", side_effects="write")
    async def schedule_meeting(args: MeetingRequest, ctx: Any) -> Meeting:
        world.record("schedule_meeting", args)
        meeting_id = f"MTG-{args.day:%m%d}-{args.room.value.upper()}-{args.duration_minutes}"
        return Meeting(meeting_id=meeting_id)

    @tool(desc="Search the product documentation; returns matching passages.", side_effects="read")
    async def search_docs(args: DocsQuery, ctx: Any) -> DocsResults:
        world.record("search_docs", args)
        words = [w for w in re.findall(r"[a-z]+", args.query.lower()) if len(w) > 2]
        stems = [w[:5] for w in words]
        hits = [doc for doc in DOCS if any(stem in doc.lower() for stem in stems)]
        return DocsResults(results=hits[: max(args.max_results, 0)])

    @tool(desc="Where a parcel is now, by tracking code.", side_effects="read")
    async def get_shipment(args: TrackingQuery, ctx: Any) -> Shipment:
        world.shipment_calls += 1
        if world.shipment_calls == 1:
            world.record("get_shipment", args, failed=True)
            raise ShipmentServiceError("shipment service timed out (temporary outage)")
        world.record("get_shipment", args)
        if args.tracking_code != "ZX-9981":
            raise ToolError(f"no parcel with tracking code {args.tracking_code!r}")
        return Shipment(
            tracking_code=args.tracking_code, status="in transit", location="Lyon sorting hub"
        )

    @tool(
        desc="Ask a human to approve a refund; the run pauses until they answer.",
        side_effects="external",
    )
    async def request_refund_approval(args: RefundApproval, ctx: Any) -> ApprovalRequested:
        world.record("request_refund_approval", args)
        await ctx.pause("approval_required", args.model_dump(mode="json"))
        raise AssertionError("unreachable: ctx.pause() suspends the run")

    @tool(desc="Issue an approved refund (needs the approval code).", side_effects="write")
    async def issue_refund(args: RefundOrder, ctx: Any) -> Refund:
        world.record("issue_refund", args)
        if args.approval_code != APPROVAL_CODE:
            raise ToolError(f"approval code {args.approval_code!r} is not valid")
        refund_id = f"RF-{args.order_id}-{args.approval_code.split('-')[-1]}"
        return Refund(refund_id=refund_id, amount_eur=args.amount_eur)

    pairs: list[tuple[Callable[..., Any], type[BaseModel], type[BaseModel]]] = [
        (get_employee, EmployeeQuery, Employee),
        (get_department, DepartmentQuery, Department),
        (get_order, OrderQuery, Order),
        (get_customer, CustomerQuery, Customer),
        (get_product_price, SkuQuery, Price),
        (get_stock, SkuQuery, Stock),
        (get_weather, WeatherQuery, Forecast),
        (convert_currency, Conversion, Money),
        (days_between, DateRange, Days),
        (sum_numbers, Numbers, Total),
        (schedule_meeting, MeetingRequest, Meeting),
        (search_docs, DocsQuery, DocsResults),
        (get_shipment, TrackingQuery, Shipment),
        (request_refund_approval, RefundApproval, ApprovalRequested),
        (issue_refund, RefundOrder, Refund),
    ]
    return [ToolDef(func.__name__, func, a, o) for func, a, o in pairs]


def build_world_catalog() -> tuple[World, list[NodeSpec]]:
    """A fresh world and the catalog of its tools (`Node`s + `ModelRegistry`)."""
    world = World()
    registry = ModelRegistry()
    nodes: list[Node] = []
    for spec in build_tools(world):
        registry.register(spec.name, spec.args_model, spec.out_model)
        nodes.append(Node(spec.func, name=spec.name))
    return world, build_catalog(nodes, registry)


# -- checking --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished run as a checker sees it."""

    reason: str  # PlannerFinish.reason
    payload: Any
    calls: Sequence[Call]
    pauses: int = 0

    @property
    def answer(self) -> str:
        return answer_text(self.payload)

    def ok_calls(self, tool_name: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.tool == tool_name and not c.failed]


def answer_text(payload: Any) -> str:
    """The finish payload as one text to search (JSON for structured payloads)."""
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, ensure_ascii=False, default=str)


_THOUSANDS = re.compile(r"(?<=\d)[,\u00a0\u202f' _](?=\d{3}(?!\d))")
_NUMBER = re.compile(r"(?<![\d.])-?\d+(?:\.\d+)?")


def has_number(text: str, value: float, tolerance: float = 0.011) -> bool:
    """Whether `text` states `value` (thousands separators allowed, e.g. 480,000)."""
    cleaned = _THOUSANDS.sub("", text)
    return any(abs(float(m) - value) <= tolerance for m in _NUMBER.findall(cleaned))


def _has_word(text: str, word: str) -> bool:
    return word.lower() in text.lower()


Checker = Callable[[Outcome], str | None]


def expect(
    *,
    numbers: Sequence[float] = (),
    words: Sequence[str] = (),
    calls: Sequence[tuple[str, dict[str, Any]]] = (),
    no_tools: bool = False,
    min_calls: dict[str, int] | None = None,
    pauses: int | None = None,
) -> Checker:
    """A checker: the answer states every number and word, each expected call was made
    with at least those arguments (JSON values; lists compared as sets), and so on."""

    def check(outcome: Outcome) -> str | None:
        if outcome.reason != "answer_complete":
            return f"finished with reason {outcome.reason!r}"
        answer = outcome.answer
        for number in numbers:
            if not has_number(answer, number):
                return f"answer lacks {number:g}: {answer[:160]!r}"
        for word in words:
            if not _has_word(answer, word):
                return f"answer lacks {word!r}: {answer[:160]!r}"
        for name, wanted in calls:
            made = outcome.ok_calls(name)
            if not any(_matches(args, wanted) for args in made):
                return f"no {name} call with {wanted} (made: {made[:3]})"
        if no_tools and outcome.calls:
            return f"called {[c.tool for c in outcome.calls]} for a question needing no tool"
        for name, least in (min_calls or {}).items():
            count = sum(1 for c in outcome.calls if c.tool == name)
            if count < least:
                return f"{name} called {count} times, expected at least {least}"
        if pauses is not None and outcome.pauses != pauses:
            return f"paused {outcome.pauses} times, expected {pauses}"
        return None

    return check


def _matches(args: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        got = args.get(key)
        if isinstance(value, list):
            if not isinstance(got, list) or sorted(map(str, got)) != sorted(map(str, value)):
                return False
        elif isinstance(value, float | int) and isinstance(got, float | int):
            if abs(float(got) - float(value)) > 1e-9:
                return False
        elif got != value:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Task:
    """One agent task: the query, what it covers, and how its answer is checked."""

    name: str
    query: str
    covers: tuple[str, ...]
    check: Checker
    resume_input: str = "Not approved: no approval was asked for in this task."


TASKS: tuple[Task, ...] = (
    Task(
        "employee_budget",
        "What is the budget of the department that Alice Moreau works in?",
        ("chain",),
        expect(numbers=[480_000], calls=[("get_department", {"department": "Research"})]),
    ),
    Task(
        "order_customer_city",
        "In which city does the customer of order 1042 live?",
        ("chain", "int_arg"),
        expect(words=["Porto"], calls=[("get_customer", {"customer_id": 77})]),
    ),
    Task(
        "manager_floor",
        "On which floor does Bruno Lind's manager work? Find the manager, then the "
        "manager's department, then that department's floor.",
        ("chain", "four_steps"),
        expect(numbers=[7], calls=[("get_department", {"department": "Operations"})]),
    ),
    Task(
        "order_total_usd",
        "What do the items of order 2001 cost together, in US dollars? Look up the order, "
        "the euro price of each item, add them up, then convert the total to USD.",
        ("chain", "four_steps", "enum_arg"),
        expect(
            numbers=[108.7],
            calls=[
                ("get_product_price", {"sku": "A-100"}),
                ("get_product_price", {"sku": "C-300"}),
                ("convert_currency", {"amount": 100, "from_currency": "EUR"}),
            ],
        ),
    ),
    Task(
        "weather_compare",
        "Which city will be warmer on 2025-03-14, Oslo or Madrid, and by how many degrees "
        "(forecast high)?",
        ("parallel", "date_arg"),
        expect(
            numbers=[16],
            words=["Madrid"],
            calls=[
                ("get_weather", {"city": "Oslo", "day": "2025-03-14"}),
                ("get_weather", {"city": "Madrid", "day": "2025-03-14"}),
            ],
        ),
    ),
    Task(
        "stock_total",
        "How many units of SKU A-100 and SKU B-200 are in stock together?",
        ("parallel",),
        expect(
            numbers=[95],
            calls=[("get_stock", {"sku": "A-100"}), ("get_stock", {"sku": "B-200"})],
        ),
    ),
    Task(
        "gold_customers",
        "Which of the customers 77, 78 and 79 are in the gold tier? Give their names.",
        ("parallel", "int_arg"),
        expect(
            words=["Marta Silva", "Lea Roux"],
            calls=[("get_customer", {"customer_id": n}) for n in (77, 78, 79)],
        ),
    ),
    Task(
        "shipment_retry",
        "Where is the parcel with tracking code ZX-9981 right now?",
        ("tool_fails_once",),
        expect(words=["Lyon"], min_calls={"get_shipment": 2}),
    ),
    Task(
        "capital_no_tool",
        "What is the capital of France? Answer from general knowledge.",
        ("no_tool",),
        expect(words=["Paris"], no_tools=True),
    ),
    Task(
        "greeting_no_tool",
        "Write a one-sentence friendly greeting to Dana Okafor. No tool is needed.",
        ("no_tool",),
        expect(words=["Dana"], no_tools=True),
    ),
    Task(
        "convert_usd_eur",
        "Convert 250 US dollars to euros.",
        ("enum_arg",),
        expect(
            numbers=[230],
            calls=[
                ("convert_currency", {"amount": 250, "from_currency": "USD", "to_currency": "EUR"})
            ],
        ),
    ),
    Task(
        "days_between_dates",
        "How many days are there from 10 February 2024 to 5 March 2024?",
        ("date_arg",),
        expect(
            numbers=[24], calls=[("days_between", {"start": "2024-02-10", "end": "2024-03-05"})]
        ),
    ),
    Task(
        "sum_list",
        "Use the sum tool to add up 12.5, 7.25, 30 and 0.25.",
        ("list_arg",),
        expect(numbers=[50], calls=[("sum_numbers", {"values": [12.5, 7.25, 30.0, 0.25]})]),
    ),
    Task(
        "book_meeting",
        "Book room Orion on April 2nd, 2025 for a 45-minute meeting with Alice Moreau and "
        "Bruno Lind, and tell me the meeting id.",
        ("list_arg", "enum_arg", "date_arg", "int_arg"),
        expect(
            words=["MTG-0402-ORION-45"],
            calls=[
                (
                    "schedule_meeting",
                    {
                        "attendees": ["Alice Moreau", "Bruno Lind"],
                        "day": "2025-04-02",
                        "duration_minutes": 45,
                        "room": "orion",
                    },
                )
            ],
        ),
    ),
    Task(
        "docs_rate_limit",
        "According to the documentation, what is the default rate limit in requests per minute?",
        ("lookup",),
        expect(numbers=[120], min_calls={"search_docs": 1}),
    ),
    Task(
        "docs_retries_one_result",
        "Search the documentation for 'retries', asking for at most 1 result. How many "
        "times is a failed call retried?",
        ("int_arg",),
        expect(numbers=[3], calls=[("search_docs", {"max_results": 1})]),
    ),
    Task(
        "stock_threshold",
        "Is the stock of SKU C-300 below 20 units? Give the quantity.",
        ("lookup",),
        expect(numbers=[12], calls=[("get_stock", {"sku": "C-300"})]),
    ),
    Task(
        "price_lookup",
        "How much does one unit of SKU B-200 cost, in euros?",
        ("tool_choice",),
        expect(numbers=[25], calls=[("get_product_price", {"sku": "B-200"})]),
    ),
    Task(
        "lisbon_forecast",
        "What is the forecast high temperature in Lisbon on 21 June 2025?",
        ("date_arg",),
        expect(numbers=[27], calls=[("get_weather", {"city": "Lisbon", "day": "2025-06-21"})]),
    ),
    Task(
        "refund_approval",
        "Refund 25.50 EUR on order 1042 because it was delivered late. Refunds must be "
        "approved first: request approval, then issue the refund and give me its id.",
        ("pause", "enum_arg", "four_steps"),
        expect(
            words=["RF-1042-553"],
            calls=[
                (
                    "request_refund_approval",
                    {"order_id": 1042, "amount_eur": 25.5, "reason": "late_delivery"},
                ),
                ("issue_refund", {"order_id": 1042, "amount_eur": 25.5, "approval_code": "AP-553"}),
            ],
            pauses=1,
        ),
        resume_input=f"Approved by finance. Approval code: {APPROVAL_CODE}",
    ),
)


def select_tasks(names: str | None) -> list[Task]:
    """The tasks named in a comma-separated list (all when `None`).

    Raises `KeyError` naming the unknown task names.
    """
    if not names:
        return list(TASKS)
    by_name = {task.name: task for task in TASKS}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise KeyError(", ".join(unknown))
    return [by_name[n] for n in wanted]
