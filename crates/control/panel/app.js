// Tollgate panel: plain JavaScript, no build step. Talks to the same API as any client,
// with the API token the user logs in with (kept in sessionStorage, gone with the tab).
"use strict";

const main = document.getElementById("main");
let chartTimer = null;

function token() { return sessionStorage.getItem("tollgate-token"); }

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token() } };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const res = await fetch(path, opts);
  if (res.status === 401) { sessionStorage.removeItem("tollgate-token"); route(); throw new Error("Log in again"); }
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) { const e = new Error(data && data.message || res.statusText); e.field = data && data.field; throw e; }
  return data;
}

// Builds an element: el("div", {id: "x", class: "card"}, child, "text", ...).
function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") n.className = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (v === true) n.setAttribute(k, "");
    else if (v !== false && v !== null && v !== undefined) n.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) n.append(c);
  return n;
}

// Appends the children that are present (DOM append would print "null").
function add(parent, ...children) {
  parent.append(...children.filter(c => c !== null && c !== undefined));
}

function show(...nodes) {
  if (chartTimer) { clearInterval(chartTimer); chartTimer = null; }
  main.replaceChildren(...nodes);
}

// Gcore's rule for secure keys, checked as the user types (the API checks it again).
function keyProblem(k) {
  if (k.length < 6) return "The key must be at least 6 characters.";
  if (k.length > 32) return "The key must be at most 32 characters.";
  if (/\s/.test(k)) return "The key must not contain spaces.";
  if (!/^[\x21-\x7e]*$/.test(k)) return "Use printable ASCII characters only.";
  return "";
}

function generateKey() {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, b => alphabet[b % alphabet.length]).join("");
}

function loginPage(message) {
  document.getElementById("nav").hidden = true;
  const input = el("input", { type: "password", id: "login-token", placeholder: "tg_…", autocomplete: "off" });
  const err = el("p", { class: "error", id: "login-error" }, message || "");
  const form = el("form", { onsubmit: async ev => {
    ev.preventDefault();
    sessionStorage.setItem("tollgate-token", input.value.trim());
    try { await api("GET", "/cdn/resources"); location.hash = "#/"; route(); }
    catch (e) { loginPage("That token was not accepted."); }
  } },
    el("label", { for: "login-token" }, "API token"), input,
    el("p", { class: "hint" }, "Shown once when Tollgate first started, or made with: tollgate token create --role api --name NAME."),
    err, el("button", { type: "submit", id: "login-submit" }, "Log in"));
  show(el("div", { class: "card" }, el("h1", {}, "Log in"), form));
}

async function listPage() {
  const rows = el("tbody", { id: "resource-rows" });
  const err = el("p", { class: "error", id: "new-error" });
  const cname = el("input", { type: "text", id: "new-cname", placeholder: "cdn.example.com" });
  const origin = el("input", { type: "text", id: "new-origin", placeholder: "origin.example.com:8080" });
  const form = el("form", { onsubmit: async ev => {
    ev.preventDefault();
    try {
      const r = await api("POST", "/cdn/resources", { cname: cname.value.trim(), origin: origin.value.trim() });
      location.hash = "#/resources/" + r.id + "/secure";
    } catch (e) { err.textContent = (e.field ? e.field + ": " : "") + e.message; }
  } }, el("h2", {}, "New resource"),
    el("label", { for: "new-cname" }, "Hostname (CNAME)"), cname,
    el("label", { for: "new-origin" }, "Origin (host[:port])"), origin, err,
    el("button", { type: "submit", id: "new-submit" }, "Create"));
  const chart = chartCard(null);
  show(el("div", { class: "card" }, el("h1", {}, "CDN resources"),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "ID"), el("th", {}, "Hostname"), el("th", {}, "Origin"), el("th", {}, "Secure token"))), rows)),
    chart, el("div", { class: "card" }, form));
  for (const r of await api("GET", "/cdn/resources")) {
    const sk = r.options && r.options.secure_key;
    rows.append(el("tr", {}, el("td", {}, String(r.id)),
      el("td", {}, el("a", { href: "#/resources/" + r.id }, r.cname)), el("td", {}, r.origin),
      el("td", {}, sk && sk.enabled ? (sk.type === 2 ? "on" : "on, with client IP") : "off")));
  }
}

async function resourcePage(id, tab) {
  const r = await api("GET", "/cdn/resources/" + id);
  const tabs = [["general", "General"], ["secure", "Secure token"], ["links", "Link generator"]];
  const body = el("div", {});
  const bar = el("div", { class: "tabs" }, ...tabs.map(([t, label]) =>
    el("button", { id: "tab-" + t, class: t === tab ? "active" : "", onclick: () => { location.hash = "#/resources/" + id + "/" + t; } }, label)));
  show(el("div", { class: "card" }, el("h1", {}, r.cname + " (resource " + r.id + ")"), bar, body), chartCard(r.id));
  if (tab === "secure") secureTab(body, r);
  else if (tab === "links") linksTab(body, r);
  else generalTab(body, r);
}

function generalTab(body, r) {
  const origin = el("input", { type: "text", id: "gen-origin", value: r.origin });
  const active = el("input", { type: "checkbox", id: "gen-active", checked: r.active !== false });
  const status = el("p", { class: "error", id: "gen-status" });
  add(body, el("label", { for: "gen-origin" }, "Origin"), origin,
    el("label", { class: "inline" }, active, "Active"), status,
    el("button", { id: "gen-save", onclick: async () => {
      try { await api("PATCH", "/cdn/resources/" + r.id, { origin: origin.value.trim(), active: active.checked });
        status.className = "ok"; status.textContent = "Saved. Edges apply it within a second."; }
      catch (e) { status.className = "error"; status.textContent = (e.field ? e.field + ": " : "") + e.message; }
    } }, "Save"));
}

function secureTab(body, r) {
  const sk = (r.options && r.options.secure_key) || { enabled: false, type: 0 };
  const enabled = el("input", { type: "checkbox", id: "sk-enabled", checked: !!sk.enabled });
  const key = el("input", { type: "text", id: "sk-key", value: sk.key || "", autocomplete: "off", spellcheck: "false" });
  const keyErr = el("p", { class: "error", id: "sk-key-error" });
  const withIp = el("input", { type: "checkbox", id: "sk-ip", checked: (sk.type || 0) === 0 });
  const status = el("p", { class: "error", id: "sk-status" });
  const check = () => { const p = enabled.checked ? keyProblem(key.value) : ""; keyErr.textContent = p; key.classList.toggle("invalid", !!p); return !p; };
  key.addEventListener("input", check);
  enabled.addEventListener("change", check);
  // Tollgate's extensions (report mode, subnet binding, debug secret): kept as they are unless
  // changed here, so a save never drops what the API set.
  const mode = el("select", { id: "sk-mode" },
    el("option", { value: "enforce" }, "Enforce: refuse what the token refuses"),
    el("option", { value: "report" }, "Report only: count what would be refused, serve it"));
  mode.value = sk.mode || "enforce";
  const v4 = el("input", { type: "number", id: "sk-prefix-v4", min: "1", max: "32", placeholder: "24", value: sk.ip_prefix ? sk.ip_prefix.v4 : "" });
  const v6 = el("input", { type: "number", id: "sk-prefix-v6", min: "1", max: "128", placeholder: "64", value: sk.ip_prefix ? sk.ip_prefix.v6 : "" });
  const debug = el("input", { type: "text", id: "sk-debug", value: sk.debug_secret || "", autocomplete: "off", spellcheck: "false", placeholder: "16+ characters; empty: off" });
  const strength = r.secure_key_strength && r.secure_key_strength.key;
  add(body,
    el("p", { class: "hint" }, "Only links signed with this key are served: ?md5=TOKEN&expires=UNIX_TIME."),
    el("label", { class: "inline switch" }, enabled, "Enable secure token"),
    el("label", { for: "sk-key" }, "Key"),
    el("div", { class: "row" }, key, el("button", { class: "secondary", id: "sk-generate", onclick: () => { key.value = generateKey(); check(); } }, "Generate")),
    el("p", { class: "hint" }, "6 to 32 characters; letters, digits and symbols, no spaces."), keyErr,
    strength ? el("p", { class: strength.warning ? "error" : "hint", id: "sk-strength" },
      strength.warning ? "Key strength: " + strength.warning : `Key strength: ${strength.bits} bits (${strength.length} characters of ${strength.alphabet} symbols).`) : null,
    el("label", { class: "inline" }, withIp, "Add a client's IP to the token"),
    el("label", { for: "sk-mode" }, "Mode"), mode,
    el("p", { class: "hint" }, "Report only lets a site turn tokens on safely: refusals are counted (the chart's \"would refuse\") and served."),
    el("label", {}, "Bind to the client's network (optional, with the client's IP)"),
    el("div", { class: "row" }, el("span", {}, "IPv4 /"), v4, el("span", {}, "IPv6 /"), v6),
    el("p", { class: "hint" }, "Links then hash the viewer's network, e.g. 203.0.113.0/24, so an address that changes within it keeps working."),
    el("label", { for: "sk-debug" }, "Debug secret (X-Tollgate-Debug)"), debug,
    status,
    el("button", { id: "sk-save", onclick: async () => {
      if (!check()) return;
      const next = { ...sk, enabled: enabled.checked, type: withIp.checked ? 0 : 2 };
      if (key.value) next.key = key.value;
      if (mode.value === "report") next.mode = "report"; else delete next.mode;
      if (v4.value || v6.value) next.ip_prefix = { v4: Number(v4.value || 24), v6: Number(v6.value || 64) }; else delete next.ip_prefix;
      if (debug.value.trim()) next.debug_secret = debug.value.trim(); else delete next.debug_secret;
      try { await api("PATCH", "/cdn/resources/" + r.id, { options: { secure_key: next } });
        status.className = "ok"; status.textContent = "Saved. Edges enforce it within a second."; }
      catch (e) { status.className = "error"; status.textContent = (e.field ? e.field + ": " : "") + e.message; }
    } }, "Save"),
    rotationCard(r, sk),
    revocationsCard(r, sk));
  check();
}

// "3 h ago" for a Unix time or an RFC 3339 one.
function ago(t) {
  const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " days ago";
}

// Key rotation (Tollgate's previous_key): a new key signs at once, the old one keeps verifying
// links already handed out until they have expired; then it is dropped.
function rotationCard(r, sk) {
  if (!sk.enabled || !sk.key) return null;
  const status = el("p", { class: "error", id: "rot-status" });
  const save = async (next, done) => {
    try {
      await api("PATCH", "/cdn/resources/" + r.id, { options: { secure_key: next } });
      // Show the resource as stored now, then say what happened on the new page.
      await route();
      const shown = document.getElementById("rot-status");
      if (shown) { shown.className = "ok"; shown.textContent = done; }
    } catch (e) { status.className = "error"; status.textContent = (e.field ? e.field + ": " : "") + e.message; }
  };
  const base = { ...sk };
  delete base.previous_key;
  const usage = r.secure_key_usage || {};
  const used = k => k && k.matches ? `${k.matches} links matched, last ${ago(k.last_match)}` : "no link matched it yet";
  return el("div", { class: "card", id: "rotation" },
    el("h2", {}, "Key rotation"),
    sk.previous_key
      ? el("p", { id: "rot-state" }, "The key above signs; a previous key still verifies links made with it.")
      : el("p", { id: "rot-state" }, "One key signs and verifies."),
    el("p", { class: "hint", id: "rot-usage" }, "Current key: " + used(usage.key) +
      (sk.previous_key ? ". Previous key: " + used(usage.previous_key) + "." : ".")),
    el("div", { class: "row" },
      el("button", { class: "secondary", id: "rot-rotate", onclick: () =>
        save({ ...base, key: generateKey(), previous_key: sk.key }, "Rotated: a new key signs, the old one still verifies.") }, "Rotate key"),
      sk.previous_key ? el("button", { class: "secondary", id: "rot-drop", onclick: () =>
        save(base, "The previous key no longer verifies.") }, "Stop accepting the previous key") : null),
    status);
}

// Revoked links (Tollgate's secure_key_revocations): refused by edges before they expire.
function revocationsCard(r, sk) {
  if (!sk.enabled) return null;
  const path = "/cdn/resources/" + r.id + "/secure_key/revocations";
  const rows = el("ul", { id: "rev-list" });
  const input = el("input", { type: "text", id: "rev-link", placeholder: "a leaked link, or a path like /course/ for everything under it", spellcheck: "false" });
  const status = el("p", { class: "error", id: "rev-status" });
  const load = async () => {
    const list = await api("GET", path);
    rows.replaceChildren(...list.results.map(v => el("li", {},
      v.token ? `link ${v.token.slice(0, 6)}… until ${new Date(v.expires * 1000).toISOString()}` : (v.prefix ? "everything under " : "every link of ") + v.path, " ",
      el("button", { class: "link", id: "rev-drop-" + v.id, onclick: async () => { await api("DELETE", path + "/" + v.id); load(); } }, "Drop"))));
  };
  load().catch(() => {});
  return el("div", { class: "card", id: "revocations" },
    el("h2", {}, "Revoked links"),
    el("label", { for: "rev-link" }, "Revoke"), input, status,
    el("button", { class: "secondary", id: "rev-add", onclick: async () => {
      const v = input.value.trim();
      const req = v.includes("md5=") ? { link: v } : (v.endsWith("/") ? { path: v, prefix: true } : { path: v });
      try { await api("POST", path, req); status.className = "ok"; status.textContent = "Revoked. Edges refuse it within a second."; input.value = ""; load(); }
      catch (e) { status.className = "error"; status.textContent = (e.field ? e.field + ": " : "") + e.message; }
    } }, "Revoke"), rows);
}

function linksTab(body, r) {
  const sk = r.options && r.options.secure_key;
  const path = el("input", { type: "text", id: "link-path", value: "/", spellcheck: "false" });
  const lifetime = el("input", { type: "number", id: "link-lifetime", value: "3600", min: "1" });
  const ip = el("input", { type: "text", id: "link-ip", placeholder: "viewer's address, e.g. 203.0.113.7" });
  const err = el("p", { class: "error", id: "link-error" });
  const out = el("div", { id: "link-out" });
  add(body, 
    sk && sk.enabled ? null : el("p", { class: "error" }, "The secure token is off for this resource."),
    el("label", { for: "link-path" }, "Path"), path,
    el("label", { for: "link-lifetime" }, "Lifetime (seconds)"), lifetime,
    sk && (sk.type || 0) === 0 ? el("label", { for: "link-ip" }, "Client IP") : null,
    sk && (sk.type || 0) === 0 ? ip : null, err,
    el("button", { id: "link-submit", onclick: async () => {
      err.textContent = ""; out.replaceChildren();
      const req = { path: path.value, lifetime: Number(lifetime.value) };
      if (ip.value.trim()) req.ip = ip.value.trim();
      try {
        const s = await api("POST", "/cdn/resources/" + r.id + "/sign", req);
        const copied = el("span", { class: "ok", id: "link-copied" });
        out.append(el("label", {}, "Signed URL"), el("code", { class: "url", id: "link-url" }, s.url),
          el("div", { class: "row" }, el("button", { class: "secondary", id: "link-copy", onclick: async () => {
            try { await navigator.clipboard.writeText(s.url); copied.textContent = "Copied"; }
            catch (e) { copied.textContent = "Select the URL and copy it"; }
          } }, "Copy"), copied),
          el("label", {}, "PHP"), el("pre", { id: "snip-php" }, s.snippets.php),
          el("label", {}, "Python"), el("pre", { id: "snip-python" }, s.snippets.python),
          el("label", {}, "Node.js"), el("pre", { id: "snip-node" }, s.snippets.node),
          el("label", {}, "Shell (OpenSSL)"), el("pre", { id: "snip-openssl" }, s.snippets.openssl));
      } catch (e) { err.textContent = (e.field ? e.field + ": " : "") + e.message; }
    } }, "Generate link"), out);
}

// A line chart of the edges' answers (served, cache hits, 403, 410) over the last ten minutes.
function chartCard(resourceId) {
  const canvas = el("canvas", { id: "chart", width: "900", height: "220" });
  const series = [["served", "#1f6feb"], ["hits", "#1f9d55"], ["forbidden", "#c62828"], ["gone", "#f59e0b"], ["reported", "#7c3aed"]];
  const names = { served: "served", hits: "cache hits", forbidden: "403", gone: "410", reported: "would refuse (report mode)" };
  const legend = el("div", { class: "legend" }, ...series.map(([s, c]) => { const i = el("i"); i.style.background = c; return el("span", {}, i, names[s]); }));
  const total = el("p", { class: "hint", id: "chart-total" });
  async function draw() {
    let data;
    try { data = await api("GET", "/tollgate/stats" + (resourceId ? "?resource=" + resourceId : "")); } catch (e) { return; }
    const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, pad = 24;
    ctx.clearRect(0, 0, w, h);
    // A multiple of 4 keeps the grid labels whole numbers.
    const max = Math.ceil(Math.max(4, ...series.flatMap(([s]) => data[s])) / 4) * 4;
    ctx.strokeStyle = "#dde1ea"; ctx.fillStyle = "#687083"; ctx.font = "11px system-ui";
    for (let g = 0; g <= 4; g++) { const y = pad + (h - 2 * pad) * g / 4; ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w - 4, y); ctx.stroke(); ctx.fillText(String(Math.round(max * (4 - g) / 4)), 0, y + 4); }
    for (const [s, color] of series) {
      const v = data[s], n = v.length; ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
      v.forEach((y, i) => { const px = pad + (w - pad - 4) * i / (n - 1), py = h - pad - (h - 2 * pad) * y / max; i ? ctx.lineTo(px, py) : ctx.moveTo(px, py); });
      ctx.stroke();
    }
    const sum = s => data[s].reduce((a, b) => a + b, 0);
    total.textContent = `Last 10 minutes, per ${data.bucket_secs} s: ${sum("served")} served, ${sum("hits")} cache hits, ${sum("forbidden")} refused (403), ${sum("gone")} expired (410), ${sum("reported")} served that report mode would refuse.`;
  }
  draw();
  chartTimer = setInterval(draw, 5000);
  return el("div", { class: "card" }, el("h2", {}, "Edge answers"), legend, canvas, total);
}

async function route() {
  if (!token()) return loginPage();
  document.getElementById("nav").hidden = false;
  const m = location.hash.match(/^#\/resources\/(\d+)(?:\/(\w+))?$/);
  try {
    if (m) await resourcePage(m[1], m[2] || "general");
    else await listPage();
  } catch (e) { if (token()) show(el("div", { class: "card" }, el("p", { class: "error" }, e.message))); }
}

document.getElementById("logout").addEventListener("click", () => { sessionStorage.removeItem("tollgate-token"); location.hash = "#/"; route(); });
window.addEventListener("hashchange", route);
route();
