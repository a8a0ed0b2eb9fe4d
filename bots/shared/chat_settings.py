"""/settings, platform-neutral: what a chat or a person chose (confidence, objects, result, language), and
changing it.

Two scopes (:class:`Scope`): in a private chat (a Telegram private chat, a Discord DM) /settings are the person's
own, and they apply to their photos in every chat; in a group or a guild channel they are the chat's, which
anyone may see and only the chat's admins may change (the platform handler checks that: Telegram's
``getChatMember``, Discord's *Manage Server* / *Manage Channels*). The gateway stores both and applies the chat's,
then the person's own (which win), to each new photo. A platform shows :func:`describe` and offers
:data:`CHOICES` as buttons (Telegram) or options (Discord).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from queue_gateway.public import texts
from queue_gateway.public.client import GatewayClient

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


@dataclass(frozen=True, slots=True)
class Scope:
    """Where /settings was asked: the platform, the chat, who asked (a stand-in sender: its chat), and whether
    the chat is private (there, the settings are the person's own)."""

    platform: str
    chat_id: str
    user_id: str | None
    private: bool

    @property
    def chat_path(self) -> str:
        return f"/v1/chats/{self.platform}/{self.chat_id}/settings"

    @property
    def person_path(self) -> str | None:
        return f"/v1/people/{self.platform}/{self.user_id}/settings" if self.user_id else None

    @property
    def path(self) -> str:
        """The settings /settings shows and changes here: the person's own in a private chat, else the chat's."""
        return (self.person_path if self.private else None) or self.chat_path


class ChatSettingsService:
    def __init__(self, client: GatewayClient, *, cache_size: int = 2048) -> None:
        self._client = client
        self._languages: OrderedDict[str, str | None] = OrderedDict()
        self._cache_size = cache_size

    async def get(self, scope: Scope) -> dict[str, Any]:
        """The settings /settings shows in this chat."""
        return await self._read(scope.path)

    async def update(self, scope: Scope, changes: dict[str, Any]) -> dict[str, Any]:
        """Change the settings of this chat (the caller has checked it may), or the person's own in a private chat."""
        found = (await self._client.change_settings(scope.path, changes)).model_dump(exclude_none=True)
        self._remember(scope.path, found.get("language"))
        return found

    async def apply(self, scope: Scope, action: str) -> dict[str, Any]:
        """A button's ``field:value``."""
        return await self.update(scope, parse_action(action))

    async def language(self, scope: Scope, platform_language: str | None) -> str | None:
        """The person's own language, else the chat's, else their platform language (each looked up once, then
        cached)."""
        for path in (scope.person_path, None if scope.private else scope.chat_path):
            if path is None:
                continue
            if path not in self._languages:
                try:
                    await self._read(path)
                except Exception as exc:  # the gateway is away: speak the platform's language meanwhile
                    log.debug("settings at %s unavailable: %s", path, exc)
                    return platform_language
            if chosen := self._languages.get(path):
                return chosen
        return platform_language

    async def _read(self, path: str) -> dict[str, Any]:
        found = (await self._client.settings(path)).model_dump(exclude_none=True)
        self._remember(path, found.get("language"))
        return found

    def forget_cached(self, scope: Scope) -> None:
        """After /forget: the person's own settings are gone at the gateway."""
        if scope.person_path is not None:
            self._languages.pop(scope.person_path, None)

    def _remember(self, path: str, language: str | None) -> None:
        self._languages[path] = language
        self._languages.move_to_end(path)
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


def describe(settings: dict[str, Any], lang: str | None, *, own: bool = False) -> str:
    """The chat's settings (``own``: the person's own) in a few lines, in their language."""
    classes = settings.get("classes")
    shown = (
        ", ".join(texts.label(name, lang) for name in classes) if classes else texts.text("settings_all_classes", lang)
    )
    lines = [
        texts.text("settings_header_own" if own else "settings_header", lang),
        texts.text("settings_conf", lang, conf=settings["conf"])
        if settings.get("conf")
        else texts.text("settings_conf_default", lang),
        texts.text("settings_classes", lang, classes=shown),
        texts.text("settings_output", lang, output=texts.text(f"output_{settings.get('output') or 'photo'}", lang)),
        texts.text("settings_language", lang, language=texts.text("language_name", lang)),
    ]
    return "\n".join(lines)


def unknown_class_text(name: str, lang: str | None) -> str:
    examples = ", ".join(texts.label(example, lang) for example in ("person", "car", "dog", "bicycle"))
    return texts.text("settings_unknown_class", lang, name=name, examples=examples)
