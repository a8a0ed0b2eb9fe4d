"""Discord admin commands: /stats, /dlq (with a requeue option) and, for everyone, /forget.

/stats and /dlq are hidden from members without "Manage Server" by default, and answer only the user ids in
DETECTBOT_ADMIN_IDS; anyone else gets the same short "unknown command" reply, shown only to them.
"""

from __future__ import annotations

import io
from typing import Any

import discord
from discord import app_commands

from bots.discord.commands import scope_of, t
from bots.shared.services import BotServices
from queue_gateway.public import texts

Interaction = discord.Interaction[Any]
Tree = app_commands.CommandTree[Any]


class AdminCommands:
    def __init__(self, services: BotServices) -> None:
        self.admin = services.admin
        self.chats = services.chats

    def register(self, tree: Tree) -> None:
        manage = discord.Permissions(manage_guild=True)
        stats: app_commands.Command[Any, ..., None] = app_commands.Command(
            name="stats", description=t("cmd_stats"), callback=self.stats
        )
        dlq: app_commands.Command[Any, ..., None] = app_commands.Command(
            name="dlq", description=t("cmd_dlq"), callback=self.dlq
        )
        for command in (stats, dlq):
            command.default_permissions = manage
            tree.add_command(command)
        tree.add_command(app_commands.Command(name="forget", description=t("cmd_forget"), callback=self.forget))

    async def stats(self, interaction: Interaction) -> None:
        """/stats (admins): counts, latency, queue and workers as text, with a chart."""
        if not await self._allowed(interaction):
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        reply = await self.admin.stats(await self._lang(interaction))
        files = [discord.File(io.BytesIO(reply.chart), filename="stats.png")] if reply.chart else []
        await interaction.followup.send(reply.text, files=files, ephemeral=True)

    @app_commands.describe(requeue=t("cmd_dlq_requeue"))
    async def dlq(self, interaction: Interaction, requeue: str | None = None) -> None:
        """/dlq [requeue:<job>] (admins): list dead jobs, or give one another go."""
        if not await self._allowed(interaction):
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        lang = await self._lang(interaction)
        dead = await self.admin.dead_jobs(lang, limit=20)
        if requeue:
            matches = [job for job in dead.job_ids if job.startswith(requeue.strip().lower())]
            found = len(matches) == 1
            text = await self.admin.requeue(matches[0], lang) if found else texts.text("dlq_pick", lang)
            await interaction.followup.send(text, ephemeral=True)
            return
        await interaction.followup.send(dead.text, ephemeral=True)

    async def forget(self, interaction: Interaction) -> None:
        """/forget: delete this person's photos and results now."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        text = await self.admin.forget("discord", interaction.user.id, await self._lang(interaction))
        self.chats.forget_cached(scope_of(interaction))
        await interaction.followup.send(text, ephemeral=True)

    async def _allowed(self, interaction: Interaction) -> bool:
        if self.admin.is_admin(interaction.user.id):
            return True
        lang = await self._lang(interaction)
        await interaction.response.send_message(texts.text("not_allowed", lang), ephemeral=True)
        return False

    async def _lang(self, interaction: Interaction) -> str | None:
        return await self.chats.language(scope_of(interaction), str(interaction.locale))
