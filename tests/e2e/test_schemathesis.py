"""Schemathesis as an external check: `st run` against a real `accounts serve`, every check, every phase.

The OpenAPI document must say what the service does: every schema-valid request accepted, every
schema-violating one refused, every answer (status, content type, headers, body) as declared, no 5xx,
the stateful phase's chains of create/read/change included. The few refusals no schema can state (an
opaque cursor, an existing parent, a Monday, a merge into what the account already holds) are named one
by one in tests/e2e/schemathesis_hooks.py; everything else counts.

A fixed seed, a fixed number of examples and no example database keep the run the same from one CI run to
the next and to about a minute here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.test_api_server import Server, server  # noqa: F401  (the fixture: a real `accounts serve`)

ST = Path(sys.executable).parent / "st"
ROOT = Path(__file__).resolve().parents[2]
SEED = 20261202
MAX_EXAMPLES = 30


def st_run(api: Server, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`st run` against the server, as a person would type it; its output and the refusals the hooks let pass."""
    dropped = tmp_path / "dropped.log"
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "ACCOUNTS_SCHEMATHESIS_DROPPED_LOG": str(dropped),
    }
    command = [
        str(ST),
        "run",
        f"{api.url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {api.token}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    result = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=540, check=False
    )
    lines = dropped.read_text(encoding="utf-8").splitlines() if dropped.exists() else []
    return result, lines


@pytest.mark.timeout(600)  # about a minute here; room for a busy CI machine
def test_schemathesis_finds_no_failure_with_every_check_and_phase(server: Server, tmp_path: Path) -> None:  # noqa: F811
    result, dropped = st_run(server, tmp_path)
    output = result.stdout + result.stderr
    summary = output[output.find("=== SUMMARY ===") :] if "=== SUMMARY ===" in output else output[-4000:]

    assert result.returncode == 0, f"schemathesis failed:\n{output[-12000:]}"
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in summary, f"the {phase} phase did not pass:\n{summary}"
    counted = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counted, summary
    generated, passed = (int(group) for group in counted.groups())
    assert generated == passed >= 1000, summary
    assert "failure" not in summary.strip().splitlines()[-1], summary
    assert "Traceback" not in server.log.read_text(errors="replace")

    # What the hooks let pass is only ever one of the refusals they name, and a minority of the run.
    kinds = Counter(line.split(" 400 ")[0].split(" 412 ")[0] for line in dropped)
    assert set(line.split(" ", 1)[0] for line in dropped) <= {"ST201", "ST202"}, kinds
    assert len(dropped) < generated // 4, kinds
