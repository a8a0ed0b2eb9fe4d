// The pages' sentences, from the gateway's catalogue (GET /v1/texts): the same one the bots speak from.

let catalogue = { lang: "en", texts: {}, errors: {}, plurals: {}, labels: {} };
let pluralRules = new Intl.PluralRules("en");

/** Load the catalogue in the browser's language (navigator.languages, then the gateway's Accept-Language). */
export async function loadTexts() {
  const wanted = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language])
    .filter(Boolean).join(",");
  const response = await fetch(`/v1/texts?lang=${encodeURIComponent(wanted)}`, { credentials: "omit" });
  if (!response.ok) throw new Error(`texts: HTTP ${response.status}`);
  catalogue = await response.json();
  pluralRules = new Intl.PluralRules(catalogue.lang);
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

/** Python's str.format for the catalogue's templates: {name}, {name:.1f}, {name:.0%}. */
export function format(template, values = {}) {
  return template.replace(/\{\{|\}\}|\{(\w+)(?::([^{}]*))?\}/g, (match, name, spec) => {
    if (match === "{{") return "{";
    if (match === "}}") return "}";
    let value = values[name];
    if (value === undefined || value === null) return match;
    const fixed = spec && /^\.(\d+)([f%])$/.exec(spec);
    if (fixed) {
      const digits = Number(fixed[1]);
      value = fixed[2] === "%" ? `${(Number(value) * 100).toFixed(digits)}%` : Number(value).toFixed(digits);
    }
    return String(value);
  });
}

/** A sentence of the catalogue; the key itself (never an empty string) when it is missing. */
export function t(key, values) {
  const template = catalogue.texts[key];
  return template === undefined ? key : format(template, values);
}

/** A sentence with plural forms, in the form the language uses for count. */
export function plural(key, count, values = {}) {
  const forms = catalogue.plurals[key];
  if (!forms) return `${count}`;
  const template = forms[pluralRules.select(count)] ?? forms.other;
  return format(template, { count, ...values });
}

/** A class name as the image shows it, in the page's language. */
export function label(name) {
  return catalogue.labels[name] ?? name;
}

/** "3 s", "2 min": how long a photo will wait (as the bots say it). */
export function eta(seconds) {
  if (seconds < 90) return plural("eta_seconds", Math.max(1, Math.ceil(seconds)));
  return plural("eta_minutes", Math.ceil(seconds / 60));
}

/** The person's sentence for one of the gateway's error answers ({"error", "message", "retry_after", "limit"}). */
export function errorText(code, status, body = {}) {
  if (code === "network") return t("web_offline");
  if (code === "busy") return t("busy", { seconds: body.retry_after ?? 30 });
  if (code === "too_many_in_line") return plural("too_many_in_line", body.limit ?? 3);
  if (code === "quota") return plural("quota", body.limit ?? 0);
  if (catalogue.errors[code]) return catalogue.errors[code];
  if (status === 400) return t("web_bad_request");
  return t("unavailable");
}

/** Fill every [data-t] element (and [data-t-alt], [data-t-label]) with its sentence. */
export function translatePage(root = document) {
  for (const element of root.querySelectorAll("[data-t]")) element.textContent = t(element.dataset.t);
  for (const element of root.querySelectorAll("[data-t-label]")) {
    element.setAttribute("aria-label", t(element.dataset.tLabel));
  }
}
