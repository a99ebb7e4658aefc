"use strict";

// The ordo-node dashboard: polls this node's JSON API (api/...) and renders it.
// Data reaches the page only through text nodes and setAttribute, never
// through an HTML parser, so job names, payloads and error texts cannot inject
// markup. The URL hash holds the view: #state=FAILED filters the job list,
// #q=... searches it, #before=N pages past the newest, #view=schedules shows
// the recurring jobs, #job=<id> opens a job's attempts, occurrences and history.
//
// Actions (cancel, retry, pause, resume, run now) are POSTs to
// api/jobs/<id>/<action> carrying the CSRF token api/session gives this page;
// the node allows them to an admin token only (or to anyone on a port without
// tokens) and records the token's name in the job's history.

const POLL_MS = 2000;
const LIST_LIMIT = 50;
const RECENT_LIMIT = 20;
const CHART_EVERY = 5; // the chart is read every fifth poll: it changes by the minute
const CONFIRM_MS = 5000; // a cancel asks again, and waits this long for the second click
const OUTCOME_CLASS = { SUCCEEDED: "ok", FAILED: "bad", LOST: "lost", CANCELLED: "idle" };

const byId = (id) => document.getElementById(id);
const lastShown = new Map();
let timer = null;
let busy = false;
let again = false;
let polls = 0;
let session = null; // {can_act, actor, why, csrf, csrf_header} from api/session

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

// Every time is shown in UTC and says so; a schedule's own time zone is named where it matters.
function formatTime(us) {
  if (!us) return "";
  const d = new Date(us / 1000);
  return (
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`
  );
}

// The same instant in a named time zone, e.g. "2026-12-05 13:03:04 Europe/Paris"; "" if unknown here.
function formatZoned(us, zone) {
  if (!us || !zone || zone === "UTC") return "";
  try {
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat("en-GB", {
        timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit",
      }).formatToParts(new Date(us / 1000)).map((p) => [p.type, p.value]),
    );
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${zone}`;
  } catch (_) {
    return "";
  }
}

function timeCell(us) {
  return el("td", { class: "time", title: us ? new Date(us / 1000).toISOString() : null }, formatTime(us));
}

// A duration with its unit: "350 ms", "4.2 s", "3.5 min".
function duration(us) {
  const ms = us / 1000;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

function took(startUs, endUs) {
  if (!startUs || !endUs) return "";
  return duration(endUs - startUs);
}

// Version-7 UUIDs share their first characters (a timestamp): the end tells them apart.
function shortId(id) {
  return id.length > 12 ? `…${id.slice(-8)}` : id;
}

function idCell(id) {
  return el("td", { class: "mono id", title: id }, shortId(id));
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

const VIEW_KEYS = ["view", "state", "q", "before", "job"];

function view() {
  const params = new URLSearchParams(location.hash.slice(1));
  return Object.fromEntries(VIEW_KEYS.map((k) => [k, params.get(k) || ""]));
}

function hashFor(change) {
  const next = { ...view(), ...change };
  const params = new URLSearchParams();
  for (const key of VIEW_KEYS) if (next[key]) params.set(key, next[key]);
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

// --- actions ---------------------------------------------------------------

async function loadSession() {
  try {
    session = await getJSON("api/session");
  } catch (error) {
    session = { can_act: false, actor: "", why: `cannot tell: ${error.message}`, csrf: "" };
  }
  const actor = byId("actor");
  actor.textContent = session.can_act ? session.actor : `${session.actor || "nobody"} (read only)`;
  actor.title = session.why || "";
  lastShown.clear(); // buttons appear or go with the right to act
}

async function post(action, jobId) {
  const headers = { Accept: "application/json" };
  headers[session.csrf_header || "X-Ordo-CSRF"] = session.csrf;
  const reply = await fetch(`api/jobs/${encodeURIComponent(jobId)}/${action}`, {
    method: "POST", headers, cache: "no-store", credentials: "same-origin",
  });
  let body = null;
  try {
    body = await reply.json();
  } catch (_) {
    body = { error: `${reply.status} ${reply.statusText}` };
  }
  return { status: reply.status, body };
}

const ACTION_NAMES = { cancel: "cancel", retry: "retry", pause: "pause", resume: "resume", "run-now": "run now" };

// Do an action and say how it went at the top of the page (and in its history, below).
async function act(action, jobId, name) {
  const result = byId("action-result");
  result.hidden = false;
  result.className = "pending";
  result.dataset.outcome = "pending";
  result.textContent = `${ACTION_NAMES[action]} ${name || jobId}: sending…`;
  let reply = await post(action, jobId);
  if (reply.status === 403 && /X-Ordo-CSRF/.test(reply.body.error || "")) {
    await loadSession(); // the node restarted since this page read its token
    reply = await post(action, jobId);
  }
  if (reply.status === 200) {
    const j = reply.body.job;
    const e = reply.body.event;
    result.className = "ok";
    result.dataset.outcome = "ok";
    result.textContent =
      `${ACTION_NAMES[action]} ${j.name || j.job_id} (…${j.job_id.slice(-8)}): done by ${reply.body.by}; ` +
      `the job is ${j.state}` + (e ? `; history: ${e.type} ${e.message}` : "");
  } else {
    result.className = "error";
    result.dataset.outcome = "error";
    result.textContent = `${ACTION_NAMES[action]} ${name || jobId} refused (${reply.status}): ${reply.body.error}`;
  }
  lastShown.clear();
  refresh();
}

// Cancels asked for once, by job id, with the time the question lapses: kept here, not in
// the button, so that a redraw between the two clicks does not forget the first.
const armed = new Map();

// A button for an action; a cancel asks for a second click (within CONFIRM_MS) before it acts.
function actionButton(action, jobId, name) {
  const asking = () => action === "cancel" && (armed.get(jobId) || 0) > Date.now();
  const button = el("button", { type: "button", class: `action action-${action}`, "data-action": action, "data-job": jobId },
    asking() ? "really cancel?" : ACTION_NAMES[action]);
  if (asking()) button.classList.add("armed");
  button.addEventListener("click", () => {
    if (action === "cancel" && !asking()) {
      armed.set(jobId, Date.now() + CONFIRM_MS);
      button.textContent = "really cancel?";
      button.classList.add("armed");
      setTimeout(() => {
        if (!asking() && button.isConnected) {
          button.textContent = ACTION_NAMES[action];
          button.classList.remove("armed");
        }
      }, CONFIRM_MS + 50);
      return;
    }
    armed.delete(jobId);
    button.disabled = true;
    act(action, jobId, name).finally(() => {
      button.disabled = false;
    });
  });
  return button;
}

const FINAL_STATES = ["SUCCEEDED", "FAILED", "DEAD_LETTER", "CANCELLED"];

// The actions a job's state allows (the node checks again).
function actionsFor(job, recurring) {
  if (!session || !session.can_act) return [];
  const out = [];
  if (recurring && job.state === "PAUSED") out.push("resume");
  else if (recurring && !FINAL_STATES.includes(job.state)) out.push("run-now", "pause");
  if (["FAILED", "DEAD_LETTER"].includes(job.state) || (recurring && job.last_failed)) out.push("retry");
  if (!FINAL_STATES.includes(job.state)) out.push("cancel");
  return out;
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
      el("a", { href: hashFor({ state, before: "", view: "" }) }, el("span", { class: `label state-${cssName(state || "ALL")}` }, label),
        " ", el("b", { class: "count" }, count)),
    );
  const items = [chip("", "all", counts.total)];
  for (const [state, count] of Object.entries(counts.jobs)) items.push(chip(state, state, count));
  byId("counts").replaceChildren(...items);
}

function drawJobs(data) {
  const where = [data.state && `in ${data.state}`, data.q && `matching “${data.q}”`].filter(Boolean).join(", ");
  byId("jobs-note").textContent =
    `${data.before ? `${data.limit} older` : `newest ${data.limit}`}${where ? ` ${where}` : ""}`;
  const rows = data.jobs.map((j) =>
    el(
      "tr",
      { "data-job": j.job_id, class: j.job_id === view().job ? "selected" : null },
      el("td", {}, jobLink(j.job_id, j.name), j.waiting ? el("div", { class: "note" }, j.waiting) : null),
      el("td", {}, j.type, j.cron ? el("div", { class: "muted mono" }, `${j.cron} (${j.timezone || "UTC"})`) : null),
      idCell(j.job_id),
      el("td", {}, badge(j.state, "state")),
      timeCell(j.next_fire),
      el("td", { class: "num" }, j.occurrences),
      timeCell(j.created_at),
    ),
  );
  fill("jobs", rows, 7, where ? `no jobs ${where}` : "no jobs yet");
  const older = byId("page-older");
  older.hidden = !data.next;
  older.setAttribute("href", hashFor({ before: String(data.next || "") }));
  const newest = byId("page-newest");
  newest.hidden = !data.before;
  newest.setAttribute("href", hashFor({ before: "" }));
}

function fateBadge(o) {
  const when = formatTime(o.nominal);
  return el("span", { class: `badge fate-${cssName(o.fate)}`, title: `${when}: ${o.fate}${o.reason ? ` (${o.reason})` : ""}${o.outcome ? `, run ${o.outcome}` : ""}` },
    o.outcome && o.fate === "TRIGGERED" ? o.outcome : o.fate);
}

function drawSchedules(data) {
  byId("schedules-note").textContent = `${data.schedules.length} live${data.more ? ` (the newest ${data.limit})` : ""}`;
  const rows = data.schedules.map((s) => {
    const zoned = formatZoned(s.next_fire, s.timezone);
    const job = { state: s.state, last_failed: s.last.length > 0 && s.last[0].outcome === "FAILED" };
    return el(
      "tr",
      { "data-schedule": s.job_id, class: s.paused ? "paused" : null },
      el("td", {}, jobLink(s.job_id, s.name), el("div", { class: "muted" }, s.type)),
      idCell(s.job_id),
      el("td", { class: "mono" }, s.cron, el("div", { class: "muted" }, s.timezone),
        s.max_runs ? el("div", { class: "muted" }, `max ${s.max_runs} runs, ${s.occurrences} so far`) : null),
      el("td", { class: "time" }, s.paused ? el("div", { class: "muted" }, "paused; due") : null,
        zoned ? el("div", {}, zoned) : null, el("div", { class: zoned ? "muted" : null }, formatTime(s.next_fire) || "none")),
      el("td", {}, badge(s.paused ? "PAUSED" : s.state, "state")),
      el("td", {}, s.overlap),
      el("td", {}, el("div", { class: "fates" }, s.last.length ? s.last.map(fateBadge) : el("span", { class: "muted" }, "none yet"))),
      el("td", {}, el("div", { class: "actions" },
        actionsFor(job, true).filter((a) => a !== "cancel").map((a) => actionButton(a, s.job_id, s.name)))),
    );
  });
  fill("schedules", rows, 8, "no live recurring jobs");
}

// --- the chart: plain SVG, drawn here ----------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const CHART = { w: 600, h: 160, left: 44, right: 8, top: 8, bottom: 22 };

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  return node;
}

function minuteLabel(us) {
  const d = new Date(us / 1000);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

// Axes with a top value and unit, and a time label every ten minutes (UTC).
function axes(minutes, top, unit) {
  const { w, h, left, right, top: t, bottom } = CHART;
  const step = (w - left - right) / minutes.length;
  const items = [
    svg("line", { x1: left, y1: h - bottom, x2: w - right, y2: h - bottom, class: "axis" }),
    svg("line", { x1: left, y1: t, x2: left, y2: h - bottom, class: "axis" }),
    svg("text", { x: left - 4, y: t + 8, class: "tick", "text-anchor": "end" }, `${top}`),
    svg("text", { x: left - 4, y: h - bottom, class: "tick", "text-anchor": "end" }, "0"),
    svg("text", { x: left - 4, y: t + 20, class: "tick unit", "text-anchor": "end" }, unit),
  ];
  minutes.forEach((m, i) => {
    if (i % 10 === 0 || i === minutes.length - 1) {
      const label = i === minutes.length - 1 ? `${minuteLabel(m.start)} UTC` : minuteLabel(m.start);
      const last = i === minutes.length - 1;
      const x = last ? w - right : left + i * step + step / 2;
      items.push(svg("text", { x, y: h - 6, class: "tick", "text-anchor": last ? "end" : "middle" }, label));
    }
  });
  return { items, step };
}

function niceTop(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (value <= m * power) return m * power;
  return 10 * power;
}

function drawChart(data) {
  const { h, left, top: t, bottom } = CHART;
  const minutes = data.minutes;
  const height = h - t - bottom;
  const total = (m) => data.outcomes.reduce((sum, o) => sum + m.outcomes[o], 0);
  const topCount = niceTop(Math.max(...minutes.map(total)));
  const a = axes(minutes, topCount, "/min");
  const bars = [];
  minutes.forEach((m, i) => {
    let y = h - bottom;
    for (const o of data.outcomes) {
      const n = m.outcomes[o];
      if (!n) continue;
      const bh = (n / topCount) * height;
      y -= bh;
      bars.push(svg("rect", { x: left + i * a.step + 1, y, width: Math.max(1, a.step - 2), height: bh, class: `bar ${OUTCOME_CLASS[o]}`, "data-minute": m.start, "data-outcome": o },
        svg("title", {}, `${minuteLabel(m.start)} UTC: ${n} ${o}`)));
    }
  });
  byId("chart-outcomes").replaceChildren(...a.items, ...bars);
  byId("chart-legend").replaceChildren(...data.outcomes.flatMap((o) => [el("span", { class: `swatch ${OUTCOME_CLASS[o]}` }), ` ${o.toLowerCase()} `]));

  const topLate = niceTop(Math.max(0, ...minutes.map((m) => m.late_max_ms || 0)));
  const b = axes(minutes, topLate, "ms");
  const line = (key, cls) => {
    const points = minutes
      .map((m, i) => (m[key] === null ? null : `${(left + i * b.step + b.step / 2).toFixed(1)},${(h - bottom - (m[key] / topLate) * height).toFixed(1)}`))
      .filter(Boolean);
    const dots = minutes.filter((m) => m[key] !== null).map((m) => {
      const i = minutes.indexOf(m);
      return svg("circle", { cx: left + i * b.step + b.step / 2, cy: h - bottom - (m[key] / topLate) * height, r: 2.5, class: `dot ${cls}` },
        svg("title", {}, `${minuteLabel(m.start)} UTC: ${key === "late_max_ms" ? "max" : "median"} ${m[key]} ms of ${m.triggered} triggered`));
    });
    return [points.length > 1 ? svg("polyline", { points: points.join(" "), class: `line ${cls}` }) : null, ...dots];
  };
  byId("chart-lateness").replaceChildren(...b.items, ...line("late_max_ms", "late-max"), ...line("late_p50_ms", "late-p50"));
  const finished = minutes.reduce((sum, m) => sum + total(m), 0);
  const triggered = minutes.reduce((sum, m) => sum + m.triggered, 0);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  byId("chart-note").textContent =
    `${plural(finished, "attempt")} finished, ${plural(triggered, "run")} triggered; minutes in UTC`;
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

function runCell(r) {
  if (!r.error && !r.traceback) return el("td", {});
  return el("td", {},
    r.error ? el("pre", { class: "error-text" }, r.error) : null,
    r.traceback ? el("details", { class: "traceback" }, el("summary", {}, "traceback"), el("pre", { class: "error-text" }, r.traceback)) : null);
}

function drawDetail(d) {
  const j = d.job;
  const recurring = Boolean(j.options && j.options.cron);
  byId("detail-title").replaceChildren("Job ", el("span", { class: "name" }, j.name || shortId(j.job_id)), " ",
    el("span", { class: "mono muted", title: j.job_id }, shortId(j.job_id)), " ", badge(j.state, "state"));
  const lastRun = d.runs[0];
  const job = { state: j.state, last_failed: Boolean(lastRun && lastRun.state === "FAILED") };
  const buttons = actionsFor(job, recurring).map((a) => actionButton(a, j.job_id, j.name));
  byId("detail-actions").replaceChildren(
    ...(buttons.length ? buttons : [el("span", { class: "muted" },
      session && !session.can_act ? `no actions: ${session.why}` : "no action fits this job's state")]),
  );
  const zone = recurring ? j.options.timezone || "UTC" : "";
  byId("detail-fields").replaceChildren(
    ...[
      field("name", j.name),
      field("type", j.type),
      field("id", j.job_id),
      field("state", j.state),
      field("waiting", j.waiting),
      field("schedule", recurring ? `${j.options.cron} (${zone})` : ""),
      field("created", formatTime(j.created_at)),
      field("updated", formatTime(j.updated_at)),
      field("first run", formatTime(j.run_at)),
      field("next fire", j.next_fire ? [formatZoned(j.next_fire, zone), formatTime(j.next_fire)].filter(Boolean).join(" = ") : ""),
      field("occurrences", j.occurrences),
      field("idempotency key", j.idempotency_key),
      field("submitted to", j.submitted_to),
    ].filter(Boolean),
  );
  byId("detail-payload").textContent = j.payload_json;
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
        runCell(r),
        el("td", {}, r.result ? el("pre", { class: "result" }, r.result) : ""),
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

function jobsPath(v) {
  const params = new URLSearchParams({ limit: String(LIST_LIMIT) });
  if (v.state) params.set("state", v.state);
  if (v.q) params.set("q", v.q);
  if (v.before) params.set("before", v.before);
  return `api/jobs?${params}`;
}

async function refresh() {
  if (busy) {
    again = true;
    return;
  }
  busy = true;
  clearTimeout(timer);
  const v = view();
  const schedules = v.view === "schedules";
  byId("schedules-panel").hidden = !schedules;
  byId("tab-schedules").className = schedules ? "active" : "";
  byId("tab-jobs").className = schedules ? "" : "active";
  byId("tab-jobs").setAttribute("href", hashFor({ view: "" }));
  byId("tab-schedules").setAttribute("href", hashFor({ view: "schedules" }));
  byId("search-clear").setAttribute("href", hashFor({ q: "", before: "" }));
  const search = byId("search");
  if (document.activeElement !== search) search.value = v.q;
  if (session === null) await loadSession();
  const parts = [
    panel("cluster-error", "cluster", "api/cluster", drawCluster),
    panel("counts-error", "counts", "api/counts", drawCounts),
    panel("jobs-error", "jobs", jobsPath(v), drawJobs),
    panel("recent-error", "recent", `api/runs/recent?limit=${RECENT_LIMIT}`, drawRecent),
    refreshDetail(v.job),
  ];
  if (schedules) parts.push(panel("schedules-error", "schedules", "api/schedules", drawSchedules));
  if (polls % CHART_EVERY === 0 || !lastShown.has("chart")) parts.push(panel("chart-error", "chart", "api/chart", drawChart));
  polls += 1;
  const results = await Promise.allSettled(parts);
  const failed = results.filter((r) => r.status === "rejected");
  const status = byId("status");
  if (failed.length === results.length) {
    status.className = "error";
    status.textContent = `cannot read this node (${failed[0].reason.message}); retrying every ${POLL_MS / 1000} s`;
  } else {
    status.className = failed.length ? "warn" : "";
    status.textContent = `updated ${formatTime(Date.now() * 1000)}, every ${POLL_MS / 1000} s` + (failed.length ? "; some parts failed" : "");
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

byId("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  location.hash = hashFor({ q: byId("search").value.trim(), before: "", view: "" });
});

window.addEventListener("hashchange", () => {
  // The filter and the selection change how lists are drawn: draw them anew.
  lastShown.clear();
  refresh();
});
refresh();
