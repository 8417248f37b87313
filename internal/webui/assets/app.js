// shakedown's page: the index of running testbeds, a testbed's live page,
// a machine's live console, and the self-contained report. One renderer
// draws a testbed's view (package record's View) in all of them; the
// live modes feed it from the testbed's event stream, the report from the
// data inlined in the page.
"use strict";

const body = document.body;
const mode = body.dataset.mode;
const bed = body.dataset.bed;
const machineName = body.dataset.machine;
const app = document.getElementById("app");
const banner = document.getElementById("banner");
const statusBadge = document.getElementById("status");
const crumbs = document.getElementById("crumbs");

// el makes an element: attributes (on* are listeners) and children (strings
// become text, so nothing from a testbed is ever parsed as HTML).
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat(Infinity)) {
    if (k === undefined || k === null || k === false) continue;
    e.append(k instanceof Node ? k : String(k));
  }
  return e;
}

function secs(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

function t(s) { return s ? Date.parse(s) : 0; }

function stateClass(state) {
  if (state.startsWith("building")) return "building";
  return state.replace(/[^a-z]/g, "");
}

function badge(text, cls) { return el("span", { class: `badge ${cls || stateClass(text)}` }, text); }

function setStatus(view, gone) {
  let text = view ? view.result : "";
  if (view && view.result !== "running") text = `ended: ${view.result}`;
  if (gone && (!view || view.result === "running")) text = "no longer exists";
  statusBadge.textContent = text;
  statusBadge.className = `badge ${view ? view.result : "gone"}${gone ? " gone" : ""}`;
}

function showBanner(text, cls) {
  banner.hidden = false;
  banner.className = cls || "";
  banner.textContent = text;
}

function sshCommand(m) { return `shakedown ssh ${bed}/${m.name}`; }

// Where a machine's details are: its live page, or its section of the report.
function machineHref(name) {
  return mode === "report" ? `#machine-${name}` : `/t/${encodeURIComponent(bed)}/m/${encodeURIComponent(name)}`;
}

// --- the testbed's view ---------------------------------------------------

function machinesTable(view) {
  if (!view.machines.length) return el("p", { class: "muted" }, "No machines declared.");
  return el("table", { class: "machines" },
    el("thead", {}, el("tr", {}, ["Machine", "State", "Networks", "Reach it"].map((h) => el("th", {}, h)))),
    el("tbody", {}, view.machines.map((m) => el("tr", { "data-machine": m.name },
      el("td", {}, el("a", { href: machineHref(m.name), class: "machine-link" }, m.name)),
      el("td", {}, badge(m.state)),
      el("td", {}, (m.networks || []).join(", ") || "—"),
      el("td", {}, el("code", { class: "ssh" }, sshCommand(m)))))));
}

function networksTable(view) {
  if (!view.networks.length) return null;
  return el("table", { class: "networks" },
    el("thead", {}, el("tr", {}, ["Network", "Frames", "Bytes", "Drops", "Links", "Capture"].map((h) => el("th", {}, h)))),
    el("tbody", {}, view.networks.map((n) => el("tr", { "data-network": n.name },
      el("td", {}, n.name, n.number ? el("div", { class: "muted" }, `192.168.${n.number}.0/24`) : null),
      el("td", { class: "num frames" }, n.frames),
      el("td", { class: "num" }, n.bytes),
      el("td", { class: "num" }, n.drops),
      el("td", {}, (n.links || []).map((l) => el("div", { class: "link" },
        el("span", { class: `dot ${l.state}` }), ` ${l.peer}${l.host ? " (host)" : ""} `,
        l.addr ? el("span", { class: "muted" }, l.addr) : null, " ", badge(l.state, `link ${l.state}`),
        l.detail ? el("span", { class: "muted" }, ` ${l.detail}`) : null))),
      el("td", {}, n.capture ? captureLinks(n) : el("span", { class: "muted" }, "off"))))));
}

function captureLinks(n) {
  if (mode === "report") return el("a", { href: n.capture }, n.capture);
  const base = `/t/${encodeURIComponent(bed)}/api/pcap/${encodeURIComponent(n.name)}`;
  return el("span", {}, el("a", { href: base, download: n.capture }, "pcap so far"), " · ",
    el("a", { href: `${base}?follow=1`, title: "streams on as frames arrive: curl -s URL | wireshark -k -i -" }, "live"));
}

// depthOf gives each step its nesting depth, from its parents.
function depths(steps) {
  const d = {};
  for (const s of steps) d[s.id] = s.parent ? (d[s.parent] || 0) + 1 : 0;
  return d;
}

function stepsTable(view, failing) {
  const steps = view.steps || [];
  if (!steps.length) return el("p", { class: "muted" }, "No steps yet.");
  const start = t(view.started);
  const end = t(view.ended) || Date.now();
  const span = Math.max(end - start, 1);
  const d = depths(steps);
  const failed = new Set(failing ? [failing.action, failing.step].filter(Boolean) : []);
  const earlier = view.earlierSteps ? el("p", { class: "muted" }, `${view.earlierSteps} earlier steps are left out here; the report has them all.`) : null;
  return el("div", {}, earlier, el("table", { class: "steps" },
    el("thead", {}, el("tr", {}, ["Step", "Machine", "At", "Took", "", "Result"].map((h) => el("th", {}, h)))),
    el("tbody", {}, steps.map((s) => {
      const b = t(s.start), e = t(s.end) || Date.now();
      const running = !s.end;
      const cls = [s.section ? "section" : "", s.err ? "failed" : "", failed.has(s.id) ? "failing" : "", running ? "running" : ""].join(" ");
      return el("tr", { class: cls, id: `step-${s.id}` },
        el("td", { class: "title", style: `padding-left:${0.4 + d[s.id] * 1.2}em` }, s.title),
        el("td", {}, s.machine || ""),
        el("td", { class: "num" }, `+${secs(b - start)}`),
        el("td", { class: "num" }, e === b ? "·" : secs(e - b)),
        el("td", { class: "bar" }, el("div", { style: `margin-left:${(100 * (b - start)) / span}%;width:${Math.max((100 * (e - b)) / span, 0.3)}%` })),
        el("td", {}, s.err ? el("span", { class: "err" }, s.err) : running ? badge("running", "running") : el("span", { class: "muted" }, s.note || "ok")));
    }))));
}

// summary is the subtests as JUnit would count them.
function summary(view) {
  const sections = (view.steps || []).filter((s) => s.section);
  const failed = sections.filter((s) => s.err);
  const d = depths(view.steps || []);
  return el("section", { id: "summary" }, el("h2", {}, "Summary"),
    el("p", {}, `${view.result}: ${sections.length} sections (subtests and steps), ${failed.length} failed; ${(view.steps || []).length} steps in all; ${secs((t(view.ended) || Date.now()) - t(view.started))}.`),
    sections.length ? el("table", { class: "cases" }, el("tbody", {}, sections.map((s) => el("tr", { class: s.err ? "failed" : "" },
      el("td", { style: `padding-left:${0.4 + d[s.id] * 1.2}em` }, s.title), el("td", { class: "num" }, secs(t(s.end) - t(s.start))),
      el("td", {}, s.err ? el("span", { class: "err" }, "failed") : "passed"))))) : null);
}

function failureBox(view, data) {
  const f = data && data.failing;
  if (view.result !== "failed") return null;
  if (!f) return el("section", { id: "failure", class: "failure" }, el("h2", {}, "Failed"),
    el("p", {}, "The test failed outside the testbed's verbs (an assertion of its own): its log says where."));
  const steps = view.steps;
  const action = steps[f.action - 1];
  // What the machine printed while the failing verb ran is marked.
  const markFrom = action ? t(action.start) : t(f.time) - 1000;
  // The sections it failed in, outermost first.
  const path = [];
  for (let s = steps[f.step - 1]; s; s = steps[s.parent - 1]) path.unshift(s);
  return el("section", { id: "failure", class: "failure" }, el("h2", {}, "Failed"),
    path.length ? el("p", {}, "In ", path.map((s, i) => [i ? " › " : "", el("a", { href: `#step-${s.id}` }, s.title)])) : null,
    action ? el("p", {}, "At ", el("a", { href: `#step-${action.id}` }, action.title), action.machine ? ` on ${action.machine}` : "") : null,
    el("pre", { class: "message" }, f.message),
    data.excerpt && data.excerpt.length ? [el("h3", {}, `Console of ${f.machine} around that moment`),
      el("pre", { class: "console excerpt" }, data.excerpt.map((l) => consoleLine(l, markFrom, t(f.time) + 200)))] : null);
}

function consoleLine(l, from, to) {
  const near = from && t(l.time) >= from && t(l.time) <= to;
  return el("div", { class: near ? "line mark" : "line" }, el("span", { class: "ts" }, new Date(l.time).toISOString().slice(11, 23)), " ", l.text);
}

function topology(view, svg) {
  if (!view.machines.length && !view.networks.length) return null;
  let src;
  if (svg !== undefined) src = `data:image/svg+xml;base64,${btoa(unescape(encodeURIComponent(svg)))}`;
  else src = `/t/${encodeURIComponent(bed)}/api/topology.svg?v=${topoVersion(view)}`;
  return el("section", { id: "topology" }, el("h2", {}, "Topology"), el("img", { src, alt: "topology", class: "topology" }));
}

// topoVersion changes when the drawing would: machine states and links.
function topoVersion(view) {
  const key = JSON.stringify([view.machines.map((m) => [m.name, m.state]), view.networks.map((n) => n.links)]);
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) | 0;
  return (h >>> 0).toString(36);
}

// norm gives a view's lists their empty values (Go's nil slices are null).
function norm(view) {
  for (const k of ["machines", "networks", "steps", "failures"]) view[k] = view[k] || [];
  return view;
}

function renderTestbed(view, data) {
  norm(view);
  setStatus(view);
  crumbs.replaceChildren(" / ", el("span", {}, view.testbed));
  const failing = data && data.failing;
  const parts = [
    el("h1", {}, view.testbed),
    el("p", { class: "muted" }, `run directory ${view.dir} · process ${view.pid} · started ${new Date(view.started).toLocaleString()}`),
    failureBox(view, data),
    el("section", { id: "machines" }, el("h2", {}, "Machines"), machinesTable(view)),
    topology(view, data ? data.topology : undefined),
    view.networks.length ? el("section", { id: "networks" }, el("h2", {}, "Networks"), networksTable(view)) : null,
    el("section", { id: "steps" }, el("h2", {}, "Steps"), stepsTable(view, failing)),
  ];
  if (mode === "report") {
    parts.splice(3, 0, summary(view));
    parts.push(el("section", { id: "consoles" }, el("h2", {}, "Machines in full"), view.machines.map((m) => machineSection(m, data))));
  }
  // Keep the reader's place: only what changed is redrawn by the browser.
  const topoImg = app.querySelector("img.topology");
  app.replaceChildren(...parts.filter(Boolean));
  const img = app.querySelector("img.topology");
  if (topoImg && img && topoImg.src === img.src) img.replaceWith(topoImg);
  // The failure's moment is at the end of its excerpt.
  const excerpt = app.querySelector("pre.excerpt");
  if (excerpt) excerpt.scrollTop = excerpt.scrollHeight;
}

function machineSection(m, data) {
  const shots = (data.screenshots || {});
  return el("section", { class: "machine", id: `machine-${m.name}` },
    el("h3", {}, m.name, " ", badge(m.state)),
    (m.screenshots || []).map((s) => shots[s] ? el("figure", {}, el("img", { src: shots[s], alt: s, class: "screenshot" }), el("figcaption", {}, s)) : null),
    el("details", { open: data.failing && data.failing.machine === m.name },
      el("summary", {}, `Console (${m.name}.console.log)`),
      el("pre", { class: "console" }, (data.consoles || {})[m.name] || "(no console output)")));
}

// --- live modes -----------------------------------------------------------

let ended = null;

// stream follows a testbed's events; onView gets each view.
function stream(query, handlers) {
  const url = `/t/${encodeURIComponent(bed)}/api/events${query}`;
  const es = new EventSource(url);
  es.addEventListener("view", (e) => handlers.view(JSON.parse(e.data)));
  if (handlers.console) es.addEventListener("console", (e) => handlers.console(JSON.parse(e.data)));
  es.addEventListener("end", (e) => {
    es.close();
    ended = JSON.parse(e.data);
    handlers.view(ended);
    showBanner(`This testbed has ended: it ${ended.result}.`, `ended ${ended.result}`);
  });
  es.onerror = async () => {
    es.close();
    if (ended) return;
    const r = await fetch(`/t/${encodeURIComponent(bed)}/api/view`).catch(() => null);
    if (r && r.ok) { setTimeout(() => stream(query, handlers), 1000); return; }
    let msg = `Testbed ${bed} no longer exists.`;
    if (r) { try { msg = (await r.json()).message || msg; } catch (_) { /* keep msg */ } }
    setStatus(null, true);
    showBanner(msg, "gone");
  };
}

function liveTestbed() {
  stream("", { view: (v) => renderTestbed(v) });
}

function liveMachine() {
  crumbs.replaceChildren(" / ", el("a", { href: `/t/${encodeURIComponent(bed)}/` }, bed), " / ", el("span", {}, machineName));
  const state = el("span", {}, "");
  const shots = el("div", { class: "shots" });
  const consoleBox = el("pre", { class: "console live", id: "console" });
  const shotButton = el("button", { onclick: screenshot, class: "shoot" }, "Screenshot now");
  app.replaceChildren(
    el("h1", {}, machineName, " ", state),
    el("p", {}, el("code", { class: "ssh" }, `shakedown ssh ${bed}/${machineName}`), " · ",
      el("a", { href: `/t/${encodeURIComponent(bed)}/api/console/${encodeURIComponent(machineName)}` }, "whole console log"), " · ", shotButton),
    shots,
    el("h2", {}, "Console"), consoleBox);
  async function screenshot() {
    shotButton.disabled = true;
    try {
      const r = await fetch(`/t/${encodeURIComponent(bed)}/api/screenshot/${encodeURIComponent(machineName)}`, { method: "POST" });
      if (!r.ok) throw new Error(await r.text());
      const url = URL.createObjectURL(await r.blob());
      shots.prepend(el("figure", {}, el("img", { src: url, class: "screenshot", alt: "screenshot" }), el("figcaption", {}, r.headers.get("X-Screenshot") || "")));
    } catch (e) {
      showBanner(`Screenshot failed: ${e.message}`, "gone");
    } finally {
      shotButton.disabled = false;
    }
  }
  stream(`?console=${encodeURIComponent(machineName)}&seq=0`, {
    view: (v) => {
      norm(v);
      setStatus(v);
      const m = v.machines.find((x) => x.name === machineName);
      state.replaceChildren(m ? badge(m.state) : badge("not declared", "gone"));
    },
    console: (lines) => {
      const stick = consoleBox.scrollTop + consoleBox.clientHeight >= consoleBox.scrollHeight - 4;
      consoleBox.append(...lines.map((l) => consoleLine(l)));
      if (stick) consoleBox.scrollTop = consoleBox.scrollHeight;
    },
  });
}

async function index() {
  crumbs.replaceChildren();
  const load = async () => {
    const r = await fetch("/api/testbeds").catch(() => null);
    if (!r || !r.ok) { showBanner("The shakedown web server does not answer.", "gone"); return; }
    banner.hidden = true;
    const beds = await r.json();
    statusBadge.textContent = `${beds.length} running`;
    app.replaceChildren(el("h1", {}, "Running testbeds"),
      beds.length ? el("table", { class: "beds" },
        el("thead", {}, el("tr", {}, ["Testbed", "Test", "Process", "Machines"].map((h) => el("th", {}, h)))),
        el("tbody", {}, beds.map((b) => el("tr", {},
          el("td", {}, el("a", { href: `/t/${encodeURIComponent(b.name)}/`, class: "bed-link" }, b.name)),
          el("td", {}, b.test), el("td", { class: "num" }, b.pid),
          el("td", {}, b.machines.map((m) => el("span", { class: "chip" }, m.name, m.running ? "" : " (stopped)")))))))
        : el("p", { class: "muted" }, "No testbed is running. Start one (go test, or shakedown run) and it appears here."));
  };
  await load();
  setInterval(load, 1000);
}

function report() {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  renderTestbed(data.view, data);
  if (data.view.result === "failed") showBanner(`This testbed failed${data.failing ? `: ${data.failing.message.split("\n")[0]}` : "."}`, "ended failed");
}

({ index, testbed: liveTestbed, machine: liveMachine, report })[mode]();
