// The admin dashboard: GET /v1/stats, /v1/dead-jobs and /v1/webhooks with an admin key, charts drawn as SVG, requeue.
import { call, el } from "./api.js";
import { errorText, loadTextsPatiently, t, translatePage } from "./i18n.js";

const KEY = "detectbot.adminKey"; // sessionStorage: gone when the tab closes
const REFRESH_MS = 30_000;
const SVG = "http://www.w3.org/2000/svg";
const STAGES = ["queue_wait", "processing", "end_to_end"];

const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem(KEY);
let timer = null;

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child);
  return element;
}

function notice(message) {
  $("notice").hidden = !message;
  $("notice").textContent = message || "";
}

function seconds(value) {
  if (value === null || value === undefined) return "-";
  return value < 100 ? `${value.toFixed(1)}s` : `${(value / 60).toFixed(0)}m`;
}

function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" });
}

function dateTime(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleString(document.documentElement.lang);
}

/** Show nothing of the numbers: no key, or one that may not see them. */
function lock(error) {
  clearTimeout(timer);
  $("dashboard").hidden = true;
  for (const id of ["cards", "hourly", "latency", "queue", "workers", "top", "dead", "webhooks", "stats-text", "updated",
                    "dead-status", "no-worker"]) {
    $(id).replaceChildren();
  }
  $("key-panel").hidden = false;
  $("key-error").hidden = !error;
  $("key-error").textContent = error || "";
  $("key-input").focus();
}

// --- the numbers ----------------------------------------------------------------------------------------------

function cards(stats) {
  const jobs = stats.jobs;
  const waiting = Object.values(jobs.waiting_now || {}).reduce((a, b) => a + b, 0);
  const entries = [
    ["received", jobs.received], ["done", jobs.done], ["delivered", jobs.delivered], ["failed", jobs.failed],
    ["dead", jobs.dead], ["waiting", waiting], ["cache", stats.cache_hits],
  ];
  $("cards").setAttribute("aria-label", t("web_admin_summary"));
  $("cards").replaceChildren(...entries.map(([name, value]) =>
    el("li", { class: "card", "data-count": name },
      el("span", { class: "value", text: String(value) }),
      el("span", { class: "name", text: t(`web_admin_count_${name}`) }))));
}

function hourlyChart(hourly) {
  const width = 360;
  const height = 200;
  const pad = { left: 34, right: 34, top: 10, bottom: 24 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const maxJobs = Math.max(1, ...hourly.map((h) => h.jobs));
  const maxP95 = Math.max(0.001, ...hourly.map((h) => h.p95_s ?? 0));
  const step = plotW / Math.max(1, hourly.length);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-labelledby": "hourly-title" },
    svg("title", { id: "hourly-title" }, document.createTextNode(t("web_admin_per_hour_alt"))));
  chart.append(svg("line", { class: "axis", x1: pad.left, y1: pad.top + plotH, x2: pad.left + plotW, y2: pad.top + plotH }));
  const points = [];
  hourly.forEach((hour, index) => {
    const x = pad.left + index * step;
    const h = (hour.jobs / maxJobs) * plotH;
    const bar = svg("rect", { class: "bar-jobs", x: x + 1, y: pad.top + plotH - h, width: Math.max(1, step - 2), height: h });
    bar.append(svg("title", {}, document.createTextNode(`${clock(hour.start)}: ${hour.jobs}, p95 ${seconds(hour.p95_s)}`)));
    chart.append(bar);
    if (hour.p95_s !== null && hour.p95_s !== undefined) {
      points.push([x + step / 2, pad.top + plotH - (hour.p95_s / maxP95) * plotH]);
    }
    if (index % 6 === 0) {
      chart.append(svg("text", { x, y: height - 6 }, document.createTextNode(clock(hour.start))));
    }
  });
  if (points.length > 1) {
    chart.append(svg("polyline", { class: "line-p95", points: points.map((p) => p.join(",")).join(" ") }));
  }
  for (const [x, y] of points) chart.append(svg("circle", { class: "dot-p95", cx: x, cy: y, r: 2.5 }));
  chart.append(svg("text", { x: 2, y: pad.top + 10 }, document.createTextNode(String(maxJobs))));
  chart.append(svg("text", { x: width - pad.right + 4, y: pad.top + 10 }, document.createTextNode(seconds(maxP95))));
  const legend = el("ul", { class: "legend" },
    el("li", {}, el("span", { class: "swatch jobs" }), t("web_admin_count_received")),
    el("li", {}, el("span", { class: "swatch line" }), "p95"));
  $("hourly").replaceChildren(chart, legend);
}

function latencyChart(latency, names) {
  const width = 360;
  const rowH = 46;
  const labelW = 96;
  const height = STAGES.length * rowH + 10;
  const max = Math.max(0.001, ...STAGES.flatMap((s) => [latency[s]?.p50 ?? 0, latency[s]?.p95 ?? 0]));
  const plotW = width - labelW - 60;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-labelledby": "latency-title" },
    svg("title", { id: "latency-title" }, document.createTextNode(t("web_admin_latency"))));
  STAGES.forEach((stage, index) => {
    const y = 8 + index * rowH;
    const values = latency[stage] || {};
    chart.append(svg("text", { x: 0, y: y + 16 }, document.createTextNode(names[stage] ?? stage)));
    ["p50", "p95"].forEach((which, k) => {
      const value = values[which];
      const w = value ? (value / max) * plotW : 0;
      chart.append(svg("rect", { class: `bar-${which}`, x: labelW, y: y + k * 16, width: Math.max(1, w), height: 13 }));
      chart.append(svg("text", { x: labelW + w + 4, y: y + k * 16 + 11 }, document.createTextNode(`${which} ${seconds(value)}`)));
    });
  });
  const legend = el("ul", { class: "legend" },
    el("li", {}, el("span", { class: "swatch p50" }), "p50"),
    el("li", {}, el("span", { class: "swatch p95" }), "p95"));
  $("latency").replaceChildren(chart, legend);
}

function queueAndWorkers(stats) {
  $("queue").textContent = stats.lines.queue; // as the bots' /stats says it
  $("no-worker").textContent = stats.lines.no_worker || "";
  $("no-worker").hidden = !stats.lines.no_worker; // no worker has been running for a while
  if (!stats.workers.length) {
    $("workers").replaceChildren(el("p", { class: "muted", text: t("web_admin_workers_none") }));
    return;
  }
  $("workers").replaceChildren(el("table", {},
    el("thead", {}, el("tr", {},
      el("th", { scope: "col", text: t("web_admin_col_worker") }),
      el("th", { scope: "col", text: t("web_admin_col_model") }),
      el("th", { scope: "col", text: t("web_admin_col_seen") }))),
    el("tbody", {}, ...stats.workers.map((w) => el("tr", {},
      el("td", { text: w.name }), el("td", { text: w.model || "-" }), el("td", { text: clock(w.last_seen_at) }))))));
}

function topClasses(top) {
  if (!top.length) {
    $("top").replaceChildren(el("p", { class: "muted", text: t("web_admin_top_none") }));
    return;
  }
  const width = 360;
  const rowH = 24;
  const labelW = 100;
  const max = Math.max(1, ...top.map((entry) => entry.count));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${top.length * rowH + 4}`, class: "chart", role: "img", "aria-labelledby": "top-title" },
    svg("title", { id: "top-title" }, document.createTextNode(top.map((e) => `${e.text} ${e.count}`).join(", "))));
  top.forEach((entry, index) => {
    const y = index * rowH + 2;
    const w = (entry.count / max) * (width - labelW - 50);
    chart.append(svg("text", { x: 0, y: y + 14 }, document.createTextNode(entry.text)));
    chart.append(svg("rect", { class: "bar-jobs", x: labelW, y: y + 2, width: Math.max(1, w), height: 16 }));
    chart.append(svg("text", { x: labelW + w + 4, y: y + 14 }, document.createTextNode(String(entry.count))));
  });
  $("top").replaceChildren(chart);
}

function deadJobs(dead) {
  const jobs = dead.jobs;
  if (!jobs.length) {
    $("dead").replaceChildren(el("p", { class: "muted", text: dead.summary }));
    return;
  }
  $("dead").replaceChildren(
    el("p", { class: "muted", text: dead.summary }),
    el("table", {},
      el("thead", {}, el("tr", {},
        ...["web_admin_col_job", "web_admin_col_platform", "web_admin_col_reason", "web_admin_col_attempts",
            "web_admin_col_dead_at"].map((k) => el("th", { scope: "col", text: t(k) })),
        el("td"))),
      el("tbody", {}, ...jobs.map((job) => el("tr", { "data-job": job.job_id },
        el("td", {}, el("code", { text: job.job_id.slice(0, 8), title: job.job_id })),
        el("td", { text: job.platform }),
        el("td", { text: job.reason || "-" }),
        el("td", { class: "num", text: String(job.attempts) }),
        el("td", { text: job.dead_at ? dateTime(job.dead_at) : "-" }),
        el("td", {}, el("button", { type: "button", class: "requeue", text: t("web_admin_requeue", { job: job.job_id.slice(0, 8) }),
                                    onclick: (event) => requeue(job.job_id, event.currentTarget) })))))));
}

function webhooks(listing) {
  const pending = el("p", { class: "muted", text: t("web_admin_webhooks_pending", { count: listing.pending }) });
  if (!listing.failing.length) {
    $("webhooks").replaceChildren(pending, el("p", { class: "muted", text: t("web_admin_webhooks_none") }));
    return;
  }
  $("webhooks").replaceChildren(pending,
    el("table", {},
      el("thead", {}, el("tr", {},
        ...["web_admin_col_job", "web_admin_col_receiver", "web_admin_col_state", "web_admin_col_attempts",
            "web_admin_col_last", "web_admin_col_next"].map((k) => el("th", { scope: "col", text: t(k) })))),
      el("tbody", {}, ...listing.failing.map((hook) => el("tr", { "data-job": hook.job_id },
        el("td", {}, el("code", { text: hook.job_id.slice(0, 8), title: hook.job_id })),
        el("td", { text: hook.host }),
        el("td", { text: hook.state }),
        el("td", { class: "num", text: String(hook.attempts) }),
        el("td", { text: hook.last_status ? `HTTP ${hook.last_status}` : hook.last_error || "-" }),
        el("td", { text: hook.next_attempt_at ? dateTime(hook.next_attempt_at) : "-" }))))));
}

async function requeue(jobId, button) {
  button.disabled = true;
  const answer = await call(`/v1/jobs/${encodeURIComponent(jobId)}/requeue`, { method: "POST", key });
  if (answer.status === 401 || answer.status === 403) {
    lock(t("web_admin_key_invalid"));
    return;
  }
  $("dead-status").textContent = answer.ok
    ? t("web_admin_requeued", { job: jobId.slice(0, 8) })
    : errorText(answer.code, answer.status, answer.body);
  await refresh();
}

async function refresh() {
  clearTimeout(timer);
  if (!key) {
    lock(null);
    return;
  }
  const [stats, dead, hooks] = await Promise.all([
    call("/v1/stats", { key }), call("/v1/dead-jobs?limit=50", { key }), call("/v1/webhooks?limit=50", { key })]);
  for (const answer of [stats, dead, hooks]) {
    if (answer.status === 401 || answer.status === 403) {
      sessionStorage.removeItem(KEY);
      key = null;
      lock(t("web_admin_key_invalid"));
      return;
    }
  }
  if (!stats.ok || !dead.ok || !hooks.ok) {
    const failed = [stats, dead, hooks].find((answer) => !answer.ok);
    notice(errorText(failed.code, failed.status, failed.body));
    timer = setTimeout(refresh, 5_000);
    return;
  }
  notice(null);
  $("key-panel").hidden = true;
  $("dashboard").hidden = false;
  cards(stats.body);
  hourlyChart(stats.body.hourly);
  latencyChart(stats.body.latency_s, stats.body.stage_names);
  queueAndWorkers(stats.body);
  topClasses(stats.body.top_labels);
  deadJobs(dead.body);
  webhooks(hooks.body);
  $("stats-text").textContent = stats.body.text; // the bots' /stats, as the gateway renders it
  $("updated").textContent = t("web_admin_updated", { time: new Date().toLocaleTimeString(document.documentElement.lang) });
  document.body.dataset.loaded = String(Date.now());
  timer = setTimeout(refresh, REFRESH_MS);
}

async function main() {
  await loadTextsPatiently(notice);
  document.title = t("web_admin_title");
  translatePage();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("key-input").value.trim();
    if (!value) return;
    key = value;
    sessionStorage.setItem(KEY, value);
    $("key-input").value = "";
    refresh();
  });
  $("refresh").addEventListener("click", refresh);
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    key = null;
    lock(null);
  });
  document.body.dataset.ready = "admin";
  await refresh();
}

main();
