"""The "Objects" button under a result, on Telegram and on Discord: the photo's objects cut out of the stored
original, largest first, each captioned in the person's language; a group member who did not send the photo is
refused; once the photo is deleted (/forget, or retention), the button says so.
"""

from __future__ import annotations

import io

from PIL import Image

from queue_gateway.public import texts
from tests.chat import ChatDriver, StartChat
from tests.images import jpeg

STREET = "py:tests.detectors:street"  # four persons and a bus, the bus the largest
GROUP = 5


def sizes(images: tuple[bytes, ...]) -> list[tuple[int, int]]:
    return [Image.open(io.BytesIO(data)).size for data in images]


async def test_the_objects_button_brings_every_object_cut_out_largest_first(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat()
    await chat.start_worker(STREET)
    person = chat.person(1, language="ru")
    sent = await chat.send_photo(person, jpeg(640, 480))
    await chat.result(sent)
    assert [label for label, _ in chat.result_buttons(sent) if label.startswith(texts.text("objects_button", "ru"))]
    objects = await chat.press_objects(sent)
    assert len(objects.images) == 5, objects
    found = sizes(objects.images)
    areas = [w * h for w, h in found]
    assert areas == sorted(areas, reverse=True) and found[0][0] > 400  # the bus first, cut from the 640 px original
    captions = [line.split(". ", 1)[-1] for line in objects.text.splitlines() if "%" in line]  # Discord numbers them
    assert captions[0] == texts.text("crop_text", "ru", label=texts.label("bus", "ru"), confidence=0.88), captions
    assert sum(caption.startswith(texts.label("person", "ru")) for caption in captions) == 4, captions
    assert texts.ntext("objects_caption", 5, "ru") in objects.text


async def test_in_a_group_only_the_sender_or_an_admin_gets_the_objects(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat()
    await chat.start_worker(STREET)
    sender, stranger, admin = chat.member(1, GROUP), chat.member(2, GROUP), chat.member(3, GROUP, admin=True)
    sent = await chat.send_photo(sender, jpeg(640, 480))
    await chat.result(sent)
    refused = await chat.press_objects(sent, by=stranger)
    assert refused.text == texts.text("objects_not_yours") and not refused.images and refused.private
    assert len((await chat.press_objects(sent, by=admin)).images) == 5
    assert len((await chat.press_objects(sent)).images) == 5


async def test_after_forget_the_button_says_the_photo_is_gone(start_chat: StartChat) -> None:
    chat: ChatDriver = await start_chat()
    await chat.start_worker(STREET)
    person = chat.person(1)
    sent = await chat.send_photo(person, jpeg(640, 480))
    await chat.result(sent)
    await chat.command(person, "forget")
    gone = await chat.press_objects(sent)
    assert gone.text == texts.text("objects_gone") and not gone.images
