"""The word index's pure parts (adapters/word_postings.py): posting keys and the order words are read in."""

from datetime import datetime, timedelta

from pixyproxy.adapters.sql import word_postings
from pixyproxy.domain.search import ImageFilter


def test_rarest_first_orders_the_words_by_how_far_back_their_postings_reach():
    at = datetime(2026, 1, 1)
    day = timedelta(days=1)
    assert word_postings.rarest_first(("a", "b", "c"), (at, at - day, at)) == ("b", "a", "c")
    assert word_postings.rarest_first(("a", "b", "c"), (at, at - day, at - 2 * day)) == ("c", "b", "a")
    # None: fewer postings than the probe depth, the rarest of all; ties keep the query's order.
    assert word_postings.rarest_first(("a", "b", "c"), (at, at, None)) == ("c", "a", "b")
    assert word_postings.rarest_first(("a", "b"), (None, None)) == ("a", "b")
    # SQLite's times are text: the same order.
    assert word_postings.rarest_first(("a", "b"), ("2026-01-02", "2026-01-01")) == ("b", "a")


def test_a_prompts_keys_are_its_folded_words_once_and_long_ones_cut():
    long = "x" * 150
    assert word_postings.keys_of(f"Café CAFE the at {long} {long}y") == ["cafe", "the", "x" * 100]
    assert word_postings.cut(long) and not word_postings.cut("x" * 100)


def test_plan_lets_the_model_or_owner_lead_when_it_reaches_back_further_than_any_word():
    at = datetime(2026, 1, 1)
    day = timedelta(days=1)
    one_tenant = ImageFilter(words=("lighthouse", "dusk"), owner="ann")
    # words' entries first, then the owner's: ann's 64th image is older than either word's 64th posting
    assert word_postings.plan(one_tenant.words, one_tenant, (at, at - day, at - 2 * day)) == (
        "owner",
        ("dusk", "lighthouse"),
    )
    assert word_postings.plan(one_tenant.words, one_tenant, (at, None, at - 2 * day)) == (
        "word",
        ("dusk", "lighthouse"),
    )
    both = ImageFilter(words=("lighthouse",), model="m", owner="ann")
    assert word_postings.plan(both.words, both, (at, None, at - day))[0] == "model"
    assert word_postings.plan(both.words, both, (at, at - day, None))[0] == "owner"
