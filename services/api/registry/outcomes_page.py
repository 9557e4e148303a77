"""Outcomes over time as a CSV file and a chart (issue #19 item 3; docs/outcomes.md).

Mounted at ``/outcomes``:

- ``GET /outcomes/series.csv?asOf=YYYY-MM-DD``: the ``outcomesOverTime`` series as CSV,
  one row per enrollment month and utilisation kind with the month's GAD-7 counts.
  Aggregate counts only, never a patient id. Bearer token required; authorised and
  audited exactly as the GraphQL query (``outcomes_api.load_series``).
- ``GET /outcomes/chart.svg?asOf=...&kind=emergency_visit``: the same series as a plain
  SVG bar chart drawn here in Python (no script, no external resource): per enrollment
  month, the events per 1,000 patients before and after enrollment.
- ``GET /outcomes/care-team.csv?by=care_manager&fromMonth=...&toMonth=...&asOf=...``
  (``suppressBelow=11`` blanks small counts) and ``/outcomes/care-team.svg?measure=...``:
  the ``careTeamOverTime`` measures as CSV and as a line chart per group
  (services/api/registry/care_team_charts.py).
- ``GET /outcomes/``: a small static page (``static/outcomes/``, no CDN, a strict
  Content-Security-Policy) that takes the bearer token from the URL fragment
  (``#token=...``, never sent to the server), fetches the charts with it (three of
  utilisation, ten care-team charts by care manager) and shows them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date
from pathlib import Path
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from domain.rules.outcomes import CohortUtilisation, UtilisationKind
from services.api.authz import Denied
from services.api.commanding import deny
from services.api.context import CareteamContext
from services.api.purpose import PurposeOfUseError, resolve_purpose
from services.api.registry.care_team import (
    CareTeamResult,
    RangeError,
    SeriesDimension,
    load_care_team,
)
from services.api.registry.care_team_charts import (
    CHART_MEASURES,
    MAX_SUPPRESS_BELOW,
    care_team_csv_text,
    care_team_svg,
)
from services.api.registry.outcomes import Series, load_series
from services.auth import AuthenticationError, TokenVerifier, bearer_token
from services.bootstrap import Runtime

OUTCOMES_PATH = "/outcomes"
PAGE_DIR = Path(__file__).parent.parent / "static" / "outcomes"

CSV_COLUMNS = (
    "as_of",
    "enrollment_month",
    "kind",
    "enrolled",
    "before_events",
    "before_per_1000",
    "after_patients",
    "after_events",
    "after_per_1000",
    "gad7_with_baseline",
    "gad7_followed_up",
    "gad7_response",
    "gad7_remission",
)


def _rate(value: object) -> str:
    return "" if value is None else f"{float(value):.3f}"  # type: ignore[arg-type]


def series_csv(series: Series) -> str:
    """The series as CSV (RFC 4180 line ends): counts and rates per month and kind."""
    gad = {(g.year, g.month): g for g in series.gad7}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in series.utilisation:
        g = gad[(row.year, row.month)]
        writer.writerow(
            (
                series.as_of.isoformat(),
                f"{row.year:04d}-{row.month:02d}",
                row.kind.value,
                row.enrolled,
                row.before_events,
                _rate(row.before_per_1000),
                row.after_patients,
                row.after_events,
                _rate(row.after_per_1000),
                g.with_baseline,
                g.followed_up,
                g.response,
                g.remission,
            )
        )
    return out.getvalue()


_KIND_TITLES = {
    UtilisationKind.EMERGENCY_VISIT: "Emergency department visits",
    UtilisationKind.HOSPITALISATION: "Hospitalisations",
    UtilisationKind.SPECIALTY_MENTAL_HEALTH_REFERRAL: "Specialty mental-health referrals",
}
BEFORE_COLOUR, AFTER_COLOUR = "#9aa5b1", "#1f6feb"


def series_svg(series: Series, kind: UtilisationKind) -> str:
    """A grouped bar chart: per enrollment month, events per 1,000 patients in the year
    before enrollment (grey) and after it (blue; no bar while no patient's year is over)."""
    rows: list[CohortUtilisation] = [r for r in series.utilisation if r.kind is kind]
    width, height, left, bottom, top = 720, 360, 60, 50, 50
    plot_h = height - top - bottom
    values = [float(v) for r in rows for v in (r.before_per_1000, r.after_per_1000) if v]
    peak = max(values, default=0.0) or 1.0
    slot = (width - left - 20) / max(len(rows), 1)
    bar = max(min(slot / 3, 60), 4)
    title = f"{_KIND_TITLES[kind]} per 1,000 patients, before and after enrollment"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)} (as of {series.as_of.isoformat()})</title>",
        f'<text x="{left}" y="22" font-family="sans-serif" font-size="15">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
        'stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-family="sans-serif" '
        f'font-size="11">{peak:.0f}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-family="sans-serif" '
        'font-size="11">0</text>',
        f'<rect x="{width - 200}" y="30" width="10" height="10" fill="{BEFORE_COLOUR}"/>',
        f'<text x="{width - 185}" y="39" font-family="sans-serif" font-size="11">'
        "year before</text>",
        f'<rect x="{width - 110}" y="30" width="10" height="10" fill="{AFTER_COLOUR}"/>',
        f'<text x="{width - 95}" y="39" font-family="sans-serif" font-size="11">year after</text>',
    ]
    if not rows:
        parts.append(
            f'<text x="{left + 10}" y="{top + plot_h / 2}" font-family="sans-serif" '
            'font-size="13">No patients enrolled yet.</text>'
        )
    for i, r in enumerate(rows):
        x0 = left + i * slot + (slot - 2 * bar) / 2
        label = f"{r.year:04d}-{r.month:02d}"
        for j, (which, value, colour) in enumerate(
            (
                ("before", r.before_per_1000, BEFORE_COLOUR),
                ("after", r.after_per_1000, AFTER_COLOUR),
            )
        ):
            if value is None:
                continue
            h = plot_h * float(value) / peak
            x = x0 + j * bar
            parts.append(
                f'<rect class="bar" data-month="{label}" data-window="{which}" '
                f'data-per-1000="{float(value):.3f}" x="{x:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar - 2:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{label} {which}: {float(value):.1f} per 1,000</title></rect>"
            )
        parts.append(
            f'<text x="{x0 + bar:.1f}" y="{top + plot_h + 18}" text-anchor="middle" '
            f'font-family="sans-serif" font-size="11">{label}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _date_param(request: Request, name: str) -> date | None:
    raw = request.query_params.get(name)
    return None if raw is None else date.fromisoformat(raw)


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    extensions = {"code": code} if field is None else {"code": code, "field": field}
    return JSONResponse({"errors": [{"message": message, "extensions": extensions}]}, status)


def outcomes_routes(runtime_of: Callable[[], Runtime | None], verifier: TokenVerifier) -> Mount:
    """``/outcomes``: the CSV, the chart and the page."""

    async def _context(request: Request) -> CareteamContext | Response:
        runtime = runtime_of()
        if runtime is None:
            return _error(503, "STARTING", "careteam is starting")
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return _error(401, "UNAUTHENTICATED", "send a valid bearer token")
        try:
            principal = await verifier.verify(token)
        except AuthenticationError:
            return _error(401, "UNAUTHENTICATED", "send a valid bearer token")
        try:
            purpose = resolve_purpose(request.headers.get("x-purpose-of-use"), principal.role)
        except PurposeOfUseError as exc:
            return _error(400, exc.code, str(exc), "X-Purpose-Of-Use")
        return CareteamContext(
            runtime=runtime, request=request, principal=principal, purpose=purpose.value
        )

    async def _series(request: Request, fields: tuple[str, ...]) -> Series | Response:
        ctx = await _context(request)
        if isinstance(ctx, Response):
            return ctx
        try:
            as_of = _date_param(request, "asOf")
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "asOf must be a date (YYYY-MM-DD)", "asOf")
        try:
            return await load_series(ctx, as_of, fields)
        except Denied as denied:
            refused = await deny(ctx, denied, None)
            return _error(403, refused.code, refused.message)

    async def _care_team(request: Request, fields: tuple[str, ...]) -> CareTeamResult | Response:
        ctx = await _context(request)
        if isinstance(ctx, Response):
            return ctx
        dates = {}
        for name in ("asOf", "fromMonth", "toMonth"):
            try:
                dates[name] = _date_param(request, name)
            except ValueError:
                return _error(400, "VALIDATION_ERROR", f"{name} must be a date", name)
        try:
            by = SeriesDimension(request.query_params.get("by", "organisation"))
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "by is organisation or care_manager", "by")
        try:
            return await load_care_team(
                ctx, by, dates["fromMonth"], dates["toMonth"], dates["asOf"], fields
            )
        except RangeError as bad:
            return _error(400, bad.code, bad.message, bad.field)
        except Denied as denied:
            refused = await deny(ctx, denied, None)
            return _error(403, refused.code, refused.message)

    async def care_team_csv(request: Request) -> Response:
        raw = request.query_params.get("suppressBelow", "0")
        if not raw.isdigit() or int(raw) > MAX_SUPPRESS_BELOW:
            return _error(
                400, "VALIDATION_ERROR", "suppressBelow is a whole number 0-100", "suppressBelow"
            )
        result = await _care_team(request, ("careTeamOverTime.csv",))
        if isinstance(result, Response):
            return result
        return Response(
            care_team_csv_text(result, int(raw)),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": 'attachment; filename="care-team-over-time.csv"',
                "Cache-Control": "no-store",
            },
        )

    async def care_team_chart(request: Request) -> Response:
        measure = request.query_params.get("measure", "contacted_share")
        if measure not in CHART_MEASURES:
            return _error(400, "VALIDATION_ERROR", "measure is not a charted measure", "measure")
        result = await _care_team(request, ("careTeamOverTime.chart",))
        if isinstance(result, Response):
            return result
        return Response(
            care_team_svg(result, measure),
            media_type="image/svg+xml",
            headers={"Cache-Control": "no-store"},
        )

    async def csv_export(request: Request) -> Response:
        series = await _series(request, ("outcomesOverTime.csv",))
        if isinstance(series, Response):
            return series
        return Response(
            series_csv(series),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": 'attachment; filename="outcomes-over-time.csv"',
                "Cache-Control": "no-store",
            },
        )

    async def chart(request: Request) -> Response:
        raw = request.query_params.get("kind", UtilisationKind.EMERGENCY_VISIT.value)
        try:
            kind = UtilisationKind(raw)
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "kind is not a utilisation kind", "kind")
        series = await _series(request, ("outcomesOverTime.chart",))
        if isinstance(series, Response):
            return series
        return Response(
            series_svg(series, kind),
            media_type="image/svg+xml",
            headers={"Cache-Control": "no-store"},
        )

    return Mount(
        OUTCOMES_PATH,
        routes=[
            Route("/series.csv", csv_export),
            Route("/chart.svg", chart),
            Route("/care-team.csv", care_team_csv),
            Route("/care-team.svg", care_team_chart),
            Mount("/", StaticFiles(directory=PAGE_DIR, html=True), name="outcomes"),
        ],
    )
