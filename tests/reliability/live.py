"""The API served for real (uvicorn on loopback, in a thread), for tests that need true concurrency or raw sockets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from accounts.bootstrap import Application
from accounts.entrypoints.http.app import create_app
from tests.conftest import free_port


@contextmanager
def live_api(application: Application, **options: object) -> Iterator[str]:
    """Serve the application on 127.0.0.1:<free port>; yields the base URL (…/api/v1)."""
    port = free_port()
    # Keep-alive longer than a queued client ever waits: uvicorn's 5 s default closed an idle connection as
    # a client (fifty queued on one account's lock, on a loaded machine) sent its next request on it.
    options.setdefault("timeout_keep_alive", 120)
    config = uvicorn.Config(
        create_app(application), host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        server.should_exit = True
        thread.join(15)
