// Defender Console web page: Deployed Defenders, Defender detail, advanced settings, audit,
// Protect a task (embed flow).
// Plain browser JavaScript, no framework and no build step. The page's state lives in the URL's
// query string (the same parameter names as GET /api/v1/defenders), so a view can be shared.
"use strict";

(() => {
  const REFRESH_MS = 5000;
  // A refresh with no answer after SLOW_MS shows "Console not responding" (a frozen Console
  // accepts connections but never answers); a read is given up after REQUEST_TIMEOUT_MS.
  const SLOW_MS = 4000;
  const REQUEST_TIMEOUT_MS = 30000;
  const API = "api/v1";

  // DESIGN §2: vendor types, their category and UI label (same table as the Console's typeLabel).
  const TYPES = [
    ["fargate", "appEmbedded", "Fargate"],
    ["appEmbedded", "appEmbedded", "Container Defender - App-Embedded"],
    ["eksFargate", "appEmbedded", "EKS Fargate"],
    ["docker", "container", "Container Defender - Docker"],
    ["dockerWindows", "container", "Container Defender - Windows"],
    ["containerdWindows", "container", "Container Defender - containerd Windows"],
    ["swarm", "container", "Container Defender - Swarm"],
    ["daemonset", "container", "Container Defender - Kubernetes"],
    ["cri", "container", "Container Defender - CRI"],
    ["ecs", "container", "Container Defender - ECS"],
    ["podman", "container", "Container Defender - Podman"],
    ["none", "container", "None"],
    ["serverLinux", "host", "Host Defender - Linux"],
    ["serverWindows", "host", "Host Defender - Windows"],
    ["tas", "host", "Tanzu Application Service Defender - Linux"],
    ["tasWindows", "host", "Tanzu Application Service Defender - Windows"],
    ["serverless", "serverless", "Serverless Defender"],
  ].map(([type, category, label]) => ({ type, category, label }));
  const TYPE_BY_NAME = new Map(TYPES.map((t) => [t.type, t]));
  const CATEGORIES = [
    ["appEmbedded", "App-Embedded"],
    ["container", "Container"],
    ["host", "Host"],
    ["serverless", "Serverless"],
  ];
  const CATEGORY_LABEL = new Map(CATEGORIES);
  const SORT_KEYS = ["hostname", "type", "category", "version", "cluster", "appID", "lastModified", "connected", "lastSeen"];
  const PAGE_SIZES = [25, 50, 100, 250];

  const $ = (id) => document.getElementById(id);
  const esc = (s) =>
    String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const dash = '<span class="dash" aria-label="none">—</span>';
  const orDash = (s) => (s === undefined || s === null || s === "" ? dash : esc(s));

  // ---------------------------------------------------------------------------------------------
  // Time. The API speaks RFC 3339 UTC; the page shows UTC, labelled. Relative durations ("removal
  // in 52 min") use the Console's clock, estimated from the HTTP Date header when it is sent, so a
  // browser with a wrong clock does not mislead.
  let clockOffsetMs = 0;
  const consoleNow = () => Date.now() + clockOffsetMs;
  function noteServerDate(res) {
    const d = res.headers.get("Date");
    const t = d ? Date.parse(d) : NaN;
    if (!Number.isNaN(t)) clockOffsetMs = t - Date.now();
  }
  function fmtUtc(iso, withSeconds = true) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const p = (n) => String(n).padStart(2, "0");
    const s = `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
    return withSeconds ? `${s}:${p(d.getUTCSeconds())}` : s;
  }
  function fmtDuration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min`;
    const h = Math.floor(m / 60);
    if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
    const d = Math.floor(h / 24);
    return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
  }
  // Time of day alone when it is today (UTC) on the Console's clock, else date and time.
  function shortUtc(iso) {
    const full = fmtUtc(iso, false);
    const today = fmtUtc(new Date(consoleNow()).toISOString(), false).slice(0, 10);
    return full.startsWith(today) ? full.slice(11) : full;
  }
  // Time of day only when it is today (UTC), the full time in the title.
  const shortTimeCell = (iso) => (iso ? `<time datetime="${esc(iso)}" title="${esc(fmtUtc(iso))} UTC">${esc(shortUtc(iso))}</time>` : dash);
  const timeCell = (iso, withSeconds = true) =>
    iso ? `<time datetime="${esc(iso)}" title="${esc(fmtUtc(iso))} UTC">${esc(fmtUtc(iso, withSeconds))}</time>` : dash;

  // ---------------------------------------------------------------------------------------------
  // HTTP.
  class ApiError extends Error {
    constructor(status, body, message) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }
  // ---------------------------------------------------------------------------------------------
  // Sign-in. Every Console API route needs a user: the page signs in with
  // POST /api/v1/authenticate {username, password} -> {token} and sends
  // "Authorization: Bearer <token>" with each request. The token is kept in sessionStorage (this
  // tab only, gone when it closes). A 401 (token expired, revoked or password changed) asks for
  // the password again and the page resumes where it was, filters and all.
  const TOKEN_KEY = "dcToken";
  const USER_KEY = "dcUser";
  // `signedOut` is set by a 401 and pauses the refresh loop until the user signs in again.
  const auth = { token: sessionStorage.getItem(TOKEN_KEY), user: sessionStorage.getItem(USER_KEY), role: "", signedOut: false };
  const authHeaders = (extra = {}) => (auth.token ? { ...extra, Authorization: `Bearer ${auth.token}` } : extra);
  const ROLE_LABEL = { admin: "Administrator", defenderManager: "Defender Manager", auditor: "Auditor" };

  function showUser() {
    $("user").hidden = auth.signedOut || !auth.user;
    $("user-name").textContent = auth.user ? `${auth.user}${auth.role ? ` · ${ROLE_LABEL[auth.role] ?? auth.role}` : ""}` : "";
    $("user-name").title = auth.role === "auditor" ? "Auditors can read; deleting, embedding and settings need a Defender Manager or Administrator." : "";
  }
  // Controls follow the role: what the signed-in role cannot do is shown disabled, with the
  // reason next to it and in its title (the Console still refuses it with 403). Auditors read
  // only; every change needs a Defender Manager or an Administrator (docs/security.md).
  const ROLE_GATED = {
    "detail-delete": "deleting Defenders",
    "s-save": "changing settings",
    "p-generate": "protecting task definitions",
    "rc-save": "storing registry credentials",
  };
  const readOnly = () => auth.role === "auditor";
  // Disables `el` with `reason` shown beside it, or lifts that (leaving `enabled` otherwise).
  function gate(el, reason, enabled = true) {
    if (!el) return;
    let why = document.getElementById(`${el.id}-why`);
    if (reason && !why) {
      why = document.createElement("span");
      why.id = `${el.id}-why`;
      why.className = "role-why";
      el.insertAdjacentElement("afterend", why);
    }
    if (why) {
      why.hidden = !reason;
      why.textContent = reason;
    }
    el.dataset.roleBlocked = reason ? "true" : "";
    el.title = reason;
    if (reason) {
      el.disabled = true;
      el.setAttribute("aria-describedby", why.id);
    } else {
      el.disabled = !enabled;
      if (why) el.removeAttribute("aria-describedby");
    }
  }
  // Enables a gated control unless the role forbids it.
  const enable = (el, on = true) => (el.disabled = !on || el.dataset.roleBlocked === "true");
  function applyRole() {
    for (const [id, action] of Object.entries(ROLE_GATED)) {
      const el = $(id);
      if (el) gate(el, readOnly() ? forbidden(action) : "", !el.disabled || el.dataset.roleBlocked === "true");
    }
    $("s-days").readOnly = readOnly();
  }
  // Who is signed in (GET /api/v1/users/current), then the page. A 401 opens the sign-in dialog.
  async function whoAmI() {
    try {
      const { data } = await api("users/current");
      auth.user = data?.username ?? auth.user;
      auth.role = data?.role ?? "";
      showUser();
      applyRole();
      applyPrefs();
      return true;
    } catch (e) {
      if (e.status === 401) return false;
      return true; // unreachable or failing Console: the page shows that itself
    }
  }
  function askSignIn(message = "") {
    auth.token = null;
    auth.signedOut = true;
    sessionStorage.removeItem(TOKEN_KEY);
    showUser();
    $("conn").classList.remove("ok", "bad");
    $("conn-text").textContent = "Signed out";
    const err = $("signin-error");
    err.hidden = !message;
    err.textContent = message;
    if (!$("signin").open) $("signin").showModal();
    $("signin-user").value = $("signin-user").value || auth.user || "";
    ($("signin-user").value ? $("signin-password") : $("signin-user")).focus();
  }
  async function signIn(ev) {
    ev.preventDefault();
    const username = $("signin-user").value.trim();
    const password = $("signin-password").value;
    const err = $("signin-error");
    if (!username || !password) {
      err.hidden = false;
      err.textContent = !username ? "Enter your username." : "Enter your password.";
      (!username ? $("signin-user") : $("signin-password")).focus();
      return;
    }
    $("signin-submit").disabled = true;
    try {
      let res;
      try {
        res = await fetch(`${API}/authenticate`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ username, password }),
          cache: "no-store",
        });
      } catch {
        throw new Error("The Console could not be reached. Try again.");
      }
      const json = await res.json().catch(() => null);
      if (res.status === 401) throw new Error("Wrong username or password.");
      if (res.status === 429) {
        const wait = Number(res.headers.get("Retry-After"));
        throw new Error(`Too many failed sign-ins. Try again${Number.isFinite(wait) && wait > 0 ? ` in ${fmtDuration(wait * 1000)}` : " later"}.`);
      }
      if (!res.ok || !json?.token) throw new Error(json?.message || `Sign-in failed (HTTP ${res.status}).`);
      auth.token = json.token;
      auth.user = username;
      auth.signedOut = false;
      sessionStorage.setItem(TOKEN_KEY, auth.token);
      sessionStorage.setItem(USER_KEY, username);
      $("signin-password").value = "";
      err.hidden = true;
      $("signin").close();
      await whoAmI();
      render();
      focusView();
    } catch (e) {
      err.hidden = false;
      err.textContent = e.message;
      $("signin-password").select();
    } finally {
      $("signin-submit").disabled = false;
    }
  }
  // The message for a 403: which role the action needs, and which one the user has.
  function forbidden(action) {
    const mine = ROLE_LABEL[auth.role] ?? (auth.role || "your role");
    return `Your role (${mine}) does not allow ${action}; a Defender Manager or Administrator can.`;
  }
  // Signing out forgets the token and reloads the page, so nothing read or generated while
  // signed in (a protected task definition carries a Defender credential) stays on screen.
  function signOut() {
    clearTimeout(timer);
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
    location.reload();
  }

  async function api(path, { method = "GET", body } = {}) {
    let res;
    try {
      res = await fetch(`${API}/${path}`, {
        method,
        headers: authHeaders(body !== undefined ? { "Content-Type": "application/json" } : {}),
        body: body !== undefined ? JSON.stringify(body) : undefined,
        cache: "no-store",
        // Reads only: a change may legitimately take long (an embed that asks a registry).
        signal: method === "GET" ? AbortSignal.timeout(REQUEST_TIMEOUT_MS) : undefined,
      });
    } catch (e) {
      throw new ApiError(0, null, e?.name === "TimeoutError" ? "Console not responding" : "Console unreachable");
    }
    noteServerDate(res);
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!res.ok) {
      const msg = json && json.message ? json.message : `HTTP ${res.status}`;
      if (res.status === 401) askSignIn(auth.token || auth.user ? "Your session has ended. Sign in again to continue." : "");
      throw new ApiError(res.status, json, msg);
    }
    return { data: json, total: Number(res.headers.get("Total-Count") ?? NaN) };
  }

  // ---------------------------------------------------------------------------------------------
  // State <-> URL.
  // Audit filters: a kind, an exact user, and a UTC time window written as the datetime-local
  // inputs give it ("2026-12-07T13:00"), sent as RFC 3339.
  const AUDIT_KINDS = new Map([
    ["signin", "Sign-in"],
    ["signin.failed", "Failed sign-in"],
    ["access.refused", "Refused action"],
    ["settings.changed", "Settings changed"],
    ["defender.deleted", "Defender deleted"],
    ["defender.evicted", "Defender evicted"],
    ["appid.issued", "App ID issued"],
    ["credential.issued", "Defender credential issued"],
    ["credential.revoked", "Defender credential revoked"],
    ["registry_credential.stored", "Registry credential stored"],
    ["registry_credential.deleted", "Registry credential deleted"],
    ["user.created", "User created"],
    ["user.updated", "User changed"],
    ["user.deleted", "User deleted"],
    ["image_entrypoint.stored", "Image entrypoint stored"],
    ["image_entrypoint.deleted", "Image entrypoint deleted"],
    ["evictions.resumed", "Evictions resumed"],
  ]);
  const MINUTE_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/;
  function auditParams(s = state) {
    const q = new URLSearchParams();
    if (s.auditKind) q.set("kind", s.auditKind);
    if (s.auditUser.trim()) q.set("user", s.auditUser.trim());
    if (s.auditSince) q.set("since", `${s.auditSince}:00Z`);
    if (s.auditUntil) q.set("until", `${s.auditUntil}:00Z`);
    return q;
  }

  const HISTORY_CATEGORIES = new Map([
    ["appEmbedded", "App-Embedded"],
    ["container", "Container"],
    ["host", "Host"],
    ["serverless", "Serverless"],
    ["all", "All categories"],
  ]);

  function readState() {
    const q = new URLSearchParams(location.search);
    const types = [];
    for (const v of q.getAll("type")) for (const t of v.split(",")) if (TYPE_BY_NAME.has(t) && !types.includes(t)) types.push(t);
    const limit = Number(q.get("limit"));
    const offset = Number(q.get("offset"));
    const sort = q.get("sort");
    return {
      view: ["defenders", "history", "audit", "protect"].includes(q.get("view")) ? q.get("view") : "defenders",
      historyRange: ["hour", "day", "month"].includes(q.get("range")) ? q.get("range") : "hour",
      historyCategory: HISTORY_CATEGORIES.has(q.get("category")) ? q.get("category") : "appEmbedded",
      types,
      connected: ["true", "false"].includes(q.get("connected")) ? q.get("connected") : "",
      outdated: ["true", "false"].includes(q.get("outdated")) ? q.get("outdated") : "",
      cluster: q.get("cluster") ?? "", // exact (shared links, the API's own filter)
      clusterContains: q.get("clusterContains") ?? "", // what the Cluster field types
      appID: q.get("appID") ?? "",
      search: q.get("search") ?? "",
      version: q.get("version") ?? "", // exact reported version (the version chart)
      sort: SORT_KEYS.includes(sort) ? sort : "hostname",
      reverse: q.get("reverse") === "true",
      limit: PAGE_SIZES.includes(limit) ? limit : 50,
      offset: Number.isInteger(offset) && offset > 0 ? offset : 0,
      auditOffset: Math.max(0, Number(q.get("auditOffset")) || 0),
      auditKind: AUDIT_KINDS.has(q.get("auditKind")) ? q.get("auditKind") : "",
      auditUser: q.get("auditUser") ?? "",
      auditSince: MINUTE_RE.test(q.get("auditSince") ?? "") ? q.get("auditSince") : "",
      auditUntil: MINUTE_RE.test(q.get("auditUntil") ?? "") ? q.get("auditUntil") : "",
    };
  }
  let state = readState();

  // Query parameters of the list API (and of the page URL, minus view-only keys).
  function listParams(s = state) {
    const q = new URLSearchParams();
    if (s.types.length) q.set("type", s.types.join(","));
    if (s.connected) q.set("connected", s.connected);
    if (s.outdated) q.set("outdated", s.outdated);
    if (s.cluster.trim()) q.set("cluster", s.cluster.trim());
    if (s.clusterContains.trim()) q.set("clusterContains", s.clusterContains.trim());
    if (s.appID.trim()) q.set("appID", s.appID.trim());
    if (s.version) q.set("version", s.version);
    if (s.search.trim()) q.set("search", s.search.trim());
    return q;
  }
  function pageUrl(s = state) {
    const q = new URLSearchParams();
    if (s.view !== "defenders") q.set("view", s.view);
    for (const [k, v] of listParams(s)) q.set(k, v);
    if (s.sort !== "hostname") q.set("sort", s.sort);
    if (s.reverse) q.set("reverse", "true");
    if (s.limit !== 50) q.set("limit", String(s.limit));
    if (s.offset) q.set("offset", String(s.offset));
    if (s.view === "history") {
      if (s.historyRange !== "hour") q.set("range", s.historyRange);
      if (s.historyCategory !== "appEmbedded") q.set("category", s.historyCategory);
    }
    if (s.view === "audit") {
      if (s.auditOffset) q.set("auditOffset", String(s.auditOffset));
      for (const [k, v] of auditParams(s)) q.set(`audit${k[0].toUpperCase()}${k.slice(1)}`, k === "since" || k === "until" ? v.slice(0, 16) : v);
    }
    const qs = q.toString();
    return location.pathname + (qs ? `?${qs}` : "");
  }
  // push = a discrete change (new history entry); typing replaces the current entry.
  function update(patch, { push = true, resetPage = true } = {}) {
    const filterBefore = listParams().toString();
    state = { ...state, ...patch };
    // A selection belongs to its filter: another filter starts from none.
    if (listParams().toString() !== filterBefore) {
      selection.rows.clear();
      selection.allMatching = null;
    }
    if (resetPage && !("offset" in patch)) state.offset = 0;
    const url = pageUrl();
    if (url !== location.pathname + location.search) history[push ? "pushState" : "replaceState"](null, "", url);
    render();
  }
  const hasFilters = () => listParams().toString() !== "";

  // ---------------------------------------------------------------------------------------------
  // Connection indicator and banners.
  let lastOkAt = null;
  // How old the data on screen is: "Showing data from 12:01:05 UTC (25 s old)."
  const dataAge = () =>
    lastOkAt ? ` Showing data from ${fmtUtc(lastOkAt.toISOString())} UTC (${fmtDuration(consoleNow() - lastOkAt.getTime())} old).` : "";
  function setConnection(ok, message, label = "Console unreachable", detail = ` Retrying every ${REFRESH_MS / 1000} s.`) {
    const conn = $("conn");
    conn.classList.toggle("ok", ok);
    conn.classList.toggle("bad", !ok);
    $("conn-text").textContent = ok ? "Console connected" : label;
    const banner = $("banner");
    if (ok) {
      banner.hidden = true;
      banner.textContent = "";
    } else {
      banner.hidden = false;
      banner.innerHTML = `<strong>${esc(message)}</strong>${esc(detail + dataAge())}`;
    }
  }
  // While a refresh goes unanswered for SLOW_MS or more, say so, with the age of the data; the
  // refresh's own end (answer, error or timeout) replaces this.
  let slowTimer = null;
  function watchSlow(startedAt) {
    clearInterval(slowTimer);
    slowTimer = setInterval(() => {
      const waited = Date.now() - startedAt;
      if (waited >= SLOW_MS)
        setConnection(false, "Console not responding.", "Console not responding", ` No answer for ${fmtDuration(waited)}.`);
    }, 1000);
  }
  function toast(text) {
    let t = $("toast");
    if (!t) {
      t = document.createElement("div");
      t.id = "toast";
      t.setAttribute("role", "status");
      t.style.cssText =
        "position:fixed;left:50%;bottom:20px;transform:translateX(-50%);background:#111827;color:#fff;padding:8px 14px;border-radius:6px;font-size:13px;z-index:20;max-width:90vw;box-shadow:0 6px 20px rgba(0,0,0,.25)";
      document.body.appendChild(t);
    }
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => (t.hidden = true), 5000);
  }

  // ---------------------------------------------------------------------------------------------
  // Views.
  function showView() {
    for (const v of ["defenders", "history", "audit", "protect"]) $(`view-${v}`).hidden = state.view !== v;
    for (const a of document.querySelectorAll(".nav a[data-view]")) {
      if (a.dataset.view === state.view) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.title = `${{ defenders: "Deployed Defenders", history: "Fleet history", audit: "Audit", protect: "Protect a task" }[state.view]} · Defender Console`;
  }

  // Moves keyboard focus to the current view's heading (after signing in, or when nothing better
  // is left after an action), so that it does not fall back to <body>.
  function focusView() {
    const h = $(`view-${state.view}`).querySelector("h1");
    h.tabIndex = -1;
    h.focus();
  }

  function render() {
    showView();
    syncControls();
    syncAuditControls();
    syncHistoryControls();
    refreshNow();
  }

  // ---------------------------------------------------------------------------------------------
  // Filter controls.
  function buildTypeMenu() {
    const box = $("type-options");
    box.innerHTML = CATEGORIES.map(
      ([cat, name]) =>
        `<div class="grp" id="grp-${cat}">${esc(name)}</div>` +
        TYPES.filter((t) => t.category === cat)
          .map(
            (t) =>
              // The count sits beside the label, so the option's name stays its type label.
              `<div class="opt"><label><input type="checkbox" name="type" value="${esc(t.type)}" aria-describedby="count-${esc(t.type)}"> ${esc(t.label)}</label>` +
              `<span class="count" id="count-${esc(t.type)}" data-count="${esc(t.type)}"></span></div>`,
          )
          .join(""),
    ).join("");
    box.addEventListener("change", () => {
      const types = [...box.querySelectorAll("input:checked")].map((i) => i.value);
      update({ types });
    });
  }
  function typeSummary(types) {
    if (!types.length) return "All types";
    if (types.length === 1) return TYPE_BY_NAME.get(types[0]).label;
    if (types.length === 2) return types.map((t) => TYPE_BY_NAME.get(t).label).join(", ");
    return `${types.length} types`;
  }
  function syncControls() {
    $("type-summary").textContent = typeSummary(state.types);
    for (const i of $("type-options").querySelectorAll("input")) i.checked = state.types.includes(i.value);
    $("f-status").value = state.connected;
    $("f-version").value = state.outdated;
    if (document.activeElement !== $("f-cluster")) $("f-cluster").value = state.clusterContains || state.cluster;
    if (document.activeElement !== $("f-search")) $("f-search").value = state.search;
    $("page-size").value = String(state.limit);
    $("clear-filters").disabled = !hasFilters();
    for (const th of document.querySelectorAll("#grid th[data-sort]")) {
      if (th.dataset.sort === state.sort) th.setAttribute("aria-sort", state.reverse ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    }
    const dl = listParams();
    if (state.sort !== "hostname") dl.set("sort", state.sort);
    if (state.reverse) dl.set("reverse", "true");
    dl.set("bom", "true"); // spreadsheet programs then read the UTF-8 text as UTF-8
    $("download").href = `${API}/defenders/download${dl.toString() ? `?${dl}` : ""}`;
    renderChips();
  }
  function renderChips() {
    const chips = [];
    for (const t of state.types)
      chips.push([`Type: ${TYPE_BY_NAME.get(t).label}`, () => update({ types: state.types.filter((x) => x !== t) })]);
    if (state.connected)
      chips.push([`Status: ${state.connected === "true" ? "Connected" : "Disconnected"}`, () => update({ connected: "" })]);
    if (state.outdated)
      chips.push([`Version: ${state.outdated === "true" ? "Upgrade needed" : "Up to date"}`, () => update({ outdated: "" })]);
    if (state.cluster.trim()) chips.push([`Cluster: ${state.cluster.trim()}`, () => update({ cluster: "" })]);
    if (state.clusterContains.trim())
      chips.push([`Cluster contains: “${state.clusterContains.trim()}”`, () => update({ clusterContains: "" })]);
    if (state.appID.trim()) chips.push([`App ID: ${state.appID.trim()}`, () => update({ appID: "" })]);
    if (state.version) chips.push([`Version: ${state.version || "none reported"}`, () => update({ version: "" })]);
    if (state.search.trim()) chips.push([`Search: “${state.search.trim()}”`, () => update({ search: "" })]);
    const box = $("chips");
    box.innerHTML = "";
    for (const [text, remove] of chips) {
      const span = document.createElement("span");
      span.className = "chip";
      span.textContent = text;
      const b = document.createElement("button");
      b.type = "button";
      b.setAttribute("aria-label", `Remove filter ${text}`);
      b.textContent = "×";
      b.addEventListener("click", remove);
      span.appendChild(b);
      box.appendChild(span);
    }
  }
  function openTypeMenu(open) {
    $("type-menu").hidden = !open;
    $("type-btn").setAttribute("aria-expanded", String(open));
    if (open) $("type-options").querySelector("input")?.focus();
  }
  function debounce(fn, ms) {
    let t;
    return (...a) => {
      clearTimeout(t);
      t = setTimeout(() => fn(...a), ms);
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Deployed Defenders: summary tiles, table, pager.
  let evictionsPaused = false; // the outage guard holds evictions (renderOutage)
  let lastRowsKey = "";
  // Display preferences, kept in this browser per signed-in user (localStorage "dcPrefs:<user>").
  const prefs = {
    key: () => `dcPrefs:${auth.user || ""}`,
    all() {
      try {
        return JSON.parse(localStorage.getItem(this.key()) || "{}") || {};
      } catch {
        return {};
      }
    },
    get(name) {
      return this.all()[name];
    },
    set(name, value) {
      const p = this.all();
      p[name] = value;
      try {
        localStorage.setItem(this.key(), JSON.stringify(p));
      } catch {
        // storage full or disabled: the choice lasts until the page is reloaded
      }
    },
  };
  // Columns the user can hide (hostname and status always show), with their header text.
  const OPTIONAL_COLUMNS = [
    ["type", "Type"],
    ["appID", "App ID"],
    ["cluster", "Cluster"],
    ["version", "Version"],
    ["lastSeen", "Last seen"],
    ["lastModified", "Last modified"],
  ];
  function applyPrefs() {
    const compact = prefs.get("compact") === true;
    $("compact").checked = compact;
    $("grid").classList.toggle("compact", compact);
    const hidden = Array.isArray(prefs.get("hiddenColumns")) ? prefs.get("hiddenColumns") : [];
    for (const [col] of OPTIONAL_COLUMNS) {
      $("grid").classList.toggle(`hide-${col}`, hidden.includes(col));
      const box = $("column-options").querySelector(`input[value="${col}"]`);
      if (box) box.checked = !hidden.includes(col);
    }
  }
  function buildColumnMenu() {
    const box = $("column-options");
    box.insertAdjacentHTML(
      "beforeend",
      OPTIONAL_COLUMNS.map(([col, label]) => `<label><input type="checkbox" value="${col}" checked> ${esc(label)}</label>`).join(""),
    );
    box.addEventListener("change", () => {
      prefs.set("hiddenColumns", [...box.querySelectorAll("input:not(:checked)")].map((i) => i.value));
      applyPrefs();
    });
    $("columns").addEventListener("keydown", (e) => {
      if (e.key === "Escape" && $("columns").open) {
        $("columns").open = false;
        $("columns").querySelector("summary").focus();
      }
    });
  }
  let lastPage = { items: [], total: 0 };
  let lastSummary = null;
  let consoleVersion = ""; // the Defender version this Console deploys, from GET /api/v1/version
  let inflight = false;

  function statusCell(d) {
    if (d.connected) return `<span class="badge ok">Connected</span>`;
    const parts = [];
    if (d.disconnectedAt) parts.push(`since <time datetime="${esc(d.disconnectedAt)}">${esc(shortUtc(d.disconnectedAt))}</time> UTC`);
    let soon = false;
    if (d.removalAt && evictionsPaused) {
      // The outage guard holds every eviction back (the banner says why).
      parts.push(`<span title="Removal due at ${esc(fmtUtc(d.removalAt))} UTC; evictions are paused">removal paused</span>`);
    } else if (d.removalAt) {
      const left = Date.parse(d.removalAt) - consoleNow();
      soon = left < 15 * 60 * 1000;
      parts.push(
        left > 0
          ? `<span title="Removal at ${esc(fmtUtc(d.removalAt))} UTC">removal in ${esc(fmtDuration(left))}</span>`
          : `<span title="Removal was due at ${esc(fmtUtc(d.removalAt))} UTC">removal pending</span>`,
      );
    }
    return `<span class="badge bad">Disconnected</span>` + (parts.length ? `<span class="status-sub${soon ? " soon" : ""}">${parts.join(" · ")}</span>` : "");
  }
  // "<family>:<uuid>" on one line, cut with an ellipsis (the full text in its title); a button
  // that filters the table to that App ID.
  function appIdHtml(id) {
    if (!id) return dash;
    return `<button type="button" class="linkbtn mono appid clip" data-appid="${esc(id)}" title="${esc(id)}" aria-label="Filter by App ID ${esc(id)}">${esc(id)}</button>`;
  }
  // Older than the Defender version this Console deploys (GET /api/v1/version).
  const versionBadge = (d) =>
    d.outdated ? `<span class="badge upgrade" title="Older than the Defender version this Console deploys${consoleVersion ? ` (${esc(consoleVersion)})` : ""}">Upgrade needed</span>` : "";
  function rowHtml(d) {
    const sel = openHost && openHost.toLowerCase() === d.hostname.toLowerCase() ? " selected" : "";
    const picked = isPicked(d.hostname);
    return (
      `<tr data-host="${esc(d.hostname)}" class="${sel}${picked ? " picked" : ""}">` +
      `<td class="selcol"><input type="checkbox" class="rowsel" aria-label="Select ${esc(d.hostname)}"${picked ? " checked" : ""}></td>` +
      `<td class="host" data-label="Hostname"><div class="cell"><button type="button" class="clip" aria-haspopup="dialog" title="${esc(d.hostname)}">${esc(d.hostname)}</button></div></td>` +
      `<td data-label="Type" data-col="type"><div class="cell"><span class="type-pill clip" title="${esc(d.typeLabel || d.type)}">${esc(d.typeLabel || d.type)}</span></div></td>` +
      `<td data-label="App ID" data-col="appID"><div class="cell">${appIdHtml(d.appID)}</div></td>` +
      `<td class="nowrap" data-label="Cluster" data-col="cluster"><div class="cell">${orDash(d.cluster)}</div></td>` +
      `<td class="nowrap" data-label="Version" data-col="version"><div class="cell">${orDash(d.version)}${versionBadge(d)}</div></td>` +
      `<td data-label="Status"><div class="cell">${statusCell(d)}</div></td>` +
      `<td class="time" data-label="Last seen" data-col="lastSeen"><div class="cell">${shortTimeCell(d.lastSeen)}</div></td>` +
      `<td class="time" data-label="Last modified" data-col="lastModified"><div class="cell">${timeCell(d.lastModified, false)}</div></td>` +
      `</tr>`
    );
  }
  // True while the user has text selected inside the table: a refresh then leaves the rows
  // alone, so the selection is not lost (the next refresh after it is cleared catches up).
  function selectingInTable() {
    const sel = window.getSelection();
    return !!sel && !sel.isCollapsed && sel.rangeCount > 0 && $("rows").contains(sel.getRangeAt(0).commonAncestorContainer);
  }
  function renderTable(items, total) {
    // Replace only the rows whose content changed (a row that did not change keeps its DOM,
    // text selection and focus); keep keyboard focus on the same Defender.
    const key =
      JSON.stringify(items) + "|" + Math.floor(consoleNow() / 30000) + "|" + openHost + "|" + selectionKey() + "|" + evictionsPaused;
    if (key !== lastRowsKey && !selectingInTable()) {
      lastRowsKey = key;
      const focusedHost = document.activeElement?.closest?.("#rows tr")?.dataset.host;
      const tbody = $("rows");
      const tpl = document.createElement("tbody");
      items.forEach((d, i) => {
        const html = rowHtml(d);
        const old = tbody.rows[i];
        if (old && old.dataset.html === html) return;
        tpl.innerHTML = html;
        const tr = tpl.rows[0];
        tr.dataset.html = html;
        if (old) old.replaceWith(tr);
        else tbody.appendChild(tr);
      });
      while (tbody.rows.length > items.length) tbody.deleteRow(-1);
      if (focusedHost && !tbody.contains(document.activeElement)) {
        const tr = [...tbody.rows].find((r) => r.dataset.host === focusedHost);
        tr?.querySelector("button")?.focus({ preventScroll: true });
      }
    }
    syncSelectionControls();
    if (focusFirstRowNext) {
      // After a bulk delete: the first row of what is left, else the heading.
      focusFirstRowNext = false;
      const first = $("rows").rows[0]?.querySelector("td.host button");
      if (first) first.focus();
      else focusView();
    }
    const empty = $("empty");
    if (items.length) {
      empty.hidden = true;
    } else if (total > 0 && state.offset >= total) {
      // The page ran past the end (Defenders were removed): go to the last page.
      update({ offset: Math.max(0, Math.floor((total - 1) / state.limit) * state.limit) }, { push: false });
      return;
    } else {
      empty.hidden = false;
      const inventoryEmpty = lastSummary ? lastSummary.every((c) => !c.deployed) : !hasFilters();
      if (inventoryEmpty && !hasFilters()) {
        empty.innerHTML =
          `<h2>No Defenders yet</h2><p>Defenders appear here when they first connect to the defender channel (port 8084 by default). ` +
          `To try the page, start simulated Fargate Defenders, for example:</p>` +
          `<pre><code>build/release/tools/fleet_sim/defender-fleet-sim --console http://${esc(location.hostname || "127.0.0.1")}:8084 --defenders 50 --families 5 --clusters 2</code></pre>`;
      } else {
        empty.innerHTML =
          `<h2>No Defenders match these filters</h2><p>Change or remove a filter above, or ` +
          `<button type="button" class="linkbtn" data-clear>clear all filters</button>.</p>`;
      }
    }
    const from = total ? state.offset + 1 : 0;
    const to = state.offset + items.length;
    $("range").textContent = total ? `${from}–${to} of ${total} Defender${total === 1 ? "" : "s"}` : "0 Defenders";
    const pages = Math.max(1, Math.ceil(total / state.limit));
    const page = Math.floor(state.offset / state.limit) + 1;
    $("page-of").textContent = `Page ${page} of ${pages}`;
    $("first").disabled = $("prev").disabled = state.offset === 0;
    $("next").disabled = $("last").disabled = to >= total;
    $("page-jump").max = String(pages);
    if (document.activeElement !== $("page-jump")) $("page-jump").value = String(page);
  }
  function renderTiles(summary) {
    const byCat = new Map((summary || []).map((c) => [c.category, c]));
    const box = $("tiles");
    const html = CATEGORIES.map(([cat, name]) => {
      const c = byCat.get(cat) || { deployed: 0, connected: 0, disconnected: 0, outdated: 0 };
      const catTypes = TYPES.filter((t) => t.category === cat).map((t) => t.type);
      const onCat = state.types.length === catTypes.length && catTypes.every((t) => state.types.includes(t));
      const pressed = onCat && !state.connected && !state.outdated;
      // Each number is a button that applies its filter: the category's types, and connected,
      // disconnected or upgrade needed. No aria-label: a name is the visible text, with what a
      // press does last.
      const link = (filter, cls, n, text) =>
        `<button type="button" class="t-link" data-filter="${filter}" aria-pressed="${onCat && tileFilterOn(filter)}"><b class="${cls}">${n}</b> ${text}<span class="sr-only">, filter the table to ${text} ${esc(name)} Defenders</span></button>`;
      const upgradeLink = c.outdated ? link("outdated", "u", c.outdated, "upgrade needed") : "";
      return (
        `<div class="tile" data-cat="${cat}">` +
        `<button type="button" class="t-main" aria-pressed="${pressed}"><span class="t-name">${esc(name)}</span> <span class="t-total">${c.deployed} <span class="t-unit">deployed</span></span>` +
        `<span class="sr-only">, filter the table to ${esc(name)} types</span></button>` +
        `<div class="t-split">${link("connected", "c", c.connected, "connected")}${link("disconnected", "d", c.disconnected, "disconnected")}${upgradeLink}</div>` +
        `</div>`
      );
    }).join("");
    if (box.dataset.html !== html) {
      const focusedCat = document.activeElement?.closest?.(".tile")?.dataset.cat;
      const focusedFilter = document.activeElement?.dataset?.filter;
      box.innerHTML = html;
      box.dataset.html = html;
      if (focusedCat)
        box.querySelector(`[data-cat="${focusedCat}"] ${focusedFilter ? `[data-filter="${focusedFilter}"]` : ".t-main"}`)?.focus({ preventScroll: true });
    }
  }
  // Whether a tile number's filter is the one in force (besides the category's types).
  function tileFilterOn(filter) {
    if (filter === "connected") return state.connected === "true" && !state.outdated;
    if (filter === "disconnected") return state.connected === "false" && !state.outdated;
    return state.outdated === "true" && !state.connected;
  }
  // Version distribution (GET /api/v1/defenders/versions): one stacked bar, Upgrade needed in
  // its own colour; a segment or a legend entry filters the table to that version.
  function renderVersions(versions) {
    const list = (versions || []).filter((v) => v.count > 0);
    $("versions").hidden = list.length === 0;
    // Newest first (numeric parts), the ones that report none last.
    const parts = (v) => v.split(/[^0-9]+/).map(Number);
    list.sort((a, b) => {
      if (!a.version || !b.version) return a.version ? -1 : b.version ? 1 : 0;
      const pa = parts(a.version), pb = parts(b.version);
      for (let i = 0; i < Math.max(pa.length, pb.length); i++) if ((pa[i] || 0) !== (pb[i] || 0)) return (pb[i] || 0) - (pa[i] || 0);
      return 0;
    });
    const sum = list.reduce((n, v) => n + v.count, 0) || 1;
    let x = 0;
    const label = (v) => v.version || "none reported";
    const rects = list
      .map((v) => {
        const w = (v.count / sum) * 1000;
        const r = `<rect x="${x.toFixed(2)}" y="0" width="${w.toFixed(2)}" height="14" data-version="${esc(v.version)}" class="${v.outdated ? "outdated" : ""}${state.version !== "" && state.version === v.version ? " pressed" : ""}"><title>${esc(label(v))}: ${v.count}${v.outdated ? " (upgrade needed)" : ""}</title></rect>`;
        x += w;
        return r;
      })
      .join("");
    const upgrade = list.filter((v) => v.outdated).reduce((n, v) => n + v.count, 0);
    const html =
      `<svg viewBox="0 0 1000 14" preserveAspectRatio="none" role="img" aria-label="${esc(`${list.length} version${list.length === 1 ? "" : "s"}; ${upgrade} of ${sum} Defenders need an upgrade`)}">${rects}</svg>`;
    const legend = list
      .slice(0, 30)
      .map(
        (v) =>
          `<li><button type="button" class="${v.outdated ? "outdated" : ""}"${v.version ? "" : " disabled"} data-version="${esc(v.version)}" aria-pressed="${state.version !== "" && state.version === v.version}">` +
          `<span class="mono">${esc(label(v))}</span> <span class="v-count">${v.count}</span>${v.outdated ? ' <span class="badge upgrade">Upgrade needed</span>' : ""}</button></li>`,
      )
      .join("") + (list.length > 30 ? `<li class="help">and ${list.length - 30} more</li>` : "");
    const n = list.length;
    $("versions-summary").textContent = `${n} version${n === 1 ? "" : "s"}${upgrade ? `, ${upgrade} Defender${upgrade === 1 ? "" : "s"} need${upgrade === 1 ? "s" : ""} an upgrade` : ""}`;
    if ($("versions").dataset.html !== html + legend) {
      const focused = document.activeElement?.closest?.("#versions-legend button")?.dataset.version;
      $("versions-bar").innerHTML = html;
      $("versions-legend").innerHTML = legend;
      $("versions").dataset.html = html + legend;
      if (focused !== undefined) $("versions-legend").querySelector(`button[data-version="${CSS.escape(focused)}"]`)?.focus({ preventScroll: true });
    }
  }
  let versionsAt = 0;
  let lastVersions = null;
  async function loadVersions() {
    versionsAt = Date.now();
    try {
      lastVersions = (await api("defenders/versions")).data;
      renderVersions(lastVersions);
    } catch {
      versionsAt = 0;
    }
  }
  // Cluster suggestions: every cluster in the inventory with its Defenders
  // (GET /api/v1/defenders/clusters), not only those on pages already seen.
  function renderClusters(clusters) {
    const html = (clusters || [])
      .slice(0, 1000)
      .map((c) => `<option value="${esc(c.cluster)}" label="${esc(c.count)} Defender${c.count === 1 ? "" : "s"}"></option>`)
      .join("");
    if ($("cluster-list").dataset.html !== html) {
      $("cluster-list").innerHTML = html;
      $("cluster-list").dataset.html = html;
    }
  }
  let clustersAt = 0;
  async function loadClusters() {
    clustersAt = Date.now();
    try {
      renderClusters((await api("defenders/clusters")).data);
    } catch {
      clustersAt = 0; // try again at the next refresh
    }
  }
  // Per-type counts in the Type menu (GET /api/v1/defenders/types).
  function renderTypeCounts(types) {
    for (const t of types || []) {
      const el = $("type-options").querySelector(`[data-count="${CSS.escape(t.type)}"]`);
      if (!el) continue;
      const text = `${t.deployed}`;
      if (el.textContent !== text) el.textContent = text;
      el.title = `${t.deployed} deployed: ${t.connected} connected, ${t.disconnected} disconnected`;
    }
  }

  async function loadDefenders() {
    const q = listParams();
    q.set("offset", String(state.offset));
    q.set("limit", String(state.limit));
    q.set("sort", state.sort);
    q.set("reverse", String(state.reverse));
    // The rows first: the list is asked for alone and drawn as soon as it answers. The counts
    // (summary, cluster suggestions, the version bar) read the whole inventory on a large fleet
    // and share the Console's database reader with the list, so they are asked for after it
    // (docs/benchmarks.md "First page in the browser").
    const [page, version] = await Promise.all([api(`defenders?${q}`), consoleVersion ? null : api("version").catch(() => null)]);
    if (version && typeof version.data === "string") consoleVersion = version.data;
    const total = Number.isFinite(page.total) ? page.total : page.data.length;
    lastPage = { items: page.data, total };
    renderTable(page.data, total);
    $("grid").setAttribute("aria-busy", "false");

    const summaryP = api("defenders/summary");
    const typesP = api("defenders/types").catch(() => null); // counts are a help: the page works without them
    // Cluster suggestions and the version bar: once a minute (the Cluster field also asks when it
    // gets focus), not awaited by the refresh.
    if (Date.now() - clustersAt > 60000) loadClusters();
    if (Date.now() - versionsAt > 60000) loadVersions();
    else if (lastVersions) renderVersions(lastVersions); // the pressed version follows the filter
    const [summary, types] = await Promise.all([summaryP, typesP]);
    if (types) renderTypeCounts(types.data);
    lastSummary = summary.data;
    renderTiles(summary.data);
  }

  // ---------------------------------------------------------------------------------------------
  // Audit.
  // One event's detail as "key value" pairs (never a secret: the Console leaves them out).
  function auditDetail(detail, kind) {
    if (kind === "settings.changed" && detail && detail.setting)
      return `<div class="ad-list"><span class="ad"><span class="ad-k">${esc(detail.setting)}</span> <span class="mono">${esc(detail.from)} → ${esc(detail.to)}</span></span></div>`;
    const parts = Object.entries(detail || {}).map(([k, v]) => {
      const text = Array.isArray(v) ? v.join(", ") : v !== null && typeof v === "object" ? JSON.stringify(v) : String(v);
      return `<span class="ad"><span class="ad-k">${esc(k)}</span> <span class="mono">${esc(text)}</span></span>`;
    });
    return parts.length ? `<div class="ad-list">${parts.join(" ")}</div>` : dash;
  }
  async function loadAudit() {
    const q = auditParams();
    q.set("offset", String(state.auditOffset));
    q.set("limit", "50");
    const { data, total } = await api(`audit/events?${q}`);
    $("audit-rows").innerHTML = data
      .map(
        (e) =>
          `<tr class="ev-${esc(e.kind.replace(/[^a-z]/g, "-"))}"><td class="time" data-label="Time (UTC)">${timeCell(e.time)}</td>` +
          `<td data-label="Event"><span class="ev-kind">${esc(AUDIT_KINDS.get(e.kind) ?? e.kind)}</span></td>` +
          `<td data-label="User">${orDash(e.user)}</td><td data-label="Address"><span class="mono">${orDash(e.address)}</span></td>` +
          `<td data-label="Details" class="ad-cell">${auditDetail(e.detail, e.kind)}</td></tr>`,
      )
      .join("");
    const filtered = auditParams().toString() !== "";
    $("audit-empty").hidden = data.length > 0;
    $("audit-empty").innerHTML = filtered
      ? "<h2>No events match these filters</h2><p>Change or clear the filters.</p>"
      : "<h2>Nothing recorded yet</h2><p>Sign-ins, changes, deletes, evictions and refused actions are recorded here.</p>";
    const n = Number.isFinite(total) ? total : data.length;
    $("audit-range").textContent = n ? `${state.auditOffset + 1}–${state.auditOffset + data.length} of ${n} events` : "0 events";
    $("audit-prev").disabled = state.auditOffset === 0;
    $("audit-next").disabled = state.auditOffset + data.length >= n;
  }
  function syncAuditControls() {
    $("a-kind").value = state.auditKind;
    if (document.activeElement !== $("a-user")) $("a-user").value = state.auditUser;
    $("a-since").value = state.auditSince;
    $("a-until").value = state.auditUntil;
    $("audit-clear").disabled = auditParams().toString() === "";
    const q = auditParams();
    $("audit-download").href = `${API}/audit/events/download${q.toString() ? `?${q}` : ""}`;
  }
  function wireAudit() {
    const set = (patch, opts) => update({ ...patch, auditOffset: 0 }, { resetPage: false, ...opts });
    $("a-kind").addEventListener("change", (e) => set({ auditKind: e.target.value }));
    $("a-user").addEventListener("input", (e) => set({ auditUser: e.target.value }, { push: false }));
    $("a-since").addEventListener("change", (e) => set({ auditSince: MINUTE_RE.test(e.target.value) ? e.target.value : "" }));
    $("a-until").addEventListener("change", (e) => set({ auditUntil: MINUTE_RE.test(e.target.value) ? e.target.value : "" }));
    $("audit-clear").addEventListener("click", () => {
      set({ auditKind: "", auditUser: "", auditSince: "", auditUntil: "" });
      $("a-kind").focus();
    });
    $("audit-filters").addEventListener("submit", (e) => e.preventDefault());
    $("audit-download").addEventListener("click", downloadCsv);
  }

  // ---------------------------------------------------------------------------------------------
  // Fleet history: one SVG line chart (connected, disconnected, evicted) of the chosen category.
  const SERIES = ["connected", "disconnected", "evicted"];
  function historyPoints(samples, category) {
    return samples.map((s) => {
      const p = { t: Date.parse(s.time), connected: 0, disconnected: 0, evicted: 0 };
      for (const [cat, c] of Object.entries(s.counts || {}))
        if (category === "all" || cat === category) for (const k of SERIES) p[k] += c[k] || 0;
      return p;
    });
  }
  function niceMax(v) {
    if (v <= 5) return 5;
    const p = 10 ** Math.floor(Math.log10(v));
    return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
  }
  function renderHistoryChart(data) {
    const points = historyPoints(data.samples, state.historyCategory);
    const name = HISTORY_CATEGORIES.get(state.historyCategory);
    const box = $("history-chart");
    $("history-empty").hidden = points.length > 0;
    if (!points.length) {
      box.innerHTML = "";
      $("history-empty").innerHTML = "<h2>No samples in this period</h2><p>The Console records the fleet once a minute while it runs.</p>";
      return;
    }
    const W = 900, H = 260, L = 48, R = 12, T = 12, B = 28;
    const t0 = Date.parse(data.from);
    const t1 = Date.parse(data.to);
    const max = niceMax(Math.max(1, ...points.flatMap((p) => SERIES.map((k) => p[k]))));
    const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - v / max) * (H - T - B);
    const grid = [0, 0.5, 1]
      .map((f) => `<line class="grid-l" x1="${L}" x2="${W - R}" y1="${y(max * f)}" y2="${y(max * f)}"></line><text class="ax" x="${L - 6}" y="${y(max * f) + 4}" text-anchor="end">${max * f}</text>`)
      .join("");
    const lines = SERIES.map((k) => {
      const pts = points.map((p) => `${x(p.t).toFixed(1)},${y(p[k]).toFixed(1)}`).join(" ");
      const dots = points.length === 1 ? `<circle class="s-${k}" cx="${x(points[0].t).toFixed(1)}" cy="${y(points[0][k]).toFixed(1)}" r="3"></circle>` : "";
      return `<polyline class="s-${k}" data-series="${k}" points="${pts}"></polyline>${dots}`;
    }).join("");
    const last = points[points.length - 1];
    const label = `${name}, ${{ hour: "last hour", day: "last day", month: "last 30 days" }[data.range]}: ${points.length} point${points.length === 1 ? "" : "s"}; latest ${shortUtc(new Date(last.t).toISOString())} UTC: ${last.connected} connected, ${last.disconnected} disconnected, ${last.evicted} evicted.`;
    box.innerHTML =
      `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(label)}" preserveAspectRatio="none">${grid}${lines}` +
      `<text class="ax" x="${L}" y="${H - 8}">${esc(shortUtc(data.from))}</text><text class="ax" x="${W - R}" y="${H - 8}" text-anchor="end">${esc(shortUtc(data.to))}</text></svg>` +
      `<p class="help" id="history-summary">${esc(label)}</p>`;
  }
  async function loadHistory() {
    const { data } = await api(`defenders/history?range=${state.historyRange}`);
    // The range is part of what is drawn (the summary names it): the same samples under another
    // range are redrawn too.
    const key = JSON.stringify([data.range, data.samples, state.historyCategory]);
    if (key === loadHistory.key) return;
    loadHistory.key = key;
    renderHistoryChart(data);
  }
  function syncHistoryControls() {
    for (const r of $("history-filters").elements.range) r.checked = r.value === state.historyRange;
    $("h-category").value = state.historyCategory;
  }
  function wireHistory() {
    $("history-filters").addEventListener("change", (e) => {
      if (e.target.name === "range") update({ historyRange: e.target.value }, { resetPage: false });
      if (e.target === $("h-category")) update({ historyCategory: e.target.value }, { resetPage: false });
    });
    $("history-filters").addEventListener("submit", (e) => e.preventDefault());
  }

  // ---------------------------------------------------------------------------------------------
  // Outage guard: while evictions are paused, a banner says why and offers to resume them, and
  // disconnected rows say "removal paused" instead of a countdown (evictionsPaused).
  function renderOutage(status) {
    const el = $("outage");
    const i = status && status.paused ? status.incident : null;
    evictionsPaused = !!i;
    if (!i) {
      el.hidden = true;
      el.textContent = "";
      return;
    }
    el.hidden = false;
    el.innerHTML =
      `<strong>Evictions paused.</strong> ${esc(i.silent)} of the ${esc(i.fleet)} Defenders connected at ${esc(fmtUtc(i.fleetSince))} UTC ` +
      `stopped sending heartbeats without disconnecting, which looks like an outage between them and the Console. ` +
      `Nothing is evicted until they return. ` +
      `<span id="outage-held">Paused for ${esc(fmtDuration((status.pausedSeconds || 0) * 1000))}; ` +
      `${esc(status.heldBack || 0)} Defender${status.heldBack === 1 ? "" : "s"} due for eviction held back.</span> ` +
      `If these tasks were stopped on purpose (a scale-down), they will not return: resume evictions. ` +
      `<button type="button" class="btn small" id="resume-evictions">Resume evictions</button>`;
    if (readOnly()) gate($("resume-evictions"), forbidden("resuming evictions"));
  }

  async function loadEvictionStatus() {
    try {
      renderOutage((await api("defenders/eviction-status")).data);
    } catch (e) {
      if (e.status === 0 || e.status >= 500) throw e;
      renderOutage(null); // a Console without the outage guard
    }
  }

  $("outage").addEventListener("click", async (e) => {
    if (!e.target.closest("#resume-evictions")) return;
    if (!confirm("Resume evictions? Defenders silent for longer than their retention will be removed at the next sweep.")) return;
    try {
      renderOutage((await api("defenders/eviction-status/resume", { method: "POST", body: {} })).data);
    } catch (err) {
      if (err.status === 409) return loadEvictionStatus(); // ended meanwhile
      $("banner").hidden = false;
      $("banner").innerHTML = `<strong>Could not resume evictions:</strong> ${esc(err.message)}`;
    }
  });

  // ---------------------------------------------------------------------------------------------
  // Refresh loop: keeps filters, sort, page and scroll (rows are replaced in place).
  let timer = null;
  async function refreshNow() {
    clearTimeout(timer);
    if (inflight) {
      refreshNow.again = true;
      return;
    }
    inflight = true;
    watchSlow(Date.now());
    try {
      if (state.view === "defenders") await loadDefenders();
      else if (state.view === "audit") await loadAudit();
      else if (state.view === "history") await loadHistory();
      else if (state.view === "protect") {
        await loadAppIds();
        await loadRegistryCredentials();
        await loadEntrypoints();
      }
      else await api("version"); // keeps the connection indicator honest on the other views
      await loadEvictionStatus();
      if (openHost && $("detail").open) await loadDetail(openHost, { quiet: true });
      lastOkAt = new Date(consoleNow());
      setConnection(true);
      applyRole();
      $("updated").textContent = `Refreshes every ${REFRESH_MS / 1000} s · last updated ${fmtUtc(lastOkAt.toISOString())} UTC`;
    } catch (e) {
      if (e.status === 401) return; // the sign-in dialog is open; render() runs after sign-in
      if (e.status === 0) setConnection(false, `${e.message}.`, e.message);
      else if (e.status >= 500) setConnection(false, `Console error: ${e.message}.`);
      else {
        // A 4xx means this view's parameters are wrong (e.g. a hand-edited URL).
        setConnection(true);
        $("banner").hidden = false;
        $("banner").innerHTML = `<strong>The Console rejected this view:</strong> ${esc(e.message)} <button type="button" class="linkbtn" data-reset>Reset the view</button>`;
      }
    } finally {
      clearInterval(slowTimer);
      inflight = false;
      if (auth.signedOut) {
        // Signed out: nothing to refresh until the user signs in again.
      } else if (refreshNow.again) {
        refreshNow.again = false;
        refreshNow();
      } else {
        timer = setTimeout(refreshNow, REFRESH_MS);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Defender detail.
  let openHost = null;
  let lastDetailKey = "";
  let detailDefender = null;

  function kv(rows) {
    return (
      `<dl class="kv">` +
      rows
        .map(([k, v, mono]) => `<dt>${esc(k)}</dt><dd${mono ? ' class="mono"' : ""}>${v}</dd>`)
        .join("") +
      `</dl>`
    );
  }
  function jsonBlock(v) {
    const empty = v == null || (typeof v === "object" && Object.keys(v).length === 0);
    return empty ? `<p class="muted">None reported.</p>` : `<pre class="json">${esc(JSON.stringify(v, null, 2))}</pre>`;
  }
  function fieldsSummary(f) {
    if (!f || typeof f !== "object") return "";
    return Object.entries(f)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join("  ");
  }
  function detailHtml(d, profile, profileError) {
    const whenTime = (iso) => (iso ? `${esc(fmtUtc(iso))} UTC` : dash);
    let removal = dash;
    if (d.removalAt) {
      const left = Date.parse(d.removalAt) - consoleNow();
      removal = `${esc(fmtUtc(d.removalAt))} UTC <span class="muted">(${left > 0 ? `in ${esc(fmtDuration(left))}` : "due at the next cleanup run"})</span>`;
    }
    const cm = d.cloudMetadata || {};
    let html =
      `<h3>Overview</h3>` +
      kv([
        ["Status", statusCell(d)],
        ["Type", `${esc(d.typeLabel)} <span class="muted mono">(${esc(d.type)})</span>`],
        ["Category", esc(CATEGORY_LABEL.get(d.category) ?? d.category)],
        ["App ID", orDash(d.appID), true],
        ...(d.appID && typeof d.appIDIssued === "boolean"
          ? [["App ID origin", d.appIDIssued ? "Issued by this Console's embed flow" : '<span class="muted">Not issued by this Console</span>']]
          : []),
        ["Cluster", orDash(d.cluster)],
        ["Container", orDash(d.container)],
        ["Version", orDash(d.version)],
        ["Collections", d.collections?.length ? d.collections.map(esc).join(", ") : dash],
        ["Certificate expires", d.certificateExpiration ? whenTime(d.certificateExpiration) : dash],
      ]) +
      `<h3>Connection</h3>` +
      kv([
        ["Last seen", whenTime(d.lastSeen)],
        ["Last modified", whenTime(d.lastModified)],
        ["Registered", whenTime(d.registeredAt)],
        ["Disconnected since", whenTime(d.disconnectedAt)],
        ["Removal", removal],
        ["Clock skew", d.clockSkewSeconds == null ? dash : `${esc(d.clockSkewSeconds)} s <span class="muted">(Defender clock − Console clock)</span>`],
      ]) +
      "";
    if (d.category === "appEmbedded") {
      html += `<h3>App-Embedded observations</h3>`;
      if (profileError) html += `<p class="error">Could not load the runtime profile: ${esc(profileError)}</p>`;
      else if (profile) {
        const obs = profile.observations || [];
        html +=
          kv([
            ["Profile started", whenTime(profile.startTime)],
            ["Image", orDash(profile.image), true],
            ["Observations", `${esc(profile.observationsTotal)}${obs.length < profile.observationsTotal ? ` <span class="muted">(newest ${obs.length} shown)</span>` : ""}`],
          ]) +
          (obs.length
            ? `<table class="events"><caption class="sr-only">Recent observations</caption><thead><tr><th scope="col">Time (UTC)</th><th scope="col">Kind</th><th scope="col">Details</th></tr></thead><tbody>` +
              obs
                .map(
                  (o) =>
                    `<tr><td class="time">${timeCell(o.time)}</td><td><span class="kind ${esc(o.kind)}">${esc(o.kind)}</span></td><td class="fields">${esc(fieldsSummary(o.fields))}</td></tr>`,
                )
                .join("") +
              `</tbody></table>`
            : `<p class="muted">No observations reported yet.</p>`);
      }
    }
    html +=
      `<h3>Cloud metadata</h3>` +
      kv([
        ["Provider", orDash(cm.provider)],
        ["Account ID", orDash(cm.accountID), true],
        ["Region", orDash(cm.region)],
        ["Resource ID", orDash(cm.resourceID), true],
        ["Execution environment", orDash(cm.awsExecutionEnv)],
        ["Image", orDash(cm.image), true],
        ["Name", orDash(cm.name)],
      ]);
    html +=
      `<h3>Features</h3>${jsonBlock(d.features)}` +
      `<h3>Status</h3>${jsonBlock(d.status)}` +
      `<h3>System info</h3>${jsonBlock(d.systemInfo)}`;
    return html;
  }
  async function loadDetail(hostname, { quiet = false } = {}) {
    let d;
    try {
      d = (await api(`defenders/${encodeURIComponent(hostname)}`)).data;
    } catch (e) {
      if (e.status === 404) {
        $("detail-body").innerHTML = `<p class="empty">This Defender is no longer in the inventory (removed or evicted). See the Audit tab.</p>`;
        $("detail-delete").disabled = true;
        lastDetailKey = "";
        return;
      }
      if (quiet) throw e;
      $("detail-body").innerHTML = `<p class="error">Could not load this Defender: ${esc(e.message)}</p>`;
      return;
    }
    let profile = null;
    let profileError = null;
    if (d.category === "appEmbedded") {
      try {
        profile = (await api(`profiles/app-embedded/${encodeURIComponent(hostname)}?limit=50`)).data;
      } catch (e) {
        if (e.status !== 404) profileError = e.message;
      }
    }
    detailDefender = d;
    enable($("detail-delete"));
    $("detail-title").textContent = d.hostname;
    $("detail-type").textContent = `${d.typeLabel} · ${d.connected ? "Connected" : "Disconnected"}`;
    const key = JSON.stringify([d, profile, profileError, Math.floor(consoleNow() / 30000)]);
    if (key === lastDetailKey) return;
    lastDetailKey = key;
    const body = $("detail-body");
    const scroll = body.scrollTop;
    body.innerHTML = detailHtml(d, profile, profileError);
    body.scrollTop = scroll;
  }
  async function openDetail(hostname) {
    openHost = hostname;
    lastDetailKey = "";
    // Delete waits for the Defender to load (askDelete needs it): a press before did nothing.
    detailDefender = null;
    $("detail-delete").disabled = true;
    $("detail-title").textContent = hostname;
    $("detail-type").textContent = "";
    $("detail-body").innerHTML = `<p class="muted">Loading…</p>`;
    const dlg = $("detail");
    if (!dlg.open) dlg.showModal();
    markSelected();
    await loadDetail(hostname);
  }
  function markSelected() {
    for (const tr of $("rows").rows) tr.classList.toggle("selected", !!openHost && tr.dataset.host === openHost);
  }

  // ---------------------------------------------------------------------------------------------
  // Saved views: named filter sets of the signed-in user, kept in the Console
  // (GET/POST /api/v1/views, DELETE /api/v1/views/{name}).
  let savedViews = [];
  const FILTER_KEYS = { type: "types", connected: "connected", outdated: "outdated", cluster: "cluster", clusterContains: "clusterContains", appID: "appID", search: "search", version: "version" };
  function viewMessage(text) {
    $("view-msg").textContent = text;
  }
  function renderViews() {
    $("views-empty").hidden = savedViews.length > 0;
    $("views-list").innerHTML = savedViews
      .map(
        (v) =>
          `<li><button type="button" class="linkbtn apply-view" data-name="${esc(v.name)}" title="${esc(new URLSearchParams(v.filter).toString() || "every Defender")}">${esc(v.name)}</button>` +
          `<button type="button" class="linkbtn delete-view" data-name="${esc(v.name)}" aria-label="Delete view ${esc(v.name)}">Delete</button></li>`,
      )
      .join("");
  }
  async function loadViews() {
    try {
      savedViews = (await api("views")).data || [];
      renderViews();
    } catch (e) {
      viewMessage(`Could not read your views: ${e.message}`);
    }
  }
  function applyView(name) {
    const v = savedViews.find((x) => x.name === name);
    if (!v) return;
    const patch = { types: [], connected: "", outdated: "", cluster: "", clusterContains: "", appID: "", search: "", version: "" };
    for (const [k, value] of Object.entries(v.filter || {})) {
      if (k === "type") patch.types = String(value).split(",").filter((t) => TYPE_BY_NAME.has(t));
      else if (FILTER_KEYS[k]) patch[FILTER_KEYS[k]] = String(value);
    }
    update(patch);
    $("views-menu").open = false;
    toast(`Showing view “${name}”.`);
    // Focus on the table's first row when there is one (after the refresh), else the heading.
    focusFirstRowNext = true;
  }
  async function saveView(ev) {
    ev.preventDefault();
    const name = $("view-name").value.trim();
    if (!name) {
      viewMessage("Enter a name for the view.");
      $("view-name").focus();
      return;
    }
    $("view-save").disabled = true;
    try {
      const { data } = await api("views", { method: "POST", body: { name, filter: Object.fromEntries(listParams()) } });
      await loadViews();
      $("view-name").value = "";
      viewMessage(`Saved view “${data.name}”.`);
      // Focus on the saved view in the list.
      [...$("views-list").querySelectorAll(".apply-view")].find((b) => b.dataset.name === data.name)?.focus();
    } catch (e) {
      viewMessage(e.status === 409 ? "You already keep 100 views: delete one first." : `Could not save: ${e.message}`);
      $("view-name").focus();
    } finally {
      $("view-save").disabled = false;
    }
  }
  async function deleteView(name) {
    const items = [...$("views-list").querySelectorAll(".delete-view")];
    const i = items.findIndex((b) => b.dataset.name === name);
    try {
      await api(`views/${encodeURIComponent(name)}`, { method: "DELETE" });
    } catch (e) {
      if (e.status !== 404) return viewMessage(`Could not delete: ${e.message}`);
    }
    await loadViews();
    viewMessage(`Deleted view “${name}”.`);
    // Focus on the view that took its place, else the name field.
    const next = $("views-list").querySelectorAll(".apply-view")[Math.min(i, savedViews.length - 1)];
    (next || $("view-name")).focus();
  }
  function wireViews() {
    $("views-menu").addEventListener("toggle", () => {
      if ($("views-menu").open) {
        viewMessage("");
        loadViews();
      }
    });
    $("views-menu").addEventListener("keydown", (e) => {
      if (e.key === "Escape" && $("views-menu").open) {
        $("views-menu").open = false;
        $("views-menu").querySelector("summary").focus();
      }
    });
    $("view-save-form").addEventListener("submit", saveView);
    $("views-list").addEventListener("click", (e) => {
      const apply = e.target.closest(".apply-view");
      if (apply) return applyView(apply.dataset.name);
      const del = e.target.closest(".delete-view");
      if (del) deleteView(del.dataset.name);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Bulk selection: Defenders picked by their checkbox on any page (kept with their rows, for
  // the CSV export), or "all N matching this filter" (the filter and the count the user saw;
  // the Console deletes on the filter and refuses with 409 count_changed when the count moved).
  const selection = { rows: new Map(), allMatching: null, anchor: -1 };
  let focusFirstRowNext = false;
  const isPicked = (host) => !!selection.allMatching || selection.rows.has(host.toLowerCase());
  const selectedCount = () => (selection.allMatching ? selection.allMatching.count : selection.rows.size);
  const selectionKey = () => (selection.allMatching ? `all:${selection.allMatching.count}` : [...selection.rows.keys()].join(","));
  function clearSelection() {
    selection.rows.clear();
    selection.allMatching = null;
    selection.anchor = -1;
    lastRowsKey = "";
    renderTable(lastPage.items, lastPage.total);
  }
  function pick(d, on) {
    const k = d.hostname.toLowerCase();
    if (on) selection.rows.set(k, d);
    else selection.rows.delete(k);
  }
  // The selection changed: rows that were all matching become the page's rows (minus the one
  // unticked) when one is unticked.
  function leaveAllMatching() {
    if (!selection.allMatching) return;
    selection.allMatching = null;
    for (const d of lastPage.items) pick(d, true);
  }
  function syncSelectionControls() {
    const n = selectedCount();
    const s = n === 1 ? "" : "s";
    $("bulkbar").hidden = n === 0;
    $("bulk-count").textContent = selection.allMatching ? `All ${n} Defender${s} matching this filter are selected.` : `${n} Defender${s} selected.`;
    const total = lastPage.total;
    const more = !selection.allMatching && n > 0 && total > n;
    $("select-all-matching").hidden = !more;
    if (more) $("select-all-matching").textContent = `Select all ${total} matching this filter`;
    $("bulk-delete").hidden = readOnly(); // auditors read and export only (the Console refuses with 403)
    $("bulk-delete").textContent = `Delete ${n} selected…`;
    const onPage = lastPage.items.filter((d) => isPicked(d.hostname)).length;
    const box = $("select-page");
    box.checked = onPage > 0 && onPage === lastPage.items.length;
    box.indeterminate = onPage > 0 && onPage < lastPage.items.length;
    box.disabled = lastPage.items.length === 0;
  }
  function onRowCheck(input, shift) {
    const tr = input.closest("tr");
    const rows = [...$("rows").rows];
    const index = rows.indexOf(tr);
    const byHost = new Map(lastPage.items.map((d) => [d.hostname, d]));
    leaveAllMatching();
    // Shift-click: the range from the previous click takes this box's state.
    const [from, to] = shift && selection.anchor >= 0 ? [Math.min(selection.anchor, index), Math.max(selection.anchor, index)] : [index, index];
    for (let i = from; i <= to; i++) {
      const d = byHost.get(rows[i]?.dataset.host);
      if (d) pick(d, input.checked);
    }
    selection.anchor = index;
    lastRowsKey = "";
    renderTable(lastPage.items, lastPage.total);
    rows[index] && [...$("rows").rows][index]?.querySelector(".rowsel")?.focus({ preventScroll: true });
  }
  function onPageCheck() {
    const on = $("select-page").checked;
    if (!on && selection.allMatching) selection.allMatching = null;
    else leaveAllMatching();
    for (const d of lastPage.items) pick(d, on);
    lastRowsKey = "";
    renderTable(lastPage.items, lastPage.total);
  }
  function selectAllMatching() {
    selection.allMatching = { query: listParams().toString(), count: lastPage.total };
    selection.rows.clear();
    lastRowsKey = "";
    renderTable(lastPage.items, lastPage.total);
    $("bulk-export").focus();
  }
  // The CSV columns of GET /api/v1/defenders/download, for the rows picked one by one.
  const CSV_COLUMNS = ["hostname", "type", "category", "version", "connected", "lastModified", "lastSeen", "disconnectedAt", "removalAt", "cluster", "appID", "container", "provider", "accountID", "region", "resourceID", "image"];
  function csvCell(v) {
    let t = v === undefined || v === null ? "" : String(v);
    if (/^[=+\-@\t\r]/.test(t)) t = `'${t}`; // a spreadsheet must not run it as a formula
    return /[",\r\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
  }
  function selectionCsv() {
    const lines = [CSV_COLUMNS.join(",")];
    for (const d of selection.rows.values()) {
      const cm = d.cloudMetadata || {};
      lines.push(CSV_COLUMNS.map((c) => csvCell(c in cm && !(c in d) ? cm[c] : d[c])).join(","));
    }
    return "\ufeff" + lines.join("\r\n") + "\r\n";
  }
  function exportSelection() {
    if (selection.allMatching) {
      // Every match: the Console's download of this filter.
      const q = new URLSearchParams(selection.allMatching.query);
      q.set("bom", "true");
      return fetchDownload(`${API}/defenders/download?${q}`, "defenders-selection.csv");
    }
    const url = URL.createObjectURL(new Blob([selectionCsv()], { type: "text/csv;charset=utf-8" }));
    saveUrl(url, "defenders-selection.csv");
    toast(`Exported ${selection.rows.size} Defender${selection.rows.size === 1 ? "" : "s"}.`);
  }
  function bulkBody() {
    if (!selection.allMatching) return { hostnames: [...selection.rows.values()].map((d) => d.hostname) };
    const q = new URLSearchParams(selection.allMatching.query);
    if (![...q.keys()].length) return { all: true, expectedCount: selection.allMatching.count };
    return { filter: Object.fromEntries(q), expectedCount: selection.allMatching.count };
  }
  function askBulkDelete() {
    const n = selectedCount();
    if (!n) return;
    const s = n === 1 ? "" : "s";
    $("bulk-title").textContent = `Delete ${n} Defender${s}?`;
    $("bulk-text").textContent =
      (selection.allMatching ? `Every Defender matching the current filter (${n}) ` : `The ${n} selected Defender${s} `) +
      `will be removed from the inventory together with their observations; an audit record is kept for each. ` +
      `Those still running register again, with no old data, on their next heartbeat.`;
    $("bulk-confirm-delete").textContent = `Delete ${n} Defender${s}`;
    $("bulk-error").hidden = true;
    $("bulk-confirm-delete").disabled = false;
    $("bulk-confirm").showModal();
  }
  async function doBulkDelete() {
    $("bulk-confirm-delete").disabled = true;
    try {
      const { data } = await api("defenders/delete", { method: "POST", body: bulkBody() });
      $("bulk-confirm").close();
      const n = data.deleted;
      toast(`Deleted ${n} Defender${n === 1 ? "" : "s"}${data.skipped ? ` (${data.skipped} already gone)` : ""}.`);
      selection.rows.clear();
      selection.allMatching = null;
      focusFirstRowNext = true;
      lastRowsKey = "";
      refreshNow();
    } catch (e) {
      $("bulk-confirm-delete").disabled = false;
      $("bulk-error").hidden = false;
      if (e.status === 409 && e.body?.code === "count_changed" && selection.allMatching) {
        // The fleet moved since the user looked: show the new count and ask again.
        try {
          const { total } = await api(`defenders?${selection.allMatching.query ? `${selection.allMatching.query}&` : ""}limit=1`);
          const was = selection.allMatching.count;
          selection.allMatching.count = total;
          $("bulk-title").textContent = `Delete ${total} Defender${total === 1 ? "" : "s"}?`;
          $("bulk-confirm-delete").textContent = `Delete ${total} Defender${total === 1 ? "" : "s"}`;
          $("bulk-error").textContent = `The filter now matches ${total} Defender${total === 1 ? "" : "s"}, not ${was}. Nothing was deleted; confirm the new number to go on.`;
          syncSelectionControls();
        } catch (e2) {
          $("bulk-error").textContent = `Could not delete: ${e2.message}`;
        }
      } else {
        $("bulk-error").textContent = e.status === 403 ? forbidden("deleting Defenders") : `Could not delete: ${e.message}`;
      }
      $("bulk-confirm-delete").focus();
    }
  }

  // Delete with confirmation.
  function askDelete() {
    const d = detailDefender;
    if (!d) return;
    const ae = d.category === "appEmbedded";
    $("confirm-title").textContent = `Delete ${d.hostname}?`;
    $("confirm-text").textContent =
      `The Defender is removed from the inventory${ae ? " together with all its App-Embedded observations" : ""}, and an audit record is kept. ` +
      `If it is still running, it registers again, with no old data, on its next heartbeat.`;
    $("confirm-error").hidden = true;
    $("confirm-delete").disabled = false;
    $("confirm").showModal();
  }
  // After a delete, focus goes to the row that took the deleted one's place (the next, else the
  // previous), or to the heading when the page is left empty.
  let focusAfterDelete = null;
  async function doDelete() {
    const d = detailDefender;
    $("confirm-delete").disabled = true;
    // The neighbour is read before the request: a refresh that lands while it is in flight may
    // already have removed the row.
    const tr = [...$("rows").rows].find((r) => r.dataset.host === d.hostname);
    const neighbour = (tr?.nextElementSibling ?? tr?.previousElementSibling)?.dataset.host ?? "";
    try {
      const { data } = await api(`defenders/${encodeURIComponent(d.hostname)}`, { method: "DELETE" });
      focusAfterDelete = neighbour;
      $("confirm").close();
      $("detail").close();
      const n = data && data.observationsRemoved;
      // A delete is idempotent: 204, or the earlier removal's record with alreadyRemoved.
      if (!data || data.alreadyRemoved)
        toast(`${d.hostname} was already removed${data && data.actor === "scheduler" ? " (evicted)" : ""}.`);
      else toast(`Deleted ${d.hostname}${Number.isFinite(n) ? ` and ${n} observation${n === 1 ? "" : "s"}` : ""}.`);
      refreshNow();
    } catch (e) {
      $("confirm-delete").disabled = false;
      $("confirm-error").hidden = false;
      $("confirm-error").textContent =
        e.status === 404
          ? "This Defender is already gone (removed or evicted)."
          : e.status === 403
            ? forbidden("deleting Defenders")
            : `Could not delete: ${e.message}`;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Advanced settings.
  function validateDays(raw) {
    const s = String(raw).trim();
    if (s === "") return "Enter a number of days.";
    if (!/^\d+$/.test(s)) return "Enter a whole number of days.";
    const n = Number(s);
    if (n < 1 || n > 365) return "Enter a number of days between 1 and 365.";
    return null;
  }
  function showDaysError(msg) {
    const el = $("s-days-error");
    el.hidden = !msg;
    el.textContent = msg || "";
    $("s-days").setAttribute("aria-invalid", msg ? "true" : "false");
  }
  async function openSettings() {
    showDaysError(null);
    const input = $("s-days");
    input.value = "";
    $("s-save").disabled = true;
    $("settings").showModal();
    try {
      const { data } = await api("settings/defender");
      input.value = String(data.disconnectPeriodDays);
      const h = data.appEmbeddedRemovalHours ?? 1;
      $("s-note").textContent =
        `App-Embedded Defenders (including Fargate) are always removed ${h === 1 ? "one hour" : `${h} hours`} after they disconnect, together with all their observations. This cannot be changed.`;
      enable($("s-save"));
      input.select();
    } catch (e) {
      showDaysError(`Could not load the current setting: ${e.message}`);
    }
  }
  async function saveSettings(ev) {
    ev.preventDefault();
    const input = $("s-days");
    const err = validateDays(input.value);
    if (err) {
      showDaysError(err);
      input.focus();
      return;
    }
    showDaysError(null);
    $("s-save").disabled = true;
    try {
      const { data } = await api("settings/defender", { method: "POST", body: { disconnectPeriodDays: Number(input.value.trim()) } });
      $("settings").close();
      toast(`Saved: disconnected Defenders are removed after ${data.disconnectPeriodDays} day${data.disconnectPeriodDays === 1 ? "" : "s"}.`);
      refreshNow();
    } catch (e) {
      showDaysError(
        e.status === 0
          ? "Console unreachable; the setting was not saved. Try again."
          : e.status === 403
            ? forbidden("changing Defender settings")
            : e.message,
      );
    } finally {
      enable($("s-save"));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Protect a task: the embed flow (docs/embed.md). The task definition goes as the raw body to
  // POST /api/v1/defenders/fargate.json or fargate.yaml; the protected document is the whole
  // answer and the issued App IDs come in the X-Defender-App-IDs header. Errors are
  // {code, message, field}: shown next to the input, with the line (YAML, JSON syntax) or the
  // path (field) selected in the input when it can be found.
  const EXAMPLES = {
    native: JSON.stringify(
      {
        containerDefinitions: [{ name: "web", image: "nginx", entryPoint: ["/http_server"] }],
        cpu: "256",
        executionRoleArn: "arn:aws:iam::112233445566:role/ecsTaskExecutionRole",
        family: "webserver",
        memory: "512",
        networkMode: "awsvpc",
        requiresCompatibilities: ["FARGATE"],
      },
      null,
      2,
    ),
    json: JSON.stringify(
      {
        Type: "AWS::ECS::TaskDefinition",
        Properties: {
          ContainerDefinitions: [{ Name: "web", Image: "nginx", EntryPoint: ["/http_server"] }],
          Cpu: 256,
          ExecutionRoleArn: "arn:aws:iam::112233445566:role/ecsTaskExecutionRole",
          Family: "webserver",
          Memory: 512,
          NetworkMode: "awsvpc",
          RequiresCompatibilities: ["FARGATE"],
        },
      },
      null,
      2,
    ),
    yaml: [
      'AWSTemplateFormatVersion: "2010-09-09"',
      "Resources:",
      "  WebTask:",
      "    Type: AWS::ECS::TaskDefinition",
      "    Properties:",
      "      Family: webserver",
      "      Cpu: '256'",
      "      Memory: '512'",
      "      NetworkMode: awsvpc",
      "      RequiresCompatibilities:",
      "        - FARGATE",
      "      ExecutionRoleArn: 'arn:aws:iam::112233445566:role/ecsTaskExecutionRole'",
      "      ContainerDefinitions:",
      "        - Name: web",
      "          Image: nginx",
      "          EntryPoint:",
      "            - /http_server",
      "",
    ].join("\n"),
  };
  const FORMAT_LABEL = {
    "native-json": "Native JSON",
    "native-yaml": "Native YAML",
    "cloudformation-json": "CloudFormation JSON",
    "cloudformation-yaml": "CloudFormation YAML",
  };
  const UUID_RE = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
  // The header joins App IDs with ","; an intrinsic family may itself hold commas, so split only
  // after a ":<uuid>".
  const splitAppIds = (h) => (h ? h.split(new RegExp(`(?<=:${UUID_RE}),`)).filter(Boolean) : []);

  const protect = { busy: false, lastIssued: [], errorLine: 0, outputUrl: null };

  function protectOptions() {
    const form = $("protect-form");
    const template = form.elements.template.value;
    const yaml = template === "cloudformation" && form.elements.format.value === "yaml";
    const q = new URLSearchParams();
    q.set("consoleaddr", $("p-consoleaddr").value.trim());
    q.set("cloudFormation", String(template === "cloudformation"));
    q.set("filesystemMonitoring", String($("p-fs").checked));
    q.set("extractEntrypoint", String($("p-extract").checked));
    if ($("p-extract").checked) {
      if ($("p-registry-type").value) q.set("registryType", $("p-registry-type").value);
      if ($("p-cred").value.trim()) q.set("registryCredentialID", $("p-cred").value.trim());
    }
    return { template, yaml, query: q };
  }
  // What was pasted: JSON or YAML (JSON starts with "{" or "["), and a native task definition
  // or a CloudFormation template (which declares AWSTemplateFormatVersion or a Resources map
  // holding an AWS::ECS::TaskDefinition). Null for an empty input.
  function detectFormat(text) {
    const t = text.replace(/^\uFEFF/, "").trim();
    if (!t) return null;
    const json = /^[{[]/.test(t);
    const cfn = /AWSTemplateFormatVersion|AWS::ECS::TaskDefinition/.test(t) || /(^|\n)\s*"?Resources"?\s*:/.test(t);
    return { json, cfn };
  }
  // Offers to switch the template type and format when they do not fit what was pasted.
  function syncDetectNote() {
    const box = $("p-detect");
    const d = detectFormat($("p-input").value);
    const form = $("protect-form");
    const cfnSelected = form.elements.template.value === "cloudformation";
    const yamlSelected = cfnSelected && form.elements.format.value === "yaml";
    let text = "";
    let target = null;
    if (d && d.cfn && (!cfnSelected || yamlSelected === d.json)) {
      target = { template: "cloudformation", format: d.json ? "json" : "yaml" };
      text = `This looks like a CloudFormation template in ${d.json ? "JSON" : "YAML"}.`;
    } else if (d && !d.cfn && cfnSelected) {
      target = d.json ? { template: "native", format: "json" } : null;
      text = d.json ? "This looks like a native ECS task definition (JSON)." : "";
    } else if (d && !d.cfn && !d.json) {
      text = "This looks like YAML. Native Fargate task definitions are JSON (as `aws ecs describe-task-definition` prints them); a YAML document must be a CloudFormation template.";
    }
    box.hidden = !text;
    box.innerHTML = text
      ? `<span>${esc(text)}</span>` +
        (target
          ? ` <button type="button" class="btn small" id="p-detect-switch" data-template="${target.template}" data-format="${target.format}">Switch to ${target.template === "native" ? "Native Fargate" : `CloudFormation ${target.format.toUpperCase()}`}</button>`
          : "")
      : "";
  }

  // Line diff of the input and the protected output (longest common subsequence of lines; JSON
  // input is re-indented as the Console writes it first, so only real changes show).
  const DIFF_MAX_CELLS = 4_000_000;
  function lineDiff(a, b) {
    const n = a.length;
    const m = b.length;
    if (n * m > DIFF_MAX_CELLS) return null;
    const w = m + 1;
    const len = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--)
        len[i * w + j] = a[i] === b[j] ? len[(i + 1) * w + j + 1] + 1 : Math.max(len[(i + 1) * w + j], len[i * w + j + 1]);
    const out = [];
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[i] === b[j]) {
        out.push([" ", a[i]]);
        i++;
        j++;
      } else if (j < m && (i === n || len[i * w + j + 1] >= len[(i + 1) * w + j])) out.push(["+", b[j++]]);
      else out.push(["-", a[i++]]);
    }
    return out;
  }
  function renderDiff(input, output) {
    let before = input;
    if (/^\s*[{[]/.test(input) && /^\s*[{[]/.test(output)) {
      try {
        const indent = /\n( +)"/.exec(output)?.[1].length ?? 2;
        before = JSON.stringify(JSON.parse(input), null, indent);
      } catch {
        before = input;
      }
    }
    const diff = lineDiff(before.replace(/\s+$/, "").split("\n"), output.replace(/\s+$/, "").split("\n"));
    const box = $("p-diff");
    box.hidden = false;
    if (!diff) {
      $("p-diff-stat").textContent = "(too large to compare here)";
      $("p-diff-body").innerHTML = "";
      return;
    }
    const added = diff.filter((d) => d[0] === "+").length;
    const removed = diff.filter((d) => d[0] === "-").length;
    $("p-diff-stat").textContent = `${added} line${added === 1 ? "" : "s"} added, ${removed} removed`;
    // Unchanged runs longer than 6 lines are folded to their first and last 2 lines.
    const rows = [];
    for (let k = 0; k < diff.length; ) {
      if (diff[k][0] !== " ") {
        rows.push(diff[k++]);
        continue;
      }
      let end = k;
      while (end < diff.length && diff[end][0] === " ") end++;
      if (end - k > 6) {
        rows.push(...diff.slice(k, k + 2), ["…", `${end - k - 4} unchanged lines`], ...diff.slice(end - 2, end));
      } else rows.push(...diff.slice(k, end));
      k = end;
    }
    const cls = { "+": "add", "-": "del", " ": "same", "…": "fold" };
    $("p-diff-body").innerHTML = rows
      .map(([op, line]) => `<div class="dl ${cls[op]}"><span class="dl-op" aria-label="${op === "+" ? "added" : op === "-" ? "removed" : ""}">${op === "…" ? "" : esc(op)}</span><code>${esc(line)}</code></div>`)
      .join("");
  }

  function syncProtectControls() {
    const cfn = $("protect-form").elements.template.value === "cloudformation";
    $("p-format-field").disabled = !cfn;
    const extract = $("p-extract").checked;
    $("p-registry-type").disabled = !extract;
    $("p-cred").disabled = !extract;
    $("p-fs-note").hidden = !$("p-fs").checked;
    const { yaml } = protectOptions();
    $("p-input-label").textContent = cfn ? `Task definition (CloudFormation ${yaml ? "YAML" : "JSON"})` : "Task definition (native ECS JSON)";
    syncDetectNote();
  }

  // Editor: line-number gutter, caret position and the error line's band.
  const LINE_PX = 18; // matches .editor textarea line-height
  function lineCount(text) {
    let n = 1;
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
    return n;
  }
  function renderGutter() {
    const n = lineCount($("p-input").value);
    const g = $("p-gutter");
    if (g.dataset.n !== String(n) || g.dataset.err !== String(protect.errorLine)) {
      const out = [];
      for (let i = 1; i <= n; i++) out.push(i === protect.errorLine ? `<span class="err">${i}</span>` : String(i));
      g.innerHTML = out.join("\n");
      g.dataset.n = String(n);
      g.dataset.err = String(protect.errorLine);
    }
    syncEditorScroll();
  }
  function syncEditorScroll() {
    const ta = $("p-input");
    $("p-gutter").scrollTop = ta.scrollTop;
    const band = $("p-err-band");
    band.hidden = !protect.errorLine;
    if (protect.errorLine) band.style.top = `${8 + (protect.errorLine - 1) * LINE_PX - ta.scrollTop}px`;
  }
  function updateCaret() {
    const ta = $("p-input");
    const before = ta.value.slice(0, ta.selectionStart);
    const line = lineCount(before);
    const col = before.length - before.lastIndexOf("\n");
    $("p-caret").textContent = `Line ${line}, column ${col}`;
  }
  // Offsets of line `n` (1-based) in `text`.
  function lineRange(text, n) {
    let start = 0;
    for (let i = 1; i < n; i++) {
      const j = text.indexOf("\n", start);
      if (j < 0) return null;
      start = j + 1;
    }
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    return { start, end };
  }
  function selectInInput(start, end, line) {
    const ta = $("p-input");
    ta.focus({ preventScroll: true });
    ta.setSelectionRange(start, end);
    const top = (line - 1) * LINE_PX;
    if (top < ta.scrollTop || top > ta.scrollTop + ta.clientHeight - 3 * LINE_PX) ta.scrollTop = Math.max(0, top - 3 * LINE_PX);
    ta.scrollIntoView({ block: "nearest" });
    updateCaret();
    syncEditorScroll();
  }
  function goToLine(n, col) {
    const text = $("p-input").value;
    const r = lineRange(text, n);
    if (!r) return;
    // The whole line is selected; a column narrows it to the rest of the line from there.
    const start = col && col > 1 ? Math.min(r.end, r.start + col - 1) : r.start;
    selectInInput(start, r.end, n);
  }

  // Where a path like `Resources.Web.Properties.ContainerDefinitions[0].EntryPoint` is in a JSON
  // text: a tolerant scan that records where each value (and its key) starts. Returns the deepest
  // existing prefix of the path, so a missing field points to its parent.
  function parsePath(path) {
    const parts = [];
    const re = /([^.[\]]+)|\[(\d+)\]/g;
    let m;
    while ((m = re.exec(path))) parts.push(m[2] !== undefined ? Number(m[2]) : m[1]);
    return parts;
  }
  function locateJsonPath(text, path) {
    const want = parsePath(path);
    if (!want.length) return null;
    let i = 0;
    let best = null;
    const ws = () => {
      while (i < text.length && /\s/.test(text[i])) i++;
    };
    const str = () => {
      const s = i;
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      i++;
      try {
        return JSON.parse(text.slice(s, i));
      } catch {
        return text.slice(s + 1, i - 1);
      }
    };
    const matches = (pathSoFar) => pathSoFar.length <= want.length && pathSoFar.every((p, k) => p === want[k]);
    const note = (pathSoFar, start, end) => {
      if (matches(pathSoFar) && (!best || pathSoFar.length > best.depth)) best = { depth: pathSoFar.length, start, end };
    };
    const value = (pathSoFar, depth) => {
      if (depth > 80) throw new Error("deep");
      ws();
      const c = text[i];
      if (c === "{") {
        i++;
        ws();
        if (text[i] === "}") return void i++;
        for (;;) {
          ws();
          if (text[i] !== '"') throw new Error("key");
          const ks = i;
          const key = str();
          const ke = i;
          ws();
          if (text[i] !== ":") throw new Error("colon");
          i++;
          const p = [...pathSoFar, key];
          note(p, ks, ke);
          if (matches(p)) value(p, depth + 1);
          else skip(depth + 1);
          ws();
          if (text[i] === ",") i++;
          else if (text[i] === "}") return void i++;
          else throw new Error("object");
        }
      } else if (c === "[") {
        i++;
        ws();
        if (text[i] === "]") return void i++;
        for (let n = 0; ; n++) {
          ws();
          const p = [...pathSoFar, n];
          const vs = i;
          if (matches(p)) value(p, depth + 1);
          else skip(depth + 1);
          if (matches(p)) note(p, vs, i);
          ws();
          if (text[i] === ",") i++;
          else if (text[i] === "]") return void i++;
          else throw new Error("array");
        }
      } else skip(depth);
    };
    const skip = (depth) => {
      ws();
      const c = text[i];
      if (c === '"') return void str();
      if (c === "{" || c === "[") return value([null], depth); // [null] never matches
      const s = i;
      while (i < text.length && !/[\s,\]}]/.test(text[i])) i++;
      if (i === s) throw new Error("value");
    };
    try {
      value([], 0);
    } catch {
      // A syntax error: keep what was found before it.
    }
    return best;
  }

  function lineOf(text, offset) {
    return lineCount(text.slice(0, offset));
  }
  function showProtectError(err) {
    const box = $("p-error");
    const input = $("p-input").value;
    const msg = String(err.message || "");
    const lm = /\bline (\d+)(?:,? col(?:umn)? (\d+))?/i.exec(msg);
    let line = lm ? Number(lm[1]) : 0;
    let col = lm && lm[2] ? Number(lm[2]) : 0;
    let loc = null;
    if (!line && err.field && /^\s*[{[]/.test(input)) {
      loc = locateJsonPath(input, err.field);
      if (loc) line = lineOf(input, loc.start);
    }
    if (line > lineCount(input)) line = 0;
    protect.errorLine = line;
    const where = [];
    if (err.field) where.push(`<span class="p-where">Path <code id="p-error-field">${esc(err.field)}</code></span>`);
    if (line) where.push(`<button type="button" class="btn small" id="p-goto" data-line="${line}" data-col="${col}">Go to line ${line}${col ? `, column ${col}` : ""}</button>`);
    let fix = "";
    if (err.code === "format_mismatch") {
      const cfn = $("protect-form").elements.template.value === "cloudformation";
      fix = `<button type="button" class="btn small" id="p-switch" data-template="${cfn ? "native" : "cloudformation"}">Switch to ${cfn ? "Native Fargate" : "CloudFormation"}</button>`;
    } else if (err.code === "entrypoint_required" && !$("p-extract").checked) {
      fix = `<button type="button" class="btn small" id="p-enable-extract">Enable “Automatically extract entrypoint”</button>`;
    }
    if (err.code === "entrypoint_required" || err.code === "entrypoint_unknown") {
      const image = /image "([^"]+)"/.exec(msg)?.[1] ?? "";
      fix += ` <a class="btn small" href="#entrypoints" id="p-goto-entrypoints" data-image="${esc(image)}">Add the image's entrypoint</a>`;
    }
    box.innerHTML =
      `<div class="p-error-head"><span class="p-code" id="p-error-code">${esc(err.code || `HTTP ${err.status}`)}</span>` +
      (err.status ? `<span class="muted">HTTP ${esc(err.status)}</span>` : "") +
      `</div><p class="p-msg" id="p-error-message">${esc(msg || "The Console refused the task definition.")}</p>` +
      (where.length || fix ? `<div class="p-where-row">${where.join("")}${fix}</div>` : "");
    box.hidden = false;
    $("p-input").setAttribute("aria-invalid", "true");
    renderGutter();
    if (loc) {
      selectInInput(loc.start, loc.end, line);
    } else if (line) goToLine(line, col);
    box.scrollIntoView({ block: "nearest" });
  }
  function clearProtectError() {
    $("p-error").hidden = true;
    $("p-error").innerHTML = "";
    $("p-input").removeAttribute("aria-invalid");
    if (protect.errorLine) {
      protect.errorLine = 0;
      renderGutter();
    }
  }
  function setOutput(text, ext) {
    $("p-output").value = text;
    $("p-secret").hidden = !text;
    if (!text) $("p-diff").hidden = true;
    $("p-copy").disabled = !text;
    const dl = $("p-download");
    if (protect.outputUrl) URL.revokeObjectURL(protect.outputUrl);
    protect.outputUrl = null;
    if (text) {
      protect.outputUrl = URL.createObjectURL(new Blob([text], { type: ext === "yaml" ? "application/yaml" : "application/json" }));
      dl.href = protect.outputUrl;
      dl.download = `protected_taskdef.${ext}`;
      dl.removeAttribute("aria-disabled");
      dl.removeAttribute("tabindex");
    } else {
      dl.removeAttribute("href");
      dl.setAttribute("aria-disabled", "true");
      dl.setAttribute("tabindex", "-1");
    }
  }

  async function generateProtected(ev) {
    ev?.preventDefault();
    if (protect.busy) return;
    const body = $("p-input").value;
    const { yaml, query } = protectOptions();
    if (!$("p-consoleaddr").value.trim()) {
      showProtectError({ code: "missing_parameter", message: "Enter the Console address the Defender connects to (a DNS name or IP address)." });
      $("p-consoleaddr").setAttribute("aria-invalid", "true");
      $("p-consoleaddr").focus();
      return;
    }
    $("p-consoleaddr").removeAttribute("aria-invalid");
    if (!body.trim()) {
      showProtectError({ code: "empty_input", message: "Paste a task definition into the box first." });
      $("p-input").focus();
      return;
    }
    protect.busy = true;
    $("p-generate").disabled = true;
    $("p-generate").textContent = "Generating…";
    const ext = yaml ? "yaml" : "json";
    try {
      let res;
      try {
        res = await fetch(`${API}/defenders/fargate.${ext}?${query}`, {
          method: "POST",
          headers: authHeaders({ "Content-Type": yaml ? "application/yaml" : "application/json" }),
          body,
          cache: "no-store",
        });
      } catch {
        throw { code: "unreachable", message: "The Console could not be reached. Nothing was generated; try again." };
      }
      noteServerDate(res);
      const text = await res.text();
      if (res.status === 401) {
        askSignIn("Your session has ended. Sign in again, then generate again; your input is kept.");
        throw { status: 401, code: "unauthenticated", message: "Sign in again, then generate again. Nothing was generated." };
      }
      if (!res.ok) {
        let e = null;
        try {
          e = JSON.parse(text);
        } catch {
          e = null;
        }
        if (res.status === 403) throw { status: 403, code: e?.code, message: forbidden("protecting task definitions") };
        throw { status: res.status, code: e?.code, message: e?.message || text || `HTTP ${res.status}`, field: e?.field };
      }
      const ids = splitAppIds(res.headers.get("X-Defender-App-IDs"));
      protect.lastIssued = ids;
      clearProtectError();
      setOutput(text, ext);
      renderDiff(body, text);
      $("p-result-info").innerHTML =
        `<span class="badge ok">Protected</span> ` +
        `<span class="p-ids-label">App ID${ids.length === 1 ? "" : "s"} issued:</span> ` +
        `<span id="p-appids">${ids.map((id) => `<code class="p-appid">${esc(id)}</code>`).join(" ") || dash}</span>` +
        `<span class="help">Create a new task definition revision in AWS from this document. It uses the Defender version that matches this Console.</span>`;
      loadAppIds().catch(() => {});
    } catch (e) {
      setOutput("", ext);
      $("p-result-info").innerHTML = "";
      showProtectError(e);
    } finally {
      protect.busy = false;
      $("p-generate").disabled = false;
      $("p-generate").textContent = "Generate protected task";
    }
  }

  async function copyOutput() {
    const out = $("p-output");
    const text = out.value;
    if (!text) return;
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      out.focus();
      out.select();
      try {
        ok = document.execCommand("copy");
      } catch {
        ok = false;
      }
    }
    $("p-copy").textContent = ok ? "Copied" : "Copy";
    toast(ok ? "Protected task definition copied to the clipboard." : "Could not copy: the text is selected, press Ctrl+C.");
    clearTimeout(copyOutput.timer);
    copyOutput.timer = setTimeout(() => ($("p-copy").textContent = "Copy"), 2000);
  }

  // The newest App IDs (the API lists oldest first, with Total-Count).
  const APPIDS_SHOWN = 20;
  async function loadAppIds() {
    const head = await api("defenders/app-ids?limit=1");
    const total = Number.isFinite(head.total) ? head.total : head.data.length;
    const offset = Math.max(0, total - APPIDS_SHOWN);
    const { data } = total > 1 ? await api(`defenders/app-ids?offset=${offset}&limit=${APPIDS_SHOWN}`) : head;
    const rows = [...data].reverse();
    const key = JSON.stringify([rows, protect.lastIssued]);
    if (key !== loadAppIds.key) {
      loadAppIds.key = key;
      $("appids-rows").innerHTML = rows
        .map((a) => {
          const fresh = protect.lastIssued.includes(a.appID);
          return (
            `<tr${fresh ? ' class="fresh"' : ""}><td><span class="mono appid">${esc(a.appID)}</span>${fresh ? ' <span class="badge ok">new</span>' : ""}</td>` +
            `<td>${a.familyIsIntrinsic ? `<span class="mono" title="Intrinsic, resolved at deploy time">${esc(a.family)}</span>` : esc(a.family)}</td>` +
            `<td>${esc(FORMAT_LABEL[a.format] ?? a.format)}</td><td><span class="mono">${orDash(a.resource)}</span></td>` +
            `<td class="time">${timeCell(a.issuedAt)}</td></tr>`
          );
        })
        .join("");
    }
    $("appids-empty").hidden = rows.length > 0;
    $("appids-empty").innerHTML = "<p>No App IDs issued yet. Each protected task definition gets one per task definition.</p>";
    $("appids-range").textContent = total ? (total > rows.length ? `newest ${rows.length} of ${total}` : `${total} total`) : "";
  }

  // Registry credentials: listed without secrets; added and deleted by a Defender Manager.
  const REGCRED_TYPE = { basic: "User name and password", aws: "AWS access key (ECR)" };
  async function loadRegistryCredentials() {
    let data;
    try {
      ({ data } = await api("registry/credentials"));
    } catch (e) {
      if (e.status !== 403) throw e;
      $("regcred-rows").innerHTML = "";
      $("regcred-empty").hidden = false;
      $("regcred-empty").innerHTML = `<p>${esc(forbidden("seeing registry credentials"))}</p>`;
      $("regcred-form").hidden = true;
      return;
    }
    const key = JSON.stringify(data);
    if (key === loadRegistryCredentials.key) return;
    loadRegistryCredentials.key = key;
    $("regcred-rows").innerHTML = data
      .map(
        (c) =>
          `<tr><td><span class="mono">${esc(c._id)}</span></td><td>${esc(REGCRED_TYPE[c.type] ?? c.type)}</td>` +
          `<td><span class="mono">${esc(c.accountID)}</span></td><td>${orDash(c.description)}</td>` +
          `<td class="time">${timeCell(c.lastModified)}</td>` +
          `<td><button type="button" class="btn small danger" data-regcred="${esc(c._id)}">Delete</button></td></tr>`
      )
      .join("");
    $("regcred-empty").hidden = data.length > 0;
    $("regcred-empty").innerHTML = "<p>No registry credentials yet.</p>";
    $("p-cred-list").innerHTML = data.map((c) => `<option value="${esc(c._id)}"></option>`).join("");
  }
  function syncRegcredLabels() {
    const aws = $("rc-type").value === "aws";
    $("rc-account-label").textContent = aws ? "Access key ID" : "User name";
    $("rc-secret-label").textContent = aws ? "Secret access key" : "Password";
  }
  // Image entrypoints (GET/POST/DELETE /api/v1/images/entrypoints), 100 at most, by image.
  const argvText = (a) => (a && a.length ? JSON.stringify(a) : "");
  // "a b c" or a JSON array of strings -> argv; throws with a message for a malformed array.
  function parseArgv(text, name) {
    const t = text.trim();
    if (!t) return [];
    if (t.startsWith("[")) {
      let v;
      try {
        v = JSON.parse(t);
      } catch {
        throw new Error(`${name}: not a valid JSON array`);
      }
      if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw new Error(`${name}: a JSON array of strings`);
      return v;
    }
    return t.split(/\s+/);
  }
  async function loadEntrypoints() {
    let data;
    let total;
    try {
      ({ data, total } = await api("images/entrypoints?limit=100"));
    } catch (e) {
      if (e.status !== 403) throw e;
      $("ep-rows").innerHTML = "";
      $("ep-empty").hidden = false;
      $("ep-empty").innerHTML = `<p>${esc(forbidden("seeing image entrypoints"))}</p>`;
      return;
    }
    const key = JSON.stringify(data);
    if (key === loadEntrypoints.key) return;
    loadEntrypoints.key = key;
    $("ep-rows").innerHTML = data
      .map(
        (e) =>
          `<tr><td><span class="mono">${esc(e.image)}</span></td><td><span class="mono">${orDash(argvText(e.entrypoint))}</span></td>` +
          `<td><span class="mono">${orDash(argvText(e.cmd))}</span></td><td>${esc(e.source === "registry" ? "read from registry" : "added here / API")}</td>` +
          `<td class="time">${timeCell(e.updatedAt)}</td>` +
          `<td><button type="button" class="btn small danger" data-image="${esc(e.image)}" aria-label="Delete the entrypoint of ${esc(e.image)}">Delete</button></td></tr>`,
      )
      .join("");
    $("ep-empty").hidden = data.length > 0;
    $("ep-empty").innerHTML = "<p>No image entrypoints stored yet. Add one above, or let “Automatically extract entrypoint” read them from registries.</p>";
    const n = Number.isFinite(total) ? total : data.length;
    $("ep-range").textContent = n > data.length ? `First ${data.length} of ${n} images (by name).` : "";
  }
  function wireEntrypoints() {
    $("ep-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      let body;
      try {
        body = { image: $("ep-image").value.trim(), entrypoint: parseArgv($("ep-entrypoint").value, "Entrypoint"), cmd: parseArgv($("ep-cmd").value, "Cmd") };
      } catch (err) {
        $("ep-msg").textContent = err.message;
        return;
      }
      $("ep-save").disabled = true;
      try {
        const { data } = await api("images/entrypoints", { method: "POST", body });
        $("ep-msg").textContent = `Entrypoint of ${data.image} saved.`;
        $("ep-form").reset();
        await loadEntrypoints();
        $("ep-image").focus();
      } catch (err) {
        $("ep-msg").textContent = err.status === 403 ? forbidden("adding image entrypoints") : err.message;
      } finally {
        $("ep-save").disabled = false;
      }
    });
    $("ep-rows").addEventListener("click", async (e) => {
      const image = e.target.closest("button[data-image]")?.dataset.image;
      if (!image) return;
      try {
        await api(`images/entrypoints?image=${encodeURIComponent(image)}`, { method: "DELETE" });
        $("ep-msg").textContent = `Entrypoint of ${image} deleted.`;
        await loadEntrypoints();
        $("ep-image").focus();
      } catch (err) {
        $("ep-msg").textContent = err.status === 403 ? forbidden("deleting image entrypoints") : err.message;
      }
    });
  }

  function wireRegistryCredentials() {
    $("rc-type").addEventListener("change", syncRegcredLabels);
    $("regcred-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const body = {
        _id: $("rc-id").value.trim(),
        type: $("rc-type").value,
        accountID: $("rc-account").value.trim(),
        secret: $("rc-secret").value,
        description: $("rc-desc").value.trim(),
      };
      $("rc-save").disabled = true;
      try {
        await api("registry/credentials", { method: "POST", body });
        $("rc-secret").value = ""; // never kept on the page
        $("regcred-msg").textContent = `Credential ${body._id} saved.`;
        $("regcred-form").reset();
        syncRegcredLabels();
        await loadRegistryCredentials();
      } catch (err) {
        $("regcred-msg").textContent = err.status === 403 ? forbidden("adding registry credentials") : err.message;
      } finally {
        $("rc-save").disabled = false;
      }
    });
    $("regcred-rows").addEventListener("click", async (e) => {
      const id = e.target.closest("button[data-regcred]")?.dataset.regcred;
      if (!id) return;
      try {
        await api(`registry/credentials/${encodeURIComponent(id)}`, { method: "DELETE" });
        $("regcred-msg").textContent = `Credential ${id} deleted.`;
        await loadRegistryCredentials();
      } catch (err) {
        $("regcred-msg").textContent = err.status === 403 ? forbidden("deleting registry credentials") : err.message;
      }
    });
  }

  function wireProtect() {
    const form = $("protect-form");
    $("p-consoleaddr").value = location.hostname;
    form.addEventListener("submit", generateProtected);
    form.addEventListener("change", (e) => {
      if (e.target.name === "template" || e.target.name === "format" || e.target === $("p-extract") || e.target === $("p-fs")) syncProtectControls();
    });
    const ta = $("p-input");
    ta.addEventListener("input", () => {
      renderGutter();
      updateCaret();
      clearTimeout(protect.detectTimer);
      protect.detectTimer = setTimeout(syncDetectNote, 200);
    });
    $("p-detect").addEventListener("click", (e) => {
      const sw = e.target.closest("#p-detect-switch");
      if (!sw) return;
      form.elements.template.value = sw.dataset.template;
      if (sw.dataset.template === "cloudformation") form.elements.format.value = sw.dataset.format;
      syncProtectControls();
      ta.focus();
    });
    ta.addEventListener("scroll", syncEditorScroll);
    for (const ev of ["keyup", "click", "select"]) ta.addEventListener(ev, updateCaret);
    ta.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) generateProtected(e);
    });
    $("p-example").addEventListener("click", () => {
      const { template, yaml } = protectOptions();
      ta.value = template === "native" ? EXAMPLES.native : yaml ? EXAMPLES.yaml : EXAMPLES.json;
      clearProtectError();
      renderGutter();
      ta.focus();
      ta.setSelectionRange(0, 0);
      updateCaret();
    });
    $("p-clear").addEventListener("click", () => {
      ta.value = "";
      clearProtectError();
      setOutput("", "json");
      $("p-result-info").innerHTML = "";
      renderGutter();
      ta.focus();
    });
    $("p-error").addEventListener("click", (e) => {
      const go = e.target.closest("#p-goto");
      if (go) goToLine(Number(go.dataset.line), Number(go.dataset.col));
      const sw = e.target.closest("#p-switch");
      if (sw) {
        form.elements.template.value = sw.dataset.template;
        syncProtectControls();
        generateProtected();
      }
      const toEp = e.target.closest("#p-goto-entrypoints");
      if (toEp) {
        e.preventDefault();
        $("ep-image").value = toEp.dataset.image || "";
        $("entrypoints").scrollIntoView({ block: "start" });
        $(toEp.dataset.image ? "ep-entrypoint" : "ep-image").focus({ preventScroll: true });
      }
      if (e.target.closest("#p-enable-extract")) {
        $("p-extract").checked = true;
        syncProtectControls();
        generateProtected();
      }
    });
    $("p-copy").addEventListener("click", copyOutput);
    syncProtectControls();
    renderGutter();
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring.
  // The CSV link needs the bearer token too, so it is fetched and handed over as a file.
  async function downloadCsv(ev) {
    ev.preventDefault();
    const link = ev.currentTarget;
    return fetchDownload(link.href, link.id === "audit-download" ? "audit.csv" : "defenders.csv");
  }
  function saveUrl(url, filename) {
    const a = document.createElement("a");
    a.href = url;
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }
  async function fetchDownload(href, filename) {
    let res;
    try {
      res = await fetch(href, { headers: authHeaders(), cache: "no-store" });
    } catch {
      toast("The Console could not be reached. Nothing was downloaded.");
      return;
    }
    if (res.status === 401) {
      askSignIn("Your session has ended. Sign in again to download.");
      return;
    }
    if (!res.ok) {
      const json = await res.json().catch(() => null);
      toast(`Download failed: ${json?.message || `HTTP ${res.status}`}`);
      return;
    }
    saveUrl(URL.createObjectURL(await res.blob()), filename);
  }

  function wire() {
    buildTypeMenu();
    buildColumnMenu();
    $("signin-form").addEventListener("submit", signIn);
    // Signing in cannot be skipped: Escape does not close the dialog.
    $("signin").addEventListener("cancel", (e) => e.preventDefault());
    $("sign-out").addEventListener("click", signOut);
    $("download").addEventListener("click", downloadCsv);
    wireProtect();
    wireAudit();
    wireHistory();
    wireViews();
    wireRegistryCredentials();
    wireEntrypoints();
    $("type-btn").addEventListener("click", () => openTypeMenu($("type-menu").hidden));
    $("type-done").addEventListener("click", () => {
      openTypeMenu(false);
      $("type-btn").focus();
    });
    $("type-clear").addEventListener("click", () => update({ types: [] }));
    $("type-menu").addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        openTypeMenu(false);
        $("type-btn").focus();
      }
    });
    // The menu closes when keyboard focus leaves it.
    document.querySelector(".typefield").addEventListener("focusout", (e) => {
      // A click on an option's label moves focus to <main> (tabindex -1) first: not leaving.
      const to = e.relatedTarget;
      if (!$("type-menu").hidden && to && to !== $("main") && !to.closest(".typefield")) openTypeMenu(false);
    });
    document.addEventListener("click", (e) => {
      if (!$("type-menu").hidden && !e.target.closest(".typefield")) openTypeMenu(false);
    });
    $("f-status").addEventListener("change", (e) => update({ connected: e.target.value }));
    $("f-version").addEventListener("change", (e) => update({ outdated: e.target.value }));
    // Typing in either text filter applies both, once the typing pauses.
    // The Cluster field is a substring filter (clusterContains); it replaces an exact `cluster`
    // from a shared link once edited.
    const typed = debounce(() => update({ cluster: "", clusterContains: $("f-cluster").value, search: $("f-search").value }, { push: false }), 300);
    $("f-cluster").addEventListener("input", typed);
    $("f-cluster").addEventListener("focus", () => Date.now() - clustersAt > 5000 && loadClusters());
    $("f-search").addEventListener("input", typed);
    $("filters").addEventListener("submit", (e) => {
      e.preventDefault();
      update({ cluster: "", clusterContains: $("f-cluster").value, search: $("f-search").value });
    });
    const clearAll = () => update({ types: [], connected: "", outdated: "", cluster: "", clusterContains: "", appID: "", search: "", version: "" });
    $("clear-filters").addEventListener("click", clearAll);
    $("empty").addEventListener("click", (e) => e.target.closest("[data-clear]") && clearAll());
    $("banner").addEventListener("click", (e) => {
      if (e.target.closest("[data-reset]")) {
        history.pushState(null, "", location.pathname);
        state = readState();
        render();
      }
    });

    for (const th of document.querySelectorAll("#grid th[data-sort]"))
      th.querySelector("button").addEventListener("click", () => {
        const key = th.dataset.sort;
        update({ sort: key, reverse: state.sort === key ? !state.reverse : false });
      });
    $("tiles").addEventListener("click", (e) => {
      const tile = e.target.closest(".tile");
      const button = e.target.closest("button");
      if (!tile || !button) return;
      const catTypes = TYPES.filter((t) => t.category === tile.dataset.cat).map((t) => t.type);
      const on = button.getAttribute("aria-pressed") === "true";
      const filter = button.dataset.filter;
      if (!filter) return update({ types: on ? [] : catTypes, connected: "", outdated: "" });
      if (on) return update({ connected: "", outdated: "" });
      update({
        types: catTypes,
        connected: filter === "connected" ? "true" : filter === "disconnected" ? "false" : "",
        outdated: filter === "outdated" ? "true" : "",
      });
    });
    // Defenders that report no version cannot be picked out with `version=` (empty means any).
    const pickVersion = (v) => v && update({ version: state.version === v ? "" : v });
    $("versions-legend").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-version]");
      if (!b) return;
      $("versions-more").open = false;
      pickVersion(b.dataset.version);
      $("versions-summary").focus();
    });
    $("versions-bar").addEventListener("click", (e) => {
      const r = e.target.closest("rect[data-version]");
      if (r) pickVersion(r.getAttribute("data-version"));
    });
    $("rows").addEventListener("click", (e) => {
      const box = e.target.closest(".rowsel");
      if (box) return onRowCheck(box, e.shiftKey);
      if (e.target.closest("td.selcol")) return;
      const app = e.target.closest("[data-appid]");
      if (app) return update({ appID: app.dataset.appid });
      const tr = e.target.closest("tr[data-host]");
      if (tr && !window.getSelection()?.toString()) openDetail(tr.dataset.host);
    });

    // Arrow keys move between rows (to the same control: checkbox, hostname or App ID), Home and
    // End to the first and last row; Enter on a hostname opens its details (it is a button).
    $("rows").addEventListener("keydown", (e) => {
      if (!["ArrowDown", "ArrowUp", "Home", "End"].includes(e.key) || e.altKey || e.ctrlKey || e.metaKey) return;
      const tr = e.target.closest("tr[data-host]");
      if (!tr) return;
      const rows = [...$("rows").rows];
      const i = rows.indexOf(tr);
      const j = e.key === "ArrowDown" ? i + 1 : e.key === "ArrowUp" ? i - 1 : e.key === "Home" ? 0 : rows.length - 1;
      if (j < 0 || j >= rows.length || j === i) return;
      e.preventDefault();
      const kind = e.target.classList.contains("rowsel") ? ".rowsel" : e.target.closest("[data-appid]") ? "[data-appid]" : "td.host button";
      (rows[j].querySelector(kind) || rows[j].querySelector("td.host button")).focus();
    });
    $("select-page").addEventListener("change", onPageCheck);
    $("select-all-matching").addEventListener("click", selectAllMatching);
    $("bulk-clear").addEventListener("click", () => {
      clearSelection();
      $("select-page").focus();
    });
    $("bulk-export").addEventListener("click", exportSelection);
    $("bulk-delete").addEventListener("click", askBulkDelete);
    $("bulk-confirm-delete").addEventListener("click", doBulkDelete);
    $("page-size").addEventListener("change", (e) => update({ limit: Number(e.target.value) }));
    $("first").addEventListener("click", () => update({ offset: 0 }));
    $("prev").addEventListener("click", () => update({ offset: Math.max(0, state.offset - state.limit) }));
    $("next").addEventListener("click", () => update({ offset: state.offset + state.limit }));
    const lastOffset = () => Math.max(0, Math.floor((lastPage.total - 1) / state.limit) * state.limit);
    $("last").addEventListener("click", () => update({ offset: lastOffset() }));
    $("jump-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const n = Math.round(Number($("page-jump").value));
      if (!Number.isFinite(n) || n < 1) return;
      update({ offset: Math.min((n - 1) * state.limit, lastOffset()) });
    });
    $("compact").addEventListener("change", (e) => {
      prefs.set("compact", e.target.checked);
      applyPrefs();
    });
    $("audit-prev").addEventListener("click", () => update({ auditOffset: Math.max(0, state.auditOffset - 50) }, { resetPage: false }));
    $("audit-next").addEventListener("click", () => update({ auditOffset: state.auditOffset + 50 }, { resetPage: false }));

    for (const a of document.querySelectorAll(".nav a[data-view]"))
      a.addEventListener("click", (e) => {
        e.preventDefault();
        update({ view: a.dataset.view, auditOffset: 0 }, { resetPage: false });
      });

    for (const dlg of document.querySelectorAll("dialog"))
      for (const b of dlg.querySelectorAll("[data-close]")) b.addEventListener("click", () => dlg.close());
    $("detail").addEventListener("close", () => {
      const host = openHost;
      openHost = null;
      detailDefender = null;
      markSelected();
      const target = focusAfterDelete ?? host;
      focusAfterDelete = null;
      const tr = [...$("rows").rows].find((r) => r.dataset.host === target);
      if (tr) tr.querySelector("button")?.focus({ preventScroll: true });
      else focusView();
    });
    // A click on the backdrop (outside the panel) closes the detail.
    $("detail").addEventListener("click", (e) => {
      if (e.target === $("detail")) $("detail").close();
    });
    $("detail-delete").addEventListener("click", askDelete);
    $("confirm-delete").addEventListener("click", doDelete);
    $("open-settings").addEventListener("click", openSettings);
    $("settings-form").addEventListener("submit", saveSettings);
    $("s-days").addEventListener("input", () => {
      if (!$("s-days-error").hidden) showDaysError(validateDays($("s-days").value));
    });

    window.addEventListener("popstate", () => {
      state = readState();
      render();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refreshNow();
    });
  }

  wire();
  showView();
  // Without a stored token nobody is signed in: ask at once rather than let the Console answer
  // 401 (which the browser logs as an error on every first visit).
  // With a token, the first page is asked for at once, beside who is signed in (one round trip
  // less before the rows); the role's controls follow when that answers.
  if (auth.token) {
    render();
    whoAmI().then((ok) => {
      if (!ok && !$("signin").open) askSignIn();
      else syncSelectionControls();
    });
  } else askSignIn();
})();
