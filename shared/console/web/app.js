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

async function api(path, method = "GET", body) {
  const init = { method, headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 204) return null;
  const answer = await res.json().catch(() => ({}));
  if (res.status === 401) {
    sessionStorage.removeItem(KEY);
    route();
    throw new Error(answer.detail || "the API key is not valid");
  }
  if (!res.ok) throw new Error(answer.detail || res.statusText);
  return answer;
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

// chats is the inbox: the unread tab, and each operator's mentions.
async function chats(tab) {
  const operators = await listAll("/v1/operators", "operators");
  const tabs = el("p", { class: "tabs" }, el("a", { href: "#/chats" }, "Unread"),
    ...operators.map((o) => el("a", { href: "#/chats/mentions/" + encodeURIComponent(o.id) }, "@" + o.name)));
  let list;
  if (tab) {
    const mentions = await listAll("/v1/operators/" + encodeURIComponent(tab) + "/mentions", "mentions");
    list = el("ul", { class: "list" }, ...mentions.map((m) => el("li", {},
      el("a", { href: "#/subscribers/" + encodeURIComponent(m.subscriber_id) + "/chat" }, m.subscriber_id), " — ", m.comment, " ", el("small", {}, m.created_at))));
  } else {
    const unread = await listAll("/v1/chats?filter=unread", "chats");
    list = el("ul", { class: "list" }, ...unread.map((c) => el("li", {},
      el("a", { href: "#/subscribers/" + encodeURIComponent(c.subscriber_id) + "/chat" }, (c.first_name + " " + c.last_name).trim() || c.subscriber_id),
      " — ", c.last_message ? c.last_message.text : "")));
    if (!unread.length) list = el("p", {}, "No unread chat.");
  }
  show(el("h1", {}, tab ? "Mentions of " + tab : "Unread chats"), tabs, list);
}

const statusClass = { done: "ok", skipped: "skip", failed: "bad" };

// subscriber is the client card, one tab at a time.
async function subscriber(id, tab) {
  const card = await api("/v1/subscribers/" + encodeURIComponent(id));
  const name = (card.first_name + " " + card.last_name).trim() || card.id;
  const names = ["profile", "tags", "fields", "email", "plans", "crm", "runs", "journey", "chat"];
  tab = names.includes(tab) ? tab : "profile";
  const tabs = el("p", { class: "tabs" }, ...names.map((n) => el("a", { href: "#/subscribers/" + encodeURIComponent(id) + "/" + n, class: n === tab ? "current" : "" }, n)));
  const dl = (pairs) => el("dl", {}, ...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v === null || v === undefined || v === "" ? "—" : String(v))]));
  let body;
  switch (tab) {
    case "profile":
      body = dl([["id", card.id], ["first name", card.first_name], ["last name", card.last_name], ["email", card.email], ["phone", card.phone],
        ["channels", card.channels.map((c) => c.channel + ":" + c.external_id).join(", ")], ["time zone", card.timezone],
        ["paused until", card.paused_until], ["blocked the bot on", (card.unreachable || []).join(", ")],
        ["waiting for an answer at", (card.waits || []).map((w) => w.tunnel + "/" + w.block).join(", ")]]);
      break;
    case "tags":
      body = card.tags.length ? el("ul", { class: "list" }, ...card.tags.map((t) => el("li", {}, t))) : el("p", {}, "No tag.");
      break;
    case "fields":
      body = dl(Object.entries(card.fields));
      break;
    case "email":
      body = card.email_account ? dl(Object.entries(card.email_account)) : el("p", {}, "No linked email account.");
      break;
    case "plans":
      body = el("table", {}, el("tbody", {}, ...card.sales_plans.map((p) => el("tr", {}, el("td", {}, p.plan), el("td", {}, p.status), el("td", {}, p.operator || "—")))));
      break;
    case "crm":
      body = dl([["amoCRM contact", card.crm.amo_contact_id], ["amoCRM deals", card.crm.amo_lead_ids.join(", ")]]);
      break;
    case "runs":
      body = el("table", {}, el("tbody", {}, ...card.runs.map((r) => el("tr", {}, el("td", {}, r.tunnel), el("td", {}, r.channel), el("td", {}, "gen " + r.generation), el("td", {}, r.status)))));
      break;
    case "journey": {
      const steps = await listAll("/v1/subscribers/" + encodeURIComponent(id) + "/journey", "steps");
      body = el("ol", { class: "timeline" }, ...steps.map((s) => el("li", { class: statusClass[s.status] || "" },
        el("span", { class: "when" }, s.started_at), " ", el("strong", {}, s.tunnel + "/" + s.block + (s.action === null ? "" : "#" + s.action)),
        " ", s.type, " ", el("span", { class: "status" }, s.status), s.reason ? " — " + s.reason : "", s.attempts > 1 ? " (" + s.attempts + " attempts)" : "",
        el("details", {}, el("summary", {}, "detail"), el("pre", {}, JSON.stringify(s.detail, null, 2))))));
      break;
    }
    case "chat":
      body = await chatTab(id, card);
      break;
  }
  show(el("h1", {}, name), tabs, body);
}

async function chatTab(id, card) {
  const msgs = await listAll("/v1/subscribers/" + encodeURIComponent(id) + "/chat", "messages");
  const operators = await listAll("/v1/operators", "operators");
  const list = el("ul", { class: "chat" }, ...msgs.map((m) => el("li", { class: m.direction },
    el("small", {}, m.created_at + (m.operator ? " · " + m.operator : "") + (m.delivery ? " · " + m.delivery : "")), el("div", {}, m.text))));
  const status = el("p", { class: "error", role: "alert" });
  const text = el("textarea", { id: "reply-text", rows: "2", placeholder: "Answer as an operator" });
  const who = el("select", { id: "reply-operator" }, ...operators.map((o) => el("option", { value: o.id }, o.name)));
  const form = el("form", { id: "reply" }, who, text, el("button", { type: "submit" }, "Send"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("/v1/subscribers/" + encodeURIComponent(id) + "/chat", "POST", { text: text.value, operator: who.value });
      route();
    } catch (e) { status.textContent = e.message; }
  });
  const read = el("button", { type: "button", id: "mark-read" }, "Mark read");
  read.addEventListener("click", async () => {
    try { await api("/v1/subscribers/" + encodeURIComponent(id) + "/chat", "PATCH", { unread: false }); route(); } catch (e) { status.textContent = e.message; }
  });
  const pause = el("button", { type: "button", id: "pause" }, card.paused_until ? "Resume the tunnels" : "Pause the tunnels for an hour");
  pause.addEventListener("click", async () => {
    try {
      if (card.paused_until) await api("/v1/subscribers/" + encodeURIComponent(id) + "/pause", "DELETE");
      else await api("/v1/subscribers/" + encodeURIComponent(id) + "/pause", "POST", { minutes: 60 });
      route();
    } catch (e) { status.textContent = e.message; }
  });
  return el("div", {}, list, el("p", {}, read, " ", pause), form, status);
}

async function route() {
  const signedIn = !!sessionStorage.getItem(KEY);
  $("keyform").hidden = signedIn;
  $("nav").hidden = !signedIn;
  if (!signedIn) { show(); return; }
  const hash = location.hash || "#/tunnels";
  try {
    let m;
    if ((m = hash.match(/^#\/tunnels\/(.+)$/))) await tunnel(decodeURIComponent(m[1]));
    else if ((m = hash.match(/^#\/subscribers\/([^/]+)(?:\/([a-z]+))?$/))) await subscriber(decodeURIComponent(m[1]), m[2]);
    else if ((m = hash.match(/^#\/chats\/mentions\/(.+)$/))) await chats(decodeURIComponent(m[1]));
    else if (hash === "#/chats") await chats();
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
