// Outcomes over time: shows the charts careteam draws (plain SVG, /outcomes/chart.svg)
// with the bearer token taken once from the URL fragment (#token=...&asOf=YYYY-MM-DD, and
// optionally fromMonth and toMonth for the care-team charts),
// which the browser never sends to the server; the fragment is then cleared.
"use strict";

(async function main() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const token = params.get("token") || sessionStorage.getItem("careteam-token");
  const asOf = params.get("asOf");
  if (params.get("token")) {
    sessionStorage.setItem("careteam-token", params.get("token"));
    history.replaceState(null, "", window.location.pathname);
  }
  const status = document.getElementById("status");
  if (!token) return;
  status.textContent = "Loading...";
  const kinds = ["emergency_visit", "hospitalisation", "specialty_mental_health_referral"];
  for (const kind of kinds) {
    const query = new URLSearchParams({ kind });
    if (asOf) query.set("asOf", asOf);
    const response = await fetch(`chart.svg?${query}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (!response.ok) {
      status.textContent = `Not shown (HTTP ${response.status}).`;
      return;
    }
    const svg = new DOMParser().parseFromString(await response.text(), "image/svg+xml");
    document.getElementById(kind).appendChild(document.importNode(svg.documentElement, true));
  }
  // The care-team measures per care manager and month (/outcomes/care-team.svg).
  const measures = [
    "caseload",
    "contacted_share",
    "median_days_to_psychiatric_review",
    "phq9_response_12_weeks",
    "phq9_remission_12_weeks",
    "phq9_response_6_months",
    "phq9_remission_6_months",
    "drr_e_remission",
    "dms_e",
    "dsf_e",
    "gad7_response_12_weeks",
    "gad7_remission_12_weeks",
    "gad7_response_6_months",
    "gad7_remission_6_months",
  ];
  const careTeam = document.getElementById("care-team");
  for (const measure of measures) {
    const query = new URLSearchParams({ measure, by: "care_manager" });
    for (const name of ["asOf", "fromMonth", "toMonth"]) {
      if (params.get(name)) query.set(name, params.get(name));
    }
    const response = await fetch(`care-team.svg?${query}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (!response.ok) {
      status.textContent = `Not shown (HTTP ${response.status}).`;
      return;
    }
    const section = document.createElement("section");
    section.id = `care-team-${measure}`;
    section.className = "chart";
    const svg = new DOMParser().parseFromString(await response.text(), "image/svg+xml");
    section.appendChild(document.importNode(svg.documentElement, true));
    careTeam.appendChild(section);
  }
  status.textContent =
    "Per enrollment month: events per 1,000 patients in the year before and after enrollment. " +
    "Per care manager and month: caseload, contact, psychiatric review, PHQ-9 and GAD-7 outcomes.";
})();
