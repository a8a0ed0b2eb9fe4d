"""Whatever arrives, the gateway's parsers answer with a clear refusal, never an exception of their own.

Property tests (hypothesis) of the image checks, the JPEG completeness check, the signed links and the multipart
reader (through a real aiohttp server): every input is accepted or refused with the gateway's own 4xx.
"""

from __future__ import annotations

import io
import time

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from queue_gateway.errors import BadImage, error_middleware
from queue_gateway.images import validate
from queue_gateway.public.imagecheck import ImageProblem, inspect
from queue_gateway.signing import Action, SignatureError, SignatureExpired, Signer
from queue_gateway.uploads import read_form


def photo(kind: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, kind)
    return buffer.getvalue()


JPEG, PNG, WEBP = photo("JPEG"), photo("PNG"), photo("WEBP")


def jpeg_complete(data: bytes) -> bool:
    """Whether the structure check finds the whole image (its end after the frame's scans)."""
    try:
        inspect(data, max_pixels=1 << 30)
    except ImageProblem as exc:
        assert exc.code == "corrupt", exc
        return False
    return True


@given(st.binary(max_size=4096))
@settings(max_examples=300)
def test_any_bytes_are_a_photo_or_a_clear_refusal(data: bytes) -> None:
    try:
        info = validate(data, max_bytes=2048, max_pixels=10_000)
    except BadImage as exc:
        assert exc.http_status in (400, 413, 415, 422) and exc.message.endswith(".")
    else:
        assert info.format in ("JPEG", "PNG", "WEBP")


@given(st.sampled_from([JPEG, PNG, WEBP]), st.integers(min_value=0), st.binary(max_size=64))
@settings(max_examples=300)
def test_damaged_photos_are_refused_or_left_to_the_worker(good: bytes, cut: int, noise: bytes) -> None:
    """Cut anywhere, or noise spliced in: a clear 4xx, or a photo whose header is sound (the worker decodes)."""
    damaged = good[: cut % len(good)] + noise
    try:
        validate(damaged, max_bytes=1 << 20, max_pixels=1 << 24)
    except BadImage as exc:
        assert exc.http_status in (400, 413, 415, 422)


@pytest.mark.parametrize("good", [JPEG, photo("JPEG", (640, 480))])
def test_a_cut_jpeg_is_incomplete_and_a_whole_one_complete(good: bytes) -> None:
    assert jpeg_complete(good)
    assert jpeg_complete(good + b"trailing bytes, as in motion photos")
    for cut in (len(good) // 2, len(good) - 2, len(good) - 1):
        assert not jpeg_complete(good[:cut])


def test_an_exif_thumbnail_does_not_make_a_cut_jpeg_complete() -> None:
    thumbnail = photo("JPEG", (16, 12))
    exif = Image.Exif()
    exif[0x010E] = "a photo"
    image = Image.new("RGB", (640, 480), (50, 60, 70))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes() + thumbnail)  # an APP1 segment that holds a whole JPEG
    whole = buffer.getvalue()
    assert jpeg_complete(whole)
    assert not jpeg_complete(whole[: len(whole) - 100])


SIGNER = Signer(b"unit-test-signing-secret-0123456789")


@given(st.text(max_size=40), st.one_of(st.none(), st.text(max_size=20)), st.one_of(st.none(), st.text(max_size=60)))
@settings(max_examples=300)
def test_any_link_is_verified_or_refused_with_a_signature_error(job_id: str, exp: str | None, sig: str | None) -> None:
    try:
        SIGNER.verify(Action.INPUT, job_id, exp, sig)
    except SignatureError:
        pass
    else:
        raise AssertionError("a made-up link was accepted")


def test_a_genuine_link_verifies_and_an_expired_one_says_so() -> None:
    expires = int(time.time()) + 60
    SIGNER.verify(Action.VIEW, "job1", str(expires), SIGNER.sign(Action.VIEW, "job1", expires))
    with pytest.raises(SignatureExpired):
        past = int(time.time()) - 1
        SIGNER.verify(Action.VIEW, "job1", str(past), SIGNER.sign(Action.VIEW, "job1", past))
    with pytest.raises(SignatureError):
        SIGNER.verify(Action.INPUT, "job1", str(expires), SIGNER.sign(Action.VIEW, "job1", expires))


async def _form(request: web.Request) -> web.Response:
    fields = await read_form(request, {"image": 4096, "params": 256})
    return web.json_response({name: len(value) for name, value in fields.items()})


header_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(
    boundary=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=0, max_size=20),
    part_headers=st.lists(st.tuples(header_text, header_text), max_size=3),
    body=st.binary(max_size=600),
    content_type=st.sampled_from(
        ["multipart/form-data; boundary={b}", "multipart/form-data", "multipart/mixed; boundary={b}"]
    ),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_any_multipart_body_gets_an_answer_below_500(
    boundary: str, part_headers: list[tuple[str, str]], body: bytes, content_type: str
) -> None:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/form", _form)
    lines = [f"--{boundary}".encode()]
    lines += [f"{name}: {value}".encode("utf-8", "replace") for name, value in part_headers]
    raw = b"\r\n".join([*lines, b"", body, f"--{boundary}--".encode(), b""])
    async with TestClient(TestServer(app)) as client:
        response = await client.post(
            "/form", data=raw, headers={"Content-Type": content_type.format(b=boundary or '""')}
        )
        assert response.status < 500, await response.text()
        if response.status >= 400:
            assert (await response.json())["error"] in ("bad_multipart", "too_large")


async def test_a_well_formed_form_is_read() -> None:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/form", _form)
    form = aiohttp.FormData()
    form.add_field("image", JPEG, filename="p.jpg")
    form.add_field("other", "ignored")
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/form", data=form)
        assert response.status == 200
        assert await response.json() == {"image": len(JPEG)}
