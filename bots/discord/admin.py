"""Discord admin commands: /stats, /dlq (with a requeue option) and, for everyone, /forget.

/stats and /dlq are hidden from members without "Manage Server" by default, and answer only the user ids in
DETECTBOT_ADMIN_IDS; anyone else gets the same short "unknown command" reply, shown only to them.
"""

from __future__ import annotations

import io
from typing import Any

import discord
from discord import app_commands

from bots.shared.admin import AdminService, format_dead
from bots.shared.services import BotServices
from queue_gateway import texts

Interaction = discord.Interaction[Any]
Tree = app_commands.CommandTree[Any]
Command = app_commands.Command[Any, ..., None]


class AdminCommands:
    def __init__(self) -> None:
        self.admin: AdminService | None = None

    def bind(self, services: BotServices) -> None:
        self.admin = services.admin

    def register(self, tree: Tree) -> None:
        manage = discord.Permissions(manage_guild=True)
        stats: app_commands.Command[Any, ..., None] = app_commands.Command(
            name="stats", description="Admins: the last 24 hours", callback=self.stats
        )
        dlq: app_commands.Command[Any, ..., None] = app_commands.Command(
            name="dlq", description="Admins: dead jobs, and requeue one", callback=self.dlq
        )
        for command in (stats, dlq):
            command.default_permissions = manage
            tree.add_command(command)
        tree.add_command(
            app_commands.Command(name="forget", description="Delete my photos and results now", callback=self.forget)
        )

    @property
    def _admin(self) -> AdminService:
        assert self.admin is not None, "the bot has not started"
        return self.admin

    async def stats(self, interaction: Interaction) -> None:
        """/stats (admins): counts, latency, queue and workers as text, with a chart."""
        if not await self._allowed(interaction):
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        reply = await self._admin.stats(str(interaction.locale))
        files = [discord.File(_buffer(reply.chart), filename="stats.png")] if reply.chart else []
        await interaction.followup.send(reply.text, files=files, ephemeral=True)

    @app_commands.describe(requeue="The id (or its first 8 characters) of a dead job to run again")
    async def dlq(self, interaction: Interaction, requeue: str | None = None) -> None:
        """/dlq [requeue:<job>] (admins): list dead jobs, or give one another go."""
        if not await self._allowed(interaction):
            return
        await interaction.response.defer(thinking=True, ephemeral=True)
        jobs = await self._admin.dead_jobs(limit=20)
        if isinstance(jobs, str):
            await interaction.followup.send(jobs, ephemeral=True)
            return
        if requeue:
            matches = [job for job in jobs if job.job_id.startswith(requeue.strip().lower())]
            text = await self._admin.requeue(matches[0].job_id) if len(matches) == 1 else texts.text("dlq_pick")
            await interaction.followup.send(text, ephemeral=True)
            return
        await interaction.followup.send(format_dead(jobs), ephemeral=True)

    async def forget(self, interaction: Interaction) -> None:
        """/forget: delete this person's photos and results now."""
        await interaction.response.defer(thinking=True, ephemeral=True)
        text = await self._admin.forget("discord", interaction.user.id, str(interaction.locale))
        await interaction.followup.send(text, ephemeral=True)

    async def _allowed(self, interaction: Interaction) -> bool:
        if self._admin.is_admin(interaction.user.id):
            return True
        await interaction.response.send_message(texts.text("not_allowed", str(interaction.locale)), ephemeral=True)
        return False


def _buffer(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
