// The gateway's HTTP API as the pages use it: every call goes to this page's own origin, asking for the page's
// language, so that every sentence in the answers comes in it.
import { lang } from "./i18n.js";

/**
 * One request. Resolves (never rejects) to {ok, status, body, code, retryAfter}; a network failure is
 * status 0 with code "network", so the page can say so and keep working.
 */
export async function call(path, { method = "GET", key = null, body = undefined, signal = undefined,
                                   idempotencyKey = null } = {}) {
  const headers = { "Accept-Language": lang() };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey; // a resend after a lost answer is the same job
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, credentials: "omit", cache: "no-store" });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    return { ok: false, status: 0, body: {}, code: "network", retryAfter: null };
  }
  let parsed = {};
  if ((response.headers.get("Content-Type") || "").startsWith("application/json")) {
    try {
      parsed = await response.json();
    } catch {
      parsed = {};
    }
  }
  const header = Number(response.headers.get("Retry-After"));
  const retryAfter = parsed.retry_after ?? (Number.isFinite(header) && header > 0 ? header : null);
  const code = response.ok ? null : parsed.error || (response.status >= 500 ? "unavailable" : "bad_request");
  return { ok: response.ok, status: response.status, body: parsed, code, retryAfter };
}

/** The path and query of a URL the gateway handed out, so the page always asks its own origin. */
export function local(url) {
  const parsed = new URL(url, window.location.href);
  return parsed.pathname + parsed.search;
}

/** Wait ms, or until the signal aborts. */
export function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/** A small element builder: el("p", {class: "x", text: "hi"}, child, …). */
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") element.textContent = value;
    else if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) element.append(child);
  return element;
}
