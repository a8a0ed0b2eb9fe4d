"""/settings, platform-neutral: what a chat chose (confidence, objects, result, language), and changing it.

The gateway stores the settings and applies them to each new photo of the chat (the worker filters by
confidence and objects and draws the labels in the chat's language; delivery picks the result's form). A
platform shows :func:`describe` and offers :data:`CHOICES` as buttons (Telegram) or options (Discord).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from bots.shared.client import GatewayClient
from queue_gateway.public import texts

log = logging.getLogger(__name__)

CONF_CHOICES = (0.25, 0.5, 0.75)
OUTPUTS = ("photo", "photo+json", "document")
CLASS_GROUPS: dict[str, tuple[str, ...] | None] = {"all": None, "people": texts.PEOPLE, "vehicles": texts.VEHICLES}


@dataclass(frozen=True, slots=True)
class Choice:
    """One button: what it says (a catalogue key and values) and the change it makes (``field:value``)."""

    action: str

    def label(self, lang: str | None) -> str:
        field, _, value = self.action.partition(":")
        if field == "conf":
            return texts.text("button_conf", lang, conf=float(value))
        if field == "classes":
            return texts.text(f"button_classes_{value}", lang)
        if field == "output":
            return texts.text(f"output_{value}", lang)
        if field == "language":
            return texts.text("language_name", value)
        return texts.text("button_reset", lang)


CHOICES: list[list[Choice]] = [
    [Choice(f"conf:{conf}") for conf in CONF_CHOICES],
    [Choice(f"classes:{group}") for group in CLASS_GROUPS],
    [Choice(f"output:{output}") for output in OUTPUTS],
    [*[Choice(f"language:{lang}") for lang in texts.languages()], Choice("reset:")],
]


class SettingsError(ValueError):
    """A /settings value that cannot be used: ``kind`` says which (conf, classes, output, field), ``value`` what."""

    def __init__(self, kind: str, value: str = "") -> None:
        super().__init__(f"{kind}: {value}")
        self.kind = kind
        self.value = value

    def text(self, lang: str | None) -> str:
        """The sentence for the person, in their language."""
        if self.kind == "classes":
            return unknown_class_text(self.value, lang)
        return texts.text(f"cmd_settings_{self.kind}" if self.kind in ("conf", "output") else "settings_usage", lang)


class ChatSettingsService:
    def __init__(self, client: GatewayClient, *, cache_size: int = 2048) -> None:
        self._client = client
        self._languages: OrderedDict[str, str | None] = OrderedDict()
        self._cache_size = cache_size

    async def get(self, platform: str, chat_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._client.get_json(f"/v1/chats/{platform}/{chat_id}/settings")
        self._remember(platform, chat_id, found.get("language"))
        return found

    async def update(self, platform: str, chat_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = await self._client.patch_json(f"/v1/chats/{platform}/{chat_id}/settings", changes)
        self._remember(platform, chat_id, found.get("language"))
        return found

    async def apply(self, platform: str, chat_id: str, action: str) -> dict[str, Any]:
        """A button's ``field:value``."""
        return await self.update(platform, chat_id, parse_action(action))

    async def language(self, platform: str, chat_id: str, platform_language: str | None) -> str | None:
        """The chat's chosen language, else the person's platform language (one lookup per chat, then cached)."""
        key = f"{platform}:{chat_id}"
        if key not in self._languages:
            try:
                await self.get(platform, chat_id)
            except Exception as exc:  # the gateway is away: speak the platform's language meanwhile
                log.debug("chat settings of %s unavailable: %s", key, exc)
                return platform_language
        return self._languages.get(key) or platform_language

    def _remember(self, platform: str, chat_id: str, language: str | None) -> None:
        key = f"{platform}:{chat_id}"
        self._languages[key] = language
        self._languages.move_to_end(key)
        while len(self._languages) > self._cache_size:
            self._languages.popitem(last=False)


def parse_action(action: str) -> dict[str, Any]:
    field, _, value = action.partition(":")
    if field == "conf":
        return {"conf": float(value)}
    if field == "classes":
        group = CLASS_GROUPS.get(value)
        return {"classes": list(group) if group else None}
    if field == "output":
        return {"output": value}
    if field == "language":
        return {"language": value}
    return {"conf": None, "classes": None, "output": None, "language": None}


def parse_options(
    *,
    conf: float | None = None,
    classes: str | None = None,
    output: str | None = None,
    language: str | None = None,
    lang: str | None = None,
) -> dict[str, Any]:
    """Typed options (Discord's /settings, or ``/settings conf 60`` in Telegram) → changes; SettingsError if bad.

    Object names may be given in English or in the chat's language (``lang``).
    """
    changes: dict[str, Any] = {}
    if conf is not None:
        share = conf / 100 if conf > 1 else conf
        if not 0.05 <= share <= 0.95:
            raise SettingsError("conf", str(conf))
        changes["conf"] = round(share, 2)
    if classes is not None:
        words = [word.strip() for word in classes.split(",") if word.strip()]
        if not words or [word.lower() for word in words] in (["all"], [texts.text("settings_all_classes", lang)]):
            changes["classes"] = None
        else:
            names = []
            for word in words:
                name = texts.object_named(word, lang)
                if name is None:
                    raise SettingsError("classes", word)
                names.append(name)
            changes["classes"] = names
    if output is not None:
        if output not in OUTPUTS:
            raise SettingsError("output", output)
        changes["output"] = output
    if language is not None:
        changes["language"] = texts.language(language)
    return changes


def parse_words(words: list[str], lang: str | None = None) -> dict[str, Any]:
    """``/settings conf 60``, ``/settings classes person,car``, ``/settings output document``, ``/settings reset``."""
    if not words:
        return {}
    field, rest = words[0].lower(), " ".join(words[1:])
    if field == "reset":
        return parse_action("reset:")
    if field == "conf":
        try:
            return parse_options(conf=float(rest.rstrip("%")), lang=lang)
        except ValueError:
            raise SettingsError("conf", rest) from None
    if field == "classes":
        return parse_options(classes=rest, lang=lang)
    if field == "output":
        return parse_options(output=rest, lang=lang)
    if field == "language":
        return parse_options(language=rest, lang=lang)
    raise SettingsError("field", field)


def describe(settings: dict[str, Any], lang: str | None) -> str:
    """The chat's settings in a few lines, in its language."""
    classes = settings.get("classes")
    shown = (
        ", ".join(texts.label(name, lang) for name in classes) if classes else texts.text("settings_all_classes", lang)
    )
    lines = [
        texts.text("settings_header", lang),
        texts.text("settings_conf", lang, conf=settings.get("conf") or 0.25),
        texts.text("settings_classes", lang, classes=shown),
        texts.text("settings_output", lang, output=texts.text(f"output_{settings.get('output') or 'photo'}", lang)),
        texts.text("settings_language", lang, language=texts.text("language_name", lang)),
    ]
    return "\n".join(lines)


def unknown_class_text(name: str, lang: str | None) -> str:
    examples = ", ".join(texts.label(example, lang) for example in ("person", "car", "dog", "bicycle"))
    return texts.text("settings_unknown_class", lang, name=name, examples=examples)
