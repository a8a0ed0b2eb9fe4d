"""The Telegram poller's ledger: an update is confirmed to Telegram only once it is handled and not held."""

from __future__ import annotations

import asyncio

from bots.telegram.poller import Ledger


async def test_an_update_is_in_hand_until_handled_and_released() -> None:
    ledger = Ledger()
    first = ledger.begin(10)
    second = ledger.begin(11)
    ledger.hold(11)  # an album photo: its handler returns, the album is not submitted yet
    ledger.finished(11)
    assert ledger.in_hand() == [10, 11] and not second.done()
    ledger.finished(10)
    await asyncio.wait_for(first, 1)
    assert ledger.in_hand() == [11]
    ledger.release(11)
    await asyncio.wait_for(second, 1)
    assert ledger.in_hand() == []


async def test_a_repeated_update_shares_the_first_ones_future() -> None:
    ledger = Ledger()
    assert ledger.begin(5) is ledger.begin(5)
