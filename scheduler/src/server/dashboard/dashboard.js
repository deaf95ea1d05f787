// accel dashboard: polls the scheduler's JSON API and draws the page it is on.
"use strict";

const PAGES = { status: "Status", workers: "Workers", jobs: "Jobs" };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

function secs(s) {
  if (s === null || s === undefined) return "—";
  return s < 1 ? (s * 1000).toFixed(0) + " ms" : s.toFixed(1) + " s";
}

function nav(page) {
  const n = el("nav", {}, el("span", { class: "brand" }, "accel"));
  for (const [p, title] of Object.entries(PAGES)) {
    n.append(el("a", { href: "/" + p, class: p === page ? "here" : "" }, title));
  }
  n.append(el("span", { id: "updated" }, ""));
  return n;
}

// A bar of a stage's tasks: done, running, ready, waiting (and failed when its job failed).
function progress(st, failed) {
  const bar = el("div", { class: "bar", "data-stage": st.id, "data-done": st.done, "data-tasks": st.tasks });
  const total = Math.max(st.tasks, 1);
  const parts = [["done", st.done], ["running", st.processing], ["ready", st.ready],
                 [failed ? "failed" : "waiting", st.waiting]];
  for (const [cls, n] of parts) {
    if (n > 0) bar.append(el("span", { class: cls, style: `width:${(100 * n) / total}%`, title: `${n} ${cls}` }));
  }
  return bar;
}

function table(headers, rows) {
  const t = el("table", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h))));
  for (const r of rows) {
    t.append(el("tr", {}, ...r.map((c) => (c instanceof Node ? el("td", {}, c)
      : el("td", { class: typeof c === "number" ? "num" : "" }, c)))));
  }
  return t;
}

function legend() {
  const l = el("div", { class: "legend" });
  for (const c of ["done", "running", "ready", "waiting", "failed"]) l.append(el("span", { class: c }), c);
  return l;
}

function statusPage(s, main) {
  const c = s.core;
  const threads = c.workers.reduce((a, w) => a + w.nthreads, 0);
  const limit = c.workers.reduce((a, w) => a + (w.memory_limit || 0), 0);
  const held = s.workers.reduce((a, w) => a + w.bytes_in_memory, 0);
  const spilled = s.workers.reduce((a, w) => a + w.bytes_spilled, 0);
  const views = new Map(s.workers.map((w) => [w.id, w]));
  const running = s.jobs.filter((j) => j.state === "running").length;
  main.append(el("div", { class: "cards" },
    el("div", { class: "card" }, el("b", {}, c.workers.length), "workers"),
    el("div", { class: "card" }, el("b", {}, threads), "threads"),
    el("div", { class: "card" }, el("b", {}, bytes(held)), `held of ${bytes(limit)}`),
    el("div", { class: "card" }, el("b", {}, bytes(spilled)), "spilled"),
    el("div", { class: "card" }, el("b", {}, running), "jobs running"),
    el("div", { class: "card" }, el("b", {}, c.ready), "tasks ready"),
    el("div", { class: "card" }, el("b", {}, secs(s.event_loop.recent_max_batch_s)), "loop latency")));
  main.append(el("h2", {}, "Workers"));
  main.append(table(["worker", "threads", "tasks in progress", "running", "chunks", "memory", "spilled", "memory limit"],
    c.workers.map((w) => {
      const v = views.get(w.id) || {};
      return [w.name, w.nthreads, w.processing, w.running, w.chunks, bytes(v.bytes_in_memory),
        bytes(v.bytes_spilled), bytes(w.memory_limit)];
    })));
  main.append(el("h2", {}, "Task stream"), taskStream(s));
  main.append(el("h2", {}, "Running jobs"), legend());
  for (const j of s.jobs.filter((j) => j.state === "running")) {
    main.append(el("h2", {}, `job ${j.id} — ${j.status.tasks} tasks, ${secs(j.age_s)}`));
    main.append(table(["stage", "kind", "tasks", "progress", "done"],
      j.status.stages.map((st) => [st.label || st.kind, st.kind, st.tasks, progress(st, false), `${st.done}/${st.tasks}`])));
  }
}

const KIND_COLOURS = {
  source: "#8e9aaf", read: "#8e9aaf", "remote source": "#8e9aaf", persisted: "#8e9aaf",
  map: "#5b8def", partial: "#3a9d5d", combine: "#1f6f3f", stencil: "#c2703d",
  matmul: "#9b59b6", map_blocks: "#d64591", remap: "#e0a526", concat: "#e0a526",
  reshape: "#e0a526", scan: "#17a2b8", "scan carry": "#117a8b", "scan apply": "#0d5d6b",
};

// The last tasks of every worker thread, coloured by stage kind: each task
// goes to the first lane of its worker that is free when it starts.
function taskStream(s) {
  const spans = s.task_stream;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "task-stream");
  if (!spans.length) return el("p", {}, "No task has run yet.");
  const end = Math.max(...spans.map((t) => t.end_s));
  const begin = Math.max(Math.min(...spans.map((t) => t.start_s)), end - 30);
  const W = 900, H = 14, X0 = 70;
  const threads = new Map(s.core.workers.map((w) => [w.id, w.nthreads]));
  const names = new Map(s.core.workers.map((w) => [w.id, w.name]));
  const lanes = new Map();
  let row = 0;
  const rows = new Map();
  for (const w of s.core.workers) { rows.set(w.id, row); row += Math.max(w.nthreads, 1); }
  svg.setAttribute("width", X0 + W + 10);
  svg.setAttribute("height", row * (H + 2) + 20);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  for (const [id, r] of rows) add("text", { x: 2, y: r * (H + 2) + 11 }, names.get(id));
  const x = (t) => X0 + ((t - begin) / Math.max(end - begin, 1e-3)) * W;
  for (const t of [...spans].sort((a, b) => a.start_s - b.start_s)) {
    if (t.end_s < begin || !rows.has(t.worker)) continue;
    const free = lanes.get(t.worker) || new Array(threads.get(t.worker) || 1).fill(-Infinity);
    let lane = free.findIndex((until) => until <= t.start_s);
    if (lane < 0) lane = free.indexOf(Math.min(...free));
    free[lane] = t.end_s;
    lanes.set(t.worker, free);
    const y = (rows.get(t.worker) + lane) * (H + 2);
    add("rect", { x: x(t.start_s), y, width: Math.max(x(t.end_s) - x(t.start_s), 1), height: H,
      fill: KIND_COLOURS[t.kind] || "#666", "data-kind": t.kind }, undefined);
  }
  add("text", { x: X0, y: row * (H + 2) + 14 }, `last ${secs(end - begin)}`);
  return svg;
}

function workersPage(s, main) {
  const views = new Map(s.workers.map((w) => [w.id, w]));
  main.append(table(["id", "name", "address", "threads", "memory", "memory limit", "chunks held", "tasks done",
    "in progress", "last heartbeat", "resources", "functions"],
    s.core.workers.map((w) => {
      const v = views.get(w.id) || {};
      return [w.id, w.name, v.address || "—", w.nthreads, bytes(v.bytes_in_memory), bytes(w.memory_limit), w.chunks,
        v.tasks_done || 0, w.processing, secs(v.last_seen_s) + " ago",
        (v.resources || []).map(([k, n]) => `${k}=${n}`).join(", "), (w.functions || []).join(", ")];
    })));
}

// The fused stage graph: stages in layers by depth, edges from inputs.
function stageGraph(stages) {
  const depth = [];
  for (const st of stages) depth[st.id] = st.inputs.reduce((d, i) => Math.max(d, (depth[i] || 0) + 1), 0);
  const layers = [];
  for (const st of stages) (layers[depth[st.id]] = layers[depth[st.id]] || []).push(st);
  const W = 190, H = 56, GX = 40, GY = 34;
  const pos = {};
  layers.forEach((layer, d) => layer.forEach((st, k) => { pos[st.id] = [10 + k * (W + GX), 10 + d * (H + GY)]; }));
  const width = 20 + Math.max(...layers.map((l) => l.length)) * (W + GX);
  const height = 20 + layers.length * (H + GY);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  svg.setAttribute("class", "stage-graph");
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  for (const st of stages) for (const i of st.inputs) {
    const [x1, y1] = pos[i], [x2, y2] = pos[st.id];
    add("line", { x1: x1 + W / 2, y1: y1 + H, x2: x2 + W / 2, y2: y2, stroke: "#8a93a6" });
  }
  for (const st of stages) {
    const [x, y] = pos[st.id];
    const frac = st.tasks ? st.done / st.tasks : 1;
    add("rect", { x, y, width: W, height: H, rx: 5, fill: "#fff", stroke: "#5b6478", "data-stage": st.id });
    add("rect", { x, y: y + H - 6, width: W * frac, height: 6, fill: "#3a9d5d" });
    add("text", { x: x + 8, y: y + 17 }, `${st.id}: ${st.kind}`);
    add("text", { x: x + 8, y: y + 33 }, (st.label || "").slice(0, 30));
    add("text", { x: x + 8, y: y + 47 }, `${st.done}/${st.tasks} tasks`);
  }
  return svg;
}

function jobsPage(s, main) {
  main.append(legend());
  for (const j of s.jobs) {
    const title = `job ${j.id}: ${j.state}, ${j.status.tasks} tasks, ` +
      (j.duration_s !== null ? `ran ${secs(j.duration_s)}` : `running for ${secs(j.age_s)}`);
    const section = el("section", { class: "job", "data-job": j.id, "data-state": j.state }, el("h2", {}, title));
    if (j.error) section.append(el("div", { class: "error" }, j.error));
    section.append(stageGraph(j.status.stages));
    section.append(table(["stage", "kind", "tasks", "progress", "finished (incl. recomputed)"],
      j.status.stages.map((st) => [st.label || st.kind, st.kind, st.tasks, progress(st, j.state === "failed"), st.finished])));
    main.append(section);
  }
  if (!s.jobs.length) main.append(el("p", {}, "No jobs yet."));
}

async function refresh(page) {
  const main = document.querySelector("main");
  try {
    const r = await fetch("/api/status");
    const s = await r.json();
    const fresh = el("main", {});
    ({ status: statusPage, workers: workersPage, jobs: jobsPage })[page](s, fresh);
    main.replaceWith(fresh);
    document.getElementById("updated").textContent =
      `updated ${new Date().toLocaleTimeString()} · up ${secs(s.uptime_s)}`;
  } catch (e) {
    document.getElementById("updated").textContent = "scheduler unreachable: " + e;
  }
}

function start(page) {
  document.body.prepend(nav(page));
  document.title = "accel · " + PAGES[page];
  refresh(page);
  setInterval(() => refresh(page), 1000);
}
