// Sluice dashboard: an overview of every Rollout and a page per Rollout, kept live by
// server-sent events. No framework, no build step, no network beyond this server.
"use strict";

// Exposed for tests: a page load has one id; it never changes without a reload.
window.__sluice = { loadId: Math.random().toString(36).slice(2), updates: 0 };

const ACTIONS = [
  { action: "promote", label: "Promote", what: "continue to the next step" },
  { action: "promote-full", label: "Promote full", what: "skip every remaining step, analysis and pause" },
  { action: "abort", label: "Abort", what: "scale the canary down and the stable back up", danger: true },
  { action: "retry", label: "Retry", what: "start the aborted update again from the first step" },
  { action: "pause", label: "Pause", what: "hold the Rollout where it is (spec.paused)" },
  { action: "resume", label: "Resume", what: "clear every pause" },
  { action: "restart", label: "Restart", what: "restart the pods (spec.restartAt = now)" },
];

// A DOM builder: text always goes in as text (never parsed as HTML).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const svgNS = "http://www.w3.org/2000/svg";
function s(tag, attrs) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function age(t) {
  if (!t) return "-";
  const secs = Math.max(0, Math.floor((Date.now() - Date.parse(t)) / 1000));
  if (secs < 120) return secs + "s";
  if (secs < 7200) return Math.floor(secs / 60) + "m";
  if (secs < 172800) return Math.floor(secs / 3600) + "h";
  return Math.floor(secs / 86400) + "d";
}

function badge(text, cls, testid) {
  return h("span", { class: "badge " + (cls || text), "data-testid": testid }, text);
}

function roles(list) {
  return (list || []).map((r) => h("span", { class: "role " + r }, r));
}

function weightBar(actual, set, big) {
  const bar = h("div", { class: "bar" + (big ? " big" : "") });
  const fill = h("div", { class: "fill" });
  fill.style.width = (actual ?? 0) + "%";
  bar.append(fill);
  if (set !== null && set !== undefined) {
    const mark = h("div", { class: "mark", title: "set weight " + set + "%" });
    mark.style.left = "calc(" + set + "% - 1px)";
    bar.append(mark);
  }
  return bar;
}

// ---------------------------------------------------------------- connection

let source = null;
function connect(url, handlers) {
  if (source) source.close();
  const live = document.getElementById("live");
  source = new EventSource(url);
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => {
      window.__sluice.updates++;
      fn(JSON.parse(e.data));
    });
  }
}

function showWatches(watches) {
  const banner = document.getElementById("banner");
  const errors = Object.entries(watches || {}).filter(([, w]) => w.error);
  banner.hidden = errors.length === 0;
  banner.textContent = errors.map(([kind, w]) => "watching " + kind + ": " + w.error).join(" · ");
}

function crumbs(...parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(...parts.flatMap((p, i) => (i ? [" / ", p] : [p])));
}

// ---------------------------------------------------------------- overview

const overview = { rows: new Map(), filter: "", namespace: null };

function key(ns, name) { return ns + "/" + name; }

function renderOverview() {
  const main = document.getElementById("main");
  const input = h("input", {
    type: "search", placeholder: "Filter by name, namespace, image or phase", value: overview.filter,
    "data-testid": "filter",
    oninput: (e) => { overview.filter = e.target.value; renderOverviewTable(); },
  });
  main.replaceChildren(
    h("div", { class: "toolbar" }, h("h1", {}, "Rollouts"), input, h("span", { class: "count", id: "count" })),
    h("div", { id: "table" }),
  );
  renderOverviewTable();
}

function renderOverviewTable() {
  const holder = document.getElementById("table");
  if (!holder) return;
  const f = overview.filter.toLowerCase();
  const rows = [...overview.rows.values()]
    .filter((r) => !f || [r.name, r.namespace, r.phase, ...(r.images || [])].join(" ").toLowerCase().includes(f))
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  document.getElementById("count").textContent = rows.length + " of " + overview.rows.size;
  if (overview.rows.size === 0) {
    holder.replaceChildren(h("div", { class: "empty" }, "No Rollouts" + (overview.namespace ? " in namespace " + overview.namespace : "") + " yet."));
    return;
  }
  const groups = new Map();
  for (const r of rows) {
    if (!groups.has(r.namespace)) groups.set(r.namespace, []);
    groups.get(r.namespace).push(r);
  }
  const parts = [];
  for (const [ns, list] of groups) {
    parts.push(h("div", { class: "ns" }, ns));
    parts.push(h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "Strategy", "Status", "Step", "Weight (actual · set)", "Ready", "Images", "Age"].map((t) => h("th", {}, t)))),
      h("tbody", {}, list.map(overviewRow)),
    ));
  }
  holder.replaceChildren(...parts);
}

function overviewRow(r) {
  const weight = r.strategy === "Canary"
    ? h("div", { class: "weight" }, weightBar(r.actualWeight, r.setWeight),
        h("span", { class: "nums", "data-testid": "weight" }, (r.actualWeight ?? "-") + "% · " + (r.setWeight ?? "-") + "%"))
    : h("span", { class: "muted" }, "-");
  return h("tr", { "data-testid": "rollout-row", "data-name": r.name, "data-namespace": r.namespace },
    h("td", {}, h("a", { href: "#/rollouts/" + encodeURIComponent(r.namespace) + "/" + encodeURIComponent(r.name) }, r.name)),
    h("td", {}, r.strategy),
    h("td", { title: r.message }, badge(r.phase, r.phase, "phase")),
    h("td", { "data-testid": "step" }, r.step),
    h("td", {}, weight),
    h("td", {}, r.ready + "/" + r.desired),
    h("td", { class: "mono" }, (r.images || []).join(", ")),
    h("td", {}, age(r.created)),
  );
}

function showOverview() {
  crumbs(h("a", { href: "#/" }, "Rollouts"));
  overview.rows.clear();
  renderOverview();
  connect("/api/stream", {
    snapshot: (d) => {
      overview.namespace = d.namespace;
      overview.rows = new Map(d.rollouts.map((r) => [key(r.namespace, r.name), r]));
      showWatches(d.watches);
      renderOverviewTable();
    },
    update: (d) => {
      for (const r of d.upsert) overview.rows.set(key(r.namespace, r.name), r);
      for (const k of d.remove) overview.rows.delete(key(k.namespace, k.name));
      renderOverviewTable();
    },
    watches: showWatches,
  });
}

// ---------------------------------------------------------------- one Rollout

const detail = { ns: null, name: null, view: null, result: null };

function showRollout(ns, name) {
  Object.assign(detail, { ns, name, view: null, result: null });
  crumbs(h("a", { href: "#/" }, "Rollouts"), ns, h("span", {}, name));
  document.getElementById("main").replaceChildren(h("div", { class: "empty" }, "Loading " + name + "…"));
  connect("/api/rollouts/" + encodeURIComponent(ns) + "/" + encodeURIComponent(name) + "/stream", {
    rollout: (d) => {
      showWatches(d.watches);
      if (d.error) {
        detail.view = null;
        document.getElementById("main").replaceChildren(h("div", { class: "result err", "data-testid": "error" }, d.error));
        return;
      }
      detail.view = d.rollout;
      renderRollout();
    },
  });
}

function renderRollout() {
  const v = detail.view;
  const main = document.getElementById("main");
  const left = h("div", {},
    h("div", { class: "card" }, h("h2", {}, "Steps"), stepsList(v)),
    h("div", { class: "card" }, h("h2", {}, "Summary"), summaryList(v)),
  );
  const right = h("div", {},
    v.strategy === "Canary" ? h("div", { class: "card" }, h("h2", {}, "Canary weight"), bigWeight(v)) : null,
    h("div", { class: "card" }, h("h2", {}, "Revisions"), ...(v.revisions.length ? v.revisions.map(revision) : [h("p", { class: "muted" }, "No ReplicaSets yet.")])),
    h("div", { class: "card" }, h("h2", {}, "Events"), events(v.events)),
  );
  main.replaceChildren(...[
    h("div", { class: "title" }, h("h1", { "data-testid": "rollout-name" }, v.name), badge(v.phase, v.phase, "phase"),
      v.aborted ? badge("aborted", "Degraded", "aborted") : null),
    h("p", { class: "message", "data-testid": "message" }, v.message || ""),
    actionButtons(v),
    detail.result ? h("div", { class: "result " + (detail.result.ok ? "ok" : "err"), "data-testid": detail.result.ok ? "action-result" : "action-error" }, detail.result.text) : null,
    h("div", { class: "grid" }, left, right),
  ].filter(Boolean));
}

function stepsList(v) {
  if (!v.steps.length) return h("p", { class: "muted" }, v.strategy === "Canary" ? "No steps: each update goes straight to 100%." : "Not a canary.");
  return h("ol", { class: "steps", "data-testid": "steps" }, v.steps.map((st) =>
    h("li", { class: st.state, "data-testid": "step-" + st.index, "data-state": st.state },
      h("span", { class: "dot" }, st.state === "done" ? "✓" : st.index),
      h("span", { class: "text" }, st.text))));
}

function summaryList(v) {
  const r = v.replicas;
  const rows = [
    ["Namespace", v.namespace], ["Strategy", v.strategy],
    ["Step", v.stepIndex === null || v.stepIndex === undefined ? "-" : v.stepIndex + "/" + v.steps.length],
    ["Replicas", r.desired + " desired · " + r.current + " current · " + r.updated + " updated · " + r.available + " available"],
    ["Images", h("div", {}, v.images.map((i) => h("div", { class: "mono" }, i.image + " ", roles(i.roles))))],
    ["Age", age(v.created)],
  ];
  return h("dl", { class: "kv" }, rows.flatMap(([k, val]) => [h("dt", {}, k), h("dd", {}, val)]));
}

function bigWeight(v) {
  return h("div", {},
    h("div", { class: "weight" }, weightBar(v.actualWeight, v.setWeight, true)),
    h("p", { class: "muted" },
      "Actual ", h("strong", { "data-testid": "actual-weight" }, (v.actualWeight ?? "-") + "%"),
      " of available pods run the canary; the step asks for ",
      h("strong", { "data-testid": "set-weight" }, (v.setWeight ?? "-") + "%"), "."));
}

function revision(rev) {
  return h("div", { class: "revision" },
    h("h3", {}, "Revision " + rev.revision),
    rev.replicaSets.map(replicaSet),
    rev.experiments.map(experiment),
    rev.analysisRuns.map(analysisRun));
}

function replicaSet(rs) {
  return h("div", { class: "rs", "data-testid": "replicaset", "data-name": rs.name },
    badge(rs.health, rs.health),
    h("span", { class: "name mono" }, rs.name),
    roles(rs.roles),
    h("span", { class: "muted" }, rs.available + "/" + rs.desired + " available"),
    h("span", { class: "mono muted" }, rs.images.join(", ")),
    h("span", { class: "pods" }, rs.pods.map((p) => h("span", { class: "pod " + p.health, title: p.name + " · " + p.status + " · ready " + p.ready + (p.restarts ? " · restarts " + p.restarts : "") }))),
    rs.scaleDownDeadline ? h("span", { class: "muted" }, "scale-down at " + rs.scaleDownDeadline) : null);
}

function experiment(e) {
  return h("div", { class: "run" },
    h("div", { class: "head" }, h("strong", {}, "Σ " + e.name), badge(e.phase, e.phase), e.duration ? h("span", { class: "muted" }, "for " + e.duration) : null,
      h("span", { class: "muted" }, e.message || "")),
    e.replicaSets.map(replicaSet),
    e.analysisRuns.map(analysisRun));
}

function analysisRun(run) {
  return h("div", { class: "run", "data-testid": "analysisrun", "data-name": run.name },
    h("div", { class: "head" }, h("strong", {}, "α " + run.name), badge(run.phase, run.phase),
      run.kind ? h("span", { class: "muted" }, run.kind) : null,
      h("span", { class: "muted" }, run.message || "")),
    run.metrics.map(metric));
}

function metric(m) {
  const last = m.measurements.length ? m.measurements[m.measurements.length - 1] : null;
  return h("div", { class: "metric", "data-testid": "metric", "data-name": m.name },
    h("span", { class: "mono" }, m.name, m.dryRun ? h("span", { class: "muted" }, " (dry run)") : null),
    badge(m.phase, m.phase),
    sparkline(m.measurements),
    h("span", { class: "mono muted" }, last ? "last " + (last.value ?? last.phase) + " · ✔" + m.successful + " ✖" + m.failed + (m.inconclusive ? " ?" + m.inconclusive : "") + (m.error ? " ⚠" + m.error : "") : "no measurement yet"));
}

function sparkline(ms) {
  const svg = s("svg", { viewBox: "0 0 130 30", role: "img" });
  const points = ms.map((m, i) => [i, m.number, m.phase]).filter(([, n]) => n !== null && n !== undefined);
  if (!points.length) return svg;
  const ys = points.map(([, n]) => n);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi === lo) { lo -= 1; hi += 1; }
  const n = Math.max(ms.length - 1, 1);
  const xy = points.map(([i, v, phase]) => [4 + (i / n) * 122, 26 - ((v - lo) / (hi - lo)) * 22, phase]);
  svg.append(s("polyline", { class: "spark-line", points: xy.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1)).join(" ") }));
  for (const [x, y, phase] of xy) svg.append(s("circle", { class: "spark-dot " + phase, cx: x.toFixed(1), cy: y.toFixed(1), r: 2.6 }));
  return svg;
}

function events(list) {
  if (!list.length) return h("p", { class: "muted" }, "No events.");
  return h("table", { class: "events" },
    h("thead", {}, h("tr", {}, ["Age", "Type", "Reason", "Message"].map((t) => h("th", {}, t)))),
    h("tbody", {}, [...list].reverse().map((e) => h("tr", {},
      h("td", {}, age(e.last)), h("td", { class: e.type }, e.type), h("td", {}, e.reason),
      h("td", {}, e.message + (e.count > 1 ? " (×" + e.count + ")" : ""))))));
}

// ---------------------------------------------------------------- actions

function actionButtons(v) {
  const byName = new Map(v.actions.map((a) => [a.action, a]));
  return h("div", { class: "actions" }, ACTIONS.map((a) => {
    const state = byName.get(a.action) || { enabled: false, reason: "unknown action" };
    return h("button", {
      class: "button" + (a.danger ? " danger" : ""), "data-testid": "action-" + a.action,
      disabled: !state.enabled, title: state.enabled ? a.what : "rollout " + v.name + " " + state.reason,
      onclick: () => confirmAction(v, a),
    }, a.label);
  }));
}

function confirmAction(v, a) {
  const modal = document.getElementById("modal");
  document.getElementById("modal-title").textContent = a.label + " rollout " + v.name + "?";
  document.getElementById("modal-text").textContent = "This will " + a.what + " (namespace " + v.namespace + "), with the same request kubectl sluice " + a.action.replace("-full", " --full") + " sends.";
  const ok = document.getElementById("modal-ok");
  const cancel = document.getElementById("modal-cancel");
  ok.textContent = a.label;
  const close = () => { modal.hidden = true; ok.onclick = null; cancel.onclick = null; };
  cancel.onclick = close;
  ok.onclick = async () => {
    close();
    await sendAction(v.namespace, v.name, a.action);
  };
  modal.hidden = false;
  ok.focus();
}

async function sendAction(ns, name, action) {
  let result;
  try {
    const r = await fetch("/api/rollouts/" + encodeURIComponent(ns) + "/" + encodeURIComponent(name) + "/actions/" + action, {
      method: "POST", headers: { "X-Sluice-Action": "1" },
    });
    const body = await r.json().catch(() => ({ error: "HTTP " + r.status }));
    result = r.ok ? { ok: true, text: body.message } : { ok: false, text: body.error || "HTTP " + r.status };
  } catch (e) {
    result = { ok: false, text: "the dashboard did not answer: " + e };
  }
  if (detail.ns === ns && detail.name === name) {
    detail.result = result;
    if (detail.view) renderRollout();
  }
}

// ---------------------------------------------------------------- routing

function route() {
  const m = location.hash.match(/^#\/rollouts\/([^/]+)\/([^/]+)$/);
  if (m) showRollout(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
  else showOverview();
}

window.addEventListener("hashchange", route);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") document.getElementById("modal").hidden = true;
});
route();
// Ages move on without any change on the server.
setInterval(() => {
  if (detail.view && location.hash.startsWith("#/rollouts/")) renderRollout();
  else renderOverviewTable();
}, 5000);
