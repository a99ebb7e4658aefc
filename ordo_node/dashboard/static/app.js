"use strict";

// The ordo-node dashboard: polls this node's read-only JSON API (api/...) and
// renders it. Data reaches the page only through text nodes and
// setAttribute, never through an HTML parser, so job names, payloads and
// error texts cannot inject markup. The URL hash holds the view: #state=FAILED filters
// the job list, #job=<id> opens a job's attempts, occurrences and history.

const POLL_MS = 2000;
const LIST_LIMIT = 50;
const RECENT_LIMIT = 20;

const byId = (id) => document.getElementById(id);
const lastShown = new Map();
let timer = null;
let busy = false;
let again = false;

// --- building elements ---------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const cssName = (text) => String(text).replace(/[^A-Za-z0-9_-]/g, "_");
const badge = (text, kind) => el("span", { class: `badge ${kind}-${cssName(text)}` }, text);

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

function formatTime(us) {
  if (!us) return "";
  const d = new Date(us / 1000);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

function timeCell(us) {
  return el("td", { class: "time", title: us ? new Date(us / 1000).toISOString() : null }, formatTime(us));
}

function took(startUs, endUs) {
  if (!startUs || !endUs) return "";
  const seconds = (endUs - startUs) / 1e6;
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(1)} s`;
}

function shortId(id) {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

// A run id is "<job id>:<ordinal>": within one job, the ordinal says which run.
function runLabel(runId, jobId) {
  return runId.startsWith(`${jobId}:`) ? `run ${runId.slice(jobId.length + 1)}` : shortId(runId);
}

function emptyRow(columns, text) {
  return el("tr", { class: "empty" }, el("td", { colspan: columns }, text));
}

function fill(tableId, rows, columns, emptyText) {
  byId(tableId).tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(columns, emptyText)]));
}

function showError(id, error) {
  const node = byId(id);
  node.hidden = !error;
  node.textContent = error ? String(error.message || error) : "";
}

// --- the view in the URL hash -------------------------------------------

function view() {
  const params = new URLSearchParams(location.hash.slice(1));
  return { job: params.get("job") || "", state: params.get("state") || "" };
}

function hashFor(change) {
  const next = { ...view(), ...change };
  const params = new URLSearchParams();
  if (next.state) params.set("state", next.state);
  if (next.job) params.set("job", next.job);
  const text = params.toString();
  return text ? `#${text}` : "#";
}

function jobLink(id, name) {
  return el("a", { href: hashFor({ job: id }), class: "job-link", title: id }, name || shortId(id));
}

// --- the API -------------------------------------------------------------

async function getJSON(path) {
  const reply = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
  const text = await reply.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (_) {
    // Not JSON: a 401 says in plain text how to pass a token.
  }
  if (!reply.ok) {
    const message = body && body.error ? body.error : text.trim();
    throw new Error(`${reply.status}: ${message}`);
  }
  return body;
}

// Render only what changed, so a refresh does not disturb a reader.
function render(key, data, draw) {
  const text = JSON.stringify(data);
  if (lastShown.get(key) === text) return;
  lastShown.set(key, text);
  draw(data);
}

// --- panels --------------------------------------------------------------

function drawCluster(c) {
  byId("self").textContent = c.node_id;
  byId("leader").textContent = c.leader_id || "none (election in progress)";
  byId("term").textContent = c.term;
  byId("commit").textContent = c.commit_index;
  byId("applied").textContent = c.applied_index;
  const rows = c.nodes.map((n) =>
    el(
      "tr",
      { "data-node": n.node_id, class: n.leader ? "leader" : null },
      el("td", {}, n.node_id, n.leader ? " " : null, n.leader ? badge("leader", "role") : null,
        n.node_id === c.node_id ? el("small", {}, " (this node)") : null),
      el("td", {}, badge(n.role, "role")),
      el("td", {}, n.reachable ? badge("up", "live") : badge("down", "live")),
      el("td", { class: "num" }, n.reachable ? n.applied_index : ""),
      el("td", { class: "num" }, n.reachable ? `${n.running} / ${n.capacity}` : "",
        n.draining ? el("small", {}, " draining") : null),
      el("td", {}, n.tags.join(", ")),
      el("td", { class: "mono" }, n.grpc_address),
    ),
  );
  fill("nodes", rows, 7, "no members");
  drawWorkers(c.workers || []);
}

// A list of names, the first few shown and the rest counted; all of them in its title.
function shortList(items, shown = 4) {
  if (!items.length) return el("span", { class: "muted" }, "–");
  const rest = items.length - shown;
  return el("span", { title: items.join(", ") }, rest > 0 ? `${items.slice(0, shown).join(", ")} +${rest}` : items.join(", "));
}

function heartbeatAge(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 60) return `${seconds.toFixed(1)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

// Workers (ordo-node worker): shown below the members once the cluster has any.
function drawWorkers(workers) {
  byId("workers-block").hidden = !workers.length;
  const connected = workers.filter((w) => w.connected_to).length;
  byId("workers-note").textContent = workers.length ? `${connected} of ${workers.length} connected` : "";
  const rows = workers.map((w) =>
    el(
      "tr",
      { "data-worker": w.worker_id },
      el("td", {}, w.worker_id),
      el("td", {}, w.connected_to ? w.connected_to : badge("not connected", "live"),
        w.draining ? el("small", {}, " draining") : null),
      el("td", { class: "time", title: w.last_heartbeat ? new Date(w.last_heartbeat / 1000).toISOString() : null },
        heartbeatAge(w.heartbeat_age)),
      el("td", { class: "num" }, `${w.running} / ${w.capacity}`),
      el("td", {}, shortList(w.tags)),
      el("td", {}, shortList(w.handlers)),
      el("td", { class: "mono" }, w.address),
    ),
  );
  fill("workers", rows, 7, "no workers");
}

function drawCounts(counts) {
  const current = view().state;
  const chip = (state, label, count) =>
    el(
      "li",
      { class: `${count ? "" : "zero"} ${state === current ? "active" : ""}`.trim() || null, "data-state": state || "ALL" },
      el("a", { href: hashFor({ state }) }, el("span", { class: `label state-${cssName(state || "ALL")}` }, label),
        " ", el("b", { class: "count" }, count)),
    );
  const items = [chip("", "all", counts.total)];
  for (const [state, count] of Object.entries(counts.jobs)) items.push(chip(state, state, count));
  byId("counts").replaceChildren(...items);
}

function drawJobs(data) {
  byId("jobs-note").textContent = data.state
    ? `newest ${data.limit} in ${data.state}`
    : `newest ${data.limit}`;
  const rows = data.jobs.map((j) =>
    el(
      "tr",
      { "data-job": j.job_id, class: j.job_id === view().job ? "selected" : null },
      el("td", {}, jobLink(j.job_id, j.name), j.waiting ? el("div", { class: "note" }, j.waiting) : null),
      el("td", {}, badge(j.state, "state")),
      el("td", {}, j.type),
      timeCell(j.next_fire),
      el("td", { class: "num" }, j.occurrences),
      timeCell(j.created_at),
    ),
  );
  fill("jobs", rows, 6, data.state ? `no ${data.state} jobs` : "no jobs yet");
}

function drawRecent(data) {
  const failures = data.failures.map((f) =>
    el(
      "tr",
      { "data-failure": `${f.run_id}#${f.attempt}` },
      timeCell(f.at),
      el("td", {}, jobLink(f.job_id, f.name)),
      el("td", {}, badge(f.type, "event")),
      el("td", { class: "num" }, f.attempt || ""),
      el("td", {}, f.node_id),
      el("td", {}, el("pre", { class: "error-text" }, f.error)),
    ),
  );
  fill("failures", failures, 6, "no failures among the recent events");
  const runs = data.runs.map((r) =>
    el(
      "tr",
      { "data-run": `${r.run_id}#${r.attempt}` },
      el("td", {}, jobLink(r.job_id, r.name)),
      el("td", { class: "num" }, r.attempt),
      el("td", {}, badge(r.state, "state")),
      el("td", {}, r.node_id),
      timeCell(r.started_at),
      el("td", { class: "num" }, took(r.started_at, r.finished_at)),
    ),
  );
  fill("runs", runs, 6, "no runs yet");
}

function field(name, value) {
  if (value === "" || value === null || value === undefined) return null;
  return el("div", {}, el("dt", {}, name), el("dd", {}, value));
}

function note(shown, total, limit) {
  return total > shown ? `newest ${limit} of ${total}` : `${total}`;
}

function drawDetail(d) {
  const j = d.job;
  byId("detail-title").replaceChildren("Job ", el("span", { class: "name" }, j.name || j.job_id), " ", badge(j.state, "state"));
  byId("detail-fields").replaceChildren(
    ...[
      field("id", j.job_id),
      field("type", j.type),
      field("state", j.state),
      field("waiting", j.waiting),
      field("created", formatTime(j.created_at)),
      field("updated", formatTime(j.updated_at)),
      field("first run", formatTime(j.run_at)),
      field("next fire", formatTime(j.next_fire)),
      field("occurrences", j.occurrences),
      field("idempotency key", j.idempotency_key),
      field("submitted to", j.submitted_to),
    ].filter(Boolean),
  );
  byId("detail-payload").textContent = JSON.stringify(j.payload, null, 2);
  byId("detail-options").textContent = JSON.stringify(j.options, null, 2);
  byId("detail-runs-note").textContent = note(d.runs.length, d.runs_total, d.limit);
  fill(
    "detail-runs",
    d.runs.map((r) =>
      el(
        "tr",
        { "data-run": `${r.run_id}#${r.attempt}` },
        el("td", { title: r.run_id }, runLabel(r.run_id, j.job_id)),
        el("td", { class: "num" }, r.attempt),
        el("td", {}, badge(r.state, "state")),
        el("td", {}, r.node_id),
        timeCell(r.triggered_at),
        timeCell(r.started_at),
        timeCell(r.finished_at),
        el("td", { class: "num" }, took(r.started_at, r.finished_at)),
        el("td", {}, r.error ? el("pre", { class: "error-text" }, r.error) : ""),
        el("td", {}, r.result ? el("pre", {}, r.result) : ""),
      ),
    ),
    10,
    "no attempts yet",
  );
  byId("detail-occurrences-note").textContent = note(d.occurrences.length, d.occurrences_total, d.limit);
  fill(
    "detail-occurrences",
    d.occurrences.map((o) =>
      el(
        "tr",
        { "data-occurrence": o.nominal },
        timeCell(o.nominal),
        timeCell(o.fire_at),
        el("td", {}, badge(o.fate, "fate")),
        el("td", {}, o.reason),
        el("td", {}, o.outcome ? badge(o.outcome, "state") : ""),
        el("td", { class: "num" }, o.attempts),
        el("td", { title: o.run_id || null }, o.run_id ? runLabel(o.run_id, j.job_id) : ""),
      ),
    ),
    7,
    "no occurrences yet",
  );
  byId("detail-history-note").textContent = note(d.history.length, d.history_total, d.limit);
  fill(
    "detail-history",
    d.history.map((e) =>
      el(
        "tr",
        { "data-event": e.seq },
        el("td", { class: "num" }, e.seq),
        timeCell(e.at),
        el("td", {}, badge(e.type, "event")),
        el("td", {}, e.node_id),
        el("td", { title: e.run_id || null }, e.run_id ? `${runLabel(e.run_id, j.job_id)}, attempt ${e.attempt}` : ""),
        el("td", {}, e.message),
      ),
    ),
    6,
    "no events",
  );
}

async function refreshDetail(jobId) {
  const panel = byId("job-detail");
  panel.hidden = !jobId;
  byId("detail-close").setAttribute("href", hashFor({ job: "" }));
  if (!jobId) {
    lastShown.delete("detail");
    return;
  }
  try {
    const data = await getJSON(`api/jobs/${encodeURIComponent(jobId)}`);
    byId("detail-body").hidden = false;
    showError("detail-error", null);
    render("detail", data, drawDetail);
  } catch (error) {
    lastShown.delete("detail");
    byId("detail-title").textContent = `Job ${jobId}`;
    byId("detail-body").hidden = true;
    showError("detail-error", error);
    throw error;
  }
}

// --- the poll loop -------------------------------------------------------

async function panel(errorId, key, path, draw) {
  try {
    const data = await getJSON(path);
    showError(errorId, null);
    render(key, data, draw);
  } catch (error) {
    lastShown.delete(key);
    showError(errorId, error);
    throw error;
  }
}

async function refresh() {
  if (busy) {
    again = true;
    return;
  }
  busy = true;
  clearTimeout(timer);
  const v = view();
  const jobsPath = `api/jobs?limit=${LIST_LIMIT}${v.state ? `&state=${encodeURIComponent(v.state)}` : ""}`;
  const results = await Promise.allSettled([
    panel("cluster-error", "cluster", "api/cluster", drawCluster),
    panel("counts-error", "counts", "api/counts", drawCounts),
    panel("jobs-error", "jobs", jobsPath, drawJobs),
    panel("recent-error", "recent", `api/runs/recent?limit=${RECENT_LIMIT}`, drawRecent),
    refreshDetail(v.job),
  ]);
  const failed = results.filter((r) => r.status === "rejected");
  const status = byId("status");
  if (failed.length === results.length) {
    status.className = "error";
    status.textContent = `cannot read this node (${failed[0].reason.message}); retrying every ${POLL_MS / 1000} s`;
  } else {
    status.className = failed.length ? "warn" : "";
    const time = new Date().toLocaleTimeString();
    status.textContent = `updated ${time}, every ${POLL_MS / 1000} s` + (failed.length ? "; some parts failed" : "");
    document.body.dataset.ready = "1";
  }
  busy = false;
  if (again) {
    again = false;
    refresh();
  } else {
    timer = setTimeout(refresh, POLL_MS);
  }
}

window.addEventListener("hashchange", () => {
  // The filter and the selection change how lists are drawn: draw them anew.
  lastShown.clear();
  refresh();
});
refresh();
