// Tollgate panel: one resource, in tabs like Gcore's. Each tab edits its own options and saves
// them with one PATCH (options merge one level: an option sent replaces that option, `null`
// removes it), so a tab never touches what another tab, or the API, set.
"use strict";

const TABS = [
  ["general", "General"], ["secure", "Secure token"], ["cache", "Cache"], ["streaming", "Streaming"],
  ["access", "Access"], ["protection", "Origin protection"], ["purge", "Purge"], ["links", "Link generator"],
];

async function resourcePage(id, tab) {
  navState("resources");
  if (!TABS.some(([t]) => t === tab)) tab = "general";
  const tabWasFocused = document.activeElement && document.activeElement.getAttribute("role") === "tab";
  const r = await api("GET", "/cdn/resources/" + id);
  const body = el("div", { id: "tab-body", role: "tabpanel", "aria-labelledby": "tab-" + tab });
  const bar = el("div", { class: "tabs", role: "tablist", "aria-label": "Resource settings" }, ...TABS.map(([t, label]) =>
    el("a", { id: "tab-" + t, role: "tab", href: "#/resources/" + id + "/" + t, "aria-selected": t === tab ? "true" : "false", class: t === tab ? "active" : "" }, label)));
  const flash = sessionStorage.getItem("tollgate-flash");
  sessionStorage.removeItem("tollgate-flash");
  show(r.cname,
    el("div", { class: "card" },
      el("p", { class: "crumbs" }, el("a", { href: "#/" }, "Resources"), " / resource " + r.id,
        " · ", el("a", { href: "#/audit/" + r.id, id: "history" }, "History")),
      el("h1", {}, r.cname), flash ? el("p", { class: "status ok", id: "flash" }, flash) : null,
      bar, body),
    chartCard(r.id));
  const render = { general: generalTab, secure: secureTab, cache: cacheTab, streaming: streamingTab, access: accessTab, protection: protectionTab, purge: purgeTab, links: linksTab }[tab];
  await render(body, r);
  if (tabWasFocused) document.getElementById("tab-" + tab).focus();
}

// PATCHes `change` into resource `r`, then says `done` (or puts the errors by their fields).
async function patch(r, change, f, done) {
  try {
    const next = await api("PATCH", "/cdn/resources/" + r.id, change);
    Object.assign(r, next);
    f.ok(done);
    return true;
  } catch (e) { f.fail(e); return false; }
}

function saveButton(id, f, action) {
  const b = el("button", { type: "submit", id }, "Save");
  return { button: b, submit: ev => { ev.preventDefault(); f.clear(); busy(b, action); } };
}

const APPLIED = "Saved. Edges apply it within a second.";

async function generalTab(body, r) {
  const f = form("gen-status");
  const cname = input("gen-cname", r.cname);
  const secondary = textarea("gen-secondary", r.secondaryHostnames);
  const active = checkbox("gen-active", r.active !== false);
  const ssl = checkbox("gen-ssl", r.sslEnabled);
  const origin = await originFields(f, r);
  const save = saveButton("gen-save", f, async () => {
    if (!origin.check()) return;
    await patch(r, { cname: cname.value.trim(), secondaryHostnames: lines(secondary.value), active: active.checked, sslEnabled: ssl.checked, ...origin.value() }, f, APPLIED);
  });
  const gone = form("del-status");
  const typed = input("del-confirm-name", "", { placeholder: r.cname });
  const del = el("button", { type: "button", class: "danger", id: "del-go", disabled: true }, "Delete this resource");
  typed.addEventListener("input", () => { del.disabled = typed.value.trim() !== r.cname; });
  del.addEventListener("click", () => busy(del, async () => {
    try { await api("DELETE", "/cdn/resources/" + r.id); location.hash = "#/"; }
    catch (e) { gone.fail(e); }
  }));
  put(body, 
    el("form", { onsubmit: save.submit },
      f.field("cname", cname, "Hostname (CNAME)"),
      f.field("secondaryHostnames", secondary, "Secondary hostnames", "One per line; served like the main hostname."),
      ...origin.nodes,
      f.check("sslEnabled", ssl, "HTTPS for viewers", "Links are made https:// (the edges' certificate serves them)."),
      f.check("active", active, "Active", "An inactive resource is not served: edges answer 404."),
      f.status, save.button),
    el("div", { class: "card danger-zone", id: "delete" },
      el("h2", {}, "Delete the resource"),
      el("p", {}, "Edges stop serving it within a second and drop what they cached. This cannot be undone."),
      gone.field("confirm", typed, `Type ${r.cname} to confirm`), gone.status, del));
}

function secureTab(body, r) {
  const sk = (r.options && r.options.secure_key) || { enabled: false, type: 0 };
  const f = form("sk-status");
  const enabled = checkbox("sk-enabled", sk.enabled);
  const key = input("sk-key", sk.key);
  const withIp = checkbox("sk-ip", (sk.type || 0) === 0);
  const mode = select("sk-mode", [["enforce", "Enforce: refuse bad links"], ["report", "Report only: serve, count refusals"]], sk.mode || "enforce");
  const bind = checkbox("sk-bind", !!sk.ip_prefix);
  const v4 = el("input", { type: "number", id: "sk-prefix-v4", min: "1", max: "32", value: sk.ip_prefix ? sk.ip_prefix.v4 : 24, "aria-label": "IPv4 prefix length" });
  const v6 = el("input", { type: "number", id: "sk-prefix-v6", min: "1", max: "128", value: sk.ip_prefix ? sk.ip_prefix.v6 : 64, "aria-label": "IPv6 prefix length" });
  const debug = input("sk-debug", sk.debug_secret, { placeholder: "16 or more characters; empty: off" });
  const keyField = f.field(["options.secure_key.key", "options.secure_key"], key, "Key", "6 to 32 characters; letters, digits and symbols, no spaces.");
  const prefixField = f.group("options.secure_key.ip_prefix.v4", el("fieldset", { id: "sk-prefix" }, el("legend", {}, "Network sizes"),
    el("div", { class: "row" }, el("label", { for: "sk-prefix-v4" }, "IPv4 /"), v4, el("label", { for: "sk-prefix-v6" }, "IPv6 /"), v6)), "Network sizes");
  const strength = r.secure_key_strength && r.secure_key_strength.key;
  // What the form holds, as the API would store it.
  const edited = () => {
    const next = { ...sk, enabled: enabled.checked, type: withIp.checked ? 0 : 2 };
    if (key.value) next.key = key.value; else delete next.key;
    if (mode.value === "report") next.mode = "report"; else delete next.mode;
    if (bind.checked && withIp.checked) next.ip_prefix = { v4: Number(v4.value), v6: Number(v6.value) }; else delete next.ip_prefix;
    if (debug.value.trim()) next.debug_secret = debug.value.trim(); else delete next.debug_secret;
    return next;
  };
  // Equal whatever the order of the top-level fields (nested ones, ip_prefix, keep the API's).
  const canon = o => JSON.stringify(Object.keys(o).sort().map(k => [k, o[k]]));
  const dirty = () => canon(edited()) !== canon(sk);
  const check = () => {
    const p = enabled.checked || key.value ? keyProblem(key.value) : "";
    f.clear();
    if (p) f.local(key, p);
    return !p;
  };
  const syncBind = () => { bind.disabled = !withIp.checked; v4.disabled = v6.disabled = !(bind.checked && withIp.checked); };
  key.addEventListener("input", check);
  enabled.addEventListener("change", check);
  withIp.addEventListener("change", syncBind);
  bind.addEventListener("change", syncBind);
  syncBind();
  const save = saveButton("sk-save", f, async () => {
    if (!check()) return;
    if (await patch(r, { options: { secure_key: edited() } }, f, "Saved. Edges enforce it within a second.")) {
      // Shown again from what is stored: the rotation card appears once there is a key.
      body.replaceChildren();
      secureTab(body, r);
      document.getElementById("sk-status").className = "status ok";
      document.getElementById("sk-status").textContent = "Saved. Edges enforce it within a second.";
    }
  });
  put(body, 
    el("form", { onsubmit: save.submit },
      el("p", { class: "hint" }, "Only links signed with this key are served: ?md5=TOKEN&expires=UNIX_TIME."),
      f.check("options.secure_key.enabled", enabled, "Enable secure token"),
      el("div", { class: "field" }, keyField,
        el("button", { type: "button", class: "secondary small", id: "sk-generate", onclick: () => { key.value = generateKey(); check(); } }, "Generate a key")),
      strength ? el("p", { class: strength.warning ? "error" : "hint", id: "sk-strength" },
        strength.warning ? "Key strength: " + strength.warning : `Key strength: ${strength.bits} bits (${strength.length} characters of ${strength.alphabet} symbols).`) : null,
      f.check("options.secure_key.type", withIp, "Add the viewer's IP to the token (type 0)",
        "A link then works only from the address it was made for; off (type 2), anyone holding it can use it until it expires."),
      f.field("options.secure_key.mode", mode, "Mode", "Report only lets a site turn tokens on safely: refusals are counted (the chart's \"would refuse\") and served."),
      f.check("options.secure_key.ip_prefix", bind, "Hash the viewer's network instead of the address",
        "With the IP in the token: a viewer whose address changes within the network keeps working (e.g. 203.0.113.0/24)."),
      prefixField,
      f.field("options.secure_key.debug_secret", debug, "Debug secret (X-Tollgate-Debug)", "Operators who send it see why a link is refused, in X-Tollgate-Reason; empty: off."),
      f.status, save.button),
    rotationCard(r, sk, dirty),
    revocationsCard(r, sk));
  if (key.value) check();
}

// Key rotation (Tollgate's previous_key): a new key signs at once, the old one keeps verifying
// links already handed out until they have expired; then it is dropped. Asks first, and never
// acts over unsaved edits of the form above.
function rotationCard(r, sk, dirty) {
  if (!sk.enabled || !sk.key) return null;
  const f = form("rot-status");
  const base = { ...sk };
  delete base.previous_key;
  const act = async (next, done) => {
    if (dirty()) return f.bad("Save or undo your changes above first: rotating stores the key.");
    if (await patch(r, { options: { secure_key: next } }, f, done)) {
      const body = document.getElementById("tab-body");
      body.replaceChildren();
      secureTab(body, await api("GET", "/cdn/resources/" + r.id));
      const s = document.getElementById("rot-status");
      s.className = "status ok"; s.textContent = done;
      document.getElementById("rotation").scrollIntoView({ block: "nearest" });
    }
  };
  const usage = r.secure_key_usage || {};
  const used = k => k && k.matches ? `${k.matches} links matched, last ${ago(k.last_match)}` : "no link matched it yet";
  const usageText = u => "Current key: " + used(u.key) + (sk.previous_key ? ". Previous key: " + used(u.previous_key) + "." : ".");
  // Edges report every few seconds: the counts follow without a reload.
  every(5000, async () => {
    const line = document.getElementById("rot-usage");
    if (!line) return;
    try { line.textContent = usageText((await api("GET", "/cdn/resources/" + r.id)).secure_key_usage || {}); } catch (e) { /* the next tick tries again */ }
  });
  return el("div", { class: "card", id: "rotation" },
    el("h2", {}, "Key rotation"),
    el("p", { id: "rot-state" }, sk.previous_key
      ? "The key above signs; a previous key still verifies links made with it."
      : "One key signs and verifies."),
    el("p", { class: "hint", id: "rot-usage", "aria-live": "off" }, usageText(usage)),
    el("div", { class: "row" },
      confirmButton("rot-rotate", "Rotate key",
        "A new random key will sign from now on. Links made with the current key keep working until they expire, because it stays accepted as the previous key" +
          (sk.previous_key ? " (the key before it is no longer accepted)." : "."),
        "Rotate now", () => act({ ...base, key: generateKey(), previous_key: sk.key }, "Rotated: a new key signs, the old one still verifies.")),
      sk.previous_key ? confirmButton("rot-drop", "Stop accepting the previous key",
        "Links made with the previous key will be refused (403) from now on. " + (usage.previous_key && usage.previous_key.matches
          ? `It last matched a link ${ago(usage.previous_key.last_match)}.` : "No link has matched it since the rotation."),
        "Stop accepting it", () => act(base, "The previous key no longer verifies.")) : null),
    f.status);
}

// Revoked links (Tollgate's secure_key_revocations): refused by edges before they expire.
function revocationsCard(r, sk) {
  if (!sk.enabled) return null;
  const path = "/cdn/resources/" + r.id + "/secure_key/revocations";
  const rows = el("ul", { id: "rev-list", class: "plain" });
  const f = form("rev-status");
  const link = input("rev-link", "", { placeholder: "a leaked link, or a path like /course/ for everything under it" });
  const load = async () => {
    const list = await api("GET", path);
    rows.replaceChildren(...list.results.map(v => el("li", {},
      v.token ? `link ${v.token.slice(0, 6)}… until ${when(v.expires).local}` : (v.prefix ? "everything under " : "every link of ") + v.path,
      v.expires_at_or_below ? ` (links expiring by ${when(v.expires_at_or_below).local})` : "", " ",
      el("button", { type: "button", class: "link", id: "rev-drop-" + v.id, "aria-label": "Drop revocation " + v.id, onclick: async () => { await api("DELETE", path + "/" + v.id); f.ok("Dropped: edges serve it again."); load(); } }, "Drop"))));
    if (!list.results.length) rows.append(el("li", { class: "hint" }, "No link is revoked."));
  };
  load().catch(() => {});
  const add = el("button", { type: "submit", id: "rev-add", class: "secondary" }, "Revoke");
  return el("div", { class: "card", id: "revocations" },
    el("h2", {}, "Revoked links"),
    el("form", { onsubmit: ev => {
      ev.preventDefault(); f.clear();
      const v = link.value.trim();
      if (!v) return f.local(link, "paste the link, or give a path.");
      const req = v.includes("md5=") ? { link: v } : (v.endsWith("/") ? { path: v, prefix: true } : { path: v });
      busy(add, async () => {
        try { await api("POST", path, req); f.ok("Revoked. Edges refuse it within a second."); link.value = ""; load(); }
        catch (e) { f.fail(e); }
      });
    } }, f.field(["link", "path", "token", "expires", "prefix"], link, "Revoke a link or a path"), f.status, add),
    rows);
}

// Rows of two text inputs (status and time, header and value), with add and remove.
function pairRows(id, entries, placeholders) {
  const wrap = el("div", { class: "pairs", id });
  const addRow = (a, b) => {
    const n = wrap.children.length;
    const row = el("div", { class: "row pair" },
      input(`${id}-k${n}`, a, { placeholder: placeholders[0], "aria-label": placeholders[2] }),
      input(`${id}-v${n}`, b, { placeholder: placeholders[1], "aria-label": placeholders[3] }),
      el("button", { type: "button", class: "link", "aria-label": "Remove", onclick: () => row.remove() }, "Remove"));
    wrap.append(row);
  };
  for (const [a, b] of entries) addRow(a, b);
  const more = el("button", { type: "button", class: "secondary small", id: id + "-add", onclick: () => addRow("", "") }, "Add");
  return {
    node: el("div", {}, wrap, more),
    value: () => Object.fromEntries([...wrap.children].map(row => row.querySelectorAll("input"))
      .map(([a, b]) => [a.value.trim(), b.value.trim()]).filter(([a]) => a)),
    first: () => wrap.querySelector("input") || more,
  };
}

function cacheTab(body, r) {
  const o = r.options || {};
  const f = form("cache-status");
  const ecs = o.edge_cache_settings;
  const mode = select("cache-mode", [
    ["origin", "Follow the origin's headers; this time when it sends none"],
    ["override", "Cache this long whatever the origin says"],
    ["off", "Not set: follow the origin, 1 hour when it sends none"],
  ], !ecs || !ecs.enabled ? "off" : (ecs.value ? "override" : "origin"));
  const time = input("cache-time", ecs ? (ecs.value || ecs.default) : "", { placeholder: "e.g. 10m, 4h, 1d or 3600s" });
  const custom = pairRows("cache-custom", Object.entries((ecs && ecs.custom_values) || {}), ["404", "10s", "Status", "Cache time"]);
  const qp = o.query_params_whitelist && o.query_params_whitelist.enabled ? "only"
    : o.query_params_blacklist && o.query_params_blacklist.enabled ? "except"
      : o.ignoreQueryString && o.ignoreQueryString.enabled && o.ignoreQueryString.value ? "ignore" : "all";
  const qpMode = select("qp-mode", [["all", "The whole query string is in the cache key"], ["ignore", "Ignore the query string (one copy per path)"],
    ["only", "Only these parameters are in the key"], ["except", "Every parameter but these is in the key"]], qp);
  const qpList = input("qp-list", ((qp === "only" ? o.query_params_whitelist : qp === "except" ? o.query_params_blacklist : null) || { value: [] }).value.join(", "), { placeholder: "e.g. lang, quality" });
  const bc = o.browser_cache_settings;
  const bcOn = checkbox("bc-on", bc && bc.enabled);
  const bcTime = input("bc-time", bc ? bc.value : "", { placeholder: "e.g. 1h; 0s: no-cache" });
  const stale = new Set(o.stale && o.stale.enabled ? o.stale.value : []);
  const conditions = ["error", "timeout", "invalid_header", "updating", "http_403", "http_404", "http_429", "http_500", "http_502", "http_503", "http_504"];
  const staleBoxes = conditions.map(c => checkbox("stale-" + c, stale.has(c)));
  const sync = () => { time.disabled = mode.value === "off"; qpList.disabled = !["only", "except"].includes(qpMode.value); bcTime.disabled = !bcOn.checked; };
  for (const x of [mode, qpMode, bcOn]) x.addEventListener("change", sync);
  sync();
  const save = saveButton("cache-save", f, async () => {
    const t = time.value.trim();
    if (mode.value !== "off" && !t) return f.local(time, "give a time like 10m, 4h or 1d.");
    const cv = custom.value();
    const options = {
      edge_cache_settings: mode.value === "off" ? (Object.keys(cv).length ? { enabled: true, custom_values: cv } : null)
        : { enabled: true, [mode.value === "override" ? "value" : "default"]: t, ...(Object.keys(cv).length ? { custom_values: cv } : {}) },
      ignoreQueryString: qpMode.value === "ignore" ? { enabled: true, value: true } : null,
      query_params_whitelist: qpMode.value === "only" ? { enabled: true, value: lines(qpList.value) } : null,
      query_params_blacklist: qpMode.value === "except" ? { enabled: true, value: lines(qpList.value) } : null,
      browser_cache_settings: bcOn.checked ? { enabled: true, value: bcTime.value.trim() } : null,
      stale: staleBoxes.some(b => b.checked) ? { enabled: true, value: conditions.filter((c, i) => staleBoxes[i].checked) } : null,
    };
    await patch(r, { options }, f, APPLIED);
  });
  const customField = f.group("options.edge_cache_settings.custom_values", el("fieldset", { id: "cache-custom-set" }, el("legend", {}, "Per status (optional)"),
    el("p", { class: "hint" }, "A time per answer status, before the one above: 404 10s, any 1m; 0s: not cached."), custom.node), "Per status");
  put(body, el("form", { onsubmit: save.submit },
    el("h2", {}, "Edge cache"),
    f.field("options.edge_cache_settings.enabled", mode, "How long edges keep answers"),
    f.field(["options.edge_cache_settings.value", "options.edge_cache_settings.default", "options.edge_cache_settings"], time, "Cache time"),
    customField,
    el("h2", {}, "Cache key"),
    f.field(["options.ignoreQueryString", "options.query_params_whitelist", "options.query_params_blacklist"], qpMode, "Query string",
      "The md5 and expires of signed links are never in the key: one copy serves every viewer's link."),
    f.field(["options.query_params_whitelist.value", "options.query_params_blacklist.value"], qpList, "Parameters", "Separated by commas."),
    el("h2", {}, "Browsers"),
    f.check("options.browser_cache_settings.enabled", bcOn, "Set how long browsers keep answers (Cache-Control: max-age)"),
    f.field("options.browser_cache_settings", bcTime, "Browser cache time"),
    el("h2", {}, "Serve a stored copy when the origin fails"),
    f.group("options.stale", el("fieldset", { id: "stale" }, el("legend", {}, "When"), el("div", { class: "checks" },
      ...conditions.map((c, i) => el("label", { class: "inline" }, staleBoxes[i], c === "updating" ? "updating (while a refresh runs)" : c)))), "Stale"),
    f.status, save.button));
}

function streamingTab(body, r) {
  const q = (r.options && r.options.query_string_forwarding) || { enabled: false, forward_from_file_types: ["m3u8", "mpd"], forward_to_file_types: ["ts", "m4s", "mp4", "aac", "vtt", "m3u8"] };
  const f = form("qsf-status");
  const on = checkbox("qsf-on", q.enabled);
  const from = input("qsf-from", (q.forward_from_file_types || []).join(", "));
  const to = input("qsf-to", (q.forward_to_file_types || []).join(", "));
  const only = input("qsf-only", (q.forward_only_keys || []).join(", "), { placeholder: "empty: all" });
  const except = input("qsf-except", (q.forward_except_keys || []).join(", "));
  const each = checkbox("qsf-each", q.sign_each_directory);
  const save = saveButton("qsf-save", f, async () => {
    const next = { enabled: on.checked, forward_from_file_types: lines(from.value), forward_to_file_types: lines(to.value), forward_only_keys: lines(only.value), forward_except_keys: lines(except.value) };
    if (each.checked) next.sign_each_directory = true;
    await patch(r, { options: { query_string_forwarding: next } }, f, APPLIED);
  });
  put(body, el("form", { onsubmit: save.submit },
    el("p", { class: "hint" }, "A player fetches a playlist with a signed link, then the segments it lists. Forwarding copies the playlist's md5 and expires into those links, so one signed URL plays the whole stream."),
    f.check("options.query_string_forwarding.enabled", on, "Forward the query string into playlists' links"),
    f.field("options.query_string_forwarding.forward_from_file_types", from, "Playlists (file types)", "Separated by commas: m3u8, mpd."),
    f.field("options.query_string_forwarding.forward_to_file_types", to, "Linked files that get the parameters"),
    f.field("options.query_string_forwarding.forward_only_keys", only, "Only these parameters"),
    f.field("options.query_string_forwarding.forward_except_keys", except, "All parameters but these"),
    f.check("options.query_string_forwarding.sign_each_directory", each, "Sign each link for its own directory (Tollgate)",
      "With a directory-signed master playlist, renditions in sub-directories (360p/, 720p/) each get a token of their own, same expiry and binding."),
    f.status, save.button));
}

const ACLS = [
  ["referrer_acl", "Referrers", "referrers", "Hostnames, *.example.com for subdomains; a request without Referer is let in."],
  ["ip_address_acl", "IP addresses", "IP addresses", "Addresses or networks: 203.0.113.0/24, 2001:db8::/32."],
  ["user_agent_acl", "User agents", "user agents", "Exact text, ~regex or ~*regex (case-insensitive)."],
  ["country_acl", "Countries", "countries", "ISO codes: DE, FR (the edges need --geoip-db)."],
];

function accessTab(body, r) {
  const o = r.options || {};
  const f = form("acc-status");
  const cors = o.cors || { enabled: false, value: ["*"] };
  const corsOn = checkbox("cors-on", cors.enabled);
  const kind = cors.value.length === 1 && cors.value[0] === "*" ? "any" : cors.value.length === 1 && cors.value[0] === "$http_origin" ? "echo" : "list";
  const corsKind = select("cors-kind", [["any", "Any site (*)"], ["echo", "The requesting site, whatever it is ($http_origin)"], ["list", "Only these sites"]], kind);
  const corsList = textarea("cors-domains", kind === "list" ? cors.value : [], { placeholder: "player.example.com\n*.example.org" });
  const always = checkbox("cors-always", cors.always);
  const syncCors = () => { corsList.disabled = corsKind.value !== "list"; };
  corsKind.addEventListener("change", syncCors);
  syncCors();
  const acl = ACLS.map(([name, label, noun, hint]) => {
    const a = o[name] || { enabled: false, policy_type: "allow", excepted_values: [] };
    const on = checkbox(`acl-${name}-on`, a.enabled);
    const policy = select(`acl-${name}-policy`, [["allow", "Allow all but the listed"], ["deny", "Refuse all but the listed"]], a.policy_type);
    const values = textarea(`acl-${name}-values`, a.excepted_values, { placeholder: "one per line" });
    // An unused list shows only its checkbox.
    const details = el("div", {}, f.field(`options.${name}.policy_type`, policy, "Policy"), f.field(`options.${name}`, values, "Listed " + noun, hint));
    const sync = () => { details.hidden = !on.checked && !values.value.trim(); };
    on.addEventListener("change", sync);
    sync();
    return { name, on, policy, values, nodes: el("fieldset", { id: "acl-" + name }, el("legend", {}, label),
      f.check(`options.${name}.enabled`, on, "Check " + noun), details) };
  });
  const save = saveButton("acc-save", f, async () => {
    const options = {
      cors: corsOn.checked ? { enabled: true, value: corsKind.value === "any" ? ["*"] : corsKind.value === "echo" ? ["$http_origin"] : lines(corsList.value), ...(always.checked ? { always: true } : {}) } : null,
    };
    for (const a of acl) options[a.name] = a.on.checked || lines(a.values.value).length ? { enabled: a.on.checked, policy_type: a.policy.value, excepted_values: lines(a.values.value) } : null;
    await patch(r, { options }, f, APPLIED);
  });
  put(body, el("form", { onsubmit: save.submit },
    el("h2", {}, "CORS"),
    f.check("options.cors.enabled", corsOn, "Add Access-Control-Allow-Origin", "Lets players on other sites read the answers (hls.js, dash.js, fetch)."),
    f.field("options.cors.value", corsKind, "Which sites"),
    f.field("options.cors", corsList, "Sites", "One per line; *.example.com for its subdomains."),
    f.check("options.cors.always", always, "On every answer, refusals too (a player can then read a 410)"),
    el("h2", {}, "Access lists"),
    el("p", { class: "hint" }, "Checked after the token: an expired link says so whoever asks. A refusal is a 403."),
    ...acl.map(a => a.nodes),
    f.status, save.button));
}

async function protectionTab(body, r) {
  const o = r.options || {};
  const f = form("prot-status");
  const srh = o.staticRequestHeaders || { enabled: false, value: {} };
  const on = checkbox("srh-on", srh.enabled);
  const headers = pairRows("srh", Object.entries(srh.value || {}), ["X-Origin-Secret", "a long random value", "Header name", "Header value"]);
  const save = saveButton("prot-save", f, async () => {
    const value = headers.value();
    await patch(r, { options: { staticRequestHeaders: on.checked || Object.keys(value).length ? { enabled: on.checked, value } : null } }, f, APPLIED);
  });
  const headersField = f.group("options.staticRequestHeaders", el("fieldset", { id: "srh-set" }, el("legend", {}, "Headers edges add to every origin request"),
    el("p", { class: "hint" }, "Your origin refuses requests without them, so only the CDN (and its tokens) reaches it."), headers.node), "Origin headers");
  let ips = { addresses: [], addresses_v6: [] };
  try { ips = await api("GET", "/cdn/public-ip-list"); } catch (e) { /* shown as empty */ }
  const all = [...ips.addresses, ...ips.addresses_v6];
  const nginx = all.map(a => `allow ${a};`).concat("deny all;").join("\n");
  put(body, 
    el("form", { onsubmit: save.submit },
      f.check("options.staticRequestHeaders.enabled", on, "Send these headers to the origin"),
      headersField, f.status, save.button),
    el("div", { class: "card", id: "edge-addresses" },
      el("h2", {}, "Edges' addresses"),
      el("p", { class: "hint" }, "Edges fetch from these addresses (those seen in the last day): allow only them on the origin's firewall."),
      all.length ? el("pre", { id: "edge-address-list" }, all.join("\n")) : el("p", { id: "edge-address-list" }, "No edge has reported yet."),
      all.length ? el("div", {}, el("p", { class: "hint" }, "In the origin's nginx:"), el("pre", { id: "edge-nginx" }, nginx), copyButton("edge-nginx-copy", () => nginx)) : null));
}

function purgeTab(body, r) {
  const f = form("purge-status");
  const urls = textarea("purge-urls", [], { placeholder: "/video/intro.mp4\n/img/logo.png" });
  const patterns = textarea("purge-patterns", [], { placeholder: "/video/*\n*.m3u8" });
  const list = el("tbody", { id: "purge-list" });
  const purge = async (what, done) => {
    try { await api("POST", "/cdn/resources/" + r.id + "/purge", what); f.ok(done); await load(); }
    catch (e) { f.fail(e); }
  };
  const load = async () => {
    const got = await api("GET", "/cdn/purge_statuses?cname=" + encodeURIComponent(r.cname) + "&limit=20");
    const items = (got.results || got).filter(p => p.resource.id === r.id);
    list.replaceChildren(...items.map(p => el("tr", {},
      el("td", {}, when(Date.parse(p.created) / 1000).local),
      el("td", {}, { purge_by_url: "URLs", purge_by_pattern: "patterns", purge_all: "everything" }[p.purge_type]),
      el("td", { class: "detail" }, ((p.payload.urls || p.payload.paths) || []).join(", ") || "all"),
      el("td", { class: p.status === "Successful" ? "ok" : "" }, p.status === "Successful" ? "done: every edge has it" : "in progress"))));
    if (!items.length) list.append(el("tr", {}, el("td", { colspan: "4", class: "hint" }, "No purge in the last day.")));
  };
  load().catch(() => {});
  every(2000, () => load().catch(() => {}));
  const byUrl = el("button", { type: "submit", id: "purge-urls-go" }, "Purge these URLs");
  const byPattern = el("button", { type: "submit", id: "purge-patterns-go" }, "Purge by pattern");
  put(body, 
    el("p", { class: "hint" }, "Edges drop the copies at once; the next request for them is a MISS, fetched from the origin."),
    el("form", { onsubmit: ev => {
      ev.preventDefault(); f.clear();
      const v = lines(urls.value);
      if (!v.length) return f.local(urls, "list at least one path, like /video/intro.mp4.");
      busy(byUrl, () => purge({ urls: v }, `Purged ${v.length} URL${v.length > 1 ? "s" : ""}.`));
    } }, f.field("urls", urls, "URLs", "Paths, one per line (with their query string if the cache key has one)."), byUrl),
    el("form", { onsubmit: ev => {
      ev.preventDefault(); f.clear();
      const v = lines(patterns.value);
      if (!v.length) return f.local(patterns, "list at least one pattern, like /video/*.");
      busy(byPattern, () => purge({ paths: v }, `Purged ${v.length} pattern${v.length > 1 ? "s" : ""}.`));
    } }, f.field("paths", patterns, "Patterns", "* stands for anything, slashes too."), byPattern),
    el("div", { class: "field" }, confirmButton("purge-all", "Purge everything", `Drop every copy of ${r.cname} from every edge? The origin will get every next request.`, "Purge everything",
      () => purge({ paths: [] }, "Purged everything."), "secondary")),
    f.status,
    el("h2", {}, "Purges of the last day"),
    el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "What"), el("th", {}, "Entries"), el("th", {}, "Status"))), list)));
}

function linksTab(body, r) {
  const sk = r.options && r.options.secure_key;
  const f = form("link-status");
  const path = input("link-path", "/");
  const lifetime = el("input", { type: "number", id: "link-lifetime", value: "3600", min: "1" });
  const ip = input("link-ip", "", { placeholder: "e.g. 203.0.113.7" });
  const out = el("div", { id: "link-out", "aria-live": "polite" });
  const withIp = sk && sk.enabled && (sk.type || 0) === 0;
  const ipHint = "This resource binds links to the viewer's IP (type 0): give the address of the viewer who will open the link, as the edge sees it (behind a trusted proxy, the X-Forwarded-For address). Your site takes it from the request: $_SERVER['REMOTE_ADDR'] in PHP, request.remote_addr in Python."
    + (sk && sk.ip_prefix ? ` The link hashes its network: /${sk.ip_prefix.v4} for IPv4, /${sk.ip_prefix.v6} for IPv6.` : "");
  const submit = el("button", { type: "submit", id: "link-submit" }, "Generate link");
  put(body, 
    sk && sk.enabled ? null : el("p", { class: "status error" }, "The secure token is off for this resource: its links need no token. Turn it on in the Secure token tab."),
    el("form", { onsubmit: ev => {
      ev.preventDefault(); f.clear(); out.replaceChildren();
      const req = { path: path.value, lifetime: Number(lifetime.value) };
      if (withIp && !ip.value.trim()) return f.local(ip, "give the viewer's address, e.g. 203.0.113.7.");
      if (ip.value.trim()) req.ip = ip.value.trim();
      busy(submit, async () => {
        try {
          const s = await api("POST", "/cdn/resources/" + r.id + "/sign", req);
          const t = when(s.expires);
          out.append(
            el("label", { for: "link-url" }, "Signed URL"),
            el("div", { class: "row" }, el("code", { class: "url", id: "link-url", tabindex: "0" }, s.url), copyButton("link-copy", () => s.url)),
            el("p", { id: "link-expiry" }, `Expires ${t.local} (your time), ${t.utc}; Unix time ${s.expires}.`),
            el("p", { class: "hint" }, "The same link from your site's code (each computes the expiry when it runs):"),
            ...[["php", "PHP"], ["python", "Python"], ["node", "Node.js"], ["openssl", "Shell (OpenSSL)"]].map(([k, label]) =>
              el("div", { class: "snippet" }, el("div", { class: "row spread" }, el("b", {}, label), copyButton("snip-" + k + "-copy", () => s.snippets[k])),
                el("pre", { id: "snip-" + k }, s.snippets[k]))));
        } catch (e) { f.fail(e); }
      });
    } },
      f.field("path", path, "Path", "The file's path, as viewers request it: /videos/intro.mp4."),
      f.field(["lifetime", "expires"], lifetime, "Lifetime (seconds)", "3600 is an hour, 86400 a day."),
      withIp ? f.field("ip", ip, "Viewer's IP", ipHint) : null,
      f.status, submit),
    out);
}
