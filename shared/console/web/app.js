// The console: a client of the /v1 API with the workspace key the user gives
// (kept in sessionStorage, never in a cookie or the URL). No inline script, no
// third-party origin: the Content-Security-Policy forbids both.
"use strict";

const KEY = "tunnels.key";
// Block colours: the action block is red, as in the source document.
const colors = { message: "#2f6fdf", action: "#d64545", delay: "#7a7f87", condition: "#d9962b", split: "#8a4fd1" };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const ns = ["svg", "g", "rect", "text", "path", "defs", "marker"].includes(tag) ? "http://www.w3.org/2000/svg" : null;
  const e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) } });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) {
    sessionStorage.removeItem(KEY);
    route();
    throw new Error(body.detail || "the API key is not valid");
  }
  if (!res.ok) throw new Error(body.detail || res.statusText);
  return body;
}

async function listAll(path, name) {
  let items = [], cursor = "";
  for (;;) {
    const page = await api(path + (path.includes("?") ? "&" : "?") + "limit=500" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items = items.concat(page[name]);
    if (!page.next_cursor) return items;
    cursor = page.next_cursor;
  }
}

function show(...nodes) {
  $("view").replaceChildren(...nodes);
}

async function tunnels() {
  const list = await listAll("/v1/tunnels", "tunnels");
  const rows = list.map((t) => el("tr", {},
    el("td", {}, el("a", { href: "#/tunnels/" + encodeURIComponent(t.id) }, t.name)),
    el("td", {}, t.id), el("td", {}, t.entry || "—"), el("td", {}, t.subscribers), el("td", {}, t.updated_at)));
  show(el("h1", {}, "Tunnels"),
    el("table", {}, el("thead", {}, el("tr", {}, ...["Name", "Id", "Entry", "Subscribers recorded", "Updated"].map((h) => el("th", {}, h)))), el("tbody", {}, ...rows)));
}

// successors lists where a block goes, each edge with its label.
function successors(b) {
  const out = [];
  const add = (ids, label) => (ids || []).forEach((id) => out.push({ id, label }));
  add(b.next, "");
  (b.actions || []).forEach((a) => add(a.on_error, "on_error"));
  (b.branches || []).forEach((br, i) => add(br.next, br.name || (b.type === "split" ? br.weight + "" : "#" + i)));
  add(b.else, "else");
  (b.buttons || []).forEach((bt) => add(bt.next, bt.text));
  if (b.reply) { add(b.reply.next, "reply"); add(b.reply.on_timeout, "timeout"); }
  return out;
}

// layout places blocks in columns by their distance from the entry (a block
// keeps the place the user dragged it to: its ui position).
function layout(t) {
  const byId = new Map(t.blocks.map((b) => [b.id, b]));
  const depth = new Map([[t.entry, 0]]);
  const queue = [t.entry];
  while (queue.length) {
    const id = queue.shift();
    for (const s of successors(byId.get(id) || {})) {
      if (byId.has(s.id) && !depth.has(s.id)) { depth.set(s.id, depth.get(id) + 1); queue.push(s.id); }
    }
  }
  const rows = new Map();
  const pos = new Map();
  for (const b of t.blocks) {
    const d = depth.has(b.id) ? depth.get(b.id) : 0;
    const r = rows.get(d) || 0;
    rows.set(d, r + 1);
    pos.set(b.id, b.ui ? { x: b.ui.x, y: b.ui.y } : { x: 30 + d * 220, y: 30 + r * 90 });
  }
  return pos;
}

async function tunnel(id) {
  const t = await api("/v1/tunnels/" + encodeURIComponent(id));
  const pos = layout(t);
  const W = 170, H = 48;
  let maxX = 0, maxY = 0;
  pos.forEach((p) => { maxX = Math.max(maxX, p.x + W + 40); maxY = Math.max(maxY, p.y + H + 40); });
  const svg = el("svg", { width: maxX, height: maxY, role: "img", "aria-label": "tunnel " + t.name },
    el("defs", {}, el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "8", markerHeight: "8", orient: "auto" },
      el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8b93a1" }))));
  const panel = el("div", { class: "panel" }, el("p", {}, "Select a block to see it."));
  for (const b of t.blocks) {
    const from = pos.get(b.id);
    for (const s of successors(b)) {
      const to = pos.get(s.id);
      if (!to) continue;
      svg.append(el("path", { class: "edge", d: `M${from.x + W},${from.y + H / 2} C${from.x + W + 40},${from.y + H / 2} ${to.x - 40},${to.y + H / 2} ${to.x},${to.y + H / 2}` }));
      if (s.label) svg.append(el("text", { x: (from.x + W + to.x) / 2 - 10, y: (from.y + to.y + H) / 2 - 4 }, s.label));
    }
  }
  for (const b of t.blocks) {
    const p = pos.get(b.id);
    const g = el("g", { class: "node", "data-block": b.id, transform: `translate(${p.x},${p.y})` },
      el("rect", { width: W, height: H, rx: 6, fill: colors[b.type] || "#999" }),
      el("text", { x: 10, y: 19, fill: "#fff" }, b.type + (b.id === t.entry ? " · entry" : "")),
      el("text", { x: 10, y: 36, fill: "#fff" }, b.id));
    g.addEventListener("click", () => {
      svg.querySelectorAll(".selected").forEach((n) => n.classList.remove("selected"));
      g.classList.add("selected");
      panel.replaceChildren(el("h2", {}, b.id), el("pre", {}, JSON.stringify(b, null, 2)));
    });
    svg.append(g);
  }
  const legend = el("p", { class: "legend" }, ...Object.keys(colors).map((k) => el("span", {}, el("i", {}), k)));
  // CSSOM, not a style attribute: the CSP allows no inline style.
  legend.querySelectorAll("i").forEach((i, n) => { i.style.background = Object.values(colors)[n]; });
  show(el("h1", {}, t.name), legend, el("div", { class: "tunnel" }, el("div", { class: "canvas" }, svg), panel));
}

async function route() {
  const signedIn = !!sessionStorage.getItem(KEY);
  $("keyform").hidden = signedIn;
  $("nav").hidden = !signedIn;
  if (!signedIn) { show(); return; }
  const hash = location.hash || "#/tunnels";
  try {
    const m = hash.match(/^#\/tunnels\/(.+)$/);
    if (m) await tunnel(decodeURIComponent(m[1]));
    else await tunnels();
  } catch (e) {
    show(el("p", { class: "error", role: "alert" }, e.message));
  }
}

$("keyform").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("key").value.trim());
  $("key").value = "";
  try { await api("/v1/tunnels?limit=1"); $("keyerror").textContent = ""; } catch (e) { $("keyerror").textContent = e.message; }
  route();
});
$("signout").addEventListener("click", () => { sessionStorage.removeItem(KEY); route(); });
window.addEventListener("hashchange", route);
route();
