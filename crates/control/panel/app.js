// Tollgate panel: plain JavaScript, no build step, no library. Talks to the same API as any
// client, with the API token the user logs in with (kept in sessionStorage, gone with the tab).
// This file: the API client, the small toolkit every screen uses (elements, forms whose errors
// land next to their field in words, confirmations, copy buttons), the chart, and the screens
// that are not one resource's (log in, resources, new resource, tokens, audit). resource.js
// holds a resource's tabs.
"use strict";

const main = document.getElementById("main");
let timers = [];

function token() { return sessionStorage.getItem("tollgate-token"); }

// Calls the API; a refusal throws an Error with `status` and `errors` ([{field, message}]).
async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token() } };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  let res;
  try { res = await fetch(path, opts); } catch (e) { throw new Error("The control plane cannot be reached. Is it running?"); }
  if (res.status === 401) { sessionStorage.removeItem("tollgate-token"); route(); throw new Error("Log in again"); }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
  if (!res.ok) {
    const e = new Error((data && data.message) || res.statusText);
    e.status = res.status;
    e.errors = data && data.errors && data.errors.length ? data.errors
      : (data && data.field !== undefined ? [{ field: data.field, message: data.message }] : []);
    throw e;
  }
  return data;
}

// Builds an element: el("div", {id: "x", class: "card"}, child, "text", ...). Attributes that
// are null, undefined or false are left out; `on...` are listeners.
function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  // Forms check their fields themselves and say what is wrong next to each, in words.
  if (tag === "form") n.noValidate = true;
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") n.className = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (v === true) n.setAttribute(k, "");
    else if (v !== false && v !== null && v !== undefined) n.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) n.append(c);
  return n;
}

// Appends the children that are present (DOM append would print "null").
function put(parent, ...children) {
  parent.append(...children.flat().filter(c => c !== null && c !== undefined && c !== false));
}

// Replaces the page.
function show(title, ...nodes) {
  document.title = title + " · Tollgate";
  main.replaceChildren(...nodes.filter(Boolean));
}

function every(ms, fn) { timers.push(setInterval(fn, ms)); }

// "options.secure_key.type" -> "Secure key type": a field the form did not name, in words.
function words(path) {
  const last = String(path || "").replace(/^options\./, "").replace(/\[(\d+)\]/g, " $1").replace(/\.(\d+)(?=\.|$)/g, " $1");
  const s = last.replace(/[._]/g, " ").replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase().trim();
  return s ? s[0].toUpperCase() + s.slice(1) : "";
}

// A form's fields, each with its label and an error line under it. `fail(e)` puts each of the
// API's errors under the field it names (or the nearest enclosing one), in words; what names
// no field goes to the form's status line.
function form(statusId) {
  const fields = [];
  const status = el("p", { class: "status", id: statusId, role: "status", "aria-live": "polite" });
  const best = path => {
    let found = null;
    for (const f of fields) for (const p of f.paths) {
      if (path === p || path.startsWith(p + ".") || path.startsWith(p + "[")) {
        if (!found || p.length > found.len) found = { f, len: p.length, p };
      }
    }
    return found;
  };
  const f = {
    status,
    // A labelled field: `paths` is the API field (or fields) it edits.
    field(paths, input, label, hint) {
      const id = input.id;
      const err = el("p", { class: "error", id: id + "-error", "aria-live": "polite" });
      const hintId = hint ? id + "-hint" : null;
      input.setAttribute("aria-describedby", [hintId, id + "-error"].filter(Boolean).join(" "));
      fields.push({ paths: [].concat(paths), input, label, err });
      return el("div", { class: "field" }, el("label", { for: id }, label), input,
        hint ? el("p", { class: "hint", id: hintId }, hint) : null, err);
    },
    // A checkbox with its text as label.
    check(paths, input, label, hint) {
      const err = el("p", { class: "error", id: input.id + "-error", "aria-live": "polite" });
      fields.push({ paths: [].concat(paths), input, label, err });
      return el("div", { class: "field" }, el("label", { class: "inline" }, input, label),
        hint ? el("p", { class: "hint" }, hint) : null, err);
    },
    // A group of inputs in a fieldset (its legend is the label).
    group(paths, node, label) {
      const err = el("p", { class: "error", id: node.id + "-error", "aria-live": "polite" });
      fields.push({ paths: [].concat(paths), input: node, label, err });
      return el("div", { class: "field" }, node, err);
    },
    clear() {
      for (const x of fields) { x.err.textContent = ""; x.input.classList.remove("invalid"); x.input.removeAttribute("aria-invalid"); }
      status.className = "status"; status.textContent = "";
    },
    // Shows a problem found before sending (the API checks again).
    local(input, message) {
      const x = fields.find(x => x.input === input);
      if (!x) return f.bad(message);
      x.err.textContent = `${x.label}: ${message}`;
      x.input.classList.add("invalid"); x.input.setAttribute("aria-invalid", "true");
    },
    fail(e) {
      f.clear();
      const errs = e.errors && e.errors.length ? e.errors : [{ field: "", message: e.message }];
      let first = null;
      for (const { field, message } of errs) {
        const hit = field ? best(field) : null;
        if (!hit) { f.bad((field ? words(field) + ": " : "") + message); continue; }
        const rest = field.slice(hit.p.length).match(/\d+/);
        const text = `${hit.f.label}${rest ? ", entry " + (Number(rest[0]) + 1) : ""}: ${message}`;
        hit.f.err.textContent = hit.f.err.textContent ? hit.f.err.textContent + " " + text : text;
        hit.f.input.classList.add("invalid"); hit.f.input.setAttribute("aria-invalid", "true");
        first = first || hit.f.input;
      }
      if (first) first.focus();
    },
    ok(message) { status.className = "status ok"; status.textContent = message; },
    bad(message) { status.className = "status error"; status.textContent = message; },
  };
  return f;
}

// Runs `action` with the button disabled, so a double click sends one request.
async function busy(button, action) {
  button.disabled = true;
  try { await action(); } finally { button.disabled = false; }
}

// A button that asks first: the question and two buttons replace it until answered.
function confirmButton(id, label, question, yesLabel, action, cls) {
  const wrap = el("div", { class: "confirm-wrap" });
  const ask = el("button", { type: "button", id, class: cls || "secondary" }, label);
  const box = el("div", { class: "confirm", id: id + "-confirm", role: "alertdialog", "aria-label": label, hidden: true },
    el("p", {}, question));
  const no = el("button", { type: "button", class: "secondary", id: id + "-no" }, "Cancel");
  const yes = el("button", { type: "button", class: "danger", id: id + "-yes" }, yesLabel);
  ask.addEventListener("click", () => { ask.hidden = true; box.hidden = false; no.focus(); });
  no.addEventListener("click", () => { box.hidden = true; ask.hidden = false; ask.focus(); });
  yes.addEventListener("click", () => busy(yes, async () => { box.hidden = true; ask.hidden = false; await action(); }));
  box.append(el("div", { class: "row" }, yes, no));
  wrap.append(ask, box);
  return wrap;
}

// A copy button for the text `get()` returns; says whether it worked.
function copyButton(id, get) {
  const said = el("span", { class: "ok", id: id + "-done", "aria-live": "polite" });
  const b = el("button", { type: "button", class: "secondary small", id, onclick: async () => {
    try { await navigator.clipboard.writeText(get()); said.textContent = "Copied"; }
    catch (e) { said.textContent = "Select the text and copy it"; }
    setTimeout(() => { said.textContent = ""; }, 3000);
  } }, "Copy");
  return el("span", { class: "copy" }, b, said);
}

// A list typed one per line (or separated by commas).
function lines(text) { return text.split(/[\n,]/).map(s => s.trim()).filter(Boolean); }

function input(id, value, attrs) {
  return el("input", { type: "text", id, value: value === undefined || value === null ? "" : String(value), autocomplete: "off", spellcheck: "false", ...attrs });
}
function textarea(id, list, attrs) {
  const t = el("textarea", { id, rows: "3", spellcheck: "false", ...attrs });
  t.value = (list || []).join("\n");
  return t;
}
function checkbox(id, on) { return el("input", { type: "checkbox", id, checked: !!on }); }
function select(id, choices, value) {
  const s = el("select", { id }, ...choices.map(([v, text]) => el("option", { value: v }, text)));
  if (value !== undefined) s.value = value;
  return s;
}

// Gcore's rule for secure keys, checked as the user types (the API checks it again).
function keyProblem(k) {
  if (k.length < 6) return "at least 6 characters (6 to 32, no spaces).";
  if (k.length > 32) return "at most 32 characters (6 to 32, no spaces).";
  if (/\s/.test(k)) return "no spaces (6 to 32 printable characters).";
  if (!/^[\x21-\x7e]*$/.test(k)) return "printable ASCII characters only (letters, digits, symbols).";
  return "";
}

function generateKey() {
  // 62 symbols: rejection sampling keeps every symbol equally likely.
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  let out = "";
  while (out.length < 32) {
    for (const b of crypto.getRandomValues(new Uint8Array(64))) {
      if (b < 248 && out.length < 32) out += alphabet[b % 62];
    }
  }
  return out;
}

// "3 h ago" for a Unix time (seconds) or an RFC 3339 text.
function ago(t) {
  const ms = typeof t === "number" ? t * 1000 : new Date(t).getTime();
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " days ago";
}

// A Unix time as the viewer's local date and time, and UTC.
function when(unix) {
  const d = new Date(unix * 1000);
  const pad = n => String(n).padStart(2, "0");
  const local = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return { local, utc: d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") };
}

// Bytes in decimal units, as CDN traffic is billed.
function bytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function loginPage(message) {
  navState(null);
  const tok = el("input", { type: "password", id: "login-token", placeholder: "tg_…", autocomplete: "off", autofocus: true });
  const err = el("p", { class: "error", id: "login-error", "aria-live": "polite" }, message || "");
  const f = el("form", { onsubmit: async ev => {
    ev.preventDefault();
    sessionStorage.setItem("tollgate-token", tok.value.trim());
    try { await api("GET", "/cdn/resources"); location.hash = "#/"; route(); }
    catch (e) { loginPage("That token was not accepted."); }
  } },
    el("label", { for: "login-token" }, "API token"), tok,
    el("p", { class: "hint" }, "Shown once when Tollgate first started, or made with: tollgate token create --role api --name NAME."),
    err, el("button", { type: "submit", id: "login-submit" }, "Log in"));
  show("Log in", el("div", { class: "card narrow" }, el("h1", {}, "Log in"), f));
  tok.focus();
}

// Marks the current section in the navigation; null hides it (logged out).
function navState(current) {
  const nav = document.getElementById("nav");
  nav.hidden = current === null;
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.section === current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

function secureLabel(r) {
  const sk = r.options && r.options.secure_key;
  if (!sk || !sk.enabled) return "off";
  const how = sk.type === 2 ? "on" : "on, with client IP";
  return sk.mode === "report" ? how + " (report only)" : how;
}

async function listPage() {
  navState("resources");
  const rows = el("tbody", { id: "resource-rows" });
  const search = el("input", { type: "search", id: "search", placeholder: "Search by hostname", autocomplete: "off", "aria-label": "Search resources by hostname" });
  const empty = el("p", { class: "hint", id: "search-empty", hidden: true });
  const list = await api("GET", "/cdn/resources");
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const hits = list.filter(r => !q || [r.cname, ...(r.secondaryHostnames || [])].some(h => h.toLowerCase().includes(q)));
    rows.replaceChildren(...hits.map(r => el("tr", {},
      el("td", {}, String(r.id)),
      el("td", {}, el("a", { href: "#/resources/" + r.id, id: "open-" + r.id }, r.cname),
        (r.secondaryHostnames || []).length ? el("div", { class: "hint" }, r.secondaryHostnames.join(", ")) : null),
      el("td", {}, ownGroup(r) ? (r.origin || "") : "group " + r.originGroup_name),
      el("td", {}, secureLabel(r)),
      el("td", {}, r.active === false ? "inactive" : r.status))));
    empty.hidden = hits.length > 0;
    empty.textContent = list.length ? `No resource's hostname contains "${search.value.trim()}".` : "No resources yet: create the first one.";
  };
  search.addEventListener("input", render);
  render();
  show("Resources",
    el("div", { class: "card" },
      el("div", { class: "row spread" }, el("h1", {}, "CDN resources"),
        el("a", { href: "#/new", class: "button", id: "new-resource" }, "New resource")),
      search,
      el("div", { class: "scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, el("th", {}, "ID"), el("th", {}, "Hostname"), el("th", {}, "Origin"), el("th", {}, "Secure token"), el("th", {}, "Status"))), rows)),
      empty),
    chartCard(null));
}

// Whether the resource's origin group is its own: a resource given one host gets a group of
// that one source, named after it (as at Gcore).
function ownGroup(r) { return !r.originGroup || r.originGroup_name === r.cname + "_origin_group"; }

// The origin fields shared by "new resource" and the General tab: a host, or an origin group.
async function originFields(f, r) {
  let groups = [];
  try { groups = await api("GET", "/cdn/origin_groups"); } catch (e) { groups = []; }
  if (!Array.isArray(groups)) groups = groups.results || [];
  const own = ownGroup(r);
  const shared = groups.filter(g => !/_origin_group$/.test(g.name) || g.id === r.originGroup);
  const kind = select("res-origin-kind", [["host", "One origin host"], ["group", "An origin group"]], own ? "host" : "group");
  const host = input("res-origin", own ? r.origin : "", { placeholder: "origin.example.com:8080" });
  const group = select("res-group", shared.length
    ? shared.map(g => [String(g.id), `${g.name} (${(g.sources || []).map(s => s.source).join(", ")})`])
    : [["", "No origin groups yet"]]);
  if (!own) group.value = String(r.originGroup);
  const protocol = select("res-protocol", [["HTTP", "HTTP"], ["HTTPS", "HTTPS"], ["MATCH", "Match the viewer's scheme"]], r.originProtocol || "HTTP");
  const hostField = f.field("origin", host, "Origin (host[:port])", "Where edges fetch what they do not hold.");
  const groupField = f.field("originGroup", group, "Origin group", "Edges try its sources in order.");
  const sync = () => { hostField.hidden = kind.value !== "host"; groupField.hidden = kind.value !== "group"; };
  kind.addEventListener("change", sync);
  sync();
  return {
    nodes: [f.field("originKind", kind, "Fetch from"), hostField, groupField, f.field("originProtocol", protocol, "Origin protocol")],
    value: () => kind.value === "group"
      ? { originGroup: group.value ? Number(group.value) : null, originProtocol: protocol.value }
      : { origin: host.value.trim(), originProtocol: protocol.value },
    check: () => {
      if (kind.value === "host" && !host.value.trim()) { f.local(host, "give the origin's host, e.g. origin.example.com or 10.0.0.5:8080."); return false; }
      if (kind.value === "group" && !group.value) { f.local(group, "create an origin group first (POST /cdn/origin_groups), or give one host."); return false; }
      return true;
    },
  };
}

async function newPage() {
  navState("resources");
  const f = form("new-status");
  const cname = input("new-cname", "", { placeholder: "cdn.example.com" });
  const secondary = textarea("new-secondary", [], { placeholder: "one per line: video.example.com" });
  const ssl = checkbox("new-ssl", false);
  const origin = await originFields(f, {});
  const submit = el("button", { type: "submit", id: "new-submit" }, "Create");
  const body = el("form", { onsubmit: ev => {
    ev.preventDefault();
    f.clear();
    if (!cname.value.trim()) return f.local(cname, "give the hostname viewers use, e.g. cdn.example.com.");
    if (!origin.check()) return;
    busy(submit, async () => {
      try {
        const r = await api("POST", "/cdn/resources", { cname: cname.value.trim(), secondaryHostnames: lines(secondary.value), sslEnabled: ssl.checked, ...origin.value() });
        sessionStorage.setItem("tollgate-flash", `Resource ${r.cname} created. Edges serve it within a second; next, turn on the secure token.`);
        location.hash = "#/resources/" + r.id + "/secure";
      } catch (e) { f.fail(e); }
    });
  } },
    f.field("cname", cname, "Hostname (CNAME)", "The hostname viewers use; point its DNS at your edges."),
    f.field("secondaryHostnames", secondary, "Secondary hostnames (optional)", "More hostnames served the same way, one per line."),
    ...origin.nodes,
    f.check("sslEnabled", ssl, "HTTPS for viewers", "Links are made https://; the edges' certificate (tollgate edge --tls-cert) serves them."),
    f.status, submit);
  show("New resource", el("div", { class: "card" }, el("h1", {}, "New resource"), body));
  cname.focus();
}

async function tokensPage() {
  navState("tokens");
  const rows = el("tbody", { id: "token-rows" });
  const f = form("token-status");
  const name = input("token-name", "", { placeholder: "edge-paris-1" });
  const role = select("token-role", [["edge", "Edge: follows this control plane"], ["api", "API: manages resources (the panel, Terraform, the SDK)"]], "edge");
  const created = el("div", { id: "token-new", "aria-live": "polite" });
  const load = async () => {
    const list = await api("GET", "/tollgate/tokens");
    rows.replaceChildren(...list.map(t => el("tr", {},
      el("td", {}, String(t.id)), el("td", {}, t.name), el("td", {}, t.role),
      el("td", {}, confirmButton("token-revoke-" + t.id, "Revoke", `Revoke "${t.name}"? Whatever uses it is refused from now on.`, "Revoke now", async () => {
        try { await api("DELETE", "/tollgate/tokens/" + t.id); f.ok(`Token "${t.name}" revoked.`); await load(); }
        catch (e) { f.fail(e); }
      }, "secondary small")))));
  };
  const submit = el("button", { type: "submit", id: "token-create" }, "Create token");
  const body = el("form", { onsubmit: ev => {
    ev.preventDefault();
    f.clear();
    if (!name.value.trim()) return f.local(name, "give it a name that says where it is used.");
    busy(submit, async () => {
      try {
        const t = await api("POST", "/tollgate/tokens", { name: name.value.trim(), role: role.value });
        const line = `tollgate edge --control ${location.origin} --edge-token ${t.token} --state-dir /var/lib/tollgate-edge --listen 0.0.0.0:80`;
        created.replaceChildren(el("div", { class: "card notice" },
          el("h2", {}, `Token "${t.name}" (${t.role})`),
          el("p", {}, "Copy it now: it is shown once and never again."),
          el("div", { class: "row" }, el("code", { class: "url", id: "token-secret" }, t.token), copyButton("token-copy", () => t.token)),
          t.role === "edge" ? el("div", {}, el("p", {}, "Run the edge with it:"),
            el("pre", { id: "token-edge-line", class: "wrap" }, line), copyButton("token-line-copy", () => line)) : null));
        name.value = "";
        await load();
      } catch (e) { f.fail(e); }
    });
  } }, el("h2", {}, "New token"), f.field("name", name, "Name"), f.field("role", role, "Role"), f.status, submit);
  show("Tokens",
    el("div", { class: "card" }, el("h1", {}, "Tokens"),
      el("p", { class: "hint" }, "Tokens are listed without their secret: only a hash is stored."),
      el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "ID"), el("th", {}, "Name"), el("th", {}, "Role"), el("th", {}, ""))), rows))),
    created, el("div", { class: "card" }, body));
  await load();
}

// The audit log's actions, in words.
const ACTIONS = {
  "resource.create": "Created the resource", "resource.update": "Changed", "resource.delete": "Deleted the resource",
  "resource.purge": "Purged", "resource.prefetch": "Prefetched", "resource.prefetch_failed": "Prefetch failed",
  "token.create": "Created a token", "token.delete": "Revoked a token",
  "origin_group.create": "Created an origin group", "origin_group.update": "Changed an origin group", "origin_group.delete": "Deleted an origin group",
};

async function auditPage(resource) {
  navState("audit");
  const resources = await api("GET", "/cdn/resources");
  const filter = select("audit-filter", [["", "All resources"], ...resources.map(r => [String(r.id), `${r.cname} (${r.id})`])], resource || "");
  if (resource && ![...filter.options].some(o => o.value === resource)) filter.append(el("option", { value: resource }, `resource ${resource} (deleted)`));
  filter.value = resource || "";
  filter.addEventListener("change", () => { location.hash = filter.value ? "#/audit/" + filter.value : "#/audit"; });
  const names = Object.fromEntries(resources.map(r => [r.id, r.cname]));
  const list = await api("GET", "/tollgate/audit?limit=200" + (resource ? "&resource=" + resource : ""));
  const rows = el("tbody", { id: "audit-rows" }, ...list.map(e => {
    const t = when(e.at);
    return el("tr", {},
      el("td", { title: t.utc }, t.local, el("div", { class: "hint" }, ago(e.at))),
      el("td", {}, e.actor), el("td", { title: e.action }, ACTIONS[e.action] || e.action),
      el("td", {}, e.resource ? el("a", { href: "#/resources/" + e.resource }, names[e.resource] || String(e.resource)) : ""),
      el("td", { class: "detail" }, e.detail));
  }));
  show("Audit",
    el("div", { class: "card" }, el("h1", {}, "Audit log"),
      el("p", { class: "hint" }, "Who changed what and when, newest first (the last 200 entries)."),
      el("label", { for: "audit-filter" }, "Resource"), filter,
      el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "Who"), el("th", {}, "What"), el("th", {}, "Resource"), el("th", {}, "Detail"))), rows)),
      list.length ? null : el("p", { class: "hint", id: "audit-empty" }, "Nothing recorded yet.")));
}

// The edges' answers over the last ten minutes, per resource or for all, updated every 5 s:
// one line per series, each can be hidden (so one that equals another can be seen alone), a
// time axis, and the totals with hit ratio and bytes sent.
const SERIES = [
  ["served", "Served (2xx/3xx)", "#1f6feb", []],
  ["hits", "Cache hits", "#1f9d55", [6, 3]],
  ["bad_request", "400", "#8b5cf6", [2, 2]],
  ["forbidden", "403", "#c62828", []],
  ["gone", "410 (expired)", "#f59e0b", [8, 4]],
  ["origin_errors", "5xx (origin failed)", "#111827", [3, 3]],
  ["reported", "Would refuse (report mode)", "#db2777", [1, 3]],
];

// The chart on the page, drawn again when the window's size changes.
let redrawChart = () => {};
window.addEventListener("resize", () => redrawChart());

function chartCard(resourceId) {
  const shown = JSON.parse(localStorage.getItem("tollgate-series") || "null") || Object.fromEntries(SERIES.map(([k]) => [k, true]));
  const canvas = el("canvas", { id: "chart", role: "img", "aria-label": "Edge answers per 5 seconds over the last ten minutes" });
  const tiles = el("div", { class: "tiles", id: "chart-tiles" });
  const total = el("p", { class: "hint", id: "chart-total", "aria-live": "off" });
  let data = null;
  const legend = el("div", { class: "legend", role: "group", "aria-label": "Series shown" }, ...SERIES.map(([k, name, color]) => {
    const box = el("input", { type: "checkbox", id: "series-" + k, checked: shown[k] !== false });
    box.addEventListener("change", () => { shown[k] = box.checked; localStorage.setItem("tollgate-series", JSON.stringify(shown)); draw(); });
    const swatch = el("i");
    swatch.style.background = color;
    return el("label", { class: "inline" }, box, swatch, name);
  }));
  function draw() {
    if (!data || !canvas.isConnected) return;
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth || 600, h = canvas.clientHeight || 220;
    canvas.width = w * dpr; canvas.height = h * dpr;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const left = 40, right = 8, top = 8, bottom = 22, n = data.served.length;
    const visible = SERIES.filter(([k]) => shown[k] !== false);
    const max = Math.ceil(Math.max(4, ...visible.flatMap(([k]) => data[k])) / 4) * 4;
    const x = i => left + (w - left - right) * i / (n - 1), y = v => h - bottom - (h - top - bottom) * v / max;
    ctx.font = "11px system-ui, sans-serif"; ctx.lineWidth = 1;
    for (let g = 0; g <= 4; g++) {
      const v = max * g / 4;
      ctx.strokeStyle = "#e4e7ee"; ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(w - right, y(v)); ctx.stroke();
      ctx.fillStyle = "#687083"; ctx.textAlign = "right"; ctx.fillText(String(v), left - 6, y(v) + 4);
    }
    // A tick every two minutes, at whole minutes, labelled with the local time.
    ctx.textAlign = "center";
    for (let i = 0; i < n; i++) {
      const t = data.start + i * data.bucket_secs;
      if (t % 120 !== 0) continue;
      const d = new Date(t * 1000);
      ctx.strokeStyle = "#c9ceda"; ctx.beginPath(); ctx.moveTo(x(i), h - bottom); ctx.lineTo(x(i), h - bottom + 4); ctx.stroke();
      ctx.fillText(`${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`, x(i), h - 6);
    }
    for (const [k, , color, dash] of visible) {
      ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.setLineDash(dash); ctx.beginPath();
      data[k].forEach((v, i) => i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v)));
      ctx.stroke();
    }
    ctx.setLineDash([]);
  }
  async function load() {
    try { data = await api("GET", "/tollgate/stats" + (resourceId ? "?resource=" + resourceId : "")); } catch (e) { return; }
    const sum = k => (data[k] || []).reduce((a, b) => a + b, 0);
    const served = sum("served"), hits = sum("hits");
    const refused = sum("forbidden") + sum("gone") + sum("bad_request");
    const ratio = served ? Math.round(1000 * hits / served) / 10 + " %" : "–";
    tiles.replaceChildren(
      el("div", { class: "tile" }, el("b", { id: "tile-served" }, String(served)), "served"),
      el("div", { class: "tile" }, el("b", { id: "tile-ratio" }, ratio), "hit ratio"),
      el("div", { class: "tile" }, el("b", { id: "tile-bytes" }, bytes(sum("bytes"))), "sent"),
      el("div", { class: "tile" }, el("b", { id: "tile-refused" }, String(refused)), "refused"),
      el("div", { class: "tile" }, el("b", { id: "tile-errors" }, String(sum("origin_errors"))), "origin errors"));
    total.textContent = `Last 10 minutes, per ${data.bucket_secs} s: ${served} served, ${hits} cache hits, ${sum("bad_request")} malformed (400), ${sum("forbidden")} refused (403), ${sum("gone")} expired (410), ${sum("origin_errors")} origin errors (5xx), ${sum("reported")} served that report mode would refuse; ${bytes(sum("bytes"))} sent.`;
    draw();
  }
  load();
  every(5000, load);
  redrawChart = draw;
  return el("div", { class: "card", id: "chart-card" },
    el("h2", {}, resourceId ? "This resource's edge answers" : "Edge answers, all resources"),
    tiles, legend, canvas, total);
}

async function route() {
  // Timers of the previous page (charts, purge status, key usage) stop.
  for (const t of timers) clearInterval(t);
  timers = [];
  if (!token()) return loginPage();
  const h = location.hash;
  let m;
  try {
    if ((m = h.match(/^#\/resources\/(\d+)(?:\/(\w+))?$/))) await resourcePage(m[1], m[2] || "general");
    else if (h === "#/new") await newPage();
    else if (h === "#/tokens") await tokensPage();
    else if ((m = h.match(/^#\/audit(?:\/(\d+))?$/))) await auditPage(m[1]);
    else await listPage();
  } catch (e) {
    if (token()) show("Error", el("div", { class: "card" }, el("h1", {}, "Something went wrong"), el("p", { class: "error", id: "page-error" }, e.message), el("a", { href: "#/" }, "Back to the resources")));
  }
  const h1 = main.querySelector("h1");
  if (h1 && !main.contains(document.activeElement)) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); }
}

document.getElementById("logout").addEventListener("click", () => { sessionStorage.removeItem("tollgate-token"); location.hash = "#/"; route(); });
window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
