// The pages' own labels, from the gateway's catalogue (GET /v1/texts): the same one the bots speak from. Every other
// sentence (a photo's place in line, why it failed, an error, the stats) comes rendered in the gateway's answers,
// in the language the page asks for (Accept-Language: see api.js): the page shows it and formats none of it.

let catalogue = { lang: "en", languages: ["en"], texts: {} };
// where the page's words differ from the bots' (a key the page asks for, a link, a photo gone)
const PAGE_WORDS = {
  unauthorized: "web_key_invalid",
  forbidden: "web_forbidden",
  expired: "web_link_expired",
  gone: "web_gone",
  not_found: "web_gone",
};

/** Load the catalogue in the browser's language (navigator.languages, then the gateway's Accept-Language). */
export async function loadTexts() {
  const wanted = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language])
    .filter(Boolean).join(",");
  const response = await fetch(`/v1/texts?lang=${encodeURIComponent(wanted)}`, { credentials: "omit" });
  if (!response.ok) throw new Error(`texts: HTTP ${response.status}`);
  catalogue = await response.json();
  document.documentElement.lang = catalogue.lang;
  return catalogue.lang;
}

/**
 * Load the catalogue, trying again (1 s, doubling up to 15 s) until the gateway answers; meanwhile ``notice`` shows
 * why the page waits (in English: there is no catalogue yet), and ``notice(null)`` clears it once it has loaded.
 */
export async function loadTextsPatiently(notice) {
  for (let delay = 1000; ; delay = Math.min(delay * 2, 15_000)) {
    try {
      await loadTexts();
      notice(null);
      return;
    } catch {
      notice("Can't reach the service. Check your connection; I'll keep trying.");
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

export function lang() {
  return catalogue.lang;
}

/** The page's own labels' placeholders: {name}. */
export function format(template, values = {}) {
  return template.replace(/\{\{|\}\}|\{(\w+)\}/g, (match, name) => {
    if (match === "{{") return "{";
    if (match === "}}") return "}";
    const value = values[name];
    return value === undefined || value === null ? match : String(value);
  });
}

/** A sentence of the catalogue; the key itself (never an empty string) when it is missing. */
export function t(key, values) {
  const template = catalogue.texts[key];
  return template === undefined ? key : format(template, values);
}

/**
 * The person's sentence for one of the gateway's error answers ({"error", "message", "text", …}): the gateway renders
 * it in this page's language; the page words a few its own way (a key it asked for, a link, a photo gone).
 */
export function errorText(code, status, body = {}) {
  if (code === "network") return t("web_offline");
  if (PAGE_WORDS[code]) return t(PAGE_WORDS[code]);
  if (body.text) return body.text;
  return t(status >= 500 ? "web_unavailable" : "web_bad_request");
}

/** Fill every [data-t] element (and [data-t-alt], [data-t-label]) with its sentence. */
export function translatePage(root = document) {
  for (const element of root.querySelectorAll("[data-t]")) element.textContent = t(element.dataset.t);
  for (const element of root.querySelectorAll("[data-t-label]")) {
    element.setAttribute("aria-label", t(element.dataset.tLabel));
  }
}
