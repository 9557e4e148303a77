"""HAPI FHIR's validator (deploy/fhir-validator) as one long-running JVM for a test session.

A missing Java or Maven fails the test with the command that installs them; it never
skips: the FHIR export is only known to be valid when a validator careteam did not write
has said so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "fhir-validator" / "validate.sh"
INSTALL = "sudo apt-get install -y openjdk-17-jdk-headless maven"


class FhirValidator:
    """``validate.sh --stdin``: a path per line in, a JSON result per line out."""

    def __init__(self) -> None:
        missing = [tool for tool in ("java", "javac", "mvn") if shutil.which(tool) is None]
        if missing:
            pytest.fail(
                f"the FHIR validator needs {', '.join(missing)} (Java 17 JDK and Maven); "
                f"install them with: {INSTALL}"
            )
        prepared = subprocess.run(
            ["bash", str(SCRIPT), "--prepare"], capture_output=True, text=True, timeout=1800
        )
        if prepared.returncode != 0:
            pytest.fail(
                "could not prepare the FHIR validator (fetch the HAPI FHIR jars and compile); "
                f"run `bash {SCRIPT.relative_to(ROOT)} --prepare` to see why:\n"
                f"{prepared.stderr[-3000:]}"
            )
        self._proc = subprocess.Popen(
            ["bash", str(SCRIPT), "--stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def validate(self, path: Path) -> dict[str, Any]:
        """The validator's verdict on one file: errors, warnings and every issue."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{path}\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(timeout=30)
            stderr = self._proc.stderr.read() if self._proc.stderr else ""
            pytest.fail(f"the FHIR validator stopped:\n{stderr[-3000:]}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()
