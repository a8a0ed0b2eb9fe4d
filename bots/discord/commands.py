"""Discord commands: translate interactions to ``DetectService`` calls and its answers back. No logic of their own.

Each command defers at once (Discord wants an answer within 3 s), so the person sees "thinking…" while the photo
is downloaded and queued. The deferred message is first filled with "Got it — queuing…" and only then is the photo
submitted: the first follow-up after a defer would *fill* the thinking message, so a result that came back before
our "queued" edit would otherwise be overwritten by it. The gateway delivers the result as a follow-up and edits
our message (``@original``) to "Done in 1.4 s" once we have named it with ``status_posted``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import discord
from discord import app_commands

from bots.discord.settings import DiscordSettings
from bots.shared.service import DetectService, Photo
from bots.shared.services import BotServices
from queue_gateway import texts
from queue_gateway.contract import Origin

log = logging.getLogger(__name__)

Interaction = discord.Interaction[Any]
Tree = app_commands.CommandTree[Any]

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
MAX_IMAGES = 10  # one delivery group holds at most ten photos (and a Discord message at most ten files)
ORIGINAL = "@original"  # the interaction's deferred response, as the webhook API names it
ALREADY_ACKNOWLEDGED = 40060  # a second callback for the same interaction: Discord sent the event twice
UNKNOWN_INTERACTION = 10062  # our callback came after the 3 s deadline


class CommandSet(Protocol):
    """Something that adds commands to the tree; the bot binds the shared services before it registers."""

    def bind(self, services: BotServices) -> None: ...

    def register(self, tree: Tree) -> None: ...


class DetectCommands:
    """``/detect``, the "Detect objects" message menu, ``/help`` and the tree's one error handler."""

    def __init__(self, settings: DiscordSettings) -> None:
        self.settings = settings
        self.service: DetectService | None = None  # set when the bot starts (it owns the HTTP session)

    def bind(self, services: BotServices) -> None:
        self.service = services.detect

    def register(self, tree: Tree) -> None:
        tree.add_command(
            app_commands.Command(name="detect", description="Find the objects in a photo", callback=self.detect)
        )
        tree.add_command(app_commands.ContextMenu(name="Detect objects", callback=self.detect_message))
        tree.add_command(app_commands.Command(name="help", description="What this bot does", callback=self.help))
        tree.error(self.on_error)

    @property
    def _service(self) -> DetectService:
        assert self.service is not None, "the bot has not started"
        return self.service

    @app_commands.describe(image="A photo: JPEG, PNG or WebP")
    async def detect(self, interaction: Interaction, image: discord.Attachment) -> None:
        """/detect image:<photo> — find the objects in the attached photo."""
        await self._queue(interaction, [image], target=None)

    async def detect_message(self, interaction: Interaction, message: discord.Message) -> None:
        """Apps → Detect objects on a message: its photos, in order, answered together."""
        await self._queue(interaction, message.attachments, target=message.id)

    async def help(self, interaction: Interaction) -> None:
        """/help: what the bot does, in two lines, shown only to the asker."""
        await interaction.response.send_message(texts.text("discord_help", _lang(interaction)), ephemeral=True)

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError) -> None:
        """One error handler for every command: log it, and say sorry where the interaction still lets us."""
        name = interaction.command.name if interaction.command else "?"
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        log.error("command %s (interaction %s) failed: %r", name, interaction.id, cause, exc_info=cause)
        sorry = texts.text("unavailable", _lang(interaction))
        try:
            if interaction.response.is_done():
                await interaction.edit_original_response(content=sorry)
            else:
                await interaction.response.send_message(sorry, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not tell interaction %s about the error: %s %s", interaction.id, exc.status, exc.code)

    async def _queue(
        self, interaction: Interaction, attachments: Sequence[discord.Attachment], *, target: int | None
    ) -> None:
        """Defer, check, download, submit; show "queued" and name that message to the gateway."""
        if not await _defer(interaction):
            return
        lang = _lang(interaction)
        checked = [(a, self._service.too_big(a.size, lang)) for a in attachments if _is_image(a)][:MAX_IMAGES]
        refusals = [refusal for _, refusal in checked if refusal]
        images = [a for a, refusal in checked if not refusal]
        if not images:
            await interaction.edit_original_response(content=refusals[0] if refusals else _hint(lang))
            return
        await interaction.edit_original_response(content=texts.text("received", lang))  # see the module docstring
        key = f"discord:{interaction.id}"
        photos = [
            Photo(
                data=await attachment.read(),
                filename=attachment.filename,
                idempotency_key=key if len(images) == 1 else f"{key}:{index}",
                message_id=str(target) if target else None,
            )
            for index, attachment in enumerate(images)
        ]
        reply = await self._service.submit(_origin(interaction, target), photos, group_key=key)
        if reply.silent:
            return
        await interaction.edit_original_response(content="\n".join([reply.text, *refusals]))
        if reply.job_ids:
            await self._service.status_posted(reply.job_ids, ORIGINAL)


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


def _origin(interaction: Interaction, target: int | None) -> Origin:
    return Origin(
        platform="discord",
        application_id=str(interaction.application_id),
        interaction_token=interaction.token,
        interaction_created_at=interaction.created_at.timestamp(),
        channel_id=str(interaction.channel_id) if interaction.channel_id else None,
        message_id=str(target) if target else None,
        user_id=str(interaction.user.id),
        language=_lang(interaction),
    )


def _is_image(attachment: discord.Attachment) -> bool:
    return (attachment.content_type or "").split(";")[0].strip().lower() in IMAGE_TYPES


def _hint(lang: str | None) -> str:
    return texts.text("discord_hint", lang)


def _lang(interaction: Interaction) -> str:
    return str(interaction.locale)
