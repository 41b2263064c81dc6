// The console: a client of the /v1 API with the workspace key the user gives
// (kept in sessionStorage, never in a cookie or the URL). No inline script, no
// third-party origin: the Content-Security-Policy forbids both.
"use strict";

const KEY = "tunnels.key";
// Block colours: the action block is red, as in the source document.
const colors = { message: "#2f6fdf", action: "#d64545", delay: "#7a7f87", condition: "#d9962b", split: "#8a4fd1" };
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const ns = ["svg", "g", "rect", "text", "path", "defs", "marker", "circle"].includes(tag) ? "http://www.w3.org/2000/svg" : null;
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
  if (!res.ok) {
    const err = new Error(answer.detail || res.statusText);
    err.problem = answer; // RFC 9457: errors[] with JSON pointers
    throw err;
  }
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

// show replaces the view; data-render counts the views drawn (and says which
// address drew it), so a test can tell a new view from the one before.
let renders = 0;
function show(...nodes) {
  const view = $("view");
  view.replaceChildren(...nodes);
  view.dataset.render = String(++renders);
  view.dataset.route = location.hash;
}

async function tunnels() {
  const list = await listAll("/v1/tunnels", "tunnels");
  const stats = await Promise.all(list.map((t) => api("/v1/tunnels/" + encodeURIComponent(t.id) + "/stats").catch(() => null)));
  const rows = list.map((t, i) => el("tr", { "data-tunnel": t.id },
    el("td", {}, el("a", { href: "#/tunnels/" + encodeURIComponent(t.id) }, t.name)),
    el("td", {}, t.id), el("td", {}, t.entry || "—"), el("td", {}, t.subscribers),
    el("td", { class: "active-runs" }, stats[i] ? stats[i].active_runs : "—"), el("td", {}, t.updated_at)));
  show(el("h1", {}, "Tunnels"),
    el("table", {}, el("thead", {}, el("tr", {}, ...["Name", "Id", "Entry", "Subscribers recorded", "Runs active", "Updated"].map((h) => el("th", {}, h)))), el("tbody", {}, ...rows)));
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

// The catalog a tunnel's forms pick from.
async function loadCatalog() {
  const kinds = { tags: "/v1/tags", fields: "/v1/fields", sales_plans: "/v1/sales-plans", operators: "/v1/operators",
    email_bots: "/v1/email-bots", lead_sources: "/v1/lead-sources", integrations: "/v1/integrations", tunnels: "/v1/tunnels",
    variables: "/v1/variables" };
  const cat = {};
  await Promise.all(Object.entries(kinds).map(async ([name, path]) => { cat[name] = await listAll(path, name); }));
  return cat;
}

// actionSpecs lists each action type's parameters and how to edit them:
// a picker over a catalog list, text, a number, a flag, or a special editor.
const actionSpecs = {
  add_tags: [["tags", "tags"]],
  remove_tags: [["tags", "tags"]],
  set_field: [["field", "fields"], ["value", "text"]],
  add_to_sales_plan: [["plan", "sales_plans"]],
  mention: [["operator", "operators"], ["comment", "text"]],
  mark_unread: [],
  create_email_subscriber: [["email_bot", "email_bots"], ["tunnel", "tunnels?"], ["lead_source", "lead_sources?"]],
  send_email: [["email_bot", "email_bots"], ["subject", "text"], ["html", "textarea"], ["text", "textarea?"], ["create_subscriber", "flag"], ["tunnel", "tunnels?"], ["lead_source", "lead_sources?"]],
  amo_contact: [["integration", "integrations"]],
  amo_deal: [["integration", "integrations"], ["pipeline_id", "pipeline"], ["status_id", "status"], ["name", "text?"]],
  start: [["tunnel", "tunnels"], ["block", "block?"]],
  stop: [["tunnel", "tunnels?"], ["block", "block?"]],
  external_request: [["method", "method"], ["url", "text"], ["description", "text?"], ["headers", "pairs"], ["query", "pairs"],
    ["body", "json?"], ["response_mapping", "mapping"], ["on_error", "blocks?"], ["timeout_ms", "number?"]],
};

// actionEditor is the form of an action block: its ordered actions, each
// with the fields of its type; changes go straight into the block.
function actionEditor(b, t, cat, touch, redraw, errs = []) {
  const wrap = el("div", { class: "actions" });
  const pick = (list, value, optional, label = (x) => x.name || x.id) => {
    const sel = el("select", {}, ...(optional ? [el("option", { value: "" }, "—")] : []),
      ...list.map((x) => el("option", { value: x.id }, label(x) + (x.name && x.name !== x.id ? " (" + x.id + ")" : ""))));
    sel.value = value || "";
    return sel;
  };
  b.actions.forEach((a, i) => {
    const box = el("fieldset", { class: "action", "data-action": String(i) });
    const type = el("select", { class: "action-type" }, ...Object.keys(actionSpecs).map((k) => el("option", { value: k }, k)));
    type.value = a.type;
    type.addEventListener("change", () => { b.actions[i] = { type: type.value }; touch(); redraw(); });
    const up = el("button", { type: "button", title: "move up" }, "↑");
    up.addEventListener("click", () => { if (i > 0) { [b.actions[i - 1], b.actions[i]] = [b.actions[i], b.actions[i - 1]]; touch(); redraw(); } });
    const down = el("button", { type: "button", title: "move down" }, "↓");
    down.addEventListener("click", () => { if (i < b.actions.length - 1) { [b.actions[i + 1], b.actions[i]] = [b.actions[i], b.actions[i + 1]]; touch(); redraw(); } });
    const del = el("button", { type: "button", class: "remove-action" }, "Remove");
    del.addEventListener("click", () => { b.actions.splice(i, 1); touch(); redraw(); });
    box.append(el("legend", {}, "#" + i + " "), type, " ", up, down, " ", del);
    for (const [param, kind] of actionSpecs[a.type] || []) {
      const optional = kind.endsWith("?");
      const k = kind.replace("?", "");
      const set = (v) => { if (v === "" || v === undefined || (Array.isArray(v) && !v.length)) delete a[param]; else a[param] = v; touch(); };
      let input;
      if (cat[k]) {
        if (k === "tags") {
          input = el("select", { multiple: "", size: String(Math.min(6, Math.max(2, cat.tags.length))) }, ...cat.tags.map((x) => el("option", { value: x.id }, x.name || x.id)));
          [...input.options].forEach((o) => { o.selected = (a.tags || []).includes(o.value); });
          input.addEventListener("change", () => set([...input.selectedOptions].map((o) => o.value)));
        } else {
          input = pick(cat[k], a[param], optional);
          input.addEventListener("change", () => { set(input.value); if (param === "tunnel" || param === "integration") redraw(); });
        }
      } else if (k === "block") {
        const target = a.tunnel ? null : t;
        input = el("select", {}, el("option", { value: "" }, "— entry"));
        const fill = (blocks) => blocks.forEach((x) => input.append(el("option", { value: x.id }, x.id)));
        if (target) fill(t.blocks);
        else api("/v1/tunnels/" + encodeURIComponent(a.tunnel)).then((other) => { fill(other.blocks); input.value = a.block || ""; }).catch(() => {});
        input.value = a.block || "";
        input.addEventListener("change", () => set(input.value));
      } else if (k === "pipeline" || k === "status") {
        input = el("select", {}, el("option", { value: "" }, "—"));
        if (a.integration) {
          api("/v1/integrations/" + encodeURIComponent(a.integration) + "/pipelines").then((res) => {
            const pipes = res.pipelines;
            const opts = k === "pipeline" ? pipes : (pipes.find((p) => p.id === a.pipeline_id) || { statuses: [] }).statuses;
            opts.forEach((x) => input.append(el("option", { value: String(x.id) }, x.name + " (" + x.id + ")")));
            input.value = a[param] ? String(a[param]) : "";
          }).catch((e) => input.append(el("option", { value: "" }, e.message)));
        }
        input.addEventListener("change", () => { set(input.value ? Number(input.value) : ""); if (k === "pipeline") redraw(); });
      } else if (k === "flag") {
        input = el("input", { type: "checkbox" });
        input.checked = !!a[param];
        input.addEventListener("change", () => set(input.checked || ""));
      } else if (k === "method") {
        input = el("select", {}, ...["GET", "POST", "PUT"].map((m) => el("option", { value: m }, m)));
        input.value = a.method || "GET";
        if (!a.method) a.method = "GET";
        input.addEventListener("change", () => set(input.value));
      } else if (k === "number") {
        input = el("input", { type: "number" });
        input.value = a[param] || "";
        input.addEventListener("change", () => set(input.value ? Number(input.value) : ""));
      } else if (k === "pairs" || k === "mapping") {
        input = rowsEditor(a, param, k === "mapping" ? ["path", "field"] : ["name", "value"], touch, redraw);
      } else if (k === "json") {
        input = el("textarea", { rows: "4" });
        input.value = a.body === undefined ? "" : JSON.stringify(a.body, null, 2);
        input.addEventListener("change", () => {
          if (!input.value.trim()) { set(""); return; }
          try { set(JSON.parse(input.value)); input.classList.remove("bad"); } catch { input.classList.add("bad"); }
        });
      } else if (k === "blocks") {
        input = el("input", { type: "text", placeholder: "block ids, comma separated" });
        input.value = (a[param] || []).join(", ");
        input.addEventListener("change", () => set(input.value.split(",").map((x) => x.trim()).filter(Boolean)));
      } else {
        input = el(k === "textarea" ? "textarea" : "input", k === "textarea" ? { rows: "3" } : { type: "text" });
        input.value = a[param] || "";
        input.addEventListener("change", () => set(input.value));
      }
      input.setAttribute("data-param", param);
      // A validation error of this field, where its pointer names it.
      const here = "/actions/" + i + "/" + param;
      const fieldErrs = errs.filter((x) => x.pointer.endsWith(here) || x.pointer.includes(here + "/"));
      if (fieldErrs.length) input.classList.add("bad");
      box.append(el("label", {}, param + (optional ? " (optional)" : ""), input,
        ...fieldErrs.map((x) => el("span", { class: "error field-error" }, " " + x.detail))));
    }
    if (a.type === "external_request") box.append(insertTool(box, cat), requestTools(a));
    wrap.append(box);
  });
  const newType = el("select", { id: "new-action" }, ...Object.keys(actionSpecs).map((k) => el("option", { value: k }, k)));
  const add = el("button", { type: "button", id: "add-action" }, "Add action");
  add.addEventListener("click", () => { b.actions.push({ type: newType.value }); touch(); redraw(); });
  wrap.append(el("p", {}, newType, " ", add));
  return wrap;
}

// rowsEditor edits a list of {name, value} (headers, query) or {path, field}
// (response mapping) rows, with add and delete.
function rowsEditor(a, param, keys, touch, redraw) {
  const rows = a[param] || [];
  const box = el("div", { class: "rows" });
  rows.forEach((row, i) => {
    const inputs = keys.map((k) => {
      const input = el("input", { type: "text", placeholder: k });
      input.value = row[k] || "";
      input.addEventListener("change", () => { row[k] = input.value; touch(); });
      return input;
    });
    const del = el("button", { type: "button" }, "×");
    del.addEventListener("click", () => { rows.splice(i, 1); if (!rows.length) delete a[param]; touch(); redraw(); });
    box.append(el("div", {}, ...inputs, del));
  });
  const add = el("button", { type: "button", "data-add-row": param }, "+ " + param.replace("_", " "));
  add.addEventListener("click", () => { a[param] = rows; rows.push(Object.fromEntries(keys.map((k) => [k, ""]))); touch(); redraw(); });
  box.append(add);
  return box;
}

// insertTool offers the placeholders (subscriber data, custom fields,
// variables) with a fallback, and inserts the chosen one where the cursor was
// in the request's url, headers, query or body.
function insertTool(box, cat) {
  let target = null;
  box.addEventListener("focusin", (ev) => { if (ev.target.matches("input[type=text], textarea")) target = ev.target; });
  const names = ["subscriber.first_name", "subscriber.last_name", "subscriber.email", "subscriber.phone", "subscriber.id",
    ...cat.fields.map((f) => "field." + f.id), ...cat.variables.map((v) => "var." + v.id + (v.secret ? " (secret)" : ""))];
  const which = el("select", { class: "insert-name" }, ...names.map((n) => el("option", { value: n.split(" ")[0] }, n)));
  const fallback = el("input", { type: "text", class: "insert-fallback", placeholder: "fallback (optional)" });
  const insert = el("button", { type: "button", class: "insert" }, "Insert");
  insert.addEventListener("click", () => {
    if (!target) return;
    const text = "{{" + which.value + (fallback.value ? "|" + fallback.value : "") + "}}";
    const at = target.selectionStart ?? target.value.length;
    target.value = target.value.slice(0, at) + text + target.value.slice(target.selectionEnd ?? at);
    target.dispatchEvent(new Event("change", { bubbles: true }));
  });
  return el("p", { class: "insert-tool" }, which, " ", fallback, " ", insert);
}

// requestTools previews or checks an external request for a subscriber (the
// "account" whose data fills the placeholders), as the API renders it, with
// the request, the response and what the response mapping would write apart.
function requestTools(a) {
  const who = el("input", { type: "text", placeholder: "subscriber (account) id", class: "request-subscriber", list: "accounts" });
  const accounts = el("datalist", { id: "accounts" });
  api("/v1/subscribers?limit=50").then((res) => res.subscribers.forEach((x) =>
    accounts.append(el("option", { value: x.id }, (x.first_name + " " + x.last_name).trim())))).catch(() => {});
  const out = el("pre", { class: "request-result" });
  let last = null;
  const tabs = el("p", { class: "tabs request-tabs" }, ...["request", "response", "mapping"].map((name) => {
    const bt = el("button", { type: "button", "data-tab": name }, name);
    bt.addEventListener("click", () => { if (last) out.textContent = JSON.stringify(name === "request" && !last.request ? last : last[name], null, 2); });
    return bt;
  }));
  const run = async (what) => {
    const req = { ...a };
    delete req.on_error;
    try {
      const res = await api("/v1/external-requests/" + what, "POST", { subscriber_id: who.value.trim(), request: req });
      last = res;
      out.textContent = JSON.stringify(res, null, 2);
    } catch (e) {
      last = null;
      out.textContent = e.message + (e.problem && e.problem.errors ? "\n" + e.problem.errors.map((x) => x.pointer + " " + x.detail).join("\n") : "");
    }
  };
  const preview = el("button", { type: "button", class: "preview" }, "Preview");
  preview.addEventListener("click", () => run("preview"));
  const check = el("button", { type: "button", class: "check" }, "Check request");
  check.addEventListener("click", () => run("check"));
  return el("div", { class: "request-tools" }, who, accounts, " ", preview, " ", check, tabs, out);
}

// tunnel is the canvas of one tunnel: drag blocks (their ui position is saved
// with the tunnel), connect a block to another by dragging from its handle,
// add and delete blocks, edit the selected one in the side panel, and Save,
// which shows every validation error on the block its pointer names.
async function tunnel(id) {
  const [stored, cat] = await Promise.all([api("/v1/tunnels/" + encodeURIComponent(id)), loadCatalog()]);
  const t = { name: stored.name, entry: stored.entry, blocks: stored.blocks };
  const W = 170, H = 48;
  const st = { selected: null, errors: [], dirty: false, pos: layout(t) };
  const canvas = el("div", { class: "canvas" });
  const panel = el("div", { class: "panel" });
  const status = el("p", { id: "status", role: "status" });
  const save = el("button", { type: "button", id: "save" }, "Save");

  const blockIndex = (bid) => t.blocks.findIndex((b) => b.id === bid);
  // Per-block counters, refreshed while the canvas is shown.
  let counts = {};
  const countsText = (bid) => {
    const c = counts[bid];
    if (!c) return "";
    let txt = `${c.done} done · ${c.waiting} waiting` + (c.skipped ? ` · ${c.skipped} skipped` : "") + (c.failed ? ` · ${c.failed} failed` : "");
    if (c.branches) txt += " · " + c.branches.map((br) => (br.name || br.branch) + ": " + br.count).join(", ");
    return txt;
  };
  const refresh = async () => {
    try {
      const st = await api("/v1/tunnels/" + encodeURIComponent(id) + "/stats");
      counts = Object.fromEntries(st.blocks.map((x) => [x.block, x]));
      document.querySelectorAll("[data-counts]").forEach((n) => { n.textContent = countsText(n.getAttribute("data-counts")); });
      const runs = document.getElementById("runs-active");
      if (runs) runs.textContent = `${st.recorded} recorded · ${st.active_runs} runs active`;
    } catch { /* the canvas works without its counters */ }
  };
  const timer = setInterval(() => { if (!document.querySelector("[data-counts]")) clearInterval(timer); else refresh(); }, 5000);
  const errorsOf = (bid) => {
    const i = blockIndex(bid);
    return st.errors.filter((e) => e.pointer === "/blocks/" + i || e.pointer.startsWith("/blocks/" + i + "/"));
  };
  const say = (state, text) => { status.dataset.state = state; status.textContent = text; };
  const touch = () => { st.dirty = true; say("dirty", "Unsaved changes"); };

  function draw() {
    let maxX = 600, maxY = 300;
    st.pos.forEach((p) => { maxX = Math.max(maxX, p.x + W + 60); maxY = Math.max(maxY, p.y + H + 60); });
    const svg = el("svg", { width: maxX, height: maxY, role: "img", "aria-label": "tunnel " + t.name },
      el("defs", {}, el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "8", markerHeight: "8", orient: "auto" },
        el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8b93a1" }))));
    for (const b of t.blocks) {
      const from = st.pos.get(b.id);
      for (const s of successors(b)) {
        const to = st.pos.get(s.id);
        if (!from || !to) continue;
        svg.append(el("path", { class: "edge", "data-from": b.id, "data-to": s.id,
          d: `M${from.x + W},${from.y + H / 2} C${from.x + W + 40},${from.y + H / 2} ${to.x - 40},${to.y + H / 2} ${to.x},${to.y + H / 2}` }));
        if (s.label) svg.append(el("text", { x: (from.x + W + to.x) / 2 - 10, y: (from.y + to.y + H) / 2 - 4 }, s.label));
      }
    }
    for (const b of t.blocks) {
      const p = st.pos.get(b.id);
      const bad = errorsOf(b.id).length > 0;
      const g = el("g", { class: "node" + (b.id === st.selected ? " selected" : "") + (bad ? " invalid" : ""), "data-block": b.id, transform: `translate(${p.x},${p.y})` },
        el("rect", { width: W, height: H, rx: 6, fill: colors[b.type] || "#999" }),
        el("text", { x: 10, y: 19, fill: "#fff" }, b.type + (b.id === t.entry ? " · entry" : "")),
        el("text", { x: 10, y: 36, fill: "#fff" }, b.id),
        el("circle", { class: "handle", cx: W, cy: H / 2, r: 7, "data-handle": b.id }),
        el("text", { class: "counts", x: 0, y: H + 14, "data-counts": b.id }, countsText(b.id)));
      svg.append(g);
    }
    drag(svg);
    canvas.replaceChildren(svg);
    drawPanel();
  }

  // drag moves a block (pointer on its body) or connects it (on its handle).
  function drag(svg) {
    let moving = null, linking = null, line = null, moved = false;
    const at = (ev) => { const r = svg.getBoundingClientRect(); return { x: ev.clientX - r.left, y: ev.clientY - r.top }; };
    svg.addEventListener("pointerdown", (ev) => {
      const handle = ev.target.closest("[data-handle]");
      const node = ev.target.closest("g.node");
      if (handle) {
        linking = handle.getAttribute("data-handle");
        const p = st.pos.get(linking);
        line = el("path", { class: "edge pending", d: "" });
        line.dataset.x = p.x + W; line.dataset.y = p.y + H / 2;
        svg.append(line);
      } else if (node) {
        const bid = node.getAttribute("data-block"), p = st.pos.get(bid), m = at(ev);
        moving = { bid, node, dx: m.x - p.x, dy: m.y - p.y };
        moved = false;
      }
    });
    svg.addEventListener("pointermove", (ev) => {
      const m = at(ev);
      if (moving) {
        const x = Math.max(0, Math.round(m.x - moving.dx)), y = Math.max(0, Math.round(m.y - moving.dy));
        if (Math.abs(x - st.pos.get(moving.bid).x) + Math.abs(y - st.pos.get(moving.bid).y) > 2) moved = true;
        st.pos.set(moving.bid, { x, y });
        moving.node.setAttribute("transform", `translate(${x},${y})`);
      } else if (linking) {
        line.setAttribute("d", `M${line.dataset.x},${line.dataset.y} L${m.x},${m.y}`);
      }
    });
    svg.addEventListener("pointerup", (ev) => {
      if (moving) {
        const b = t.blocks[blockIndex(moving.bid)];
        if (moved) { b.ui = { ...st.pos.get(moving.bid) }; touch(); } else st.selected = moving.bid;
        moving = null;
        draw();
      } else if (linking) {
        const target = document.elementFromPoint(ev.clientX, ev.clientY)?.closest("g.node");
        const to = target && target.getAttribute("data-block");
        if (to && to !== linking) connect(linking, to);
        linking = null;
        draw();
      }
    });
  }

  function connect(fromId, toId) {
    const b = t.blocks[blockIndex(fromId)];
    if (["condition", "split"].includes(b.type) || b.buttons || b.reply) {
      status.textContent = `Block ${fromId} goes on through its branches, buttons or reply: edit them in the panel`;
      return;
    }
    b.next = b.next || [];
    if (!b.next.includes(toId)) { b.next.push(toId); touch(); }
  }

  function remove(bid) {
    t.blocks = t.blocks.filter((b) => b.id !== bid);
    const drop = (ids) => (ids ? ids.filter((x) => x !== bid) : ids);
    for (const b of t.blocks) {
      b.next = drop(b.next);
      if (b.else) b.else = drop(b.else);
      (b.branches || []).forEach((br) => { br.next = drop(br.next); });
      (b.buttons || []).forEach((bt) => { bt.next = drop(bt.next); });
      if (b.reply) { b.reply.next = drop(b.reply.next); b.reply.on_timeout = drop(b.reply.on_timeout); }
      (b.actions || []).forEach((a) => { if (a.on_error) a.on_error = drop(a.on_error); });
    }
    st.pos.delete(bid);
    if (st.selected === bid) st.selected = null;
    touch();
    draw();
  }

  function add(type) {
    let n = 1;
    while (blockIndex(type + n) >= 0) n++;
    const b = { id: type + n, type };
    if (type === "message") b.text = "New message";
    if (type === "action") b.actions = [{ type: "mark_unread" }];
    if (type === "delay") b.seconds = 3600;
    if (type === "condition") b.branches = [{ when: { subscriber: "email", op: "is_set" }, next: [] }];
    if (type === "split") b.branches = [{ name: "A", weight: 1, next: [] }, { name: "B", weight: 1, next: [] }];
    let y = 30;
    st.pos.forEach((p) => { y = Math.max(y, p.y + H + 30); });
    b.ui = { x: 30, y };
    st.pos.set(b.id, { ...b.ui });
    t.blocks.push(b);
    st.selected = b.id;
    touch();
    draw();
  }

  function drawPanel() {
    const b = st.selected && t.blocks[blockIndex(st.selected)];
    const general = st.errors.filter((e) => !e.pointer.startsWith("/blocks/"));
    const list = (errs) => el("ul", { class: "errors" }, ...errs.map((e) => el("li", {}, el("code", {}, e.pointer || "/"), " ", e.detail)));
    if (!b) {
      panel.replaceChildren(el("p", {}, "Select a block to edit it. Drag a block to move it, drag from its round handle to another block to connect them."),
        general.length ? list(general) : "");
      return;
    }
    const edit = el("textarea", { id: "block-json", rows: "16", spellcheck: "false" });
    edit.value = JSON.stringify(b, null, 2);
    const apply = el("button", { type: "button", id: "apply" }, "Apply");
    apply.addEventListener("click", () => {
      let nb;
      try { nb = JSON.parse(edit.value); } catch (e) { status.textContent = "Not JSON: " + e.message; return; }
      const i = blockIndex(b.id);
      if (nb.id !== b.id) {
        for (const o of t.blocks) {
          const ren = (ids) => (ids ? ids.map((x) => (x === b.id ? nb.id : x)) : ids);
          o.next = ren(o.next); if (o.else) o.else = ren(o.else);
          (o.branches || []).forEach((br) => { br.next = ren(br.next); });
          (o.buttons || []).forEach((bt) => { bt.next = ren(bt.next); });
          if (o.reply) { o.reply.next = ren(o.reply.next); o.reply.on_timeout = ren(o.reply.on_timeout); }
        }
        if (t.entry === b.id) t.entry = nb.id;
        st.pos.set(nb.id, st.pos.get(b.id));
        st.pos.delete(b.id);
        st.selected = nb.id;
      }
      t.blocks[i] = nb;
      touch();
      draw();
    });
    const del = el("button", { type: "button", id: "delete" }, "Delete block");
    del.addEventListener("click", () => remove(b.id));
    const entry = el("button", { type: "button", id: "make-entry" }, "Make it the entry");
    entry.addEventListener("click", () => { t.entry = b.id; touch(); draw(); });
    const form = b.type === "action" && Array.isArray(b.actions) ? actionEditor(b, t, cat, touch, drawPanel, errorsOf(b.id)) : "";
    if (form) edit.hidden = true;
    const raw = el("button", { type: "button", id: "toggle-json" }, form ? "Edit as JSON" : "");
    raw.hidden = !form;
    apply.hidden = !!form; // the form edits the block itself; Apply is for the JSON
    raw.addEventListener("click", () => { edit.value = JSON.stringify(b, null, 2); edit.hidden = !edit.hidden; apply.hidden = edit.hidden; });
    panel.replaceChildren(el("h2", {}, b.id), list(errorsOf(b.id)), form, raw, edit, el("p", {}, apply, " ", entry, " ", del), general.length ? list(general) : "");
  }

  save.addEventListener("click", async () => {
    say("saving", "Saving…");
    try {
      await api("/v1/tunnels/" + encodeURIComponent(id), "PUT", t);
      st.errors = []; st.dirty = false;
      say("saved", "Saved");
    } catch (e) {
      st.errors = (e.problem && e.problem.errors) || [{ pointer: "", detail: e.message }];
      say("invalid", `Not saved: ${st.errors.length} problem(s)`);
    }
    draw();
  });
  const toolbar = el("p", { class: "toolbar" }, "Add: ",
    ...Object.keys(colors).map((type) => { const bt = el("button", { type: "button", "data-add": type }, type); bt.addEventListener("click", () => add(type)); return bt; }),
    " ", save, status);
  const legend = el("p", { class: "legend" }, ...Object.keys(colors).map((k) => el("span", {}, el("i", {}), k)));
  // CSSOM, not a style attribute: the CSP allows no inline style.
  legend.querySelectorAll("i").forEach((i, n) => { i.style.background = Object.values(colors)[n]; });
  show(el("h1", {}, t.name), legend, el("p", { id: "runs-active" }), toolbar, el("div", { class: "tunnel" }, canvas, panel));
  draw();
  refresh();
}

// chats is the inbox: the unread tab, and each operator's mentions.
async function chats(tab) {
  const operators = await listAll("/v1/operators", "operators");
  const tabs = el("p", { class: "tabs" }, el("a", { href: "#/chats/all" }, "All"), el("a", { href: "#/chats" }, "Unread"),
    ...operators.map((o) => el("a", { href: "#/chats/mentions/" + encodeURIComponent(o.id) }, "@" + o.name)));
  let list;
  if (tab === "all") {
    const page = await api("/v1/subscribers?limit=100");
    list = el("ul", { class: "list", id: "all-chats" }, ...page.subscribers.map((x) => el("li", {},
      el("a", { href: "#/subscribers/" + encodeURIComponent(x.id) + "/chat" }, (x.first_name + " " + x.last_name).trim() || x.id), " — ", x.channels.join(", "))));
  } else if (tab) {
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
  show(el("h1", {}, tab === "all" ? "All chats" : tab ? "Mentions of " + tab : "Unread chats"), tabs, list);
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

// Catalog forms: every catalog kind, its list, and one form to create or
// replace an entity (PUT), with each validation error under its field.
const catalogKinds = {
  tags: { path: "/v1/tags", list: "tags", fields: [["name", "text"]] },
  fields: { path: "/v1/fields", list: "fields", fields: [["name", "text"], ["type", ["string", "number", "boolean", "date"]]] },
  variables: { path: "/v1/variables", list: "variables", fields: [["value", "text"], ["secret", "flag"]] },
  "sales-plans": { path: "/v1/sales-plans", list: "sales_plans", fields: [["name", "text"], ["statuses", "list"], ["operators", "list"], ["distribution", ["none", "random", "evenly", "fewest"]]] },
  operators: { path: "/v1/operators", list: "operators", fields: [["name", "text"], ["email", "text"]] },
  "email-bots": { path: "/v1/email-bots", list: "email_bots", fields: [["name", "text"], ["from_address", "text"], ["from_name", "text"], ["reply_to", "text"]] },
  "lead-sources": { path: "/v1/lead-sources", list: "lead_sources", fields: [["name", "text"], ["tunnel", "text"]] },
  integrations: { path: "/v1/integrations", list: "integrations", fields: [["kind", ["amocrm"]], ["name", "text"], ["base_url", "text"], ["client_id", "text"],
    ["client_secret", "secret"], ["redirect_uri", "text"], ["access_token", "secret"], ["refresh_token", "secret"], ["expires_at", "text"]] },
  channels: { path: "/v1/channels", list: "channels", fields: [["kind", ["webhook", "telegram"]], ["url", "text"], ["secret", "secret"], ["bot_token", "secret"]] },
};

async function catalog(kind) {
  const k = catalogKinds[kind] ? kind : "tags";
  const spec = catalogKinds[k];
  const items = await listAll(spec.path, spec.list);
  const nav = el("p", { class: "tabs" }, ...Object.keys(catalogKinds).map((n) => el("a", { href: "#/catalog/" + n, class: n === k ? "current" : "" }, n)));
  const idInput = el("input", { type: "text", id: "entity-id", placeholder: "id" });
  const inputs = {};
  const errs = {};
  const idErr = el("span", { class: "error" });
  const form = el("form", { id: "entity-form", class: "card" }, el("label", {}, "id", idInput, idErr));
  for (const [name, kindOf] of spec.fields) {
    let input;
    if (Array.isArray(kindOf)) input = el("select", {}, ...kindOf.map((o) => el("option", { value: o }, o)));
    else if (kindOf === "flag") input = el("input", { type: "checkbox" });
    else input = el("input", { type: kindOf === "secret" ? "password" : "text", autocomplete: "off",
      placeholder: kindOf === "list" ? "comma separated" : kindOf === "secret" ? "write-only: leave empty to keep" : "" });
    input.setAttribute("data-field", name);
    inputs[name] = input;
    errs[name] = el("span", { class: "error" });
    form.append(el("label", {}, name, input, errs[name]));
  }
  const status = el("p", { class: "error", role: "alert", id: "entity-status" });
  form.append(el("button", { type: "submit" }, "Save"), status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    Object.values(errs).forEach((e) => { e.textContent = ""; });
    idErr.textContent = "";
    status.textContent = "";
    // An empty id would name the collection, not an entity: say so here.
    const id = idInput.value.trim();
    if (!id) { idErr.textContent = " an id is required"; return; }
    const body = {};
    for (const [name, kindOf] of spec.fields) {
      const input = inputs[name];
      if (kindOf === "flag") body[name] = input.checked;
      else if (kindOf === "list") body[name] = input.value.split(",").map((x) => x.trim()).filter(Boolean);
      else if (input.value !== "") body[name] = input.value;
    }
    try {
      await api(spec.path + "/" + encodeURIComponent(id), "PUT", body);
      route();
    } catch (e) {
      status.textContent = e.message;
      for (const fe of (e.problem && e.problem.errors) || []) {
        const name = fe.pointer.split("/")[1];
        if (errs[name]) errs[name].textContent = " " + fe.detail;
      }
    }
  });
  const rows = items.map((it) => {
    const edit = el("button", { type: "button" }, "Edit");
    edit.addEventListener("click", () => {
      idInput.value = it.id;
      for (const [name, kindOf] of spec.fields) {
        const v = it[name];
        if (kindOf === "flag") inputs[name].checked = !!v;
        else if (kindOf === "secret") inputs[name].value = "";
        else inputs[name].value = Array.isArray(v) ? v.join(", ") : v === undefined || v === null ? "" : String(v);
      }
    });
    const del = el("button", { type: "button" }, "Delete");
    del.addEventListener("click", async () => { try { await api(spec.path + "/" + encodeURIComponent(it.id), "DELETE"); route(); } catch (e) { status.textContent = e.message; } });
    const summary = spec.fields.filter(([, kd]) => kd !== "secret").map(([n]) => (it[n] === undefined ? "" : n + ": " + (Array.isArray(it[n]) ? it[n].join(", ") : it[n]))).filter(Boolean).join(" · ");
    return el("tr", { "data-id": it.id }, el("td", {}, it.id), el("td", {}, summary), el("td", {}, edit, " ", del));
  });
  show(el("h1", {}, "Catalog: " + k), nav, el("table", {}, el("tbody", {}, ...rows)), form);
}

// salesBoard is a sales plan as a board: a column per status, a card per
// deal with its operator; a card moves with its "move to" picker.
async function salesBoard(planId) {
  const plans = await listAll("/v1/sales-plans", "sales_plans");
  const nav = el("p", { class: "tabs" }, ...plans.map((p) => el("a", { href: "#/sales/" + encodeURIComponent(p.id) }, p.name)));
  const plan = plans.find((p) => p.id === planId) || plans[0];
  if (!plan) { show(el("h1", {}, "Sales plans"), el("p", {}, "No sales plan yet: add one in the catalog.")); return; }
  const deals = await listAll("/v1/sales-plans/" + encodeURIComponent(plan.id) + "/deals", "deals");
  const columns = plan.statuses.map((status) => el("div", { class: "column", "data-status": status }, el("h2", {}, status),
    ...deals.filter((d) => d.status === status).map((d) => {
      const move = el("select", { "data-deal": d.subscriber_id }, ...plan.statuses.map((x) => el("option", { value: x }, x)));
      move.value = d.status;
      move.addEventListener("change", async () => {
        try { await api("/v1/sales-plans/" + encodeURIComponent(plan.id) + "/deals/" + encodeURIComponent(d.subscriber_id), "PATCH", { status: move.value }); route(); }
        catch (e) { alertBox.textContent = e.message; }
      });
      return el("div", { class: "deal" }, el("a", { href: "#/subscribers/" + encodeURIComponent(d.subscriber_id) }, d.subscriber_id),
        el("small", {}, d.operator ? " · " + d.operator : ""), el("div", {}, "move to ", move));
    })));
  const alertBox = el("p", { class: "error", role: "alert" });
  show(el("h1", {}, "Sales plan: " + plan.name), nav, alertBox, el("div", { class: "board" }, ...columns));
}

// deadLetters lists the steps that ran out of attempts, with their reason,
// and re-drives the selected ones.
async function deadLetters() {
  const items = await listAll("/v1/dead-letters", "dead_letters");
  const boxes = [];
  const rows = items.map((d) => {
    const box = el("input", { type: "checkbox", value: d.id });
    boxes.push(box);
    return el("tr", {}, el("td", {}, box), el("td", {}, d.queue), el("td", {}, d.step.tunnel + "/" + d.step.block + "#" + d.step.action),
      el("td", {}, d.reason), el("td", {}, d.attempts), el("td", {}, d.first_failed_at));
  });
  const status = el("p", { role: "status", id: "redrive-status" });
  const redrive = el("button", { type: "button", id: "redrive" }, "Re-drive selected");
  redrive.addEventListener("click", async () => {
    const ids = boxes.filter((b) => b.checked).map((b) => b.value);
    if (!ids.length) { status.textContent = "Select a dead letter first"; return; }
    try { const res = await api("/v1/dead-letters/redrive", "POST", { ids }); status.textContent = res.redriven + " re-driven"; }
    catch (e) { status.textContent = e.message; }
  });
  show(el("h1", {}, "Dead letters"), items.length ? el("table", {}, el("tbody", {}, ...rows)) : el("p", {}, "No dead letter."), el("p", {}, redrive), status);
}

// subscribers is the searchable list (name, email, phone, channel id; tag).
async function subscribers(query) {
  const params = new URLSearchParams(query || "");
  const q = el("input", { type: "search", id: "search-q", placeholder: "name, email, phone, channel:id" });
  q.value = params.get("q") || "";
  const tags = await listAll("/v1/tags", "tags");
  const tag = el("select", { id: "search-tag" }, el("option", { value: "" }, "any tag"), ...tags.map((x) => el("option", { value: x.id }, x.name)));
  tag.value = params.get("tag") || "";
  const form = el("form", { id: "search" }, q, " ", tag, " ", el("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = "#/subscribers?" + new URLSearchParams({ q: q.value.trim(), tag: tag.value }).toString();
  });
  const page = await api("/v1/subscribers?" + new URLSearchParams({ q: q.value.trim(), tag: tag.value, limit: "100" }).toString());
  const rows = page.subscribers.map((s) => el("tr", {},
    el("td", {}, el("a", { href: "#/subscribers/" + encodeURIComponent(s.id) }, (s.first_name + " " + s.last_name).trim() || s.id)),
    el("td", {}, s.email || "—"), el("td", {}, s.phone || "—"), el("td", {}, s.channels.join(", ")), el("td", {}, s.tags.join(", "))));
  show(el("h1", {}, "Subscribers"), form, el("table", { id: "subscribers" }, el("tbody", {}, ...rows)),
    page.next_cursor ? el("p", {}, "Showing the first 100: narrow the search.") : "");
}

// route draws the view of the address. Views load asynchronously, so routes
// run one after another: the view of the last address is the one that stays.
let routing = Promise.resolve();
function route() {
  routing = routing.then(drawRoute, drawRoute);
  return routing;
}

async function drawRoute() {
  const signedIn = !!sessionStorage.getItem(KEY);
  $("keyform").hidden = signedIn;
  $("nav").hidden = !signedIn;
  if (!signedIn) { show(); return; }
  const hash = location.hash || "#/tunnels";
  try {
    let m;
    if ((m = hash.match(/^#\/tunnels\/(.+)$/))) await tunnel(decodeURIComponent(m[1]));
    else if ((m = hash.match(/^#\/subscribers(?:\?(.*))?$/))) await subscribers(m[1]);
    else if ((m = hash.match(/^#\/subscribers\/([^/?]+)(?:\/([a-z]+))?$/))) await subscriber(decodeURIComponent(m[1]), m[2]);
    else if ((m = hash.match(/^#\/chats\/mentions\/(.+)$/))) await chats(decodeURIComponent(m[1]));
    else if (hash === "#/chats") await chats();
    else if (hash === "#/chats/all") await chats("all");
    else if ((m = hash.match(/^#\/catalog(?:\/([a-z-]+))?$/))) await catalog(m[1]);
    else if ((m = hash.match(/^#\/sales(?:\/(.+))?$/))) await salesBoard(m[1] && decodeURIComponent(m[1]));
    else if (hash === "#/dead-letters") await deadLetters();
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
