// The taskclaim dashboard: it calls the service's own routes (task-counts, list-tasks, get-task, retry-task,
// cancel-task) with the token typed in, so it sees and acts on exactly what that token may. Everything a task
// holds is shown with textContent, never parsed as HTML.
"use strict";

const COLUMNS = ["queued", "blocked", "in_progress", "complete", "failed", "cancelled"];
const REFRESH_MS = 2000;
const CHART_SPAN_MS = 10 * 60 * 1000;
const samples = []; // {at, done}: finished tasks (complete + failed + cancelled) seen at each refresh
const paging = { cursor: null, previous: [], next: null };
let filters = {};

const $ = (id) => document.getElementById(id);

function token() {
  return sessionStorage.getItem("taskclaim-token");
}

async function call(name, body) {
  const response = await fetch("functions/v1/" + name, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json" },
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({ error: "HTTP " + response.status }));
  if (!response.ok) throw new Error(name + ": " + (data.error || "HTTP " + response.status));
  return data;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(...cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

function emptyRow(columns, text) {
  const td = el("td", text, "empty");
  td.colSpan = columns;
  return row(td);
}

function ago(iso) {
  if (!iso) return "";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return seconds + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
  return new Date(iso).toLocaleString();
}

function taskLink(id) {
  const td = el("td");
  const a = el("a", id.slice(0, 8), "task");
  a.title = id;
  a.dataset.task = id;
  td.append(a);
  return td;
}

function actions(task) {
  const td = el("td");
  if (task.status === "Failed" || task.status === "Cancelled") {
    const button = el("button", "retry");
    button.dataset.retry = task.task_id;
    td.append(button);
  }
  if (task.status === "Queued" || task.status === "In Progress") {
    const button = el("button", "cancel");
    button.dataset.cancel = task.task_id;
    td.append(button);
  }
  return td;
}

function leaseCell(task) {
  const td = el("td");
  td.dataset.lease = task.lease_expires_at || "";
  return td;
}

function tickLeases() {
  for (const td of document.querySelectorAll("td[data-lease]")) {
    if (!td.dataset.lease) {
      td.textContent = "no lease";
      continue;
    }
    const left = Math.round((Date.parse(td.dataset.lease) - Date.now()) / 1000);
    td.textContent = left >= 0 ? left + " s left" : "expired " + -left + " s ago";
    td.className = left >= 0 ? "" : "expired";
  }
}

function showScope(scope) {
  const badge = $("scope");
  badge.textContent = scope.user_id === null ? "scope: every user's tasks (service key)" : "scope: user " + scope.user_id;
  badge.className = scope.user_id === null ? "scope service" : "scope";
}

function showCounts(data) {
  const card = (label, value) => {
    const div = el("div", null, "card");
    div.append(el("b", value), label);
    return div;
  };
  const t = data.totals;
  const now = Date.now();
  samples.push({ at: now, done: t.complete + t.failed + t.cancelled });
  while (samples.length > 2 && now - samples[1].at > CHART_SPAN_MS) samples.shift();
  const last = samples.length > 1 ? rate(samples.length - 1) : 0;
  $("cards").replaceChildren(
    card("queued", t.queued),
    card("in progress", t.in_progress),
    card("blocked", t.blocked),
    card("failed", t.failed),
    card("finished per second", last.toFixed(1)),
  );
  $("counts").tBodies[0].replaceChildren(
    ...data.by_task_type.map((r) => row(r.task_type, ...COLUMNS.map((c) => r[c]))),
  );
  $("counts").tFoot.replaceChildren(row("total", ...COLUMNS.map((c) => t[c])));
  drawChart();
}

function rate(i) {
  const seconds = (samples[i].at - samples[i - 1].at) / 1000;
  return seconds > 0 ? Math.max(0, samples[i].done - samples[i - 1].done) / seconds : 0;
}

function drawChart() {
  const svg = $("chart");
  const rates = samples.slice(1).map((_, i) => ({ at: samples[i + 1].at, value: rate(i + 1) }));
  const peak = Math.max(1, ...rates.map((r) => r.value));
  const end = Date.now();
  // The x axis is the time this page has watched, at least a minute and at most CHART_SPAN_MS.
  const span = Math.min(CHART_SPAN_MS, Math.max(60000, end - (samples.length ? samples[0].at : end)));
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute(
    "points",
    rates.map((r) => {
      const x = 600 - ((end - r.at) / span) * 600;
      return x.toFixed(1) + "," + (115 - (r.value / peak) * 105).toFixed(1);
    }).join(" "),
  );
  svg.replaceChildren(line);
  $("chart-span").textContent = "peak " + peak.toFixed(1) + "/s over the last " + Math.round(span / 60000) +
    " min (measured while this page is open, up to 10 min)";
}

function showFailed(page) {
  const rows = page.tasks.map((t) =>
    row(taskLink(t.task_id), t.task_type, t.attempts + " of " + t.max_attempts, el("td", t.error, "error"),
      ago(t.updated_at), actions(t))
  );
  $("failed").tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(6, "no failed tasks")]));
}

function showRunning(page) {
  const rows = page.tasks.map((t) =>
    row(taskLink(t.task_id), t.task_type, t.worker_id, leaseCell(t), t.attempts + " of " + t.max_attempts,
      actions(t))
  );
  $("running").tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(6, "nothing in progress")]));
  tickLeases();
}

function showTasks(page) {
  const rows = page.tasks.map((t) =>
    row(taskLink(t.task_id), t.status + (t.blocked ? " (blocked)" : ""), t.task_type,
      (t.project_id || "").slice(0, 8), t.attempts + " of " + t.max_attempts, t.worker_id || "",
      ago(t.created_at), el("td", t.error || "", "error"), actions(t))
  );
  $("tasks").tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow(9, "no tasks match")]));
  paging.next = page.next_cursor;
  $("older").disabled = paging.next === null;
  $("newer").disabled = paging.previous.length === 0;
  $("page").textContent = "page " + (paging.previous.length + 1);
}

async function refresh() {
  if (!token()) return;
  const status = $("status");
  try {
    const [counts, failed, running, tasks] = await Promise.all([
      call("task-counts", {}),
      call("list-tasks", { status: "Failed", limit: 10 }),
      call("list-tasks", { status: "In Progress", limit: 20 }),
      call("list-tasks", { ...filters, cursor: paging.cursor, limit: 25 }),
    ]);
    showScope(counts.scope);
    showCounts(counts);
    showFailed(failed);
    showRunning(running);
    showTasks(tasks);
    if (!status.dataset.sticky) {
      status.className = "";
      status.textContent = "Updated " + new Date().toLocaleTimeString() + "; every 2 seconds.";
    }
  } catch (error) {
    status.className = "error";
    status.textContent = "Could not read the queue: " + error.message;
  }
}

function say(text, isError) {
  const status = $("status");
  status.textContent = text;
  status.className = isError ? "error" : "";
  status.dataset.sticky = "1"; // keep the outcome of an action on screen for a few seconds
  setTimeout(() => delete status.dataset.sticky, 5000);
}

async function act(name, taskId, body, done) {
  try {
    const task = await call(name, { task_id: taskId, ...body });
    say("Task " + taskId + " " + done + " (now " + task.status + ").");
  } catch (error) {
    say(error.message, true);
  }
  await refresh();
}

async function showDetail(taskId) {
  try {
    const task = await call("get-task", { task_id: taskId });
    $("detail-id").textContent = taskId;
    $("detail").textContent = JSON.stringify(task, null, 2);
    $("detail-section").hidden = false;
  } catch (error) {
    say(error.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("taskclaim-token", $("token").value.trim());
    samples.length = 0;
    refresh();
  });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    filters = Object.fromEntries([...form.entries()].filter(([, v]) => v.trim() !== "").map(([k, v]) => [k, v.trim()]));
    paging.cursor = null;
    paging.previous = [];
    refresh();
  });
  $("older").addEventListener("click", () => {
    paging.previous.push(paging.cursor);
    paging.cursor = paging.next;
    refresh();
  });
  $("newer").addEventListener("click", () => {
    paging.cursor = paging.previous.pop() ?? null;
    refresh();
  });
  $("detail-close").addEventListener("click", () => ($("detail-section").hidden = true));
  document.body.addEventListener("click", (event) => {
    const target = event.target;
    if (target.dataset.task) showDetail(target.dataset.task);
    if (target.dataset.retry) act("retry-task", target.dataset.retry, {}, "queued again");
    if (target.dataset.cancel && confirm("Cancel task " + target.dataset.cancel + "?")) {
      act("cancel-task", target.dataset.cancel, { reason: "cancelled from the dashboard" }, "cancelled");
    }
  });
  // A link may carry the token in its fragment (never sent to the server): keep it in the tab, drop it from the URL.
  if (location.hash.startsWith("#token=")) {
    sessionStorage.setItem("taskclaim-token", decodeURIComponent(location.hash.slice(7)));
    history.replaceState(null, "", location.pathname);
  }
  refresh();
  setInterval(refresh, REFRESH_MS);
  setInterval(tickLeases, 1000);
});
