// The live dashboard: one EventSource on /events; each "state" event redraws every part.
"use strict";

const STATES = ["PENDING_ARGS", "PENDING_RESOURCES", "SUBMITTED_TO_ACTOR", "RUNNING", "FINISHED",
  "FAILED", "CANCELLED"];
const COLORS = { PENDING_ARGS: "#b0b8c4", PENDING_RESOURCES: "#e0a030",
  SUBMITTED_TO_ACTOR: "#9b7fd0", RUNNING: "#2f7ed8",
  FINISHED: "#3a9a5b", FAILED: "#c0392b", CANCELLED: "#7f8c8d" };
const history = [];
window.mobulaUpdates = 0;

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function fill(id, rows, cells) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows.map(r => {
    const tr = document.createElement("tr");
    for (const c of cells(r)) tr.append(c);
    return tr;
  }));
}

function short(id) { return String(id).slice(0, 12); }

function resources(free, total) {
  return Object.keys(total).filter(k => total[k] > 0)
    .map(k => k + " " + (free[k] ?? 0) + "/" + total[k]).join(", ");
}

function counts(id, entries) {
  document.getElementById(id).replaceChildren(...entries.map(([label, value]) => {
    const s = document.createElement("span");
    s.id = id + "-" + label;
    const b = document.createElement("b");
    b.textContent = value;
    s.append(b, label);
    return s;
  }));
}

function drawChart() {
  const c = document.getElementById("task-chart"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...history.map(h => Math.max(...STATES.map(s => h[s] || 0))));
  STATES.forEach(s => {
    g.strokeStyle = COLORS[s];
    g.beginPath();
    history.forEach((h, i) => {
      const x = i * c.width / 119, y = c.height - 4 - (h[s] || 0) * (c.height - 8) / max;
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  });
}

function drawTimeline(tasks, nodes, now) {
  const c = document.getElementById("timeline"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const started = tasks.filter(t => t.started_us);
  if (!started.length) return;
  const from = Math.min(...started.map(t => t.started_us)), span = Math.max(1, now - from);
  const rows = nodes.map(n => n.node_id);
  const h = c.height / Math.max(1, rows.length);
  g.font = "10px sans-serif";
  rows.forEach((n, i) => { g.fillStyle = "#555"; g.fillText(short(n), 2, i * h + 10); });
  for (const t of started) {
    const row = rows.indexOf(t.node_id);
    if (row < 0) continue;
    const x = 80 + (t.started_us - from) * (c.width - 80) / span;
    const w = Math.max(1, ((t.ended_us || now) - t.started_us) * (c.width - 80) / span);
    g.fillStyle = COLORS[t.state] || "#999";
    g.fillRect(x, row * h + 12, w, Math.max(2, h - 16));
  }
}

function render(s) {
  window.mobulaUpdates += 1;
  window.mobulaState = s;
  document.getElementById("status").textContent =
    "live: " + new Date(s.now_us / 1000).toLocaleTimeString() +
    (s.missing.length ? " (" + s.missing.length + " node(s) did not answer)" : "") +
    (s.head_outages.length ? "; head restarted " + s.head_outages.length +
      " time(s), outages: " + s.head_outages.map(o => o.seconds.toFixed(1) + " s").join(", ") : "");
  counts("task-states", STATES.map(k => [k, s.task_states[k] || 0]));
  history.push(s.task_states);
  if (history.length > 120) history.shift();
  drawChart();
  fill("failing", s.failing, t => [cell(short(t.task_id)), cell(t.function), cell(short(t.node_id)),
    cell(t.attempts), cell(t.error, "error")]);
  fill("nodes", s.nodes, n => [cell(n.node_id), cell(n.address || "-"),
    cell(n.is_head ? "head" : (n.alive ? "worker" : "dead")),
    cell(n.tasks_running + " / " + n.tasks_waiting), cell(n.actors), cell(n.cpu_percent.toFixed(0)),
    cell((n.memory_rss / 1048576).toFixed(0)),
    cell((n.store_used / 1048576).toFixed(1) + " of " + (n.store_limit / 1048576).toFixed(0) + " MB"),
    cell(resources(n.available, n.resources))]);
  drawTimeline(s.recent, s.nodes, s.now_us);
  fill("actors", s.actors, a => [cell(short(a.actor_id)), cell(a.class), cell(a.name), cell(a.state),
    cell(short(a.node_id)), cell(a.restarts), cell(a.calls)]);
  counts("objects", Object.entries(s.objects).map(([k, v]) =>
    [k, v.objects + " (" + (v.bytes / 1048576).toFixed(1) + " MB)"]));
  fill("groups", s.placement_groups, p => [cell(p.id), cell(p.strategy), cell(p.state),
    cell(p.bundles.join("; "))]);
  const serve = (s.panels || {}).serve;
  document.getElementById("serve-section").hidden = !serve;
  if (serve) {
    const rows = [];
    for (const a of serve.applications) {
      for (const d of a.deployments) rows.push([a, d]);
    }
    const ms = v => v == null ? "-" : v.toFixed(2);
    fill("serve", rows, ([a, d]) => [cell(a.name), cell(a.route_prefix), cell(d.name), cell(d.status),
      cell(d.replicas.filter(r => r.state === "Running").length + " / " + d.target_replicas),
      cell(d.requests), cell(d.errors), cell(d.requests_per_s.toFixed(1)), cell(ms(d.p50_ms)),
      cell(ms(d.p99_ms))]);
  }
  const clock = ms => ms == null ? "-" : new Date(ms).toLocaleTimeString();
  fill("jobs", s.jobs || [], j => [cell(j.job_id), cell(j.status), cell(j.submitted ? "yes" : "no"),
    cell(j.build ? j.build.slice(0, 12) : "-"), cell(j.entrypoint), cell(clock(j.start_time)),
    cell(clock(j.end_time)), cell(j.exit_code == null ? "-" : j.exit_code)]);
}

const source = new EventSource("/events");
source.addEventListener("state", e => render(JSON.parse(e.data)));
source.addEventListener("problem", e => {
  document.getElementById("status").textContent = "problem: " + e.data;
});
source.onerror = () => { document.getElementById("status").textContent = "reconnecting..."; };
