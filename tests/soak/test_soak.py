"""The soak test (issue 7): ``soak.py`` in a subprocess.

``test_soak_small`` (50 clients, 10 s) runs with every ``pytest``; the full size (1,000 clients, 180 s) runs from
``make soak`` (part of ``make test-full``), or here with ``PUBSOCK_SOAK=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).with_name("soak.py")


def run_soak(*args: str, timeout: float) -> None:
    answer = subprocess.run(
        [sys.executable, str(SOAK), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr


@pytest.mark.timeout(150)
def test_soak_small() -> None:
    # publishes every 0.5 s on average (not 2 s) so that 25 clients per room fill a paused reader's buffers in seconds
    run_soak("--clients", "50", "--seconds", "10", "--warmup", "4", "--ramp", "1", "--interval", "0.5", timeout=120)


@pytest.mark.skipif(os.environ.get("PUBSOCK_SOAK") != "1", reason="full-size soak: make soak, or PUBSOCK_SOAK=1")
@pytest.mark.timeout(400)
def test_soak_full() -> None:
    run_soak("--clients", "1000", "--seconds", "180", timeout=380)
