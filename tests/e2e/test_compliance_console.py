"""The compliance console in a real headless Chromium: history, reviews, refusals."""

from __future__ import annotations

from uuid import uuid4

import httpx

from tests.e2e.browser import dump_dom
from tests.e2e.journey import enrolled_patient
from tests.e2e.server import ServerProcess

BREAK = """mutation($id: UUID!) { breakTheGlass(patientId: $id, reason: "Seen in the ED",
  minutes: 30) { __typename } }"""
PUT = """mutation($i: PutStaffMemberInput!) { putStaffMember(input: $i) { __typename } }"""


def test_the_console_shows_a_patients_history_with_names_and_open_reviews(
    server: ServerProcess,
) -> None:
    """A compliance officer sees the timeline, the chain status and the emergency access."""
    team = enrolled_patient(server)
    outsider = uuid4()
    admin = server.token("admin")
    server.graphql(
        PUT,
        {"i": {"userId": str(outsider), "displayName": "Dr. Ivy Marsh", "roles": ["PSYCHIATRIST"]}},
        token=admin,
    )
    broke = server.graphql(
        BREAK, {"id": team.patient_id}, token=server.token("psychiatrist", user=outsider)
    )
    assert broke["data"]["breakTheGlass"]["__typename"] == "EmergencyAccessPayload", broke

    compliance = server.token("compliance")
    dom = dump_dom(f"{server.url}/console/#token={compliance}&patient={team.patient_id}")
    assert 'data-loaded="true"' in dom
    assert "Audit chain: intact" in dom
    assert 'class="review"' in dom and "Seen in the ED" in dom
    assert "Dr. Ivy Marsh" in dom
    assert dom.count('class="entry') >= 3
    assert "ETREAT" in dom and "emergency" in dom  # the grant, made for emergency treatment
    assert "Accounting of disclosures" in dom


def test_the_console_refuses_every_role_but_compliance(server: ServerProcess) -> None:
    """A care manager's token opens nothing: the page says why and shows no view."""
    team = enrolled_patient(server)
    dom = dump_dom(f"{server.url}/console/#token={team.care_manager}&patient={team.patient_id}")
    assert "for the compliance role" in dom
    assert 'data-loaded="true"' not in dom
    assert 'class="entry' not in dom


def test_the_console_page_loads_nothing_from_elsewhere(server: ServerProcess) -> None:
    """The page and its assets are served by careteam, with a same-origin-only policy."""
    page = httpx.get(f"{server.url}/console/", timeout=30)
    assert page.status_code == 200
    assert "default-src 'self'" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("console.js", "console.css"):
        assert httpx.get(f"{server.url}/console/{asset}", timeout=30).status_code == 200
