"""Every action of the dashboard, checked in Redis: in the browser for the pending list's
own (ack, dead letters, delete, a cancelled confirmation, paging, filters, the live tail),
through HTTP for the others (as a script would, with the page's header)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from fluxabee import Engine
from fluxabee._keys import dead_letter_key

from .conftest import Scene, Served
from .test_browser import confirm, visit

Serve = Callable[..., Served]
ACTION = {"x-fluxabee-action": "1"}


def select(page: Page, *ids: str) -> None:
    for entry_id in ids:
        page.locator(f'#pending tr[data-id="{entry_id}"] input[name=ids]').check()


def test_ack_dead_letter_and_delete_act_on_the_selected_entries_only(
    scene: Scene, serve: Serve, page: Page
) -> None:
    first, second, third = scene.orders[:3]
    served = serve(scene.config)
    visit(page, served.url + "/streams/orders?group=billing")

    select(page, first)
    page.click("#ack-form button")
    page.click("#confirm button[value=cancel]")  # a cancelled confirmation does nothing
    assert scene.r.xpending("orders", "billing")["pending"] == 3

    page.click("#ack-form button")
    confirm(page, "Ack the 1 selected entries?")
    expect(page.locator("#flash")).to_have_text("acked 1 entries in billing")
    expect(page.locator("#pending tr[data-id]")).to_have_count(2)

    select(page, second)
    page.click("#dead-form button")
    confirm(page, "Move the 1 selected entries to the dead letters?")
    expect(page.locator("#flash")).to_have_text("moved 1 entries to the dead letters")
    letters = scene.r.xrange(dead_letter_key("orders"))
    assert len(letters) == 1
    fields = letters[0][1]
    assert fields[b"fluxabee-group"] == b"billing"
    assert b"dashboard" in fields[b"fluxabee-error"]

    select(page, third)
    page.click("#delete-form button")
    confirm(page, "Delete the 1 selected entries from the stream?")
    expect(page.locator("#flash")).to_have_text("deleted 1 of 1 entries")
    assert scene.r.xpending("orders", "billing")["pending"] == 0
    assert scene.r.xrange("orders", third, third) == []
    assert scene.r.xlen("orders") == 5  # the acked and dead-lettered ones stay for shipping


def test_the_pending_list_pages_and_filters_and_the_tail_goes_live(
    scene: Scene, serve: Serve, page: Page
) -> None:
    served = serve(scene.config)
    base = served.url + "/streams/orders?group=billing"
    visit(page, f"{base}&after={scene.orders[0]}")
    expect(page.locator("#pending tr[data-id]")).to_have_count(2)
    visit(page, f"{base}&consumer=consumer-live")
    expect(page.locator("#pending tr[data-id]")).to_have_count(0)
    visit(page, f"{base}&min_idle=1h")
    expect(page.locator("#pending tr[data-id]")).to_have_count(0)
    visit(page, base)
    expect(page.locator("#pending tr[data-id]")).to_have_count(3)

    expect(page.locator("#tail tbody tr[data-id]")).to_have_count(6)
    with Engine(scene.config) as engine:
        broker = engine.new_context().event_broker()
        broker.publish("orders", {"late": True}, source="tail")
        (new_id,) = broker.flush()
    row = page.locator(f'#tail tr[data-id="{new_id}"]')
    expect(row.locator("td[data-col=body]")).to_have_text('{"late": true}')
    expect(row.locator("td[data-col=meta]")).to_have_text("source=tail")
    expect(page.locator("#tail tbody tr[data-id]")).to_have_count(7)


def post(served: Served, action: str, **form: Any) -> httpx.Response:
    return httpx.post(f"{served.url}/actions/{action}", data=form, headers=ACTION)


def test_claim_idle_replay_all_delete_letters_and_prune_through_http(
    scene: Scene, serve: Serve
) -> None:
    served = serve(scene.config)
    reply = post(
        served, "claim-idle", stream="orders", group="billing", consumer="consumer-live",
        min_idle="0s",
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json()["ids"] == scene.orders[:3]
    assert reply.json()["message"] == "claimed 3 idle entries to consumer-live"
    consumers = scene.r.xinfo_consumers("orders", "billing")
    assert {c["name"]: c["pending"] for c in consumers}[b"consumer-live"] == 3

    (letter, _), _ = scene.r.xrange(dead_letter_key("emails"))
    reply = post(served, "delete-letters", stream="emails", ids=letter.decode())
    assert reply.json()["message"] == "deleted 1 dead letters of emails"
    reply = post(served, "replay-all", stream="emails")
    assert reply.json()["message"] == "replayed 1 of all dead letters of emails"
    assert scene.r.xlen(dead_letter_key("emails")) == 0
    assert scene.r.xlen("emails") == 1

    reply = post(served, "prune", idle="0s")
    assert reply.status_code == 200
    crashed, emails_worker = reply.json()["ids"]
    assert crashed == "orders/billing/consumer-crashed1"
    assert emails_worker.startswith("emails/consumer_group/consumer-")
    left = {c["name"] for c in scene.r.xinfo_consumers("orders", "billing")}
    assert left == {b"consumer-live"}  # it holds the 3 pending entries now

    reply = post(served, "ack", stream="orders", group="billing", ids="not-an-id")
    assert reply.status_code == 400
    reply = post(served, "ack", stream="nowhere", group="billing", ids=scene.orders[0])
    assert reply.status_code == 400
    assert post(served, "trim", stream="orders", max_len="0").status_code == 409
    assert scene.r.xlen("orders") == 6
