"""Every sentence a person reads, in one catalogue shared by the bots and the gateway's delivery.

A leaf module: it imports nothing of ours. ``text(key, lang, **values)`` falls back to English.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

EN: dict[str, str] = {
    "help": (
        "Send me a photo and I'll send it back with the objects I find boxed and labelled.\n"
        "In groups, caption the photo with /detect or reply /detect to a photo.\n"
        "/forget deletes your photos and results."
    ),
    "queued": "Queued — #{position} in line.",
    "queued_now": "Got it — working on it now.",
    "queued_album": "Queued {count} photos — #{position} in line.",
    "done_in": "Done in {seconds:.1f} s.",
    "failed_short": "Sorry, that didn't work — see the reply below.",
    "no_objects": "No objects found.",
    "busy": "I'm busy right now. Please try again in about {seconds} s.",
    "unavailable": "I can't take photos right now. Please try again in a minute.",
    "accepted_hint": "Send me a photo (JPEG, PNG or WebP) and I'll find the objects in it.",
    "too_big": "That file is {size_mb} MB; the limit is {limit_mb} MB. Please send a smaller photo.",
    "group_hint": "Reply /detect to a photo, or caption a photo with /detect.",
    "failed": "Sorry, I couldn't process that photo: {reason}",
    "dead": "Sorry, that photo failed several times ({reason}). An admin has been told; you can try again later.",
    "bad_image": "That image is damaged or not a photo. Please send a JPEG, PNG or WebP.",
    "forgot": "Deleted {count} of your photos and results.",
    "forgot_none": "There was nothing of yours to delete.",
    "not_allowed": "Unknown command. Send a photo, or /help.",
    "stats_header": "detectbot — last 24 h",
    "dlq_empty": "No dead jobs. All good.",
    "dlq_pick": "No single dead job starts with that id. Run /dlq to see them.",
    "dlq_header": "{count} dead job(s), newest first:",
    "requeued": "Requeued job {job}. Its chat gets the result when it is done.",
    "admin_key_missing": "The gateway refused my admin key. Set DETECTBOT_ADMIN_API_KEY for this bot.",
    "received": "Got it — queuing…",
    "discord_help": (
        "I find objects in photos and send them back boxed and labelled.\n"
        "Use /detect with a photo attached, or on a message with photos choose Apps → Detect objects."
    ),
    "discord_hint": "Attach a photo (JPEG, PNG or WebP) to /detect, or use Apps → Detect objects on a photo message.",
}

RU: dict[str, str] = {
    "queued": "В очереди — №{position}.",
    "queued_now": "Принято — уже обрабатываю.",
    "done_in": "Готово за {seconds:.1f} с.",
    "no_objects": "Ничего не найдено.",
    "accepted_hint": "Пришлите фото (JPEG, PNG или WebP), и я найду на нём объекты.",
    "busy": "Я сейчас занят. Попробуйте снова примерно через {seconds} с.",
    "received": "Принято — ставлю в очередь…",
}

CATALOGUE: dict[str, dict[str, str]] = {"en": EN, "ru": RU}

PLURALS = {
    "person": "persons",
    "bus": "buses",
    "knife": "knives",
    "sheep": "sheep",
    "skis": "skis",
    "scissors": "scissors",
    "couch": "couches",
    "sandwich": "sandwiches",
    "wine glass": "wine glasses",
    "glass": "glasses",
    "mouse": "mice",
    "bench": "benches",
    "toothbrush": "toothbrushes",
    "skateboard": "skateboards",
}


def language(code: str | None) -> str:
    """``"ru-RU"`` → ``"ru"`` when we have it, else English."""
    short = (code or "en").split("-")[0].split("_")[0].lower()
    return short if short in CATALOGUE else "en"


def text(key: str, lang: str | None = None, **values: Any) -> str:
    template = CATALOGUE[language(lang)].get(key) or EN[key]
    return template.format(**values)


def plural(label: str, count: int) -> str:
    if count == 1:
        return label
    if label in PLURALS:
        return PLURALS[label]
    if label.endswith(("s", "x", "ch", "sh")):
        return label + "es"
    return label + "s"


def caption(detections: Iterable[Mapping[str, Any]], lang: str | None = None) -> str:
    """``"4 persons, 1 bus"`` — most frequent first; a sentence when nothing was found."""
    counts = Counter(str(d["label"]) for d in detections)
    if not counts:
        return text("no_objects", lang)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{n} {plural(label, n)}" for label, n in ordered)
