"""The bots' platform-neutral logic, with a double of our own gateway client: what a person is told after
sending photos, /settings parsing, whose settings a chat shows, and the language a chat speaks."""

from __future__ import annotations

from typing import Any

import pytest

from bots.shared import chat_settings
from bots.shared.chat_settings import ChatSettingsService, Scope, SettingsError
from bots.shared.detect import DetectService
from bots.shared.settings import BotSettings
from queue_gateway.public import texts
from queue_gateway.public.contract import ChatSettingsBody, SubmitResponse


class FakeClient:
    """The gateway client (ours) as the settings service uses it: settings by path, and calls counted."""

    def __init__(self, stored: dict[str, dict[str, Any]]) -> None:
        self.stored = stored
        self.reads: list[str] = []

    async def settings(self, path: str) -> ChatSettingsBody:
        self.reads.append(path)
        return ChatSettingsBody.model_validate(self.stored.get(path, {}))

    async def change_settings(self, path: str, changes: dict[str, Any]) -> ChatSettingsBody:
        self.stored[path] = {**self.stored.get(path, {}), **changes}
        return ChatSettingsBody.model_validate(self.stored[path])


def service() -> DetectService:
    return DetectService(None, BotSettings())  # type: ignore[arg-type]  # _reply never calls the gateway


def accepted(job_id: str, position: int, eta_s: float | None, status: str = "queued", **more: object) -> SubmitResponse:
    return SubmitResponse(job_id=job_id, status=status, position=position, eta_s=eta_s, status_url="s",
                          result_url="r", **more)  # type: ignore[arg-type]  # fmt: skip


def test_the_reply_to_photos_says_their_place_or_why_not() -> None:
    one = service()._reply([accepted("j1", 3, 4.0)], [], "ru")
    assert one.text == texts.queued_text(3, 4.0, "ru") and one.waiting == ("j1",) and one.job_ids == ("j1",)
    album = service()._reply([accepted("a", 2, 3.0), accepted("b", 3, 5.0)], [], None)
    assert album.text == texts.queued_text(2, 5.0, None, count=2)
    now = service()._reply([accepted("j", 0, 0.0, "processing")], [], None)
    assert now.text == texts.text("queued_now") and now.waiting == ()
    repeat = service()._reply([accepted("j", 1, 1.0, duplicate=True)], [], None)
    assert repeat.silent  # the platform sent the same update again: say nothing twice
    refused = service()._reply([], [texts.for_error("too_complex")], None)
    assert refused.text == texts.for_error("too_complex") and refused.job_ids == ()


def test_with_no_worker_running_the_reply_says_so_and_makes_up_no_estimate() -> None:
    alone = service()._reply([accepted("j", 4, None, waiting_for_worker=True)], [], "ru")
    assert alone.text == texts.text("no_worker", "ru") and alone.waiting == ("j",)
    album = service()._reply([accepted("a", 1, None, waiting_for_worker=True), accepted("b", 2, None)], [], None)
    assert album.text == texts.text("no_worker") and "about" not in album.text


def test_too_big_names_the_size_and_the_limit() -> None:
    assert service().too_big(30 * 1024 * 1024, "ru") == texts.text("too_big", "ru", size_mb=30, limit_mb=20)
    assert service().too_big(1024, None) is None and service().too_big(None, None) is None


@pytest.mark.parametrize(
    ("words", "changes"),
    [
        (["conf", "60"], {"conf": 0.6}),
        (["conf", "0.3"], {"conf": 0.3}),
        (["classes", "person,", "car"], {"classes": ["person", "car"]}),
        (["classes", "all"], {"classes": None}),
        (["output", "document"], {"output": "document"}),
        (["language", "ru-RU"], {"language": "ru"}),
        (["reset"], {"conf": None, "classes": None, "output": None, "language": None}),
        ([], {}),
    ],
)
def test_settings_words_become_changes(words: list[str], changes: dict[str, Any]) -> None:
    assert chat_settings.parse_words(words) == changes


@pytest.mark.parametrize(
    ("words", "kind"),
    [(["conf", "99"], "conf"), (["conf", "lots"], "conf"), (["classes", "unicorn"], "classes"),
     (["output", "fax"], "output"), (["colour", "red"], "field")],
)  # fmt: skip
def test_settings_that_cannot_be_used_say_which(words: list[str], kind: str) -> None:
    with pytest.raises(SettingsError) as refused:
        chat_settings.parse_words(words, "ru")
    assert refused.value.kind == kind and refused.value.text("ru")


def test_object_names_in_the_persons_language_are_understood() -> None:
    assert chat_settings.parse_words(["classes", texts.label("dog", "ru")], "ru") == {"classes": ["dog"]}


def test_a_private_chat_shows_the_persons_own_settings_and_a_group_its_own() -> None:
    private = Scope("telegram", "42", "42", private=True)
    group = Scope("telegram", "-100", "42", private=False)
    stand_in = Scope("telegram", "-100", "-100", private=False)  # the group's anonymous admins
    assert private.path == "/v1/people/telegram/42/settings"
    assert group.path == "/v1/chats/telegram/-100/settings" and group.person_path == "/v1/people/telegram/42/settings"
    assert stand_in.person_path == "/v1/people/telegram/-100/settings"  # their own, not any one person's


async def test_the_language_is_the_persons_then_the_chats_then_the_platforms() -> None:
    client = FakeClient({"/v1/chats/telegram/-100/settings": {"language": "ru"}})
    chats = ChatSettingsService(client)  # type: ignore[arg-type]
    group = Scope("telegram", "-100", "7", private=False)
    assert await chats.language(group, "en") == "ru"  # the chat chose Russian; the person chose nothing
    client.stored["/v1/people/telegram/7/settings"] = {"language": "en"}
    chats.forget_cached(group)
    assert await chats.language(group, "ru") == "en"  # the person's own choice wins
    reads = len(client.reads)
    assert await chats.language(group, "ru") == "en" and len(client.reads) == reads  # cached
    assert await chats.language(Scope("telegram", "5", "5", private=True), "ru") == "ru"
