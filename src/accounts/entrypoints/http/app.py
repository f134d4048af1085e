"""The FastAPI application: middleware for limits and correlation ids, routes, problems."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from accounts.bootstrap import Application
from accounts.entrypoints.http import problems
from accounts.entrypoints.http.auth import TokenVerifier
from accounts.entrypoints.http.correlation import HEADER, correlation_id, correlation_id_var
from accounts.entrypoints.http.docs import install_docs
from accounts.entrypoints.http.payment_files import PAYMENT_FILES_PATH, too_large
from accounts.entrypoints.http.problems import ApiProblem, problem_response
from accounts.entrypoints.http.routes import EVENTS_PATH, build_router, events_too_large
from accounts.entrypoints.pages import install_pages
from accounts.service.ports import MessageBroker

log = logging.getLogger(__name__)


class Publisher:
    """The API's one broker connection for the events intake, shared by request threads."""

    def __init__(self, make_broker: Callable[[], MessageBroker]) -> None:
        self.make_broker = make_broker
        self.broker: MessageBroker | None = None
        self.lock = threading.Lock()

    def publish_many(self, topic: str, items: list[tuple[bytes, str, str]]) -> None:
        with self.lock:
            if self.broker is None:
                self.broker = self.make_broker()
            self.broker.publish_many(topic, items)

    def close(self) -> None:
        with self.lock:
            if self.broker is not None:
                self.broker.close()
                self.broker = None


class BodyLimit:
    """Refuses bodies over the limit with 413 before anything parses them.

    Only methods that carry a body are checked: the GET routes never read one. A route with a
    limit of its own (`own_limits`: path -> (bytes, what the 413 says); the payment files) is
    held to that one instead.
    """

    METHODS = frozenset({"POST", "PUT", "PATCH"})

    def __init__(self, app: ASGIApp, max_bytes: int, own_limits: Mapping[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.own_limits = dict(own_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in self.METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        limit, words = self.own_limits.get(
            scope.get("path", ""), (self.max_bytes, f"the request body must be at most {self.max_bytes} bytes")
        )
        too_large = problem_response(413, words, instance=scope.get("path"))
        if declared is not None:
            try:
                if int(declared) > limit:
                    await too_large(scope, receive, send)
                    return
            except ValueError:
                await problem_response(400, "Content-Length is not a number", instance=scope.get("path"))(
                    scope, receive, send
                )
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ApiProblem(413, words)
            return message

        await self.app(scope, limited, send)


# Headers every answer carries: the pages' Content-Security-Policy (scripts, styles, fonts and images from
# this origin only, and no inline script), no MIME sniffing, no framing, no referrer to elsewhere.
SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class CorrelationId:
    """Takes the request's x-correlation-id (`correlation.correlation_id`: the first that is a UUID) or makes
    one; echoes it and carries it into logs and events. Every answer leaves with it and the security
    headers (`SECURITY_HEADERS`): one pass over the response's start, not a middleware layer for each."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = correlation_id(scope.get("headers") or ())
        scope.setdefault("state", {})["correlation_id"] = value
        token = correlation_id_var.set(value)
        header = (HEADER, value.encode("latin-1"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header, *SECURITY_HEADERS]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            correlation_id_var.reset(token)


def create_app(application: Application) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reads = application.reads
        await reads.open()  # the reads' connection pool lives on the server's event loop
        try:
            yield
        finally:
            await reads.aclose()
        app.state.publisher.close()
        app.state.metrics.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Housing finance Accounts API",
        version="1.0.0",
        description=(
            "Rent accounts for council tenures: balances, payment references, charges and arrears. "
            "Errors are application/problem+json. Send a bearer token; read needs a read group, "
            "changes need a write group."
        ),
        docs_url=None,  # served by install_docs, with its assets: the page works offline
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
        # The service configures no OpenTelemetry; FastAPI's own looked on every request for a provider
        # someone might have configured, a fifth of a read's time. Turn these on with a provider.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.application = application
    app.state.verifier = TokenVerifier(application.settings)
    app.state.publisher = Publisher(application.broker)
    problems.install(app)
    # The routes join the application's own router: an included router (`include_router`) resolves its
    # routes' context again on every request, which cost the reads a third of their time.
    # They go first, before FastAPI's documentation routes: the router tries routes in order, and the reads
    # are most of the traffic.
    app.router.routes[:0] = build_router().routes
    install_docs(app, "/api/v1/openapi.json")
    install_pages(app, application.settings)
    metrics = app.state.metrics = application.metrics()

    async def scrape(_request: Request) -> Response:
        """Prometheus' text format; open like the health checks (scraped from inside the network)."""
        body = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=metrics.content_type)

    app.add_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    payment_file_limit = application.settings.max_payment_file_bytes
    events_limit = application.settings.max_events_body_bytes
    app.add_middleware(
        BodyLimit,
        max_bytes=application.settings.max_body_bytes,
        own_limits={
            PAYMENT_FILES_PATH: (payment_file_limit, too_large(payment_file_limit)),
            EVENTS_PATH: (events_limit, events_too_large(events_limit)),
        },
    )
    app.add_middleware(CorrelationId)  # even a refused body gets its correlation id (and the security headers)
    app.add_middleware(metrics.middleware)  # outermost: every answer is counted, refusals included

    def openapi() -> dict[str, Any]:
        """The document as served: FastAPI's 422 replaced by the 400 problem this API answers."""
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(problems.problem_schemas())
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
                # Request bodies given as whole JSON schemas carry their own $defs: share them.
                for content in operation.get("requestBody", {}).get("content", {}).values():
                    components.update(content.get("schema", {}).pop("$defs", {}))
        for parameter in schema["paths"]["/api/v1/accounts/arrears"]["get"]["parameters"]:
            if parameter["name"] == "resultsCount":
                settings = application.settings
                parameter["schema"]["maximum"] = settings.arrears_max_count
                parameter["description"] = f"How many accounts at most; {settings.arrears_default_count} when left out"
        schema["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
        schema["security"] = [{"bearer": []}]
        for name in ("HTTPValidationError", "ValidationError"):
            schema["components"].get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    return app
