"""The dashboard in a real browser (Debian's chromium) against a real server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from fluxabee import Engine, Event
from fluxabee._keys import dead_letter_key

from .conftest import SECRET, Scene, Served, screenshot

Serve = Callable[..., Served]


def visit(page: Page, url: str) -> None:
    """Open ``url``; the Redis password must be nowhere in the page."""
    page.goto(url)
    assert SECRET not in page.content()


def confirm(page: Page, question: str) -> None:
    """Answer the page's confirmation dialog, after checking what it asks."""
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-text")).to_have_text(question)
    page.click("#confirm-ok")


def test_the_overview_shows_every_stream_and_group_with_their_numbers_live(
    scene: Scene, serve: Serve, page: Page
) -> None:
    served = serve(scene.config)
    visit(page, served.url + "/")
    expected = {
        ("orders", "billing"): {"length": "6", "lag": "3", "pending": "3", "consumers": "2"},
        ("orders", "shipping"): {"length": "6", "lag": "6", "pending": "0", "consumers": "0"},
        ("emails", "consumer_group"): {"length": "0", "pending": "0", "dead": "2"},
    }
    for (stream, group), columns in expected.items():
        row = page.locator(f'#overview tr[data-stream="{stream}"][data-group="{group}"]')
        for column, value in columns.items():
            expect(row.locator(f'td[data-col="{column}"]')).to_have_text(value)
    expect(page.locator("#overview tbody tr")).to_have_count(3)
    expect(page.locator('#overview tr[data-stream="orders"] .flag')).to_have_text(["over cap"] * 2)
    expect(page.locator('#overview tr[data-stream="emails"] .flag')).to_have_count(0)
    expect(page.locator(".pools")).to_contain_text("redis://:***@127.0.0.1")

    # When events arrive, the page refreshes itself and the sampler draws the in rate.
    with Engine(scene.config) as engine:
        broker = engine.new_context().event_broker()
        for n in range(5):
            broker.publish("orders", {"order": 100 + n})
        broker.flush()
    billing = page.locator('#overview tr[data-stream="orders"][data-group="billing"]')
    expect(billing.locator('td[data-col="length"]')).to_have_text("11")
    expect(billing.locator('td[data-col="lag"]')).to_have_text("8")
    expect(billing.locator("polyline.in")).not_to_have_count(0)
    assert SECRET not in page.content()
    screenshot(page, "overview")


def test_claiming_the_crashed_consumers_events_moves_them_to_a_live_consumer(
    scene: Scene, serve: Serve, page: Page
) -> None:
    served = serve(scene.config)
    visit(page, served.url + "/streams/orders?group=billing")
    rows = page.locator("#pending tbody tr[data-id]")
    expect(rows).to_have_count(3)
    expect(page.locator('#pending td[data-col="holder"]')).to_have_text(["consumer-crashed1"] * 3)
    expect(page.locator("#tail tbody tr[data-id]")).to_have_count(6)
    expect(page.locator("#tail td[data-col=body]").first).to_contain_text('"order": 5')
    expect(page.locator("#tail td[data-col=meta]").first).to_have_text("tenant=acme")
    screenshot(page, "stream")

    for box in page.locator("#pending input[name=ids]").all():
        box.check()
    page.fill("#pending-form input[name=consumer]", "consumer-live")
    page.click("#pending-form button[type=submit]")
    confirm(page, "Claim the 3 selected entries?")
    expect(page.locator("#flash")).to_have_text("claimed 3 of 3 entries to consumer-live")

    pending = scene.r.xpending_range("orders", "billing", "-", "+", 10)
    assert [p["message_id"].decode() for p in pending] == scene.orders[:3]
    assert {p["consumer"] for p in pending} == {b"consumer-live"}
    expect(page.locator('#pending td[data-col="holder"]')).to_have_text(["consumer-live"] * 3)
    assert SECRET not in page.content()


def test_a_replayed_dead_letter_is_handled_by_a_running_consumer(
    scene: Scene, serve: Serve, page: Page
) -> None:
    handled: list[Any] = []
    arrived = threading.Event()

    def handler(events: list[Event]) -> None:
        handled.extend(e.body for e in events)
        arrived.set()

    with Engine(scene.config) as engine:
        consumer = engine.new_context().event_broker().consumer_many("emails")
        worker = threading.Thread(target=consumer.run, args=(10, 1.0, handler))
        worker.start()
        try:
            served = serve(scene.config)
            visit(page, served.url + "/dead/emails")
            letters = page.locator("tr[data-id]")
            expect(letters).to_have_count(2)
            expect(page.locator('td[data-col="error"]').first).to_contain_text(
                "ValueError: the mail server said no"
            )
            expect(page.locator('td[data-col="group"]').first).to_have_text("consumer_group")
            letters.first.locator("input[name=ids]").check()
            page.click("#letters-form button[type=submit]")
            confirm(page, "Replay the 1 selected dead letters to their groups?")
            expect(page.locator("#flash")).to_have_text(
                "replayed 1 of 1 selected dead letters of emails"
            )
            assert arrived.wait(30), "the running consumer never got the replayed event"
            assert handled == [{"to": "a@example.com"}]
            assert scene.r.xlen(dead_letter_key("emails")) == 1
            expect(page.locator("tr[data-id]")).to_have_count(1)
        finally:
            consumer.stop()
            worker.join(30)


def test_a_trim_that_would_cut_unread_entries_is_refused_and_removes_nothing(
    scene: Scene, serve: Serve, page: Page
) -> None:
    served = serve(scene.config)
    visit(page, served.url + "/streams/orders")
    page.fill("#trim-form input[name=max_len]", "2")
    page.click("#trim-form button.preview")
    expect(page.locator("#trim-preview")).to_contain_text("4 entries would go, but the trim")
    expect(page.locator("#trim-preview")).to_contain_text("refused")
    page.click("#trim-form button[type=submit]")
    confirm(page, "Trim the stream as previewed?")
    expect(page.locator("#flash")).to_contain_text("would remove entries not acked yet")
    expect(page.locator("#flash")).to_contain_text("nothing was removed")
    assert scene.r.xlen("orders") == 6


def test_read_only_shows_no_action_and_refuses_a_forged_one(
    scene: Scene, serve: Serve, page: Page
) -> None:
    served = serve(scene.config, read_only=True)
    for path in ("/streams/orders?group=billing", "/dead/emails", "/consumers", "/"):
        visit(page, served.url + path)
        expect(page.locator("header .ro")).to_have_text("read-only")
        expect(page.locator("form.action")).to_have_count(0)
        expect(page.locator("input[name=ids]")).to_have_count(0)
    forged = {"stream": "orders", "group": "billing", "ids": scene.orders[0]}
    for action in ("ack", "delete", "replay-all", "trim", "prune"):
        reply = httpx.post(
            f"{served.url}/actions/{action}", data=forged, headers={"x-fluxabee-action": "1"}
        )
        assert reply.status_code == 403, action
    assert scene.r.xpending("orders", "billing")["pending"] == 3
    assert scene.r.xlen(dead_letter_key("emails")) == 2


def test_an_action_from_elsewhere_without_the_pages_header_is_refused(
    scene: Scene, serve: Serve
) -> None:
    served = serve(scene.config)
    forged = {"stream": "orders", "group": "billing", "ids": scene.orders[0]}
    reply = httpx.post(f"{served.url}/actions/ack", data=forged)
    assert reply.status_code == 403
    assert scene.r.xpending("orders", "billing")["pending"] == 3


def test_the_token_is_required_by_form_cookie_or_bearer_under_a_prefix(
    scene: Scene, serve: Serve, page: Page
) -> None:
    token = "t0ken-for-the-test"
    served = serve(scene.config, prefix="/ops/fluxabee", token=token)
    assert httpx.get(served.url + "/").status_code == 401
    assert httpx.get(served.url + "/", headers={"authorization": "Bearer nope"}).status_code == 401
    bearer = httpx.get(served.url + "/consumers", headers={"authorization": f"Bearer {token}"})
    assert bearer.status_code == 200
    assert bearer.headers["content-security-policy"].startswith("default-src 'self'")
    assert "consumer-crashed1" in bearer.text
    assert httpx.post(f"{served.url}/actions/prune", data={"idle": "1h"}).status_code == 401

    visit(page, served.url + "/streams/orders")
    assert page.url.startswith(served.url + "/login")
    page.fill("input[name=token]", "wrong")
    page.click("form.login button")
    expect(page.locator(".error")).to_have_text("Wrong token.")
    page.fill("input[name=token]", token)
    page.click("form.login button")
    expect(page.locator("h1")).to_have_text("orders")
    assert page.url == served.url + "/streams/orders"
    expect(page.locator("#consumers tbody tr")).to_have_count(2)
    assert token not in page.content()
    assert SECRET not in page.content()


def test_a_redis_error_is_shown_with_the_password_masked(serve: Serve, page: Page) -> None:
    from fluxabee import Config, RedisPool  # noqa: PLC0415

    config = Config(redis_pools=[RedisPool(uri=f"redis://:{SECRET}@127.0.0.1:1/0", streams=["s"])])
    served = serve(config)
    visit(page, served.url + "/")
    expect(page.locator(".error")).to_contain_text("Redis:")
    visit(page, served.url + "/streams/s")
    expect(page.locator(".error")).to_contain_text("Redis:")
