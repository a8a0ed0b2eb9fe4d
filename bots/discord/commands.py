"""Discord commands: translate interactions to the shared services' calls and their answers back.

Each photo command is written to the bot's durable inbox, then deferred at once (Discord wants an answer within
3 s), so the person sees "thinking…": a bot that dies before the gateway has the photo finishes the request when
it starts again (the interaction's token lives 15 minutes; Discord never sends an interaction twice). The
deferred message is first filled with "Got it — queuing…" and only then is the photo submitted: the first
follow-up after a defer would *fill* the thinking message, so a result that came back before our "queued" edit
would otherwise be overwritten by it. The gateway delivers the result as a follow-up and edits our message
(``@original``) as the photo moves up the line, to "Done in 1.4 s" at the end, once we have named it with
``status_posted``.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar, Self

import aiohttp
import discord
from discord import app_commands

from bots.discord.settings import DiscordSettings
from bots.shared import chat_settings
from bots.shared.detect import Photo, Reply
from bots.shared.inbox import Inbox
from bots.shared.services import BotServices
from queue_gateway.public import texts
from queue_gateway.public.client import GatewayClientError, GatewayRefused
from queue_gateway.public.contract import (
    CANCEL_ACTION,
    OBJECTS_ACTION,
    DiscordOrigin,
    parse_rerun_action,
    rerun_action,
)

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]
Tree = app_commands.CommandTree[Any]

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
MAX_IMAGES = 10  # one delivery group holds at most ten photos (and a Discord message at most ten files)
ORIGINAL = "@original"  # the interaction's deferred response, as the webhook API names it
ALREADY_ACKNOWLEDGED = 40060  # a second callback for the same interaction: Discord sent the event twice
UNKNOWN_INTERACTION = 10062  # our callback came after the 3 s deadline
TOKEN_LIFE_S = 14 * 60.0  # an interaction token lives 15 minutes: replay only what can still be answered


def t(key: str) -> app_commands.locale_str:
    """A command's name or description, translated by :class:`CatalogueTranslator` for each Discord locale."""
    return app_commands.locale_str(texts.MESSAGES[key], key=key)


class CatalogueTranslator(app_commands.Translator):
    """Command descriptions (and the menu's name) from the shared catalogue, for every language it has."""

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        key = string.extras.get("key")
        lang = texts.language(str(locale))
        if key is None or lang == texts.DEFAULT_LANGUAGE:
            return None
        translated = texts.text(key, lang)
        return translated if translated != string.message else None


@dataclass(frozen=True, slots=True)
class Attachment:
    url: str
    filename: str
    size: int


@dataclass(frozen=True, slots=True)
class Request:
    """An acknowledged photo interaction, in the durable form the inbox keeps."""

    interaction_id: str
    application_id: str
    token: str
    created_at: float
    channel_id: str | None
    user_id: str
    language: str | None
    attachments: tuple[Attachment, ...]
    target: str | None = None  # the message of "Detect objects", which the result replies to

    @classmethod
    def load(cls, data: dict[str, Any]) -> Request:
        return cls(**{**data, "attachments": tuple(Attachment(**a) for a in data["attachments"])})

    def origin(self) -> DiscordOrigin:
        return DiscordOrigin(
            application_id=self.application_id,
            interaction_token=self.token,
            interaction_created_at=self.created_at,
            channel_id=self.channel_id,
            message_id=self.target,
            user_id=self.user_id,
            language=self.language,
        )


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"(?!)"):
    """A button whose custom id names its job (``<action>:<job id>``), so it works after a restart too; each kind
    names its template and its custom id, and answers the press."""

    action: ClassVar[str]  # the custom id's prefix: "cancel:", "objects:"

    def __init__(self, job_id: str, label: str = "") -> None:
        button = discord.ui.Button[Any](label=label or None, style=discord.ButtonStyle.secondary,
                                        custom_id=self.action + job_id)  # fmt: skip
        super().__init__(button)
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["job"])


class CancelButton(JobButton, template=r"cancel:(?P<job>[0-9a-f]{32})"):
    """The Cancel button under "queued"."""

    action = CANCEL_ACTION

    async def callback(self, interaction: Interaction) -> None:
        services: BotServices = interaction.client.services
        lang = str(interaction.locale)
        text = await services.detect.cancel([self.job_id], lang, user_id=interaction.user.id)
        await interaction.response.send_message(text, ephemeral=True)


class ObjectsButton(JobButton, template=r"objects:(?P<job>[0-9a-f]{32})"):
    """The "Objects" button the gateway puts under a result: the photo's objects cut out, shown to the presser
    (in a guild only the photo's sender or a member who may manage the channel; the gateway checks the sender)."""

    action = OBJECTS_ACTION

    async def callback(self, interaction: Interaction) -> None:
        services: BotServices = interaction.client.services
        lang = await services.chats.language(scope_of(interaction), str(interaction.locale))
        await interaction.response.defer(thinking=True, ephemeral=True)  # cutting takes a moment
        admin = interaction.guild_id is not None and may_change(interaction)
        found = await services.detect.objects(self.job_id, lang, user_id=None if admin else str(interaction.user.id))
        if not found.crops:
            await interaction.followup.send(found.text, ephemeral=True)
            return
        lines = [f"{n}. {text}" for n, (_, text) in enumerate(found.crops, start=1)]
        files = [discord.File(io.BytesIO(image), filename=f"object-{n:02d}.jpg")
                 for n, (image, _) in enumerate(found.crops, start=1)]  # fmt: skip
        await interaction.followup.send("\n".join([found.text, *lines]), files=files, ephemeral=True)


class RerunPick(discord.ui.DynamicItem[discord.ui.Select[Any]], template=r"rerun-pick:(?P<n>[0-9])"):
    """A /history menu: pick a photo and how it runs again (one menu per 25 choices, Discord's most). The choice
    is a new job on the stored photo; this interaction's answer becomes its status message."""

    def __init__(self, n: int, options: list[discord.SelectOption] | None = None, placeholder: str | None = None):
        super().__init__(
            discord.ui.Select(
                custom_id=f"rerun-pick:{n}",
                options=options or [discord.SelectOption(label="-")],
                placeholder=placeholder,
            )
        )
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> RerunPick:
        return cls(int(match["n"]))

    async def callback(self, interaction: Interaction) -> None:
        services: BotServices = interaction.client.services
        values = self.item.values  # the choice, as discord.py read it from the interaction
        action = parse_rerun_action(str(values[0])) if values else None
        if action is None:
            await interaction.response.defer()
            return
        mode, job_id = action
        lang = await services.chats.language(scope_of(interaction), str(interaction.locale))
        if not await _defer(interaction):  # the "thinking…" answer becomes the re-run's status message
            return
        origin = DiscordOrigin(
            application_id=str(interaction.application_id), interaction_token=interaction.token,
            interaction_created_at=interaction.created_at.timestamp(), channel_id=str(interaction.channel_id),
            user_id=str(interaction.user.id), language=lang,
        )  # fmt: skip
        reply = await services.detect.rerun(job_id, mode, origin, lang, idempotency_key=f"discord:{interaction.id}")
        view = _cancel_view(reply)
        if view is None:
            await interaction.edit_original_response(content=reply.text)
        else:
            await interaction.edit_original_response(content=reply.text, view=view)
        if reply.job_ids and not reply.silent:
            await services.detect.status_posted(reply.job_ids, ORIGINAL)


class DetectCommands:
    """``/detect``, the "Detect objects" message menu, ``/settings``, ``/help`` and the tree's one error handler."""

    def __init__(self, settings: DiscordSettings, services: BotServices, http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.services = services
        self._http = http
        self.inbox = Inbox(settings.data_dir / "discord-inbox", max_age_s=TOKEN_LIFE_S)
        self._in_hand: set[str] = set()  # interactions this process is working on (a repeat is left alone)

    def register(self, tree: Tree) -> None:
        tree.add_command(app_commands.Command(name="detect", description=t("cmd_detect_discord"), callback=self.detect))
        tree.add_command(app_commands.ContextMenu(name=t("cmd_detect_menu"), callback=self.detect_message))
        tree.add_command(app_commands.Command(name="help", description=t("cmd_help"), callback=self.help))
        tree.add_command(
            app_commands.Command(name="settings", description=t("cmd_settings"), callback=self.settings_command)
        )
        tree.add_command(app_commands.Command(name="privacy", description=t("cmd_privacy"), callback=self.privacy))
        tree.add_command(app_commands.Command(name="history", description=t("cmd_history"), callback=self.history))
        tree.error(self.on_error)

    @app_commands.describe(image=t("cmd_detect_image"))
    async def detect(self, interaction: Interaction, image: discord.Attachment) -> None:
        """/detect image:<photo> — find the objects in the attached photo."""
        await self._queue(interaction, [image], target=None)

    async def detect_message(self, interaction: Interaction, message: discord.Message) -> None:
        """Apps → Detect objects on a message: its photos, in order, answered together."""
        await self._queue(interaction, message.attachments, target=message.id)

    async def help(self, interaction: Interaction) -> None:
        """/help: what the bot does, in three lines, shown only to the asker."""
        lang = await self._lang(interaction)
        await interaction.response.send_message(texts.text("discord_help", lang), ephemeral=True)

    @app_commands.describe(
        conf=t("cmd_settings_conf"),
        classes=t("cmd_settings_classes"),
        output=t("cmd_settings_output"),
        language=t("cmd_settings_language"),
    )
    @app_commands.choices(
        output=[app_commands.Choice(name=name, value=name) for name in chat_settings.OUTPUTS],
        language=[app_commands.Choice(name=lang, value=lang) for lang in texts.languages()],
    )
    async def settings_command(
        self,
        interaction: Interaction,
        conf: app_commands.Range[int, 5, 95] | None = None,
        classes: str | None = None,
        output: str | None = None,
        language: str | None = None,
    ) -> None:
        """/settings [conf] [classes] [output] [language]: show or change the settings that apply here (a
        channel's: only members who may manage the server or the channel change them; in a DM, your own)."""
        scope = scope_of(interaction)
        lang = await self._lang(interaction)
        try:
            changes = chat_settings.parse_options(
                conf=conf, classes=classes, output=output, language=language, lang=lang
            )
        except chat_settings.SettingsError as exc:
            await interaction.response.send_message(exc.text(lang), ephemeral=True)
            return
        chats = self.services.chats
        if changes and not may_change(interaction):
            found = await chats.get(scope)
            text = "\n".join([texts.text("settings_admins_only", lang), chat_settings.describe(found, lang)])
            await interaction.response.send_message(text, ephemeral=True)
            return
        found = await (chats.update(scope, changes) if changes else chats.get(scope))
        lang = await self._lang(interaction)
        await interaction.response.send_message(chat_settings.describe(found, lang, own=scope.private), ephemeral=True)

    async def history(self, interaction: Interaction) -> None:
        """/history: your last photos in this channel, shown only to you, with menus to run one again."""
        lang = await self._lang(interaction)
        found = await self.services.detect.history(
            "discord", str(interaction.user.id), str(interaction.channel_id), lang
        )
        if isinstance(found, str):
            await interaction.response.send_message(found, ephemeral=True)
            return
        choices = [discord.SelectOption(label=label[:100], value=rerun_action(mode, entry.job_id))
                   for entry in found.entries for mode, label in entry.reruns.items()]  # fmt: skip
        view = discord.ui.View(timeout=None)
        for n, start in enumerate(range(0, len(choices), 25)):
            view.add_item(RerunPick(n, choices[start : start + 25], texts.text("rerun_pick", lang)))
        if choices:
            await interaction.response.send_message(found.text, view=view, ephemeral=True)
        else:
            await interaction.response.send_message(found.text, ephemeral=True)

    async def privacy(self, interaction: Interaction) -> None:
        """/privacy: what is kept about you, and for how long, shown only to the asker."""
        lang = await self._lang(interaction)
        await interaction.response.send_message(await self.services.admin.privacy(lang), ephemeral=True)

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError) -> None:
        """One error handler for every command: log it, and say what happened where the interaction lets us."""
        name = interaction.command.name if interaction.command else "?"
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        lang = str(interaction.locale)
        if isinstance(cause, GatewayRefused):
            sorry = texts.for_error(cause.code, lang, retry_after=cause.retry_after, limit=cause.limit)
        else:
            sorry = texts.text("unavailable", lang)
        if isinstance(cause, GatewayClientError):
            log.warning("command %s (interaction %s) failed: %s", name, interaction.id, cause)
        else:
            log.error("command %s (interaction %s) failed: %r", name, interaction.id, cause, exc_info=cause)
        try:
            if interaction.response.is_done():
                await interaction.edit_original_response(content=sorry)
            else:
                await interaction.response.send_message(sorry, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not tell interaction %s about the error: %s %s", interaction.id, exc.status, exc.code)

    async def replay(self) -> None:
        """Finish what a previous run acknowledged but had not handed to the gateway."""
        for key, payload in self.inbox.pending():
            log.info("finishing interaction %s from before the restart", key)
            try:
                await self._work(Request.load(payload))
            except Exception:
                log.exception("interaction %s could not be finished", key)
            finally:
                self.inbox.done(key)

    async def _queue(
        self, interaction: Interaction, attachments: Sequence[discord.Attachment], *, target: int | None
    ) -> None:
        """Keep the request in the inbox, defer, then download, submit and show "queued".

        Discord never sends an interaction again, so it is in the inbox before Discord hears of it (a bot killed
        after the defer would otherwise leave "thinking…" for good); what can wait (the chat's language comes
        from the gateway) runs only after that.
        """
        photos = [a for a in attachments if _is_image(a)][:MAX_IMAGES]
        fitting = [a for a in photos if self.services.detect.too_big(a.size, None) is None]
        request = Request(
            interaction_id=str(interaction.id),
            application_id=str(interaction.application_id),
            token=interaction.token,
            created_at=interaction.created_at.timestamp(),
            channel_id=str(interaction.channel_id) if interaction.channel_id else None,
            user_id=str(interaction.user.id),
            language=texts.language(str(interaction.locale)),  # until the chat's own setting is known
            attachments=tuple(Attachment(a.url, a.filename, a.size) for a in fitting),
            target=str(target) if target else None,
        )
        first = request.interaction_id not in self._in_hand  # a repeat must not touch the first copy's entry
        if first:
            self._in_hand.add(request.interaction_id)
            if fitting:
                self.inbox.put(request.interaction_id, asdict(request))
        try:
            if not await _defer(interaction):
                return
            lang = await self._lang(interaction)
            refusals = [refusal for a in photos if (refusal := self.services.detect.too_big(a.size, lang))]
            if not fitting:
                await interaction.edit_original_response(content=refusals[0] if refusals else _hint(lang))
                return
            await self._work(replace(request, language=lang), refusals, interaction)
        finally:
            if first:
                self._in_hand.discard(request.interaction_id)
                self.inbox.done(request.interaction_id)

    async def _work(
        self, request: Request, refusals: Sequence[str] = (), interaction: Interaction | None = None
    ) -> None:
        """The durable part: "queuing…", download, submit (waiting out an outage), "queued", name it."""
        lang = request.language
        original = _Original(request, self._http, interaction)
        await original.edit(texts.text("received", lang))  # see the module docstring
        key = f"discord:{request.interaction_id}"
        photos = [
            Photo(
                data=await self._download(attachment),
                filename=attachment.filename,
                idempotency_key=key if len(request.attachments) == 1 else f"{key}:{index}",
                message_id=request.target,
            )
            for index, attachment in enumerate(request.attachments)
        ]

        async def waiting(text: str) -> None:
            await original.edit(text)

        reply = await self.services.detect.submit(request.origin(), photos, group_key=key, on_waiting=waiting)
        self.services.metrics.photos.labels(outcome="queued" if reply.job_ids else "refused").inc(len(photos))
        if reply.silent:
            return
        await original.edit("\n".join([reply.text, *refusals]), view=_cancel_view(reply))
        if reply.job_ids:
            await self.services.detect.status_posted(reply.job_ids, ORIGINAL)

    async def _download(self, attachment: Attachment) -> bytes:
        async with self._http.get(attachment.url) as response:
            response.raise_for_status()
            return await response.read()

    async def _lang(self, interaction: Interaction) -> str | None:
        return await self.services.chats.language(scope_of(interaction), str(interaction.locale))


def scope_of(interaction: Interaction) -> chat_settings.Scope:
    """Where a command was run: a DM is private (/settings there are the person's own), a guild channel is not."""
    return chat_settings.Scope(
        "discord", str(interaction.channel_id), str(interaction.user.id), private=interaction.guild_id is None
    )


def may_change(interaction: Interaction) -> bool:
    """Whether this member may change a channel's settings: in a DM always; in a guild, with Manage Server or
    Manage Channels (Discord resolves the member's permissions in the channel for us)."""
    if interaction.guild_id is None:
        return True
    permissions = interaction.permissions
    return permissions.administrator or permissions.manage_guild or permissions.manage_channels


class _Original:
    """The interaction's deferred message: edited through the live interaction, or (after a restart, when there
    is no interaction object any more) through its webhook token, which cannot carry buttons."""

    def __init__(self, request: Request, http: aiohttp.ClientSession, interaction: Interaction | None) -> None:
        self._interaction = interaction
        self._webhook = discord.Webhook.partial(int(request.application_id), request.token, session=http)

    async def edit(self, content: str, *, view: discord.ui.View | None = None) -> None:
        if self._interaction is not None:
            if view is None:
                await self._interaction.edit_original_response(content=content)
            else:
                await self._interaction.edit_original_response(content=content, view=view)
            return
        message_id: Any = ORIGINAL  # "@original": discord.py puts it into the URL as it is
        await self._webhook.edit_message(message_id, content=content)


async def _defer(interaction: Interaction) -> bool:
    """Acknowledge within Discord's 3 s; False when this interaction is a repeat or came too late."""
    try:
        await interaction.response.defer(thinking=True)
    except discord.HTTPException as exc:
        if exc.code == ALREADY_ACKNOWLEDGED:
            log.info("interaction %s arrived twice; the first copy is being handled", interaction.id)
            return False
        if exc.code == UNKNOWN_INTERACTION:
            log.warning("interaction %s expired before we could answer it (3 s)", interaction.id)
            return False
        raise
    return True


def _cancel_view(reply: Reply) -> discord.ui.View | None:
    if not reply.waiting:
        return None
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(reply.waiting[0], texts.text("cancel_button", reply.language)))
    return view


def _is_image(attachment: discord.Attachment) -> bool:
    return (attachment.content_type or "").split(";")[0].strip().lower() in IMAGE_TYPES


def _hint(lang: str | None) -> str:
    return texts.text("discord_hint", lang)
