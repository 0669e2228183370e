"""How the moderation bench maps labels onto categories (bench/flags_eval.py, bench/train_second_stage.py)."""

from __future__ import annotations

import sys

import pytest

from streams import PROJECT_ROOT
from streams.enrich.flags.second_stage import without_swearing
from streams.models import FlagResult

pytest.importorskip("sklearn")
sys.path.insert(0, str(PROJECT_ROOT / "bench"))
import flags_eval
import moderation_data as md
import train_second_stage


def _row(set_name: str, labels: dict[str, float | None], **extra: float) -> md.Row:
    return md.Row(set_name, "r1", "holy shit, you idiot", {**dict.fromkeys(md.CATS), **labels}, extra=extra)


def test_a_label_spanning_two_categories_is_scored_by_the_higher_and_counts_either_flag() -> None:
    check = flags_eval.Check("olid", "offensive (A)", "toxicity or profanity", 0.88, lambda r: r.extra["offensive"])
    swearing = FlagResult(scores={"toxicity": 0.1, "profanity": 0.9}, flags=["profanity"], reasons={})
    insult = FlagResult(scores={"toxicity": 0.8, "profanity": 0.0}, flags=["toxicity"], reasons={})
    clean = FlagResult(scores={"toxicity": 0.2, "profanity": 0.3}, flags=[], reasons={})
    assert [check.score(r) for r in (swearing, insult, clean)] == [0.9, 0.8, 0.3]
    assert [check.flagged(r) for r in (swearing, insult, clean)] == [True, True, False]
    alone = flags_eval.Check("olid", "offensive (A), toxicity alone", "toxicity", 0.0, lambda r: None)
    assert alone.score(swearing) == 0.1 and not alone.flagged(swearing)


def test_every_check_names_known_categories_and_a_unique_label() -> None:
    for check in flags_eval.CHECKS:
        assert set(check.categories) <= set(md.CATS), check
    keys = [(c.set, c.label) for c in flags_eval.CHECKS]
    assert len(keys) == len(set(keys))  # figures are keyed by set and label


def test_the_shipped_recipe_keeps_the_sets_labels_and_reads_no_swearing() -> None:
    recipe = train_second_stage.RECIPES["masked"]
    row = _row("olid", {"toxicity": 1.0}, offensive=1.0, targeted=0.0)
    assert recipe.model_id == "minilm-ft-v1" and recipe.labels(row) == row.labels
    assert recipe.text(row.text) == without_swearing(row.text) != row.text


def test_the_product_labels_say_swearing_alone_is_not_toxicity() -> None:
    labels = train_second_stage.product_labels
    untargeted = _row("olid", {"toxicity": 1.0}, offensive=1.0, targeted=0.0)
    targeted = _row("olid", {"toxicity": 1.0}, offensive=1.0, targeted=1.0)
    clean = _row("olid", {"toxicity": 0.0, "profanity": 0.0}, offensive=0.0, targeted=0.0)
    assert labels(untargeted)["toxicity"] == 0.0 and labels(untargeted)["profanity"] == 1.0
    assert labels(targeted) == targeted.labels and labels(clean) == clean.labels
    # toxic_spans: the share of annotators who marked a span that is not only profane.
    spans = _row("toxic_spans", {"toxicity": 0.8, "profanity": 0.6}, toxic_not_profane=0.2, insult=0.2)
    assert labels(spans)["toxicity"] == 0.2 and labels(spans)["profanity"] == 0.6
    assert train_second_stage.RECIPES["reads-swearing"].text(spans.text) == spans.text
