// llm-usage dashboard. Reads the proxy's own /stats API; renders every value from a client
// (model names, paths, errors) as text, never as markup; refreshes in place every 30 s.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const main = $("main");
  const REFRESH_MS = 1000 * (Number(main.dataset.refreshSeconds) || 30);
  const TZ = (Intl.DateTimeFormat().resolvedOptions().timeZone) || "UTC";
  const RANGES = ["1", "7", "30", "90", "365", "all"];
  const PAGE = 50;

  // ------------------------------------------------------------------ state (kept in the URL's #hash)
  const state = { days: "30", bucket: "", provider: "", model: "", client: "", project: "", key: "", session: "", status: "", offset: 0 };
  const FILTERS = ["provider", "model", "client", "project", "key", "session"];
  const SESSIONS_SHOWN = 10;

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    for (const key of Object.keys(state)) {
      if (!params.has(key)) continue;
      const value = params.get(key);
      state[key] = key === "offset" ? Math.max(0, parseInt(value, 10) || 0) : value;
    }
    if (!RANGES.includes(state.days)) state.days = "30";
    if (!["", "day", "hour"].includes(state.bucket)) state.bucket = "";
  }

  function writeHash() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(state)) {
      if (value !== "" && !(key === "offset" && value === 0) && !(key === "days" && value === "30")) params.set(key, String(value));
    }
    const hash = params.toString();
    history.replaceState(null, "", hash ? "#" + hash : location.pathname);
  }

  function bucket() {
    if (state.bucket) return state.bucket;
    return state.days === "1" ? "hour" : "day";
  }

  function hourlyAllowed() {
    return state.days === "1" || state.days === "7" || state.days === "30";
  }

  // ------------------------------------------------------------------ formatting
  const intFmt = new Intl.NumberFormat();
  const compactFmt = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
  const usd = (min, max) => new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", minimumFractionDigits: min, maximumFractionDigits: max });
  const usd0 = usd(0, 0), usd2 = usd(2, 2), usd3 = usd(3, 3);
  const usdSmall = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumSignificantDigits: 3 });
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric" });
  const hourFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

  const int = (n) => intFmt.format(n || 0);
  const compact = (n) => compactFmt.format(n || 0);
  function cost(v) {
    if (v === null || v === undefined) return "—";
    const a = Math.abs(v);
    if (a === 0) return usd2.format(0);
    if (a >= 10000) return usd0.format(v);
    if (a >= 1) return usd2.format(v);
    if (a >= 0.01) return usd3.format(v);
    return usdSmall.format(v);
  }
  // Axis ticks: as many decimals as the tick spacing needs (sub-cent ranges stay readable).
  function costTicks(ticks) {
    const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(ticks[0] || 1);
    if (step >= 0.01 || step === 0) return ticks.map((t) => cost(t));
    const decimals = Math.min(10, Math.ceil(-Math.log10(step)));
    return ticks.map((t) => "$" + t.toFixed(decimals));
  }
  function duration(ms) {
    if (ms === null || ms === undefined) return "—";
    return ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
  }
  function when(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.toDateString() === new Date().toDateString() ? timeFmt.format(d) : dateTimeFmt.format(d);
  }

  // ------------------------------------------------------------------ the API
  class AuthError extends Error {}

  function windowParams() {
    const p = { tz: TZ };
    if (state.days !== "all") p.days = state.days;
    return p;
  }

  function filterParams() {
    const p = windowParams();
    for (const key of FILTERS) if (state[key]) p[key] = state[key];
    return p;
  }

  async function api(path, params) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
    if (response.status === 401) throw new AuthError("access token needed");
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
    return body;
  }

  // ------------------------------------------------------------------ DOM helpers (text only)
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function setText(node, text, title) {
    if (node.textContent !== text) node.textContent = text;
    if (title !== undefined && node.title !== title) node.title = title;
  }

  // Keyed in-place update: rows keep their nodes, cells change only when their text does.
  function reconcile(tbody, rows, key, cells, build, tag = "tr") {
    const old = new Map();
    for (const tr of Array.from(tbody.children)) old.set(tr.dataset.key, tr);
    rows.forEach((row, i) => {
      const k = key(row);
      let tr = old.get(k);
      if (tr) old.delete(k);
      else {
        tr = document.createElement(tag);
        tr.dataset.key = k;
        build(tr, row);
      }
      cells(tr, row);
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    for (const tr of old.values()) tr.remove();
  }

  function nameCell(td, text, clickable, unknownText) {
    td.className = "name";
    if (text === null || text === undefined || text === "") {
      const span = el("span", "unknown", unknownText || "(unknown)");
      td.replaceChildren(span);
      return;
    }
    const node = el(clickable ? "button" : "span", clickable ? "link" : "plain", text);
    if (clickable) node.type = "button";
    node.title = text;
    td.replaceChildren(node);
  }

  function costCell(td, value, share, unpriced) {
    let text = cost(value);
    if (unpriced && value !== null) text += " +";
    setText(td.firstChild, text, unpriced ? unpriced + " unpriced call(s) not included" : "");
    td.lastChild.style.width = Math.max(0, Math.min(1, share)) * 60 + "px";
  }

  function buildNumeric(tr, names) {
    for (const cls of names) {
      const td = el("td", cls);
      if (cls.includes("share")) {
        td.append(el("span"), el("span", "bar"));
      }
      tr.append(td);
    }
  }

  // ------------------------------------------------------------------ cards
  function renderCards(t) {
    setText($("card-cost"), t.total_cost_usd === null ? "unpriced" : cost(t.total_cost_usd));
    setText(
      $("card-cost-sub"),
      (t.unpriced_requests ? `+ ${int(t.unpriced_requests)} unpriced call${t.unpriced_requests === 1 ? "" : "s"} not included` : `${int(t.priced_requests)} priced calls`) +
        (t.tool_fees_usd ? ` · ${cost(t.tool_fees_usd)} tool fees` : "")
    );
    setText($("card-requests"), int(t.total_requests));
    setText($("card-requests-sub"), `${int(t.error_requests)} errors · ${int(t.streaming_requests)} streamed`);
    setText($("card-tokens"), compact(t.total_tokens), int(t.total_tokens) + " tokens");
    let sub = `${compact(t.total_input_tokens)} in · ${compact(t.total_output_tokens)} out`;
    if (t.reasoning_tokens) sub += ` · ${compact(t.reasoning_tokens)} reasoning`;
    setText($("card-tokens-sub"), sub);
    setText($("card-savings"), cost(t.cache_savings_usd));
    setText($("card-savings-sub"), `${compact(t.cache_read_tokens)} tokens read from cache · ${compact(t.cache_write_tokens)} written`);
    for (const [id, n] of [["q-unpriced", t.unpriced_requests], ["q-incomplete", t.incompletely_priced_requests], ["q-partial", t.partial_requests], ["q-missing", t.missing_usage_requests], ["q-invalid", t.invalid_usage_requests], ["q-errors", t.error_requests]]) {
      const badge = $(id);
      setText(badge, int(n));
      badge.classList.toggle("zero", !n);
    }
  }

  // ------------------------------------------------------------------ tables
  function totalCost(rows) {
    return rows.reduce((sum, r) => sum + (r.cost_usd || 0), 0) || 1;
  }

  function renderGroup(tableId, rows, field, active, unknownText) {
    const tbody = $(tableId).tBodies[0];
    const all = totalCost(rows);
    reconcile(
      tbody,
      rows,
      (r) => (r[field] === null ? "\u0000null" : "v:" + r[field]),
      (tr, r) => {
        const [name, requests, tokens, costTd] = tr.children;
        if (name.dataset.text !== String(r[field])) {
          nameCell(name, r[field], r[field] !== null, unknownText);
          name.dataset.text = String(r[field]);
        }
        setText(requests, int(r.requests), r.error_requests ? `${int(r.error_requests)} errors` : "");
        setText(tokens, compact(r.total_tokens), int(r.total_tokens));
        costCell(costTd, r.cost_usd, (r.cost_usd || 0) / all, r.unpriced_requests);
        tr.classList.toggle("active", active !== "" && r[field] === active);
      },
      (tr) => {
        tr.append(el("td", "name"));
        buildNumeric(tr, ["num", "num", "num share"]);
      }
    );
  }

  function renderModels(rows) {
    const tbody = $("models").tBodies[0];
    const all = totalCost(rows);
    reconcile(
      tbody,
      rows,
      (r) => JSON.stringify([r.provider, r.model]),
      (tr, r) => {
        const [name, provider, requests, input, output, cached, time, firstToken, speed, costTd] = tr.children;
        if (name.dataset.text !== String(r.model)) {
          nameCell(name, r.model, r.model !== null, "(model not reported)");
          name.dataset.text = String(r.model);
        }
        setText(provider, r.provider === null ? "" : r.provider);
        setText(requests, int(r.requests), r.error_requests ? `${int(r.error_requests)} errors` : "");
        setText(input, compact(r.input_tokens), int(r.input_tokens));
        setText(output, compact(r.output_tokens), int(r.output_tokens));
        setText(cached, compact(r.cache_read_tokens), int(r.cache_read_tokens));
        setText(time, r.duration_p50_ms === null ? "—" : `${duration(r.duration_p50_ms)} · ${duration(r.duration_p95_ms)}`,
          r.avg_duration_ms === null ? "" : `average ${duration(r.avg_duration_ms)}`);
        setText(firstToken, duration(r.ttft_p50_ms), r.ttft_p95_ms === null ? "" : `p95 ${duration(r.ttft_p95_ms)}`);
        setText(speed, r.output_tokens_per_s === null ? "—" : int(Math.round(r.output_tokens_per_s)));
        costCell(costTd, r.cost_usd, (r.cost_usd || 0) / all, r.unpriced_requests);
        tr.classList.toggle("active", state.model !== "" && state.model === r.model && state.provider === r.provider);
      },
      (tr) => {
        tr.append(el("td", "name"), el("td", "muted"));
        buildNumeric(tr, ["num", "num opt", "num opt", "num opt", "num opt", "num opt", "num opt", "num share"]);
      }
    );
  }

  // Budgets: a bar each (spend this period against the limit), and a banner while one is
  // used up or an alert came in the last day.
  function renderBudgets(state) {
    const budgets = state.budgets || [];
    $("budgets-panel").hidden = budgets.length === 0;
    const list = $("budgets");
    reconcile(
      list,
      budgets,
      (b) => b.name,
      (li, b) => {
        li.className = "budget " + b.state;
        const [name, meter, figures, what] = li.children;
        setText(name, b.name);
        meter.firstChild.style.width = Math.min(100, Math.round(b.share * 100)) + "%";
        meter.title = Math.round(b.share * 100) + "% of the limit";
        setText(figures, `${cost(b.spent_usd)} of ${cost(b.limit_usd)}`);
        const scope = Object.entries(b.scope).map(([k, v]) => `${k} ${v}`).join(", ") || "every call";
        const action = b.action === "block" ? (b.state === "blocking" ? "blocking calls" : "blocks at the limit") : "warns";
        setText(what, `this ${b.period} (${b.timezone}) · ${scope} · ${action} · resets ${when(b.resets_at)}`);
      },
      (li) => {
        const meter = el("div", "meter");
        meter.append(el("span"));
        li.append(el("strong", "name"), meter, el("span", "num"), el("span", "muted small what"));
      },
      "li"
    );
    const blocking = budgets.filter((b) => b.state === "blocking" || b.state === "exceeded");
    const dayAgo = Date.now() - 86400000;
    const recent = (state.alerts || []).filter((a) => new Date(a.at).getTime() > dayAgo);
    const text = blocking.length
      ? blocking.map((b) => `Budget ${b.name}: ${cost(b.spent_usd)} of ${cost(b.limit_usd)}` + (b.state === "blocking" ? " — calls are refused" : "") + ` until ${when(b.resets_at)}`).join(" · ")
      : recent.length ? recent[0].text : "";
    $("budget-banner").hidden = !text;
    setText($("budget-banner"), text);
    setText($("budgets-note"), budgets.length ? `${budgets.length} budget(s)` : "");
  }

  // Rate limits: each provider's latest word on each key's windows.
  function renderLimits(data) {
    const rows = [];
    for (const entry of data.limits || []) {
      for (const w of entry.windows) rows.push({ ...w, provider: entry.provider, key_id: entry.key_id });
    }
    $("limits-panel").hidden = rows.length === 0 && !(data.upstream_429s || []).length;
    reconcile(
      $("limits").tBodies[0],
      rows,
      (r) => JSON.stringify([r.provider, r.key_id, r.name]),
      (tr, r) => {
        const [provider, key, window, used, left, resets] = tr.children;
        setText(provider, r.provider);
        setText(key, keyName(lastKeys.find((k) => k.key_id === r.key_id) || { key_id: r.key_id }) || "—");
        setText(window, r.name.replace(/-/g, " "));
        setText(used, r.used_share === null ? "—" : Math.round(r.used_share * 100) + "%");
        tr.classList.toggle("warn-row", r.used_share !== null && r.used_share >= 0.8);
        setText(left, r.remaining === null ? "—" : compact(r.remaining), r.limit === null ? "" : `of ${int(r.limit)}`);
        setText(resets, r.resets_at ? when(r.resets_at) : "—", r.resets_at || "");
      },
      (tr) => {
        tr.append(el("td"), el("td", "muted"), el("td"));
        buildNumeric(tr, ["num", "num opt", "num"]);
      }
    );
    const refused = (data.upstream_429s || []).reduce((n, r) => n + r.upstream_429s, 0);
    setText($("limits-429"), refused ? `${int(refused)} call(s) refused by a provider's rate limit (429) today` : "");
  }

  // Keys are shown by the label the user gave them, with the fingerprint (never a key).
  function keyName(r) {
    if (r.key_id === null) return null;
    return r.label ? `${r.label} · ${r.key_id}` : r.key_id;
  }

  function lengthOf(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 60) return Math.round(seconds) + " s";
    if (seconds < 3600) return Math.round(seconds / 60) + " min";
    return (seconds / 3600).toFixed(1) + " h";
  }

  function renderSessions(page) {
    const tbody = $("sessions").tBodies[0];
    const all = totalCost(page.sessions);
    $("sessions-empty").hidden = page.sessions.length > 0;
    $("sessions").hidden = page.sessions.length === 0;
    const more = page.total_sessions - page.sessions.length;
    setText($("sessions-note"), (more > 0 ? `the latest ${page.sessions.length} of ${int(page.total_sessions)}` : "the latest coding sessions") + "; click one to see its requests");
    reconcile(
      tbody,
      page.sessions,
      (r) => "s:" + r.session_id,
      (tr, r) => {
        const [name, client, project, models, calls, length, last, subagents, costTd] = tr.children;
        if (name.dataset.text !== r.session_id) {
          nameCell(name, r.session_id.length > 14 ? r.session_id.slice(0, 13) + "…" : r.session_id, true);
          name.firstChild.title = r.session_id;
          name.dataset.text = r.session_id;
        }
        setText(client, r.client || "");
        setText(project, r.project || "");
        setText(models, r.models.join(", "), r.models.join("\n"));
        setText(calls, int(r.requests), r.error_requests ? `${int(r.error_requests)} errors` : "");
        setText(length, lengthOf(r.duration_s), `${r.first_call} → ${r.last_call}`);
        setText(last, when(r.last_call), r.last_call);
        const share = r.subagent_share === null || !r.subagent_requests ? "—" : Math.round(r.subagent_share * 100) + "%";
        setText(subagents, share, r.subagent_requests ? `${int(r.subagent_requests)} call(s) by subagents` : "no subagent calls");
        costCell(costTd, r.cost_usd, (r.cost_usd || 0) / all, r.unpriced_requests);
        tr.classList.toggle("active", state.session === r.session_id);
      },
      (tr) => {
        tr.append(el("td", "name"), el("td", "muted"), el("td", "muted opt"), el("td", "muted small opt models"));
        buildNumeric(tr, ["num", "num opt", "num", "num opt", "num share"]);
      }
    );
  }

  // The cost by billed dimension (the row's cost_breakdown), one line each, for the cell's tooltip.
  function costTitle(r) {
    if (!r.cost_source) return "";
    const lines = ["price: " + r.cost_source + (r.service_tier ? ` · tier ${r.service_tier}` : "")];
    let doc = null;
    try {
      doc = r.cost_breakdown ? JSON.parse(r.cost_breakdown) : null;
    } catch (e) {
      doc = null;
    }
    if (doc && typeof doc.parts === "object" && doc.parts !== null) {
      for (const [name, usd] of Object.entries(doc.parts)) lines.push(`${name.replace(/_/g, " ")}: ${typeof usd === "number" ? cost(usd) : "?"}`);
      if (doc.reasoning_usd) lines.push(`of the output, reasoning: ${cost(doc.reasoning_usd)}`);
      if (Array.isArray(doc.unpriced)) lines.push("not priced (so the cost is too low): " + doc.unpriced.join(", ").replace(/_/g, " "));
    }
    return lines.join("\n");
  }

  function statusOf(r) {
    // A request that owes no usage (a pre-connect, a model list, token counting) is traffic, not a failed call.
    if (r.usage_status === "none") return ["muted-badge", String(r.status_code || "—"), "owes no usage: not a billed call" + (r.error ? ": " + r.error : "")];
    if (r.error !== null || (r.status_code || 0) >= 400) return ["bad", r.status_code ? String(r.status_code) : "failed", r.error || ""];
    if (r.usage_status === "partial") return ["warn", "partial", "the stream ended before the final usage"];
    if (r.usage_status === "missing") return ["muted-badge", "no usage", "the provider reported no usage"];
    if (r.cost_usd === null) return ["warn", "unpriced", "no price known for this model"];
    return ["", String(r.status_code || "ok"), ""];
  }

  function renderLog(page) {
    const tbody = $("log").tBodies[0];
    reconcile(
      tbody,
      page.requests,
      (r) => String(r.id),
      (tr, r) => {
        const [time, model, provider, client, endpoint, input, output, costTd, took, status] = tr.children;
        setText(time, when(r.timestamp), r.timestamp);
        setText(model, r.model === null ? "(not reported)" : r.model, r.model || "");
        model.classList.toggle("unknown", r.model === null);
        setText(provider, r.provider || "");
        setText(client, r.client === null ? "—" : r.client);
        setText(endpoint, `${r.method || ""} ${r.endpoint || ""}`.trim(), r.endpoint || "");
        setText(input, r.input_tokens === null ? "—" : int(r.input_tokens), r.cache_read_tokens ? `${int(r.cache_read_tokens)} from cache` : "");
        setText(output, r.output_tokens === null ? "—" : int(r.output_tokens), r.reasoning_tokens ? `${int(r.reasoning_tokens)} reasoning` : "");
        setText(costTd, cost(r.cost_usd), costTitle(r));
        costTd.classList.toggle("incomplete", String(r.cost_breakdown || "").includes('"unpriced"'));
        setText(took, duration(r.duration_ms), r.ttft_ms !== null ? `first byte after ${duration(r.ttft_ms)}` : "");
        const [cls, label, title] = statusOf(r);
        const badge = status.firstChild;
        badge.className = "badge " + cls;
        setText(badge, label, title);
        setText(status.lastChild, r.transport === "websocket" ? "socket" : r.streaming ? "stream" : "", r.transport === "websocket" ? "a call on a WebSocket (one row per response.create)" : "");
      },
      (tr) => {
        tr.append(el("td", "time"), el("td", "name"), el("td", "opt"), el("td", "opt"), el("td", "endpoint opt"));
        buildNumeric(tr, ["num", "num", "num", "num opt"]);
        const status = el("td", "status");
        status.append(el("span", "badge"), el("span", "stream"));
        tr.append(status);
      }
    );
    $("log-empty").hidden = page.requests.length > 0;
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.requests.length;
    setText($("page-info"), page.total ? `${int(first)}–${int(last)} of ${int(page.total)}` : "");
    $("prev").disabled = page.offset <= 0;
    $("next").disabled = last >= page.total;
  }

  // ------------------------------------------------------------------ chart
  let chart = null;
  let chartKey = "";

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function makeChart(data) {
    const node = $("chart");
    const hourly = bucket() === "hour";
    const fmt = hourly ? hourFmt : dayFmt;
    const muted = cssVar("--muted"), border = cssVar("--border"), accent = cssVar("--accent"), costColor = cssVar("--cost");
    const axis = { stroke: muted, grid: { stroke: border, width: 1 }, ticks: { stroke: border, width: 1 }, font: "12px system-ui, sans-serif" };
    const opts = {
      width: Math.max(280, node.clientWidth),
      height: window.innerWidth < 720 ? 220 : 280,
      cursor: { drag: { x: true, y: false }, points: { size: 7 } },
      scales: {
        x: { time: true, range: (u, min, max) => [min - (hourly ? 1800 : 43200), max + (hourly ? 1800 : 43200)] },
        tokens: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] },
        usd: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
      series: [
        { value: (u, v) => (v === null ? "—" : fmt.format(new Date(v * 1000))) },
        {
          label: "Tokens",
          scale: "tokens",
          stroke: accent,
          fill: cssVar("--accent-soft"),
          width: 1,
          paths: uPlot.paths.bars({ size: [0.72, 48], gap: 1 }),
          points: { show: false },
          value: (u, v) => (v === null ? "—" : compact(v)),
        },
        {
          label: "Cost",
          scale: "usd",
          stroke: costColor,
          width: 2,
          points: { show: false },
          value: (u, v) => (v === null ? "—" : cost(v)),
        },
      ],
      axes: [
        axis,
        { ...axis, scale: "tokens", size: 56, values: (u, ticks) => ticks.map((t) => compact(t)) },
        {
          ...axis, scale: "usd", side: 1, grid: { show: false }, values: (u, ticks) => costTicks(ticks),
          // wide enough for sub-cent labels like $0.000025 (uPlot clips what does not fit)
          size: (u, values) => Math.max(64, 16 + 7.5 * Math.max(0, ...(values || []).map((v) => String(v).length))),
        },
      ],
    };
    node.replaceChildren();
    return new uPlot(opts, data, node);
  }

  function renderChart(series, fresh) {
    const points = series.points;
    const xs = points.map((p) => Date.parse(p.start) / 1000);
    const data = [xs, points.map((p) => p.total_tokens), points.map((p) => p.cost_usd === null ? 0 : p.cost_usd)];
    const hasData = points.some((p) => p.requests > 0);
    $("chart-empty").hidden = hasData;
    $("chart").hidden = !hasData;
    const unpriced = points.reduce((n, p) => n + p.unpriced_requests, 0);
    setText($("chart-note"), `${bucket() === "hour" ? "hourly" : "daily"} in ${series.tz}` + (unpriced ? ` · cost leaves out ${int(unpriced)} unpriced call(s)` : ""));
    if (!hasData) return;
    const key = bucket() + "|" + (document.documentElement.dataset.theme || "auto");
    if (!chart || key !== chartKey) {
      if (chart) chart.destroy();
      chart = makeChart(data);
      chartKey = key;
      return;
    }
    const x = chart.scales.x;
    const zoomed = !fresh && xs.length > 1 && x.min !== null && (x.min > xs[0] + 1 || x.max < xs[xs.length - 1] - 1);
    chart.setData(data, !zoomed);
  }

  new ResizeObserver(() => {
    if (chart) chart.setSize({ width: Math.max(280, $("chart").clientWidth), height: window.innerWidth < 720 ? 220 : 280 });
  }).observe(main);

  // ------------------------------------------------------------------ controls
  function renderControls() {
    for (const b of $("range").children) b.setAttribute("aria-pressed", String(b.dataset.days === state.days));
    for (const b of $("bucket").children) {
      b.setAttribute("aria-pressed", String(b.dataset.bucket === bucket()));
      b.disabled = b.dataset.bucket === "hour" && !hourlyAllowed();
    }
    $("status").value = state.status;
    const chips = [];
    for (const key of [...FILTERS, "status"]) {
      if (!state[key]) continue;
      const chip = el("span", "chip");
      const shown = key === "key" ? keyName(lastKeys.find((r) => r.key_id === state.key) || { key_id: state.key }) : state[key];
      chip.append(el("span", "chip-text", `${key}: ${shown}`));
      const x = el("button", "", "×");
      x.type = "button";
      x.title = `Remove the ${key} filter`;
      x.addEventListener("click", () => setFilter({ [key]: "" }));
      chip.append(x);
      chips.push(chip);
    }
    $("chip-list").replaceChildren(...chips);
    $("filters").hidden = chips.length === 0;
  }

  function setFilter(changes, keepOffset) {
    Object.assign(state, changes);
    if (!keepOffset) state.offset = 0;
    if (state.bucket === "hour" && !hourlyAllowed()) state.bucket = "";
    writeHash();
    renderControls();
    load(true);
  }

  $("range").addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (b) setFilter({ days: b.dataset.days });
  });
  $("bucket").addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (b && !b.disabled) setFilter({ bucket: b.dataset.bucket }, true);
  });
  $("status").addEventListener("change", (e) => setFilter({ status: e.target.value }));
  $("clear-filters").addEventListener("click", () => setFilter({ provider: "", model: "", client: "", project: "", key: "", session: "", status: "" }));
  for (const b of document.querySelectorAll(".quality-list [data-status]")) {
    b.addEventListener("click", () => {
      setFilter({ status: b.dataset.status });
      $("log").scrollIntoView({ behavior: "smooth", block: "start" });
    });
  }
  $("prev").addEventListener("click", () => setFilter({ offset: Math.max(0, state.offset - PAGE) }, true));
  $("next").addEventListener("click", () => setFilter({ offset: state.offset + PAGE }, true));

  function onNameClick(tableId, pick) {
    $(tableId).tBodies[0].addEventListener("click", (e) => {
      const button = e.target.closest("button.link");
      if (!button) return;
      const tr = button.closest("tr");
      setFilter(pick(tr, button.textContent));
    });
  }
  let lastModels = [];
  let lastKeys = [];
  onNameClick("providers", (tr, name) => ({ provider: state.provider === name ? "" : name, model: "" }));
  onNameClick("clients", (tr, name) => ({ client: state.client === name ? "" : name }));
  onNameClick("projects", (tr, name) => ({ project: state.project === name ? "" : name }));
  onNameClick("keys", (tr) => {
    const row = lastKeys.find((r) => "v:" + keyName(r) === tr.dataset.key);
    return row ? { key: state.key === row.key_id ? "" : row.key_id } : {};
  });
  onNameClick("sessions", (tr) => {
    const session = tr.dataset.key.slice(2);
    if (state.session !== session) $("log").scrollIntoView({ behavior: "smooth", block: "start" });
    return { session: state.session === session ? "" : session };
  });
  onNameClick("models", (tr) => {
    const row = lastModels.find((r) => JSON.stringify([r.provider, r.model]) === tr.dataset.key);
    if (!row) return {};
    const same = state.model === row.model && state.provider === row.provider;
    return same ? { model: "", provider: "" } : { model: row.model, provider: row.provider || "" };
  });

  const THEMES = ["auto", "dark", "light"];
  function applyTheme(theme) {
    if (theme === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    $("theme").title = theme === "auto" ? "Theme: follows the system" : `Theme: ${theme}`;
  }
  $("theme").addEventListener("click", () => {
    const current = document.documentElement.dataset.theme || "auto";
    const next = THEMES[(THEMES.indexOf(current) + 1) % THEMES.length];
    try {
      if (next === "auto") localStorage.removeItem("llm-usage-theme");
      else localStorage.setItem("llm-usage-theme", next);
    } catch (e) { /* private mode */ }
    applyTheme(next);
    if (lastSeries) renderChart(lastSeries, true);
  });
  applyTheme(document.documentElement.dataset.theme || "auto");
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    chartKey = "";
    if (lastSeries) renderChart(lastSeries, true);
  });

  // ------------------------------------------------------------------ loading
  let sequence = 0;
  let loads = 0;
  let lastSeries = null;
  let lastLoaded = 0;

  function banner(text) {
    $("banner").hidden = !text;
    setText($("banner"), text || "");
  }

  async function load(fresh) {
    const mine = ++sequence;
    const filters = filterParams();
    const series = { ...filters, bucket: bucket() };
    if (state.days === "all") series.until = new Date().toISOString();
    const page = { ...filters, limit: PAGE, offset: state.offset };
    if (state.status) page.status = state.status;
    try {
      // all time, when asked: the sessions view alone would default to the last 30 days
      const sessionWindow = state.days === "all" ? { ...filters, until: new Date().toISOString() } : filters;
      const [summary, models, timeseries, requests, sessions, projects, keys, budgets, limits] = await Promise.all([
        api("/stats/summary", filters),
        api("/stats/by-model", filters),
        api("/stats/timeseries", series),
        api("/stats/requests", page),
        api("/stats/by-session", { ...sessionWindow, limit: SESSIONS_SHOWN }),
        api("/stats/by-project", filters),
        api("/stats/by-key", filters),
        api("/stats/budgets", {}),
        api("/stats/limits", { tz: TZ, days: "1" }),
      ]);
      if (mine !== sequence) return; // a newer load (the reader changed a filter) wins
      renderCards(summary.totals);
      renderGroup("providers", summary.by_provider, "provider", state.provider);
      renderGroup("clients", summary.by_client, "client", state.client);
      lastModels = models.models;
      renderModels(models.models);
      renderSessions(sessions);
      renderBudgets(budgets);
      renderLimits(limits);
      renderGroup("projects", projects.projects, "project", state.project, "(no project)");
      lastKeys = keys.keys;
      const active = lastKeys.find((r) => r.key_id === state.key);
      renderGroup("keys", keys.keys.map((r) => ({ ...r, key_name: keyName(r) })), "key_name", active ? keyName(active) : "", "(no key)");
      lastSeries = timeseries;
      renderChart(timeseries, fresh);
      if (requests.total && requests.offset >= requests.total && state.offset > 0) {
        setFilter({ offset: Math.max(0, Math.floor((requests.total - 1) / PAGE) * PAGE) }, true);
        return;
      }
      renderLog(requests);
      banner("");
      lastLoaded = Date.now();
      $("live").classList.remove("stale");
      setText($("updated"), "updated " + timeFmt.format(new Date()));
      loads += 1;
      document.documentElement.dataset.loads = String(loads);
      if (!document.documentElement.dataset.ready) document.documentElement.dataset.readyMs = String(Math.round(performance.now()));
      document.documentElement.dataset.ready = "true";
    } catch (error) {
      if (mine !== sequence) return;
      $("live").classList.add("stale");
      if (error instanceof AuthError) banner("This dashboard needs the proxy's access token: open /dashboard?token=… once.");
      else banner("Could not refresh: " + error.message + " — retrying.");
    }
  }

  readHash();
  renderControls();
  load(true);
  setInterval(() => {
    if (!document.hidden) load(false);
  }, REFRESH_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && Date.now() - lastLoaded > REFRESH_MS) load(false);
  });
  window.llmUsage = { refresh: () => load(false), state };
})();
