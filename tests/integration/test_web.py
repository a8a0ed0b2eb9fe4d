"""The web page and the admin dashboard, in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright, against the real gateway, RabbitMQ and workers.

Screenshots are kept under ``$DETECTBOT_TEST_ARTIFACTS`` (default ``.detectbot-test-artifacts/``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from sqlalchemy import select

from db.models import Job
from detectbot.samples import sample_photos
from queue_gateway.public import texts
from tests import tools
from tests.conftest import eventually
from tests.conftest_models import cache_dir
from tests.images import jpeg, png, poison_png
from tests.services import ADMIN_KEY, CLIENT_KEY, WEBHOOK_SECRET, GatewayHandle, submit_photo, wait_finished

StartGateway = Callable[..., Awaitable[GatewayHandle]]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(
    os.environ.get("DETECTBOT_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / ".detectbot-test-artifacts"
)
SECONDS = 1000  # Playwright counts milliseconds
FIXED = "py:tests.detectors:fixed"


# --- the browser --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, installed once for the machine when missing (``tests.tools``)."""
    return tools.chromium()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Tab:
    """A page of the browser, with every request it made (to check none left the gateway)."""

    page: Page
    context: BrowserContext
    gateway: GatewayHandle
    name: str
    requests: list[str] = field(default_factory=list)
    responses: list[tuple[int, str]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    shots: int = 0

    async def shot(self, step: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        path = ARTIFACTS / f"{self.name}-{self.shots:02d}-{step}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    def outside(self) -> list[str]:
        """Requests that went anywhere but the gateway (blob: and data: URLs of the gateway's page are local)."""
        origin = self.gateway.url
        return [
            url
            for url in self.requests
            if not (url == origin or url.startswith((origin + "/", f"blob:{origin}/", "data:")))
        ]


OpenTab = Callable[..., Awaitable[Tab]]


@pytest.fixture
async def open_tab(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[OpenTab]:
    """Open a gateway's page in a fresh browser context (its own storage), recording what it asks for."""
    tabs: list[Tab] = []

    async def open_(gateway: GatewayHandle, path: str = "/", *, locale: str = "en-US", **options: Any) -> Tab:
        context = await browser.new_context(locale=locale, **options)
        context.set_default_timeout(20 * SECONDS)
        page = await context.new_page()
        tab = Tab(page, context, gateway, f"{request.node.name}-{len(tabs)}")
        page.on("request", lambda r: tab.requests.append(r.url))
        page.on("response", lambda r: tab.responses.append((r.status, r.url)))
        page.on("console", lambda m: tab.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: tab.console_errors.append(f"page error: {e}"))
        tabs.append(tab)
        await page.goto(gateway.url + path)
        return tab

    yield open_
    for tab in tabs:
        await tab.context.close()


def bus_jpg() -> dict[str, Any]:
    """ultralytics' bus.jpg (from the installed package, or its wheel, cached)."""
    bus = next(path for path in sample_photos(cache_dir()) if path.name == "bus.jpg")
    return {"name": "bus.jpg", "mimeType": "image/jpeg", "buffer": bus.read_bytes()}


def photo(name: str, data: bytes | None = None, mime: str = "image/jpeg") -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data if data is not None else jpeg(400, 300)}


async def drop_file(tab: Tab, file: dict[str, Any]) -> None:
    """Drag a file from the desktop and drop it on the page (a DataTransfer, as the browser makes one)."""
    await tab.page.evaluate(
        """([name, type, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], name, { type }));
            const zone = document.getElementById("drop");
            for (const kind of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(kind, { dataTransfer: data, bubbles: true, cancelable: true }));
            }
        }""",
        [file["name"], file["mimeType"], base64.b64encode(file["buffer"]).decode()],
    )


async def ready(tab: Tab, mode: str) -> None:
    """The page has its texts and knows who may upload (``body[data-ready]``)."""
    await expect(tab.page.locator("body")).to_have_attribute("data-ready", mode)


def item(tab: Tab, name: str) -> Any:
    return tab.page.locator("li.photo").filter(has=tab.page.locator("h3.name", has_text=name))


async def finished(tab: Tab, name: str, timeout_s: float = 20) -> Any:
    entry = item(tab, name)
    await expect(entry).to_have_attribute("data-state", "done", timeout=timeout_s * SECONDS)
    image = entry.locator("img.result")
    await expect(image).to_be_visible()
    await tab.page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await image.element_handle())
    return entry


async def job_of(gateway: GatewayHandle, job_id: str) -> Job:
    async with gateway.sessions() as session:
        job = (await session.execute(select(Job).where(Job.id == job_id))).scalar_one()
    return job


async def page_jobs(tab: Tab) -> list[str]:
    ids: list[str] = await tab.page.evaluate(
        "() => JSON.parse(sessionStorage.getItem('detectbot.history') || '[]').map(e => e.job_id)"
    )
    return ids


# --- the upload page ----------------------------------------------------------------------------------------


async def test_open_page_finds_people_on_the_bus(
    start_gateway: StartGateway,
    start_worker: Any,
    open_tab: OpenTab,
    offline_model_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    gateway = await start_gateway(web_uploads="open")
    await start_worker(gateway, model=str(offline_model_path))
    tab = await open_tab(gateway)
    await ready(tab, "open")
    await tab.shot("empty")
    started = time.monotonic()
    await tab.page.locator("#file-input").set_input_files(bus_jpg())
    entry = await finished(tab, "bus.jpg", timeout_s=15)
    took = time.monotonic() - started
    await tab.shot("done")

    table = entry.locator("table.detections")
    await expect(table.locator("td.label", has_text="person").first).to_be_visible()
    labels = await table.locator("td.label").all_inner_texts()
    assert labels.count("person") >= 4 and "bus" in labels, labels
    await expect(entry.locator(".caption")).to_contain_text("persons")
    alt = await entry.locator("img.result").get_attribute("alt")
    assert alt and "bus.jpg" in alt and "person" in alt
    await expect(entry.locator("a[download$='.detected.jpg']")).to_be_visible()
    await expect(entry.locator("a[download$='.detections.json']")).to_be_visible()
    async with tab.page.expect_download() as download_info:
        await entry.locator("a[download$='.detections.json']").click()
    download = await download_info.value
    saved = Path(await download.path())
    assert '"person"' in saved.read_text()
    async with tab.page.expect_download() as download_info:  # the objects, cut out of the original
        await entry.locator("a[download$='.objects.zip']").click()
    objects = zipfile.ZipFile(await (await download_info.value).path())
    index = json.loads(objects.read("index.json"))
    assert {o["label"] for o in index["objects"]} >= {"person", "bus"} and len(objects.namelist()) > 4
    assert took < 15, took

    # the job is the browser's own: platform "web", its own user_ref, invisible to other clients
    [job_id] = await page_jobs(tab)
    job = await job_of(gateway, job_id)
    assert job.platform == "web" and job.user_ref is not None and job.user_ref.startswith("web:@")  # its address
    assert job.owner is not None and job.owner.startswith("web:") and job.owner != job.user_ref  # its token
    assert job.params == {"conf": 0.25, "language": "en"}
    async with http.get(f"{gateway.url}/v1/jobs/{job_id}", headers=gateway.headers()) as response:
        assert response.status == 404  # another client's key
    assert tab.outside() == [], tab.outside()
    assert tab.console_errors == [], tab.console_errors

    # a phone: one column, nothing wider than the screen
    await tab.page.set_viewport_size({"width": 390, "height": 844})
    overflow = await tab.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, overflow
    await tab.shot("phone")

    # the history stays while the tab lives: a reload shows the photo again, from the signed links
    await tab.page.reload()
    await ready(tab, "open")
    await finished(tab, "bus.jpg")
    assert tab.outside() == [], tab.outside()


async def test_several_photos_at_once_each_with_its_own_confidence(
    start_gateway: StartGateway, start_worker: Any, open_tab: OpenTab
) -> None:
    gateway = await start_gateway(web_uploads="open", max_inflight_per_user=2)
    await start_worker(gateway, model=FIXED)
    tab = await open_tab(gateway)
    await ready(tab, "open")
    await tab.page.locator("#conf").fill("50")
    names = [f"photo-{n}.jpg" for n in range(1, 5)]  # more than the 2 a person may have in line: the page waits
    await tab.page.locator("#file-input").set_input_files([photo(name) for name in names])
    await tab.page.locator("#conf").fill("80")
    await drop_file(tab, photo("later.png", png(200, 200), "image/png"))  # dragged onto the page
    for name in [*names, "later.png"]:
        await finished(tab, name, timeout_s=30)
    await tab.shot("five-done")
    confs = {}
    for job_id in await page_jobs(tab):
        job = await job_of(gateway, job_id)
        assert job.platform == "web"
        confs[job_id] = job.params["conf"]
    assert sorted(confs.values()) == [0.5, 0.5, 0.5, 0.5, 0.8]
    assert len({(await job_of(gateway, j)).user_ref for j in confs}) == 1  # one browser, one person
    for name in names:  # the fixed detector's person (0.9) and bus (0.6)
        await expect(item(tab, name).locator("td.label")).to_have_text(["person", "bus"])
    assert tab.outside() == [], tab.outside()


async def test_not_a_photo_is_explained_and_the_page_still_works(
    start_gateway: StartGateway, start_worker: Any, open_tab: OpenTab
) -> None:
    gateway = await start_gateway(web_uploads="open")
    await start_worker(gateway, model=FIXED)
    tab = await open_tab(gateway)
    await ready(tab, "open")
    await tab.page.locator("#file-input").set_input_files(photo("x.jpg", b"this is a text file, not a photo\n" * 20))
    bad = item(tab, "x.jpg")
    await expect(bad).to_have_attribute("data-state", "error")
    await expect(bad.locator(".error")).to_contain_text(texts.for_error("not_an_image"))
    await tab.shot("not-a-photo")
    assert (415, f"{gateway.url}/v1/jobs") in tab.responses
    await tab.page.locator("#file-input").set_input_files(photo("good.jpg"))
    await finished(tab, "good.jpg")
    await expect(bad).to_have_attribute("data-state", "error")  # still explained, and removable
    await bad.get_by_role("button", name="Remove").click()
    await expect(bad).to_have_count(0)
    await tab.shot("after")
    assert tab.outside() == [], tab.outside()


async def test_too_large_too_many_pixels_and_busy_are_explained(
    start_gateway: StartGateway, start_worker: Any, open_tab: OpenTab
) -> None:
    gateway = await start_gateway(
        web_uploads="open",
        max_pixels=200 * 200,
        max_upload_bytes=50_000,
        max_queue_length=1,
        busy_retry_after_s=2,
        fair_share_per_user=5,  # every photo goes to the broker at once, so the queue fills
    )
    tab = await open_tab(gateway)
    await ready(tab, "open")
    files = tab.page.locator("#file-input")
    await files.set_input_files(photo("wide.jpg", jpeg(400, 300)))
    await expect(item(tab, "wide.jpg").locator(".error")).to_contain_text(texts.for_error("too_many_pixels"))
    await files.set_input_files(photo("heavy.jpg", b"\xff\xd8\xff" + os.urandom(60_000)))
    await expect(item(tab, "heavy.jpg").locator(".error")).to_contain_text(texts.for_error("too_large"))
    # no worker yet: the queue (1, and a quorum queue lets one more past) fills; then "busy", tried again later
    names = ["first.jpg", "second.jpg", "third.jpg"]
    await files.set_input_files([photo(name, jpeg(150, 150)) for name in names])
    busy = tab.page.locator("li.photo .state", has_text=texts.for_error("busy", retry_after=2))
    await expect(busy).to_have_count(1)
    await tab.shot("refusals")
    assert (503, f"{gateway.url}/v1/jobs") in tab.responses
    await start_worker(gateway, model=FIXED, max_queue_length=1)  # the worker declares the same queue
    for name in names:
        await finished(tab, name)
    for name in ("wide.jpg", "heavy.jpg"):
        await expect(item(tab, name)).to_have_attribute("data-state", "error")
    assert [status for status, url in tab.responses if url == f"{gateway.url}/v1/jobs"].count(413) == 2
    assert tab.outside() == [], tab.outside()


async def test_a_photo_in_line_shows_its_place_and_can_be_cancelled(
    start_gateway: StartGateway, open_tab: OpenTab
) -> None:
    gateway = await start_gateway(web_uploads="open")  # no worker yet: the photo waits in line
    tab = await open_tab(gateway)
    await ready(tab, "open")
    await tab.page.locator("#file-input").set_input_files(photo("waiting.jpg"))
    entry = item(tab, "waiting.jpg")
    await expect(entry).to_have_attribute("data-state", "queued")
    await expect(entry.locator(".state")).to_contain_text("#1 in line, about")
    await tab.shot("queued")
    await entry.get_by_role("button", name="Cancel").click()
    await expect(entry).to_have_attribute("data-state", "cancelled")
    await expect(entry.locator(".state")).to_have_text(texts.text("cancelled"))
    [job_id] = await page_jobs(tab)
    assert (await job_of(gateway, job_id)).status == "cancelled"
    assert tab.outside() == [], tab.outside()


async def test_the_page_survives_the_gateway_going_away(
    start_gateway: StartGateway, start_worker: Any, open_tab: OpenTab, unused_tcp_port: int
) -> None:
    gateway = await start_gateway(web_uploads="open", port=unused_tcp_port)
    tab = await open_tab(gateway)
    await ready(tab, "open")
    await gateway.stop()
    await tab.page.locator("#file-input").set_input_files(photo("while-away.jpg"))
    await expect(tab.page.locator("#notice")).to_have_text(texts.text("web_offline"))
    await expect(item(tab, "while-away.jpg")).to_have_attribute("data-state", "waiting")
    await tab.shot("away")
    back = await start_gateway(web_uploads="open", port=unused_tcp_port)  # same address, same database
    tab.gateway = back
    await start_worker(back, model=FIXED)
    await finished(tab, "while-away.jpg", timeout_s=40)
    await expect(tab.page.locator("#notice")).to_be_hidden()
    assert tab.outside() == [], tab.outside()


async def test_key_mode_refuses_uploads_until_a_valid_key(
    start_gateway: StartGateway, start_worker: Any, open_tab: OpenTab
) -> None:
    gateway = await start_gateway()  # web_uploads defaults to "key"
    await start_worker(gateway, model=FIXED)
    tab = await open_tab(gateway)
    await ready(tab, "key")
    page = tab.page
    await expect(page.locator("#key-panel")).to_be_visible()
    await expect(page.locator("#choose")).to_be_disabled()
    await expect(page.locator("#upload-blocked")).to_have_text(texts.text("web_key_missing"))
    await tab.shot("asks-for-key")
    # a wrong key, typed and sent with the keyboard: the gateway refuses the photo and the page says why
    await page.locator("#key-input").focus()
    await page.keyboard.type("not-a-key")
    await page.keyboard.press("Enter")
    await expect(page.locator("#choose")).to_be_enabled()
    await page.locator("#file-input").set_input_files(photo("first.jpg"))
    refused = item(tab, "first.jpg")
    await expect(refused).to_have_attribute("data-state", "needs-key")
    await expect(refused.locator(".error")).to_have_text(texts.text("web_key_invalid"))
    await expect(page.locator("#key-error")).to_have_text(texts.text("web_key_invalid"))
    await expect(page.locator("#choose")).to_be_disabled()
    assert (401, f"{gateway.url}/v1/jobs") in tab.responses
    async with gateway.sessions() as session:
        assert (await session.execute(select(Job))).first() is None  # nothing was stored
    await tab.shot("wrong-key")
    # a valid key: the refused photo goes through, and so do new ones
    await page.locator("#key-input").fill(CLIENT_KEY)
    await page.get_by_role("button", name="Use this key").click()
    await finished(tab, "first.jpg")
    await page.locator("#file-input").set_input_files(photo("second.jpg"))
    await finished(tab, "second.jpg")
    await expect(page.locator("#key-current")).to_be_visible()
    await tab.shot("valid-key")
    assert await page.evaluate("() => localStorage.getItem('detectbot.apiKey')") == CLIENT_KEY
    for job_id in await page_jobs(tab):
        job = await job_of(gateway, job_id)
        assert job.platform == "http" and job.user_ref == f"key:{job.owner}"  # an API key's client: its own limits
    assert tab.outside() == [], tab.outside()


async def test_key_mode_has_no_browser_sessions(start_gateway: StartGateway, http: aiohttp.ClientSession) -> None:
    gateway = await start_gateway()
    async with http.post(f"{gateway.url}/v1/web/session") as response:
        assert response.status == 404
    opened = await start_gateway(web_uploads="open")
    async with http.post(f"{opened.url}/v1/web/session") as response:
        assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
        token = (await response.json())["token"]
    # the open gateway's token means nothing to a gateway in key mode (same signing secret)
    async with http.post(f"{gateway.url}/v1/jobs", data=jpeg(), headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 401
    # a browser token may send and follow photos, never more
    bearer = {"Authorization": f"Bearer {token}"}
    async with http.get(f"{opened.url}/v1/stats", headers=bearer) as response:
        assert response.status == 403
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    async with http.post(f"{opened.url}/v1/jobs", data=jpeg(), headers={"Authorization": f"Bearer {forged}"}) as r:
        assert r.status == 401


async def test_browser_tokens_are_limited_per_address(start_gateway: StartGateway, http: aiohttp.ClientSession) -> None:
    gateway = await start_gateway(web_uploads="open", web_sessions_per_minute=3)
    statuses = []
    for _ in range(4):
        async with http.post(f"{gateway.url}/v1/web/session") as response:
            statuses.append(response.status)
            body = await response.json()
    assert statuses == [200, 200, 200, 429]
    assert body["error"] == "rate_limited" and body["retry_after"] >= 1


async def test_off_mode_answers_404(
    start_gateway: StartGateway, open_tab: OpenTab, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(web_uploads="off")
    tab = await open_tab(gateway)
    for path in ("/", "/admin", "/static/app.js"):
        response = await tab.page.goto(gateway.url + path)
        assert response is not None and response.status == 404, path
    async with http.post(f"{gateway.url}/v1/web/session") as response:
        assert response.status == 404
    status, _ = await submit_photo(http, gateway, jpeg())
    assert status == 202  # the API itself is unchanged


async def test_pages_are_served_with_types_caching_and_a_strict_policy(
    gateway: GatewayHandle, http: aiohttp.ClientSession
) -> None:
    for path, kind in (
        ("/", "text/html"),
        ("/admin", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/style.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
    ):
        async with http.get(gateway.url + path) as response:
            assert response.status == 200, path
            assert response.content_type == kind, path
            assert response.headers["Cache-Control"] == "no-cache"
            etag = response.headers["ETag"]
            if kind == "text/html":
                policy = response.headers["Content-Security-Policy"]
                assert "default-src 'self'" in policy and "img-src 'self' blob: data:" in policy
                assert "unsafe-inline" not in policy
                assert response.headers["Referrer-Policy"] == "no-referrer"
                page = await response.text()
                assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
                assert "https://" not in page
        async with http.get(gateway.url + path, headers={"If-None-Match": etag}) as response:
            assert response.status == 304, path
    for path in ("/static/nope.js", "/static/index.html", "/static/..%2Fapp.py"):
        async with http.get(gateway.url + path) as response:
            assert response.status == 404, path


async def test_texts_follow_the_language_asked(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gateway.url}/v1/texts", headers={"Accept-Language": "de-DE,ru;q=0.8,en;q=0.5"}) as r:
        body = await r.json()
    assert body["lang"] == "ru"
    assert body["texts"]["web_heading"] == texts.text("web_heading", "ru")
    assert set(body["texts"]) == {key for key in texts.MESSAGES if key.startswith("web_")}  # the page's own only
    # every other sentence comes rendered in the answers, in the language asked for
    russian = {**gateway.headers(), "Accept-Language": "de-DE,ru;q=0.8"}
    async with http.post(f"{gateway.url}/v1/jobs", data=b"no photo", headers=russian) as r:
        refused = await r.json()
    assert (r.status, refused["text"]) == (415, texts.for_error("not_an_image", "ru"))
    async with http.post(f"{gateway.url}/v1/jobs", data=jpeg(), headers=russian) as r:
        submitted = await r.json()
    assert submitted["status_text"] == texts.queued_text(1, submitted["eta_s"], "ru")  # no worker: #1, a fixed guess
    async with http.get(f"{gateway.url}/v1/texts?lang=fr,en-GB", headers={"Accept-Language": "ru"}) as r:
        assert (await r.json())["lang"] == "en"
    async with http.get(f"{gateway.url}/v1/texts?lang=xx") as r:
        body = await r.json()
    assert body["lang"] == "en" and body["texts"]["web_heading"] == texts.text("web_heading", "en")
    assert all(key in body["texts"] for key in texts.MESSAGES if key.startswith("web_"))


async def test_russian_page_from_accept_language(
    start_gateway: StartGateway, start_worker: Any, open_tab: OpenTab
) -> None:
    gateway = await start_gateway(web_uploads="open")
    await start_worker(gateway, model=FIXED)
    tab = await open_tab(gateway, locale="ru-RU")
    await ready(tab, "open")
    page = tab.page
    assert await page.evaluate("() => document.documentElement.lang") == "ru"
    heading = texts.text("web_heading", "ru")
    assert heading != texts.text("web_heading", "en"), "the Russian catalogue lacks the page's sentences"
    await expect(page.locator("h1")).to_have_text(heading)
    await expect(page.locator("#choose")).to_have_text(texts.text("web_choose", "ru"))
    assert await page.title() == texts.text("web_title", "ru")
    await page.locator("#file-input").set_input_files(photo("фото.jpg"))
    entry = await finished(tab, "фото.jpg")
    await expect(entry.locator("td.label").first).to_have_text(texts.label("person", "ru"))
    await expect(entry.locator(".caption")).to_have_text(texts.caption([{"label": "person"}, {"label": "bus"}], "ru"))
    await page.locator("#file-input").set_input_files(photo("x.jpg", b"not a photo"))
    await expect(item(tab, "x.jpg").locator(".error")).to_contain_text(texts.for_error("not_an_image", "ru"))
    await tab.shot("russian")
    [job_id, *_] = await page_jobs(tab)
    assert (await job_of(gateway, job_id)).params["language"] == "ru"  # labels on the image in Russian too


# --- the admin dashboard ------------------------------------------------------------------------------------


async def test_admin_shows_the_stats_and_requeues_a_dead_job(
    gateway: GatewayHandle, start_worker: Any, open_tab: OpenTab, http: aiohttp.ClientSession
) -> None:
    crashing = await start_worker(gateway, model="py:tests.detectors:crash_on_poison")
    _, poison = await submit_photo(http, gateway, poison_png(), filename="poison.png")
    assert (await wait_finished(http, gateway, poison["job_id"]))["status"] == "dead"
    _, fine = await submit_photo(http, gateway, jpeg())
    assert (await wait_finished(http, gateway, fine["job_id"]))["status"] == "done"
    await crashing.stop()
    await start_worker(gateway, model=FIXED)  # the cause is fixed

    tab = await open_tab(gateway, "/admin")
    page = tab.page
    await expect(page.locator("body")).to_have_attribute("data-ready", "admin")
    # without a key: nothing of the numbers, nor the dead jobs
    await expect(page.locator("#key-panel")).to_be_visible()
    await expect(page.locator("#dashboard")).to_be_hidden()
    assert await page.locator("#cards li, #dead tr").count() == 0
    assert poison["job_id"][:8] not in await page.content()
    # a client key may not see them either
    await page.locator("#key-input").fill(CLIENT_KEY)
    await page.locator("#key-input").press("Enter")
    await expect(page.locator("#key-error")).to_have_text(texts.text("web_admin_key_invalid"))
    await expect(page.locator("#dashboard")).to_be_hidden()
    assert poison["job_id"][:8] not in await page.content()
    await tab.shot("no-key")

    await page.locator("#key-input").fill(ADMIN_KEY)
    await page.get_by_role("button", name="Use this key").click()
    await expect(page.locator("#dashboard")).to_be_visible()
    async with http.get(f"{gateway.url}/v1/stats", headers=gateway.headers(admin=True)) as response:
        stats = await response.json()
    await expect(page.locator("[data-count=received] .value")).to_have_text(str(stats["jobs"]["received"]))
    await expect(page.locator("[data-count=dead] .value")).to_have_text("1")
    await expect(page.locator("[data-count=done] .value")).to_have_text(str(stats["jobs"]["done"]))
    await expect(page.locator("#hourly svg rect.bar-jobs")).to_have_count(24)
    await expect(page.locator("#latency svg rect")).to_have_count(6)
    await expect(page.locator("#top svg")).to_contain_text("person")
    await expect(page.locator("#queue")).to_have_text(
        texts.text("stats_queue", depth=stats["queue"]["depth"], consumers=stats["queue"]["consumers"])
    )
    await expect(page.locator("#stats-text")).to_contain_text(texts.text("stats_header"))
    await expect(page.locator("#stats-text")).to_contain_text(
        texts.text("stats_jobs", **{k: stats["jobs"][k] for k in ("received", "done", "delivered", "failed", "dead")})
    )
    row = page.locator(f"#dead tr[data-job='{poison['job_id']}']")
    await expect(row).to_contain_text("3 times")
    await tab.shot("dashboard")

    await row.get_by_role("button").click()
    await expect(page.locator("#dead-status")).to_have_text(texts.text("web_admin_requeued", job=poison["job_id"][:8]))
    job = await wait_finished(http, gateway, poison["job_id"])
    assert job["status"] == "done"
    await page.get_by_role("button", name="Refresh").click()
    await expect(page.locator("#dead")).to_have_text(texts.text("dlq_empty"))
    await expect(page.locator("[data-count=done] .value")).to_have_text(str(stats["jobs"]["done"] + 1))
    await tab.shot("requeued")
    await page.get_by_role("button", name="Forget the key").click()
    await expect(page.locator("#dashboard")).to_be_hidden()
    assert await page.locator("#cards li").count() == 0
    assert tab.outside() == [], tab.outside()


async def test_admin_shows_failing_webhooks_and_that_no_worker_runs(
    start_gateway: StartGateway, open_tab: OpenTab, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(webhook_secret=WEBHOOK_SECRET, webhook_allow_private=True, webhook_backoff_s=60,
                                  no_worker_notice_s=0.5, workers_check_s=0.2)  # fmt: skip
    form = aiohttp.FormData()
    form.add_field("image", jpeg(), filename="photo.jpg", content_type="image/jpeg")
    form.add_field("webhook_url", "http://127.0.0.1:9/hook?token=secret-token")  # nobody listens there
    async with http.post(f"{gateway.url}/v1/jobs", data=form, headers=gateway.headers()) as response:
        job = await response.json()
    async with http.post(f"{gateway.url}/v1/jobs/{job['job_id']}/cancel", json={}, headers=gateway.headers()) as r:
        assert r.status == 200  # a final state: its webhook is tried (and refused) at once

    async def no_worker_noticed() -> bool:
        async with http.get(f"{gateway.url}/v1/stats", headers=gateway.headers(admin=True)) as response:
            return "no_worker" in (await response.json())["lines"]

    await eventually(no_worker_noticed, timeout=10, what="the gateway to notice that no worker runs")
    tab = await open_tab(gateway, "/admin")
    page = tab.page
    await page.locator("#key-input").fill(ADMIN_KEY)
    await page.locator("#key-input").press("Enter")
    await expect(page.locator("#dashboard")).to_be_visible()
    row = page.locator(f"#webhooks tr[data-job='{job['job_id']}']")
    await expect(row).to_contain_text("127.0.0.1", timeout=15 * SECONDS)  # the host only: the URL may hold a token
    await expect(row).to_contain_text("pending")
    assert "secret-token" not in await page.content()
    await expect(page.locator("#no-worker")).to_be_visible()
    no_worker = re.escape(texts.text("stats_no_worker", duration="\0")).replace("\0", r"\d+ (s|min)")
    await expect(page.locator("#no-worker")).to_have_text(re.compile(no_worker))
    await tab.shot("webhooks")
    assert tab.outside() == [], tab.outside()


async def test_a_finished_photo_runs_again_without_a_new_upload(
    start_gateway: StartGateway, start_worker: Any, open_tab: OpenTab
) -> None:
    gateway = await start_gateway(web_uploads="open")
    await start_worker(gateway, model="py:tests.detectors:crowd")  # 5 persons in a 500 px photo, 3 of them ≥ 0.6
    tab = await open_tab(gateway)
    await ready(tab, "open")
    await tab.page.locator("#file-input").set_input_files(
        {"name": "street.jpg", "mimeType": "image/jpeg", "buffer": jpeg(500, 300)}
    )
    first = await finished(tab, "street.jpg")
    await expect(first.locator(".caption")).to_contain_text("5 persons")
    uploads = [url for _, url in tab.responses if url == f"{gateway.url}/v1/jobs"]
    await first.get_by_role("button", name=texts.text("web_rerun_higher")).click()
    again = await finished(tab, texts.text("web_rerun_name", name="street.jpg"))
    mode = texts.text("rerun_higher")
    await expect(again.locator(".caption")).to_have_text(
        texts.text(
            "rerun_caption",
            mode=mode,
            caption=texts.caption([{"label": "person"}] * 3 + [{"label": "car"}, {"label": "dog"}]),
        )
    )
    assert [url for _, url in tab.responses if url == f"{gateway.url}/v1/jobs"] == uploads  # nothing uploaded again
    jobs = await page_jobs(tab)
    assert len(jobs) == 2 and [(await job_of(gateway, job_id)).rerun_of for job_id in jobs] == [None, jobs[0]]
    await tab.shot("rerun")
    assert tab.outside() == [] and tab.console_errors == [], (tab.outside(), tab.console_errors)
