"""Per-chat settings chosen with /settings: confidence, classes, output, language."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from db.common import now, rowcount
from db.models import ChatSettings

FIELDS = ("conf", "classes", "output", "language")
PERSON = "user:"  # a person's own settings are kept as the "chat" ``user:<id>`` of their platform


def person_scope(user_id: str) -> str:
    """The key of a person's own settings, which apply to their photos in every chat."""
    return f"{PERSON}{user_id}"


async def get_settings(session: AsyncSession, platform: str, chat_id: str) -> dict[str, Any]:
    """The chat's choices; a field it never set is absent."""
    row = await session.get(ChatSettings, (platform, chat_id))
    if row is None:
        return {}
    return {name: getattr(row, name) for name in FIELDS if getattr(row, name) is not None}


async def update_settings(
    session: AsyncSession, platform: str, chat_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Apply ``changes`` (a ``None`` value resets that field to the default); return the chat's settings."""
    row = await session.get(ChatSettings, (platform, chat_id))
    if row is None:
        row = ChatSettings(platform=platform, chat_id=chat_id, updated_at=now())
        session.add(row)
    for name, value in changes.items():
        if name in FIELDS:
            setattr(row, name, value)
    row.updated_at = now()
    await session.flush()
    return {name: getattr(row, name) for name in FIELDS if getattr(row, name) is not None}


async def forget_settings(session: AsyncSession, platform: str, keys: list[str]) -> int:
    """Delete these settings rows (a person's own, their private chat's); return how many went."""
    rows = await session.execute(
        delete(ChatSettings).where(ChatSettings.platform == platform, ChatSettings.chat_id.in_(keys))
    )
    return rowcount(rows)


# intake reads it for every batch: built once, the chats as a parameter (as in db.transitions)
# (the table's columns, not the ORM entity: no objects to build for a read that changes nothing)
_TABLE: Table = ChatSettings.__table__  # type: ignore[assignment]
_SETTINGS_OF = select(_TABLE.c.platform, _TABLE.c.chat_id, *(_TABLE.c[name] for name in FIELDS)).where(
    tuple_(_TABLE.c.platform, _TABLE.c.chat_id).in_(bindparam("p_chats", expanding=True))
)


async def settings_of(session: AsyncSession, chats: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The settings of several chats at once (a chat that chose nothing is absent)."""
    if not chats:
        return {}
    rows = await session.execute(_SETTINGS_OF, {"p_chats": list(chats)})
    return {
        (platform, chat_id): {name: value for name, value in zip(FIELDS, chosen, strict=True) if value is not None}
        for platform, chat_id, *chosen in rows
    }
