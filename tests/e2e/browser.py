"""A real headless Chromium (Debian's package) for tests of pages careteam serves.

``dump_dom`` loads a page with every host name but the loopback ones unresolvable, so
the page works only with what careteam itself serves: the network to the outside is
cut for the browser, as on an air-gapped clinic network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

# Every host name resolves to nothing except the loopback addresses.
CUT_OFF = "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"


def chromium() -> str:
    """The Chromium binary, or a failed test saying how to install it (never a skip)."""
    found = os.environ.get("CARETEAM_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "Chromium is not installed: run `bash deploy/ensure-chromium.sh` (deploy/test.sh does)",
            pytrace=False,
        )
    return found


def dump_dom(url: str, *, budget_ms: int = 8000, timeout: float = 60.0) -> str:
    """The page's DOM after its scripts ran (up to ``budget_ms`` of virtual time)."""
    with tempfile.TemporaryDirectory(prefix="careteam-chromium-") as profile:
        done = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--host-resolver-rules={CUT_OFF}",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode(errors="replace")
