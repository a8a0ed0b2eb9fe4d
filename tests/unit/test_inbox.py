"""The bots' durable inbox: what a bot acknowledged but had not handed over survives the bot's death."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bots.shared.inbox import Inbox


def test_entries_survive_until_done_and_come_back_oldest_first(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox", max_age_s=60)
    inbox.put("1001", {"photo": "a"})
    inbox.put("1002", {"photo": "b"})
    again = Inbox(tmp_path / "inbox", max_age_s=60)  # a new process after a crash
    assert again.pending() == [("1001", {"photo": "a"}), ("1002", {"photo": "b"})]
    again.done("1001")
    assert [key for key, _ in again.pending()] == ["1002"]
    assert not list((tmp_path / "inbox").glob("*.tmp"))


def test_too_old_and_unreadable_entries_are_dropped(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path, max_age_s=60)
    (tmp_path / "old.json").write_text(json.dumps({"at": time.time() - 3600, "payload": {}}))
    (tmp_path / "broken.json").write_text("{not json")
    inbox.put("fresh", {"ok": True})
    assert inbox.pending() == [("fresh", {"ok": True})]
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["fresh.json"]


def test_keys_cannot_escape_the_folder(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path, max_age_s=60)
    for key in ("../evil", "a/b", "", "x" * 500):
        with pytest.raises(ValueError):
            inbox.put(key, {})
