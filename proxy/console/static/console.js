// The console's pages, drawn from the admin JSON endpoints with the session cookie. Nothing is
// computed here but what a chart needs: every sum and percentile comes from the server.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const Charts = window.WarmgateCharts;
  const PAGES = ["usage", "latency", "fleet", "keys"];
  const state = { csrf: "", page: "usage", loading: 0 };

  async function api(path, options) {
    const init = { method: "GET", credentials: "same-origin", headers: { Accept: "application/json" } };
    Object.assign(init, options || {});
    if (init.method !== "GET") {
      init.headers["X-CSRF-Token"] = state.csrf;
      delete document.body.dataset.pageReady; // the page is stale until it has reloaded
    }
    if (init.json !== undefined) {
      init.body = JSON.stringify(init.json);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      window.location.assign("/console/login");
      throw new Error("The session ended: sign in again.");
    }
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    return body;
  }

  function cell(row, value, numeric) {
    const td = document.createElement("td");
    if (value instanceof Node) td.appendChild(value);
    else td.textContent = value === null || value === undefined ? "" : String(value);
    if (numeric) td.className = "num";
    row.appendChild(td);
    return td;
  }

  function table(node, headers, rows) {
    const head = document.createElement("tr");
    headers.forEach(([label, numeric]) => {
      const th = document.createElement("th");
      th.textContent = label;
      if (numeric) th.className = "num";
      head.appendChild(th);
    });
    const body = rows.map((values) => {
      const tr = document.createElement("tr");
      values.forEach((v, i) => cell(tr, v, headers[i][1]));
      return tr;
    });
    node.replaceChildren(head, ...body);
  }

  function button(label, onClick, className) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (className) b.className = className;
    b.addEventListener("click", onClick);
    return b;
  }

  const usd = (v) => "$" + Number(v).toFixed(v >= 100 ? 0 : v >= 1 ? 2 : 4);
  const count = (v) => (v >= 10000 ? (v / 1000).toFixed(0) + "k" : String(Math.round(v * 100) / 100));
  const ms = (v) => (v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v * 100) / 100 + " ms");
  const percent = (v) => (v * 100).toFixed(1) + "%";

  function range() {
    const bucket = $("range-bucket").value;
    const bucketS = bucket === "day" ? 86400 : 3600;
    const span = $("range-span").value;
    if (span === "custom" && $("range-start").value && $("range-end").value) {
      const start = Date.parse($("range-start").value + "T00:00:00Z") / 1000;
      const end = Date.parse($("range-end").value + "T00:00:00Z") / 1000 + 86400;
      return { start, end, bucket, bucketS };
    }
    const end = Math.ceil(Date.now() / 1000 / bucketS) * bucketS;
    return { start: end - Number(span === "custom" ? 86400 : span), end, bucket, bucketS };
  }

  // Every bucket of the range, so that a bucket without requests is drawn at zero.
  function buckets(r) {
    const first = Math.floor(r.start / r.bucketS) * r.bucketS;
    const out = [];
    for (let t = first; t < r.end; t += r.bucketS) out.push(t);
    return out;
  }

  function seriesName(s, groupBy) {
    if (s.other) return "other";
    if (s.group === null) return groupBy === "none" ? "all" : "(none)";
    return s.name ? `${s.name} (${s.group})` : s.group;
  }

  async function showUsage() {
    const r = range();
    const groupBy = $("usage-group").value;
    const query = new URLSearchParams({ start: r.start, end: r.end, bucket: r.bucket, group_by: groupBy });
    const report = await api("/admin/reports/usage?" + query);
    query.set("format", "csv");
    $("usage-csv").href = "/admin/reports/usage?" + query;
    const totals = [["Requests", report.total.requests], ["Billed", report.total.billed_requests],
      ["Revenue", usd(report.total.revenue_micro_usd / 1e6)]];
    $("usage-totals").replaceChildren(...totals.map(([label, value]) => {
      const div = document.createElement("div");
      const b = document.createElement("b");
      b.textContent = String(value);
      div.append(label, b);
      return div;
    }));
    const times = buckets(r);
    const chart = (id, pick, format) => {
      const series = report.series.map((s) => {
        const byT = new Map(s.points.map((p) => [p.t, pick(p)]));
        return { name: seriesName(s, groupBy), other: s.other,
          points: times.map((t) => ({ x: t, y: byT.get(t) || 0 })) };
      });
      Charts.line($(id), { series, bucketS: r.bucketS, yFormat: format, xMin: times[0], xMax: times[times.length - 1] });
    };
    chart("chart-requests", (p) => p.requests, count);
    chart("chart-billed", (p) => p.billed_requests, count);
    chart("chart-revenue", (p) => p.revenue_micro_usd / 1e6, usd);
    table($("usage-table"), [[groupBy === "key" ? "key" : groupBy, false], ["name", false],
      ["requests", true], ["billed", true], ["revenue (USD)", true], ["prompt tokens", true],
      ["cached tokens", true], ["completion tokens", true]],
    report.groups.map((g) => [g.group === null ? "(none)" : g.group, g.name, g.requests, g.billed_requests,
      g.revenue_usd, g.prompt_tokens, g.cached_tokens, g.completion_tokens]));
  }

  async function showLatency() {
    const r = range();
    const groupBy = $("latency-group").value;
    const query = new URLSearchParams({ start: r.start, end: r.end, bucket: r.bucket, group_by: groupBy });
    const report = await api("/admin/reports/latency?" + query);
    const chart = (id, metric) => {
      const series = [];
      report.series.forEach((s) => {
        const name = s.group === null ? "(none)" : s.group;
        for (const [p, dashed] of [["p50", false], ["p95", true]]) {
          series.push({ name: `${name} ${p}`, dashed, color: undefined,
            points: s.points.map((pt) => ({ x: pt.t, y: pt[`${metric}_${p}_ms`] })) });
        }
      });
      // p50 and p95 of one group share a colour
      series.forEach((s, i) => { s.color = ["#2358c4", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c",
        "#0b7285", "#e67700", "#5c940d"][Math.floor(i / 2) % 8]; });
      Charts.line($(id), { series, bucketS: r.bucketS, yFormat: ms, xMin: r.start, xMax: r.end - r.bucketS });
    };
    chart("chart-ttft", "ttft");
    chart("chart-total", "total");
    chart("chart-queue", "queue");
  }

  async function showFleet() {
    const fleet = await api("/admin/reports/fleet");
    const healthy = fleet.backends.filter((b) => b.routable).length;
    $("fleet-summary").textContent =
      `${fleet.backends.length} backends, ${healthy} routable; ${fleet.in_flight} requests in flight; ` +
      (fleet.ready ? "ready" : "not ready");
    Charts.bars($("chart-load"), { bars: fleet.backends.map((b) => ({ label: b.id, value: b.load })), format: count });
    Charts.bars($("chart-cache"), { max: 1, format: percent, bars: fleet.backends.map((b) => ({
      label: b.id, value: b.traffic && b.traffic.cache_hit_rate !== null ? b.traffic.cache_hit_rate : null })) });
    table($("fleet-table"), [["backend", false], ["model", false], ["region", false], ["health", false],
      ["breaker", false], ["load", true], ["requests (1 h)", true], ["5xx (1 h)", true], ["cache hits", true],
      ["last probe error", false]],
    fleet.backends.map((b) => {
      const health = document.createElement("span");
      health.textContent = b.retired ? "retired" : b.health;
      health.className = b.health;
      return [b.id, b.model, b.region || "", health, b.breaker, b.load,
        b.traffic ? b.traffic.requests : 0, b.traffic ? b.traffic.server_errors : 0,
        b.traffic && b.traffic.cache_hit_rate !== null ? percent(b.traffic.cache_hit_rate) : "n/a",
        b.last_probe_error || ""];
    }));
  }

  function limitsForm(key, onDone) {
    const form = document.createElement("form");
    form.className = "card limits";
    const fields = [["rpm", key.rpm], ["max_concurrency", key.max_concurrency], ["quota", key.quota]];
    fields.forEach(([name, value]) => {
      const label = document.createElement("label");
      const input = document.createElement("input");
      Object.assign(input, { name, type: "number", min: 0, value: value === null ? "" : value });
      label.append(name + " ", input);
      form.appendChild(label);
    });
    const period = document.createElement("select");
    period.name = "quota_period";
    for (const v of ["", "day", "month"]) period.add(new Option(v || "-", v, false, v === (key.quota_period || "")));
    form.append(period);
    const save = document.createElement("button");
    save.type = "submit";
    save.textContent = "Save limits";
    form.append(save);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const number = (name) => (data.get(name) === "" ? null : Number(data.get(name)));
      const changes = { rpm: number("rpm"), max_concurrency: number("max_concurrency"),
        quota: number("quota"), quota_period: data.get("quota_period") || null };
      run(() => api(`/admin/keys/${encodeURIComponent(key.id)}`, { method: "PATCH", json: changes }).then(onDone));
    });
    return form;
  }

  async function showKeys() {
    const r = range();
    const query = new URLSearchParams({ start: r.start, end: r.end, bucket: r.bucket, group_by: "key", top: 10 });
    const [keys, usage] = await Promise.all([api("/admin/keys"), api("/admin/reports/usage?" + query)]);
    const used = new Map(usage.groups.map((g) => [g.group, g.requests]));
    Charts.bars($("chart-keys"), { format: count, bars: usage.groups.slice(0, 10).map((g) => ({
      label: g.name ? `${g.name} (${g.group})` : g.group || "(none)", value: g.requests })) });
    const reload = () => load("keys");
    table($("keys-table"), [["id", false], ["name", false], ["models", false], ["rpm", true],
      ["concurrency", true], ["quota", false], ["requests in range", true], ["status", false], ["", false]],
    keys.data.map((k) => {
      const actions = document.createElement("span");
      if (!k.revoked) {
        actions.append(button("Change limits", () => {
          actions.replaceChildren(limitsForm(k, reload));
        }), " ", button("Revoke", (event) => {
          const b = event.currentTarget;
          b.replaceWith(button("Confirm revoke", () => run(() =>
            api(`/admin/keys/${encodeURIComponent(k.id)}/revoke`, { method: "POST" }).then(reload)), "danger"));
        }, "danger"));
      }
      return [k.id, k.name, k.allowed_models ? k.allowed_models.join(", ") : "all", k.rpm, k.max_concurrency,
        k.quota === null ? "" : `${k.quota}/${k.quota_period}`, used.get(k.id) || 0,
        k.revoked ? "revoked" : "active", actions];
    }));
  }

  async function createKey(event) {
    event.preventDefault();
    const data = new FormData(event.target);
    const spec = { name: data.get("name") };
    const models = String(data.get("allowed_models") || "").split(",").map((m) => m.trim()).filter(Boolean);
    if (models.length) spec.allowed_models = models;
    for (const name of ["rpm", "max_concurrency", "quota"]) if (data.get(name) !== "") spec[name] = Number(data.get(name));
    if (data.get("quota_period")) spec.quota_period = data.get("quota_period");
    await run(async () => {
      const created = await api("/admin/keys", { method: "POST", json: spec });
      $("key-secret-value").textContent = created.secret;
      $("key-secret-value").dataset.keyId = created.id;
      $("key-secret").hidden = false;
      event.target.reset();
      await load("keys");
    });
  }

  async function run(task) {
    $("error").textContent = "";
    try {
      await task();
    } catch (error) {
      $("error").textContent = error.message;
    }
  }

  const LOADERS = { usage: showUsage, latency: showLatency, fleet: showFleet, keys: showKeys };

  async function load(page) {
    const ticket = ++state.loading;
    delete document.body.dataset.pageReady;
    $("status").textContent = "Loading…";
    await run(() => LOADERS[page]());
    if (ticket !== state.loading) return;
    $("status").textContent = "Updated " + new Date().toLocaleTimeString();
    document.body.dataset.pageReady = page;
  }

  function show() {
    const page = PAGES.includes(location.hash.slice(1)) ? location.hash.slice(1) : "usage";
    state.page = page;
    document.querySelectorAll(".page").forEach((s) => s.classList.toggle("active", s.id === "page-" + page));
    document.querySelectorAll("nav a[data-page]").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
    $("key-secret").hidden = true;
    load(page);
  }

  async function start() {
    const session = await api("/console/session");
    state.csrf = session.csrf_token;
    $("logout-token").value = session.csrf_token;
    $("range-span").addEventListener("change", () => {
      const custom = $("range-span").value === "custom";
      document.querySelectorAll(".custom").forEach((n) => n.classList.toggle("shown", custom));
      if ($("range-span").value === "2592000") $("range-bucket").value = "day";
      load(state.page);
    });
    for (const id of ["range-start", "range-end", "range-bucket", "usage-group", "latency-group"]) {
      $(id).addEventListener("change", () => load(state.page));
    }
    $("key-create").addEventListener("submit", createKey);
    window.addEventListener("hashchange", show);
    show();
  }

  document.addEventListener("DOMContentLoaded", () => run(start));
})();
