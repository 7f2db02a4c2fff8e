"""The coalescer: one statement for many calls, and each call answered alone."""

from __future__ import annotations

import asyncio
from typing import Any

from taskclaim.batching import Coalescer
from taskclaim.exceptions import BadRequest, DatabaseUnavailable


def test_a_batch_that_fails_is_sent_again_item_by_item_so_only_the_bad_item_fails() -> None:
    sent: list[list[str]] = []

    async def run(key: None, items: list[str]) -> list[str]:
        sent.append(items)
        await asyncio.sleep(0)
        if "bad" in items:
            raise BadRequest("bad item")
        return [item.upper() for item in items]

    async def scenario() -> list[Any]:
        coalescer: Coalescer[None, str, str] = Coalescer(run)
        calls = [coalescer.submit(None, item) for item in ("first", "a", "bad", "b")]
        return await asyncio.gather(*calls, return_exceptions=True)

    first, a, bad, b = asyncio.run(scenario())
    assert (first, a, b) == ("FIRST", "A", "B")
    assert isinstance(bad, BadRequest)
    assert sent[0] == ["first", "a", "bad", "b"]  # one statement for all four, then each alone
    assert sorted(sent[1:]) == [["a"], ["b"], ["bad"], ["first"]]


def test_an_unreachable_database_fails_every_item_of_a_batch_without_retrying() -> None:
    sent: list[list[str]] = []

    async def run(key: None, items: list[str]) -> list[str]:
        sent.append(items)
        await asyncio.sleep(0)
        raise DatabaseUnavailable("down")

    async def scenario() -> list[Any]:
        coalescer: Coalescer[None, str, str] = Coalescer(run)
        return await asyncio.gather(*(coalescer.submit(None, i) for i in "abc"), return_exceptions=True)

    assert all(isinstance(answer, DatabaseUnavailable) for answer in asyncio.run(scenario()))
    assert sent == [["a", "b", "c"]]


def run_coalesced(
    calls: list[tuple[str, str]], **options: Any
) -> tuple[list[Any], list[tuple[str, list[str]]]]:
    """Submit ``(key, item)`` calls at once; return each call's answer and the statements sent."""
    sent: list[tuple[str, list[str]]] = []

    async def run(key: str, items: list[str]) -> list[str]:
        sent.append((key, items))
        await asyncio.sleep(0)
        return [f"{key}:{item}" for item in items]

    async def scenario() -> list[Any]:
        coalescer: Coalescer[str, str, str] = Coalescer(run, **options)
        return await asyncio.gather(*(coalescer.submit(key, item) for key, item in calls))

    return asyncio.run(scenario()), sent


def test_calls_of_one_key_share_a_statement_and_keys_take_turns() -> None:
    answers, sent = run_coalesced([("a", "1"), ("b", "2"), ("a", "3"), ("b", "4")])
    assert answers == ["a:1", "b:2", "a:3", "b:4"]  # each call gets its own item's answer
    assert sent == [("a", ["1", "3"]), ("b", ["2", "4"])]


def test_a_batch_holds_at_most_max_batch_calls() -> None:
    answers, sent = run_coalesced([("a", str(n)) for n in range(5)], max_batch=2)
    assert answers == [f"a:{n}" for n in range(5)]
    assert [items for _, items in sent] == [["0", "1"], ["2", "3"], ["4"]]


def test_equal_items_never_share_a_statement_when_distinct_is_given() -> None:
    answers, sent = run_coalesced([("a", "x"), ("a", "x"), ("a", "y")], distinct=lambda item: item)
    assert answers == ["a:x", "a:x", "a:y"]
    assert [items for _, items in sent] == [["x", "y"], ["x"]]


def test_a_caller_that_went_away_is_left_out_of_the_next_statement() -> None:
    sent: list[list[str]] = []

    async def run(key: None, items: list[str]) -> list[str]:
        sent.append(items)
        await asyncio.sleep(0.01)
        return items

    async def scenario() -> tuple[str, str]:
        coalescer: Coalescer[None, str, str] = Coalescer(run)
        first = asyncio.ensure_future(coalescer.submit(None, "first"))
        await asyncio.sleep(0)  # "first" is being sent; the next two wait for the next statement
        gone = asyncio.ensure_future(coalescer.submit(None, "gone"))
        kept = asyncio.ensure_future(coalescer.submit(None, "kept"))
        await asyncio.sleep(0)
        gone.cancel()
        return await first, await kept

    assert asyncio.run(scenario()) == ("first", "kept")
    assert sent == [["first"], ["kept"]]


def test_distinct_rounds_put_each_repeat_of_an_id_in_the_next_round_in_order() -> None:
    from taskclaim.batching import distinct_rounds

    assert distinct_rounds(["a", "b", "a", "c", "a", "b"]) == [[0, 1, 3], [2, 5], [4]]
    assert distinct_rounds(["x", "y"]) == [[0, 1]]
    assert distinct_rounds([]) == []
