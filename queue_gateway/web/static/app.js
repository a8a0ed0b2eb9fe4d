// The upload page: choose or drop photos, follow each (queued #n -> processing -> done), see the results.
import { call, el, local, pause } from "./api.js";
import { errorText, lang, loadTextsPatiently, t, translatePage } from "./i18n.js";

const HISTORY = "detectbot.history"; // sessionStorage: this browser session's photos
const TOKEN = "detectbot.token"; // sessionStorage: the open page's browser token
const KEY = "detectbot.apiKey"; // localStorage: the API key, in key mode
const FINAL = new Set(["done", "failed", "dead", "cancelled", "delivered"]);

const $ = (id) => document.getElementById(id);
const state = {
  mode: null, // "open" (browser tokens) or "key" (an API key); null until the gateway has said which
  token: null,
  key: localStorage.getItem(KEY),
  items: new Map(), // local id -> item
  pending: [], // items waiting to be sent, in order
  pumping: false,
  nudge: null, // wakes the sender early (one of our photos finished, a key was given)
};

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12)); // randomUUID needs a secure context; this does not
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- notices ------------------------------------------------------------------------------------------------

function notice(message) {
  const box = $("notice");
  box.hidden = !message;
  box.textContent = message || "";
}

// --- who may upload -----------------------------------------------------------------------------------------

function credential() {
  return state.mode === "open" ? state.token : state.key;
}

function readyToSend() {
  return state.mode !== null && Boolean(credential());
}

/** Open mode: a browser token (kept for this session); key mode: the gateway answers 404 here. */
async function startSession() {
  const saved = JSON.parse(sessionStorage.getItem(TOKEN) || "null");
  if (saved && saved.expires_at * 1000 > Date.now() + 60_000) {
    state.mode = "open";
    state.token = saved.token;
    return;
  }
  for (let delay = 1000; ; delay = Math.min(delay * 2, 15_000)) {
    const answer = await call("/v1/web/session", { method: "POST" });
    if (answer.ok) {
      sessionStorage.setItem(TOKEN, JSON.stringify(answer.body));
      state.mode = "open";
      state.token = answer.body.token;
      notice(null);
      return;
    }
    if (answer.status === 404) {
      state.mode = "key";
      sessionStorage.removeItem(TOKEN);
      return;
    }
    notice(answer.code === "network" ? t("web_offline") : `${t("web_session_failed")} ${errorText(answer.code, answer.status, answer.body)}`);
    await pause((answer.retryAfter ?? 0) * 1000 || delay);
  }
}

function showKeyControls(error) {
  const keyMode = state.mode === "key";
  const needKey = keyMode && (!state.key || Boolean(error));
  $("key-panel").hidden = !needKey;
  $("key-current").hidden = !(keyMode && state.key && !needKey);
  $("key-error").hidden = !error;
  $("key-error").textContent = error || "";
  $("choose").disabled = !readyToSend() || needKey;
  const blocked = $("upload-blocked");
  blocked.hidden = !needKey;
  blocked.textContent = needKey ? t("web_key_missing") : "";
  if (needKey && error) $("key-input").focus();
}

function saveKey(event) {
  event.preventDefault();
  const value = $("key-input").value.trim();
  if (!value) return;
  state.key = value;
  localStorage.setItem(KEY, value);
  $("key-input").value = "";
  showKeyControls(null);
  for (const item of state.items.values()) {
    if (item.state === "needs-key") queueUpload(item);
  }
  wake();
  pump();
}

// --- history ------------------------------------------------------------------------------------------------

function persist() {
  const kept = [...state.items.values()]
    .filter((item) => item.job_id)
    .map(({ id, name, conf, job_id, status_url, result_url, crops_url, status, status_text, detections, labels,
            caption, error, added }) => ({ id, name, conf, job_id, status_url, result_url, crops_url, status,
            status_text, detections, labels, caption, error, added }));
  try {
    sessionStorage.setItem(HISTORY, JSON.stringify(kept));
  } catch {
    // storage full: the list still shows, it just won't survive a reload
  }
}

function restore() {
  let saved = [];
  try {
    saved = JSON.parse(sessionStorage.getItem(HISTORY) || "[]");
  } catch {
    saved = [];
  }
  for (const entry of saved.sort((a, b) => a.added - b.added)) {
    const item = { ...entry, state: entry.status, file: null, preview: null };
    addItem(item);
    if (!FINAL.has(item.status)) follow(item);
  }
}

// --- one photo ----------------------------------------------------------------------------------------------

function addItem(item) {
  state.items.set(item.id, item);
  const li = el("li", { class: "photo", id: `photo-${item.id}`, "aria-labelledby": `name-${item.id}` });
  item.element = li;
  $("photos").prepend(li);
  render(item);
  updateEmpty();
}

function removeItem(item) {
  state.items.delete(item.id);
  state.pending = state.pending.filter((other) => other !== item);
  item.removed = true;
  item.abort?.abort();
  for (const url of [item.preview, item.jsonUrl]) if (url) URL.revokeObjectURL(url);
  item.element.remove();
  persist();
  updateEmpty();
}

function updateEmpty() {
  const any = state.items.size > 0;
  $("history-empty").hidden = any;
  $("clear").hidden = !any;
}

function stem(name) {
  return name.replace(/\.[^.]+$/, "") || "photo";
}

function stateText(item) {
  switch (item.state) {
    case "sending": return t("web_uploading");
    case "waiting": return item.note || t("web_waiting_turn");
    case "received":
    case "queued":
    case "processing":
    case "done":
    case "delivered":
    case "cancelled":
      return item.status_text || ""; // as the gateway says it, in this page's language
    default: return "";
  }
}

function detectionsTable(item) {
  const rows = item.detections.map((d) =>
    el("tr", {},
      el("td", { class: "label", text: item.labels?.[d.label] ?? d.label }),
      el("td", { class: "num", text: `${Math.round(d.confidence * 100)}%` }),
      el("td", { class: "num box", text: d.box.map((v) => Math.round(v)).join(", ") })));
  return el("table", { class: "detections" },
    el("caption", { class: "visually-hidden", text: t("web_detections") }),
    el("thead", {}, el("tr", {},
      el("th", { scope: "col", text: t("web_col_object") }),
      el("th", { scope: "col", class: "num", text: t("web_col_confidence") }),
      el("th", { scope: "col", class: "num", text: t("web_col_box") }))),
    el("tbody", {}, ...rows));
}

function placeholder() {
  return el("div", { class: "placeholder", "aria-hidden": "true" });
}

function render(item) {
  const li = item.element;
  li.dataset.state = item.state;
  const done = item.state === "done" || item.state === "delivered";
  const figure = el("figure", { class: "thumb" });
  if (done && item.detections) {
    const img = el("img", {
      class: "result", src: local(item.result_url), alt: t("web_annotated_alt", { name: item.name, caption: item.caption || "" }),
    });
    img.addEventListener("error", () => checkGone(item));
    figure.append(img);
  } else if (item.preview && !item.previewBroken) {
    const img = el("img", { class: "preview", src: item.preview, alt: t("web_preview_alt", { name: item.name }) });
    img.addEventListener("error", () => { item.previewBroken = true; img.replaceWith(placeholder()); });
    figure.append(img);
  } else {
    figure.append(placeholder());
  }
  const info = el("div", { class: "info" },
    el("h3", { class: "name", id: `name-${item.id}`, text: item.name }),
    item.conf === undefined ? null  // a re-run: its caption says what it ran with
      : el("p", { class: "meta muted small", text: t("web_conf_label", { conf: Math.round(item.conf * 100) }) }));
  const status = el("p", { class: "state", role: "status", "aria-live": "polite", text: stateText(item),
                           "aria-label": `${t("web_photo_state", { name: item.name })}: ${stateText(item)}` });
  info.append(status);
  if (item.state === "processing" || item.state === "sending") info.append(el("progress", { "aria-hidden": "true" }));
  if (done && item.caption) info.append(el("p", { class: "caption", text: item.caption }));
  const problem = item.state === "failed" || item.state === "dead" ? item.error?.text || item.status_text : item.problem;
  if (problem) info.append(el("p", { class: "error", role: "alert", text: problem }));

  const actions = el("div", { class: "actions" });
  if (done && item.detections) {
    actions.append(el("a", { class: "button", href: local(item.result_url), download: `${stem(item.name)}.detected.jpg`,
                             text: t("web_download_image") }));
    if (!item.jsonUrl) {
      const json = JSON.stringify({ job_id: item.job_id, file: item.name, caption: item.caption,
                                    detections: item.detections, timings: item.timings }, null, 2);
      item.jsonUrl = URL.createObjectURL(new Blob([json], { type: "application/json" }));
    }
    actions.append(el("a", { class: "button", href: item.jsonUrl, download: `${stem(item.name)}.detections.json`,
                             text: t("web_download_json") }));
    if (item.crops_url && item.detections.length) { // each object cut out of the original, in a ZIP
      actions.append(el("a", { class: "button", href: local(item.crops_url), download: `${stem(item.name)}.objects.zip`,
                               text: t("web_download_objects") }));
    }
  }
  if (done && item.job_id) { // the stored photo runs again as a new job: no upload
    const modes = item.detections?.length ? ["lower", "higher", "found"] : ["lower", "higher"];
    actions.append(el("span", { class: "rerun", role: "group", "aria-label": t("web_rerun") },
      el("span", { class: "muted small", text: t("web_rerun") }),
      ...modes.map((mode) => el("button", { type: "button", class: "link", "data-rerun": mode,
                                            text: t(`web_rerun_${mode}`), onclick: () => rerun(item, mode) }))));
  }
  if ((item.state === "queued" || item.state === "received") && item.job_id) {
    actions.append(el("button", { type: "button", text: t("web_cancel"), onclick: () => cancel(item) }));
  }
  if (item.state === "error" && item.file && item.retryable) {
    actions.append(el("button", { type: "button", text: t("web_retry"), onclick: () => { queueUpload(item); pump(); } }));
  }
  if (item.state !== "sending" && !(item.job_id && !FINAL.has(item.state) && item.state !== "gone")) {
    actions.append(el("button", { type: "button", class: "link", text: t("web_remove"), onclick: () => removeItem(item) }));
  }
  info.append(actions);
  if (done && item.detections && item.detections.length) {
    info.append(el("details", { class: "found", open: true },
      el("summary", { text: `${t("web_detections")} (${item.detections.length})` }), detectionsTable(item)));
  }
  li.replaceChildren(figure, info);
}

/** Run a finished photo again (a lower or a higher confidence, or only the objects it found): a new entry. */
async function rerun(item, mode) {
  const answer = await call(`/v1/jobs/${encodeURIComponent(item.job_id)}/rerun`, {
    method: "POST", key: credential(), body: JSON.stringify({ mode }), idempotencyKey: newId(),
  });
  if (!answer.ok) {
    if (answer.status === 410) {
      item.state = "gone";
      item.problem = t("web_gone");
      render(item);
      persist();
    }
    notice(errorText(answer.code, answer.status, answer.body));
    return;
  }
  notice(null);
  const again = { id: newId(), name: t("web_rerun_name", { name: item.name }), added: Date.now(),
                  preview: item.preview, ...pick(answer.body), state: answer.body.status };
  again.status = answer.body.status;
  addItem(again);
  persist();
  follow(again);
}

async function checkGone(item) {
  const answer = await call(local(item.result_url));
  if (answer.status === 410 || answer.status === 404) {
    item.state = "gone";
    item.problem = t("web_gone");
    render(item);
    persist();
  }
}

// --- sending ------------------------------------------------------------------------------------------------

function addFiles(files) {
  const conf = Number($("conf").value) / 100;
  for (const file of files) {
    const item = {
      id: newId(), name: file.name || "photo", conf, file, added: Date.now(), state: "waiting",
      preview: file.type.startsWith("image/") ? URL.createObjectURL(file) : null,
    };
    item.note = t("web_uploading");
    addItem(item);
    queueUpload(item);
  }
  pump();
}

function queueUpload(item) {
  item.state = "waiting";
  item.problem = null;
  item.note = t("web_uploading");
  if (!state.pending.includes(item)) state.pending.push(item);
  render(item);
}

function wake() {
  const nudge = state.nudge;
  state.nudge = null;
  nudge?.();
}

function waitOrNudge(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { state.nudge = null; resolve(); }, ms);
    state.nudge = () => { clearTimeout(timer); resolve(); };
  });
}

/** Send the waiting photos one at a time, in order; pause while over a limit or while the gateway is away. */
async function pump() {
  if (state.pumping) return;
  state.pumping = true;
  try {
    let networkDelay = 1000;
    while (state.pending.length && readyToSend()) {
      const item = state.pending[0];
      const retryMs = await send(item);
      if (retryMs === null) {
        state.pending = state.pending.filter((other) => other !== item);
        networkDelay = 1000;
      } else if (retryMs === "network") {
        await waitOrNudge(networkDelay);
        networkDelay = Math.min(networkDelay * 2, 30_000);
      } else if (retryMs === "blocked") {
        break; // needs a key: saveKey() starts again
      } else {
        await waitOrNudge(retryMs);
      }
    }
  } finally {
    state.pumping = false;
  }
}

/** One upload: null when this photo is settled (accepted or refused for good), else how to wait before again. */
async function send(item) {
  item.state = "sending";
  render(item);
  const form = new FormData();
  form.append("params", JSON.stringify({ conf: item.conf, language: lang() }));
  form.append("image", item.file, item.name);
  const answer = await call("/v1/jobs", { method: "POST", key: credential(), body: form, idempotencyKey: item.id });
  if (item.removed) return null;
  if (answer.ok) {
    notice(null);
    Object.assign(item, pick(answer.body), { state: answer.body.status, problem: null, note: null });
    item.status = answer.body.status;
    render(item);
    persist();
    follow(item);
    return null;
  }
  const { code, status, body, retryAfter } = answer;
  if (code === "network") {
    notice(t("web_offline"));
    setWaiting(item, t("web_offline"));
    return "network";
  }
  if (status === 401 || (status === 403 && state.mode === "key")) {
    if (state.mode === "open") {
      sessionStorage.removeItem(TOKEN); // expired or from another gateway: take a new one
      state.mode = null;
      state.token = null;
      setWaiting(item, t("web_uploading"));
      startSession().then(() => { showKeyControls(null); pump(); });
      return "blocked";
    }
    item.state = "needs-key";
    item.problem = errorText(code, status, body);
    render(item);
    showKeyControls(item.problem);
    return "blocked";
  }
  if (code === "too_many_in_line") {
    setWaiting(item, `${errorText(code, status, body)} ${t("web_waiting_turn")}`);
    return (retryAfter ?? 10) * 1000; // or sooner: when one of ours finishes
  }
  if (code === "rate_limited" || code === "busy" || status === 503) {
    const seconds = retryAfter ?? 30;
    setWaiting(item, `${errorText(code, status, body)} ${t("web_retry_in", { seconds })}`);
    return seconds * 1000;
  }
  item.state = "error";
  item.retryable = ![400, 413, 415].includes(status); // the same file would be refused the same way
  item.problem = t("web_error_photo", { name: item.name, reason: errorText(code, status, body) });
  render(item);
  return null;
}

function setWaiting(item, note) {
  item.state = "waiting";
  item.note = note;
  render(item);
}

function pick(body) {
  const { job_id, status_url, result_url, crops_url, status_text, detections, labels, caption, error } = body;
  const picked = { job_id, status_url, result_url, status_text };
  if (detections) Object.assign(picked, { detections, labels, caption, crops_url });
  if (error) picked.error = error;
  return picked;
}

// --- following ----------------------------------------------------------------------------------------------

/** Long-poll the job's signed status link until it finishes. */
async function follow(item) {
  let delay = 1000;
  let fetched = false; // one look even at a photo finished at once (the same photo again: the stored result)
  item.abort = new AbortController();
  while (!item.removed && (!fetched || !FINAL.has(item.state))) {
    const wait = item.state === "processing" ? 20 : 5; // short while in line, so the place in line stays current
    let answer;
    try {
      answer = await call(`${local(item.status_url)}&wait=${wait}`, { signal: item.abort.signal });
    } catch {
      return; // removed
    }
    if (item.removed) return;
    if (answer.ok) {
      delay = 1000;
      fetched = true;
      notice(null);
      Object.assign(item, pick(answer.body), { state: answer.body.status, problem: null });
      item.status = answer.body.status;
      if (answer.body.finished && !FINAL.has(item.state)) item.state = "failed";
      render(item);
      persist();
      continue;
    }
    if (answer.code === "network" || answer.status >= 500) {
      notice(t("web_offline"));
      await pause(delay, item.abort.signal);
      delay = Math.min(delay * 2, 15_000);
      continue;
    }
    item.state = "gone"; // the link expired, or the job is no more
    item.problem = errorText(answer.code, answer.status, answer.body);
    render(item);
    persist();
    return;
  }
  if (!item.removed) wake(); // a place in line is free again
}

async function cancel(item) {
  const answer = await call(`/v1/jobs/${encodeURIComponent(item.job_id)}/cancel`, { method: "POST", key: credential() });
  if (!answer.ok) {
    item.problem = errorText(answer.code, answer.status, answer.body);
    render(item);
  }
  // the long-poll sees the new state
}

// --- the page -----------------------------------------------------------------------------------------------

function wireControls() {
  const input = $("file-input");
  $("choose").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    if (input.files.length) addFiles([...input.files]);
    input.value = "";
  });
  const drop = $("drop");
  const dropHint = el("p", { class: "drop-hint", text: t("web_drop_here"), "aria-hidden": "true" });
  drop.append(dropHint);
  const acceptsDrop = (event) => !$("choose").disabled && [...(event.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragover", (event) => {
    if (!acceptsDrop(event)) return;
    event.preventDefault();
    drop.classList.add("over");
  });
  document.addEventListener("dragleave", (event) => {
    if (event.relatedTarget === null) drop.classList.remove("over");
  });
  document.addEventListener("drop", (event) => {
    drop.classList.remove("over");
    if (!acceptsDrop(event)) return;
    event.preventDefault();
    addFiles([...event.dataTransfer.files]);
  });
  const conf = $("conf");
  const showConf = () => { $("conf-label").textContent = t("web_conf_label", { conf: conf.value }); };
  conf.addEventListener("input", showConf);
  showConf();
  $("key-form").addEventListener("submit", saveKey);
  $("key-change").addEventListener("click", () => {
    $("key-panel").hidden = false;
    $("key-current").hidden = true;
    $("key-input").focus();
  });
  $("clear").addEventListener("click", () => {
    for (const item of [...state.items.values()]) {
      if (!state.pending.includes(item) && (FINAL.has(item.state) || ["error", "gone", "needs-key"].includes(item.state))) {
        removeItem(item);
      }
    }
  });
}

async function main() {
  $("choose").disabled = true;
  await loadTextsPatiently(notice);
  document.title = t("web_title");
  translatePage();
  wireControls();
  restore();
  await startSession();
  showKeyControls(null);
  document.body.dataset.ready = state.mode;
  pump();
}

main();
