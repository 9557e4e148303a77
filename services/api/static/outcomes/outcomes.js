// Outcomes over time: shows the charts careteam draws (plain SVG, /outcomes/chart.svg)
// with the bearer token taken once from the URL fragment (#token=...&asOf=YYYY-MM-DD),
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
  status.textContent = "Per enrollment month: events per 1,000 patients in the year before and after enrollment.";
})();
