// The compliance console: a read-only page over the GraphQL API, for the compliance role.
// The token stays in this tab (sessionStorage); a token or patient passed in the URL
// fragment (#token=...&patient=...) is read once and removed from the address bar. Every
// view is an ordinary GraphQL read, authorised and audited by the server.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_PAGES = 20;

async function graphql(token, query, variables) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables: variables || {} }),
  });
  const body = await response.json();
  if (!response.ok || body.errors) {
    const first = (body.errors || [])[0] || {};
    throw new Error(first.message || `HTTP ${response.status}`);
  }
  return body.data;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
}

function refuse(message) {
  $("refused").textContent = message;
  $("refused").hidden = false;
  $("views").hidden = true;
}

async function chainStatus() {
  try {
    const response = await fetch("/readyz");
    const body = await response.json();
    const ok = response.ok;
    $("chain").textContent = ok
      ? "Audit chain: intact"
      : `Audit chain: ${body.status || "not ready"}${body.reason ? ` (${body.reason})` : ""}`;
    $("chain").className = `status ${ok ? "ok" : "broken"}`;
  } catch (error) {
    $("chain").textContent = "Audit chain: unknown (server unreachable)";
    $("chain").className = "status broken";
  }
}

async function names(token) {
  const known = new Map();
  let after = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const data = await graphql(
      token,
      `query($after: String) { staff(first: 200, after: $after, includeInactive: true) {
         __typename ... on StaffConnection { pageInfo { hasNextPage endCursor }
           edges { node { userId displayName credentials } } } } }`,
      { after },
    );
    const result = data.staff;
    if (result.__typename !== "StaffConnection") break;
    for (const edge of result.edges) {
      const n = edge.node;
      known.set(n.userId, n.credentials ? `${n.displayName}, ${n.credentials}` : n.displayName);
    }
    if (!result.pageInfo.hasNextPage) break;
    after = result.pageInfo.endCursor;
  }
  return (id) => (id && known.has(id) ? `${known.get(id)} (${id})` : id || "system");
}

async function reviews(token, nameOf) {
  const body = $("reviews").tBodies[0];
  body.replaceChildren();
  // Every open grant, a page of 200 at a time (newest first).
  let after = null;
  for (;;) {
    const data = await graphql(
      token,
      `query($after: String) { emergencyAccessReviews(onlyOpen: true, first: 200, after: $after) {
          __typename
          ... on EmergencyGrants {
            edges { node { grantedAt patientId userId role reason reads } }
            pageInfo { hasNextPage endCursor } }
          ... on ForbiddenError { code } } }`,
      { after },
    );
    const result = data.emergencyAccessReviews;
    if (result.__typename !== "EmergencyGrants") break;
    for (const edge of result.edges) {
      const grant = edge.node;
      const row = document.createElement("tr");
      row.className = "review";
      cell(row, grant.grantedAt);
      cell(row, grant.patientId);
      cell(row, nameOf(grant.userId));
      cell(row, grant.role);
      cell(row, grant.reason);
      cell(row, grant.reads);
      body.appendChild(row);
    }
    if (!result.pageInfo.hasNextPage) break;
    after = result.pageInfo.endCursor;
  }
}

async function timeline(token, patientId, nameOf) {
  const list = $("timeline");
  list.replaceChildren();
  let after = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const data = await graphql(
      token,
      `query($p: UUID!, $after: String) { auditTrail(patientId: $p, first: 200, after: $after) {
         __typename
         ... on AuditTrail { pageInfo { hasNextPage endCursor }
           entries { kind at actorId role action purposeOfUse reason fields } }
         ... on NotFoundError { code } ... on ForbiddenError { code }
         ... on ValidationError { code } } }`,
      { p: patientId, after },
    );
    const trail = data.auditTrail;
    if (trail.__typename !== "AuditTrail") {
      const item = document.createElement("li");
      item.textContent = `No access history: ${trail.code}`;
      list.appendChild(item);
      return;
    }
    for (const entry of trail.entries) {
      const item = document.createElement("li");
      item.className = `entry ${entry.kind.toLowerCase()}`;
      if (entry.purposeOfUse === "ETREAT") item.classList.add("emergency");
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = entry.at;
      const kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = entry.kind;
      const what = document.createElement("span");
      const detail = [entry.action, entry.purposeOfUse, entry.reason].filter(Boolean).join(" · ");
      what.textContent = `${nameOf(entry.actorId)} [${entry.role || ""}] ${detail}`;
      item.append(when, kind, what);
      list.appendChild(item);
    }
    if (!trail.pageInfo.hasNextPage) return;
    after = trail.pageInfo.endCursor;
  }
}

async function disclosures(token, patientId) {
  const body = $("disclosures").tBodies[0];
  body.replaceChildren();
  let after = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const data = await graphql(
      token,
      `query($p: UUID!, $after: String) { disclosures(patientId: $p, first: 200, after: $after) {
         __typename ... on DisclosurePage { pageInfo { hasNextPage endCursor }
           disclosures { disclosedAt eventOccurredAt recipientName recipientAddress description
             purpose channel consentIds outcome attempt } } } }`,
      { p: patientId, after },
    );
    const result = data.disclosures;
    if (result.__typename !== "DisclosurePage") return;
    for (const d of result.disclosures) {
      const row = document.createElement("tr");
      row.className = "disclosure";
      cell(row, d.disclosedAt);
      cell(row, d.eventOccurredAt);
      cell(row, d.recipientAddress ? `${d.recipientName} (${d.recipientAddress})` : d.recipientName);
      cell(row, d.description);
      cell(row, d.purpose);
      cell(row, (d.consentIds || []).join(", "));
      cell(row, d.channel);
      cell(row, d.attempt ? `${d.outcome} (attempt ${d.attempt})` : d.outcome);
      body.appendChild(row);
    }
    if (!result.pageInfo.hasNextPage) return;
    after = result.pageInfo.endCursor;
  }
}

async function open(token, patientId) {
  $("refused").hidden = true;
  let me;
  try {
    me = (await graphql(token, "{ me { userId role staff { displayName } } }")).me;
  } catch (error) {
    refuse(`Sign-in failed: ${error.message}`);
    return;
  }
  if (me.role !== "COMPLIANCE") {
    refuse("This console is for the compliance role; your token's role may not use it.");
    return;
  }
  $("who").textContent = `Signed in as ${me.staff ? me.staff.displayName : me.userId} (compliance)`;
  $("views").hidden = false;
  const nameOf = await names(token);
  await reviews(token, nameOf);
  if (patientId) {
    $("patient-id").textContent = patientId;
    $("patient-views").hidden = false;
    await timeline(token, patientId, nameOf);
    await disclosures(token, patientId);
  }
  document.body.dataset.loaded = "true";
}

function start() {
  chainStatus();
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  if (fragment.has("token")) {
    sessionStorage.setItem("careteam-token", fragment.get("token"));
    history.replaceState(null, "", window.location.pathname);
  }
  $("print").addEventListener("click", () => window.print());
  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("careteam-token", $("token").value);
    open($("token").value, $("patient").value.trim());
  });
  const token = sessionStorage.getItem("careteam-token");
  if (token) open(token, fragment.get("patient") || "");
}

start();
