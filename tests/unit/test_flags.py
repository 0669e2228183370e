"""Moderation flags: the sample thread, each category, the result shape, the config and `streams score`."""

from __future__ import annotations

import gc
import io
import re
import subprocess
import sys
import tomllib
from functools import partial
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.cli import freeze_long_lived_objects
from streams.enrich.flags import (
    CATEGORIES,
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    FlagScorer,
    ModerationConfigError,
    ProfanityCheckModel,
    ScoreInput,
    SparseLinearModel,
    WordFeaturizer,
    load_moderation_config,
    model_features,
)
from streams.enrich.normalize import analyze, normalize
from streams.enrich.score_cli import run_score
from streams.models import FlagResult

ROOT = Path(__file__).resolve().parents[2]
#: The shipped toxicity threshold line (thresholds are chosen on DEV by bench/flags_eval.py).
TOX_LINE = next(
    x for x in DEFAULT_CONFIG_PATH.read_text(encoding="utf-8").splitlines(True) if x.startswith("toxicity = ")
)
TOX_SHIPPED = float(TOX_LINE.split("=")[1].split("#")[0])
SAMPLE = ROOT / "streams" / "samples" / "000_0506d22904cf1e0a.txt"
PROBE = ROOT / "bench" / "data" / "identity_probe.txt"
_HEADER = re.compile(r"^(?P<names>.+?) (?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d/\d\d/\d{4} - \d\d:\d\d Permalink$")


@pytest.fixture(scope="module")
def scorer() -> FlagScorer:
    return FlagScorer()


def sample_comments() -> list[str]:
    """Comment bodies of the sample thread (text between a header line and "In reply to by")."""
    bodies: list[str] = []
    current: list[str] | None = None
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        if _HEADER.match(line):
            current = []
            bodies.append("")
        elif current is not None and line.startswith("In reply to by"):
            bodies[-1] = "\n".join(current).strip()
            current = None
        elif current is not None:
            current.append(line)
    return [b for b in bodies if b]


def comment_containing(snippet: str) -> str:
    matches = [b for b in sample_comments() if snippet in b]
    assert len(matches) == 1, f"{snippet!r} should pick exactly one sample comment"
    return matches[0]


# -- the sample thread ----------------------------------------------------------------------------


def test_group_conspiracy_comment_is_an_identity_attack(scorer: FlagScorer) -> None:
    result = scorer.score(comment_containing("subvert"), author="Adolph.H.")
    assert "identity_attack" in result.flags
    assert "phrase:identity_attack:group-subversion" in result.reasons["identity_attack"]
    assert "toxicity" in result.flags  # hate is toxic too
    assert "category:identity_attack" in result.reasons["toxicity"]
    assert "profanity" not in result.flags  # no swear word in it


def test_absolute_moron_is_toxic(scorer: FlagScorer) -> None:
    result = scorer.score(comment_containing("absolute moron"), author="FireBrander")
    assert result.flags == ["toxicity"]
    assert "lexicon:toxicity:moron" in result.reasons["toxicity"]


def test_crap_and_shit_are_profanity(scorer: FlagScorer) -> None:
    result = scorer.score(comment_containing("scared the shit"), author="IH8OBAMA")
    assert "profanity" in result.flags
    assert {"lexicon:profanity:shit", "lexicon:profanity:crap"} <= set(result.reasons["profanity"])
    assert "toxicity" not in result.flags  # a joke with swear words, not abuse


@pytest.mark.parametrize("snippet", ["I give lectures in Russia", "ballot stuffing", "strangled to death"])
def test_neutral_sample_comments_get_no_flags(scorer: FlagScorer, snippet: str) -> None:
    result = scorer.score(comment_containing(snippet), author="are we there yet")
    assert result.flags == []


def test_racist_display_name_is_flagged(scorer: FlagScorer) -> None:
    result = scorer.score("", author="Dindu Nuffins")
    assert result.flags == ["username"]
    assert "username:contains:dindu" in result.reasons["username"]
    assert scorer.score("Nice weather", author="DinduNuffins").flags == ["username"]  # CamelCase too


def test_ih8obama_is_reviewable_but_not_flagged(scorer: FlagScorer) -> None:
    # Dislike of a politician is political speech: listed for a moderator, below the threshold.
    result = scorer.score("", author="IH8OBAMA")
    assert result.flags == []
    assert 0.0 < result.scores["username"] < 0.5
    assert result.reasons["username"] == ["username:i-hate-someone"]
    # Hatred of a group in a name is flagged.
    assert scorer.score("", author="IH8JEWS").flags == ["username"]
    assert scorer.score("", author="kill_all_muslims").flags == ["username"]


@pytest.mark.parametrize(
    "author", ["Jim in MN", "are we there yet", "Dabooda", "ExPat2018", "kralizec", "Scunthorpe United", "Adolph.H."]
)
def test_ordinary_names_are_clean(scorer: FlagScorer, author: str) -> None:
    result = scorer.score("", author=author)
    assert result.scores["username"] == 0.0
    assert "username" not in result.reasons


# -- each category --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "category", "reason"),
    [
        ("You are a complete idiot", "toxicity", "phrase:toxicity:insult-you"),
        ("fuck off", "toxicity", "phrase:toxicity:fuck-you"),
        ("This is sh1t", "profanity", "lexicon:profanity:shit"),
        ("f u c k this", "profanity", "lexicon:profanity:fuck*"),
        ("shiiiiit", "profanity", "lexicon:profanity:shit"),
        ("total bullshit", "profanity", "lexicon:profanity:*shit"),
        ("those k1kes again", "identity_attack", "lexicon:identity_attack:kikes"),
        ("Muslims are vermin", "identity_attack", "phrase:identity_attack:group-dehumanize"),
        ("the jews control the media", "identity_attack", "phrase:identity_attack:group-control"),
        ("immigrants want to replace our culture", "identity_attack", "phrase:identity_attack:group-destroy-us"),
        ("go back to your country", "identity_attack", "phrase:identity_attack:go-back"),
        ("gas the jews", "identity_attack", "phrase:identity_attack:group-elimination"),
        ("I will kill you", "threat", "phrase:threat:i-will-harm-you"),
        ("kill yourself", "threat", "phrase:threat:kill-yourself"),
        ("someone should shoot him", "threat", "phrase:threat:someone-should-kill"),
        ("I know where you live", "threat", "phrase:threat:know-where-you-live"),
        ("I hope you die", "threat", "phrase:threat:hope-you-die"),
        ("I make $85 per hour from home! www.a.com", "spam", "phrase:spam:money-per-time"),
    ],
)
def test_category_flagged_with_reason(scorer: FlagScorer, body: str, category: str, reason: str) -> None:
    result = scorer.score(body)
    assert category in result.flags
    assert reason in result.reasons[category]


#: The product's examples of ordinary comments (shared with the threshold choice in bench/flags_eval.py).
_ORDINARY_FILE = Path(__file__).resolve().parents[2] / "bench" / "data" / "ordinary_comments.txt"
ORDINARY_COMMENTS = [
    line.strip() for line in _ORDINARY_FILE.read_text().splitlines() if line.strip() and not line.startswith("#")
]


@pytest.mark.parametrize("body", ORDINARY_COMMENTS)
def test_ordinary_text_is_not_flagged(scorer: FlagScorer, body: str) -> None:
    assert len(ORDINARY_COMMENTS) >= 11
    assert scorer.score(body).flags == []


def test_swearing_is_profanity_not_toxicity(scorer: FlagScorer) -> None:
    assert scorer.score("holy shit, what a goal").flags == ["profanity"]


def test_spam_from_links(scorer: FlagScorer) -> None:
    body = "deals at a.com b.net c.org and http://d.io/x"
    result = scorer.score(body)
    assert "spam" in result.flags
    assert "spam:links=4" in result.reasons["spam"]
    assert "spam" not in scorer.score("source: https://example.com/report").reasons  # one link is free


def test_spam_from_duplicate_authors(scorer: FlagScorer) -> None:
    body = "Everyone should read this amazing article about investing today"
    result = scorer.score(body, duplicate_authors=3)
    assert result.flags == ["spam"]
    assert result.reasons["spam"] == ["spam:duplicate_authors=3"]
    assert scorer.score(body, duplicate_authors=1).flags == []  # one other author: weak evidence
    # Short texts repeat innocently ("+1", "lol", "thanks").
    assert scorer.score("Thanks!", duplicate_authors=10).flags == []


def test_identity_probe_sample_is_clean(scorer: FlagScorer) -> None:
    lines = [s for s in (x.strip() for x in PROBE.read_text().splitlines()) if s and not s.startswith("#")]
    assert len(lines) >= 200
    flagged = [
        line for line, r in zip(lines, scorer.score_many([ScoreInput(x) for x in lines]), strict=True) if r.flags
    ]
    assert len(flagged) <= 0.05 * len(lines), flagged


# -- result shape ---------------------------------------------------------------------------------


def test_result_shape(scorer: FlagScorer) -> None:
    result = scorer.score("You moron, this shit is a.com b.com c.com", author="Dindu Nuffins")
    assert isinstance(result, FlagResult)
    assert list(result.scores) == list(CATEGORIES)
    for value in result.scores.values():
        assert 0.0 <= value <= 1.0
        assert round(value, 4) == value
    assert result.flags == [c for c in CATEGORIES if c in result.flags]  # CATEGORIES order
    thresholds = scorer.config.thresholds
    assert result.flags == [c for c in CATEGORIES if result.scores[c] >= thresholds[c]]
    assert all(result.reasons[c] for c in result.reasons)  # no empty lists
    assert list(result.reasons) == [c for c in CATEGORIES if c in result.reasons]
    reason_pattern = re.compile(r"^(lexicon|phrase|model|spam|username|category):\S")
    assert all(reason_pattern.match(r) for rs in result.reasons.values() for r in rs)


def test_empty_body_and_no_author(scorer: FlagScorer) -> None:
    result = scorer.score("")
    assert result.flags == []
    assert result.reasons == {}
    assert result.scores["username"] == 0.0


def test_score_many_matches_score(scorer: FlagScorer) -> None:
    items = [
        ScoreInput("you absolute moron", "Jim in MN"),
        ScoreInput(""),
        ScoreInput("Buy now at a.com b.com c.com", None, 2),
        ScoreInput("the jews control the media", "IH8OBAMA"),
    ]
    assert scorer.score_many(items) == [scorer.score(i.body, i.author, i.duplicate_authors) for i in items]
    assert scorer.score_many([]) == []


def test_bad_input_is_rejected(scorer: FlagScorer) -> None:
    with pytest.raises(ValueError, match="duplicate_authors"):
        scorer.score("hi", duplicate_authors=-1)
    with pytest.raises(TypeError, match="body must be a string"):
        scorer.score(None)  # type: ignore[arg-type]


def test_rules_work_without_models() -> None:
    from dataclasses import replace

    cfg = load_moderation_config()
    models = {k: replace(v, enabled=False) for k, v in cfg.models.items()}
    scorer = FlagScorer(replace(cfg, models=models))
    result = scorer.score("you piece of shit")
    assert {"toxicity", "profanity"} <= set(result.flags)
    assert not any(r.startswith("model:") for rs in result.reasons.values() for r in rs)


# -- models ---------------------------------------------------------------------------------------


def test_word_featurizer_matches_model_features(scorer: FlagScorer) -> None:
    path = scorer.config.models["comments"].file
    assert path is not None
    model = SparseLinearModel.load(path)
    featurizer = WordFeaturizer(model)
    for text in [
        "RT @someone: you stupid b1tch lmao http://t.co/xyz",
        "The Jews have other things in view",
        "faggots everywhere smh",
        "",
    ]:
        an = analyze(text)
        assert sorted(set(featurizer.ids(an.normalized, an.words))) == sorted(
            set(model.ids(model_features(an.normalized)))
        )


def test_links_and_mentions_are_placeholder_words(scorer: FlagScorer) -> None:
    an = analyze("RT @someone: check www.example.com and https://t.co/xyz NOW")
    feats = model_features(an.normalized, an.words)
    assert [f for f in feats if " " not in f and not f.startswith("<")] == [
        "xxmention",
        "check",
        "xxlink",
        "and",
        "xxlink",
        "now",
    ]
    assert not any("example" in f or "t.co" in f for f in feats)
    path = scorer.config.models["comments"].file
    assert path is not None
    model = SparseLinearModel.load(path)
    featurizer = WordFeaturizer(model)
    texts = ["subscribe to my channel http://youtu.be/abc", "@bob www.x.com", "no link here", "ww.y.org is mine"]
    analyses = [analyze(t) for t in texts]
    (doc, feat), _ = featurizer.batch([a.normalized for a in analyses], [a.words for a in analyses])
    for d, a in enumerate(analyses):
        assert sorted(feat[doc == d].tolist()) == sorted(set(model.ids(model_features(a.normalized))))
    # The spam head learned the placeholder: the same words score higher with a link than without.
    spam = model.heads.index("spam")
    with_link, without = model.decision_function(
        [model_features(normalize(t)) for t in ("check out my channel http://a.b/c", "check out my channel")]
    )[:, spam]
    assert with_link > without


_NOISE_PIECES = st.sampled_from(
    [
        "http://",
        "https://",
        "htt",
        "h",
        "w",
        "ww.",
        "www.",
        "wwww.",
        "@",
        "@@",
        "a",
        "b_1",
        "x.y",
        "/",
        ":",
        " ",
        "'",
        ".",
    ]
)


@given(st.lists(_NOISE_PIECES, max_size=16).map("".join))
@settings(max_examples=400, deadline=None)
def test_link_and_mention_marking_matches_its_reference_pattern(text: str) -> None:
    """The fast pattern marks exactly what the reference pattern (the one the model was trained
    with) marks, link or mention alike."""
    from streams.enrich.flags.linear import LINK_WORD, MENTION_WORD, MODEL_NOISE_REFERENCE, _mark_noise

    reference = re.compile(MODEL_NOISE_REFERENCE).sub(
        lambda m: f" {MENTION_WORD} " if m.group().startswith("@") else f" {LINK_WORD} ", text
    )
    assert _mark_noise(text) == reference


def test_sparse_linear_model_reproduces_sklearn(tmp_path: Path) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    docs = ["you are an idiot", "have a nice day", "idiot idiot idiot", "nice nice day", "what a day you idiot"]
    y = [1, 0, 1, 0, 1]
    for tf, kwargs in (("binary", {"binary": True}), ("raw", {}), ("sublinear", {"sublinear_tf": True})):
        vec = TfidfVectorizer(analyzer=str.split, **kwargs)
        x = vec.fit_transform(docs)
        clf = LogisticRegression().fit(x, y)
        features = sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__)
        model = SparseLinearModel(features, vec.idf_, clf.coef_.T, clf.intercept_, heads=["h"], tf=tf)  # type: ignore[arg-type]
        model.save(tmp_path / f"{tf}.npz")
        loaded = SparseLinearModel.load(tmp_path / f"{tf}.npz")
        probe = [*docs, "unknown words only"]
        ours = loaded.decision_function([d.split() for d in probe])[:, 0]
        theirs = clf.decision_function(vec.transform(probe))
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_one_pass_featurizer_feeds_both_models(scorer: FlagScorer) -> None:
    path = scorer.config.models["comments"].file
    assert path is not None
    prof = ProfanityCheckModel()
    assert prof.vocabulary is not None
    featurizer = WordFeaturizer(SparseLinearModel.load(path), prof.vocabulary)
    texts = ["you are a piece of shit", "don't be such a jerk, it's fine", "have a lovely day"]
    pairs = [featurizer.ids_pair(analyze(t).normalized, analyze(t).words) for t in texts]
    np.testing.assert_allclose(
        prof.predict_ids([other for _, other in pairs]), prof.predict([normalize(t) for t in texts]), atol=1e-9
    )


def test_batch_featurizer_equals_one_text_at_a_time(scorer: FlagScorer) -> None:
    path = scorer.config.models["comments"].file
    assert path is not None
    prof = ProfanityCheckModel()
    assert prof.vocabulary is not None
    model = SparseLinearModel.load(path)
    featurizer = WordFeaturizer(model, prof.vocabulary)
    texts = [
        "RT @someone: you stupid b1tch lmao http://t.co/xyz",
        "you are a piece of shit, a piece of shit I say",
        "",
        "don't be such a jerk, it's fine rt rt",
        "The Jews have other things in view",
        "zzqx unseen wordsz never seen before qqzx",
        "have a lovely day",
    ]
    analyses = [analyze(t) for t in texts]
    featurizer.CACHE_SIZE = len(featurizer._rows) + 5  # force resets: rows get reused
    for batch in (analyses[::-1], analyses, analyses[::-1], analyses):
        (doc, feat), (sdoc, sfeat, scount) = featurizer.batch([a.normalized for a in batch], [a.words for a in batch])
        for i, an in enumerate(batch):
            own, other = featurizer.ids_pair(an.normalized, an.words)
            assert sorted(feat[doc == i].tolist()) == sorted(own)
            counted = dict(zip(sfeat[sdoc == i].tolist(), scount[sdoc == i].tolist(), strict=True))
            assert counted == {w: other.count(w) for w in set(other)}
    # A row freed by a reset is taken by a word with fewer ids: none of the old ones may remain.
    fresh = [w for w in model.vocabulary if w.isalpha() and w not in featurizer._rows]
    long_word = next(w for w in fresh if len(featurizer._entry(w)[0]) == 4)
    short_word = next(w for w in fresh if len(featurizer._entry(w)[0]) == 1)
    for word in (long_word, short_word):
        featurizer.CACHE_SIZE = len(featurizer._rows) - 1  # reset before this batch
        (doc, feat), _ = featurizer.batch([word], [(word,)])
        assert sorted(feat.tolist()) == sorted(featurizer.ids(word, (word,)))
    pairs = [featurizer.ids_pair(a.normalized, a.words) for a in analyses]
    (doc, feat), (sdoc, sfeat, scount) = featurizer.batch([a.normalized for a in analyses], [a.words for a in analyses])
    np.testing.assert_allclose(
        model.decision_function_pairs(doc, feat, len(texts)),
        model.decision_function_ids([own for own, _ in pairs]),
        atol=1e-12,
    )
    np.testing.assert_allclose(
        prof.predict_pairs(sdoc, sfeat, len(texts), scount), prof.predict_ids([o for _, o in pairs]), atol=1e-12
    )


def test_profanity_check_fast_path_equals_the_package() -> None:
    from profanity_check import profanity_check as pc

    model = ProfanityCheckModel()
    assert model.fast
    texts = ["you are a piece of shit", "have a lovely day", "what the hell is this", "damn damn damn"]
    np.testing.assert_allclose(model.predict(texts), pc.predict_prob(texts), atol=1e-9)


# -- configuration --------------------------------------------------------------------------------


def write_config(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / "moderation.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_default_config_loads_and_keeps_the_detectors_table() -> None:
    cfg = load_moderation_config()
    assert cfg.path == DEFAULT_CONFIG_PATH
    assert set(cfg.thresholds) == set(CATEGORIES)
    assert cfg.foreign["detectors"]["pile_on"] == {"min_authors": 3, "minutes": 10, "min_flagged": 1}
    assert cfg.foreign["detectors"]["toxicity_spike"]["factor"] == 3.0


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            TOX_LINE,
            'toxicity = "high"\n',
            "thresholds.toxicity: must be a number in [0, 1], got 'high' (str)",
        ),
        (TOX_LINE, "toxicity = 1.5\n", "thresholds.toxicity: must be in [0, 1], got 1.5"),
        (TOX_LINE, "toxicity = true\n", "thresholds.toxicity: must be a number"),
        (TOX_LINE, "toxicity = 0.5\ntoxicty = 0.5\n", "thresholds.toxicty: unknown key"),
        (TOX_LINE, "", "thresholds.toxicity: missing required key"),
        ("schema_version = 1\n", "schema_version = 1\n[extras]\nx = 1\n", "extras: unknown key"),
        ('id = "go-back"\n', 'id = "go-back"\ncolour = "red"\n', "phrases[8].colour: unknown key"),
        ("pattern = '''\\(\\(\\(", "pattern = '''((", "phrases[9].pattern: invalid regular expression"),
        ("pattern = '''\\(\\(\\(", "pattern = '''{nosuchmacro}\\(\\(\\(", "unknown macro {nosuchmacro}"),
        ("moron = 0.7\n", "moron = 7\n", 'lexicon.toxicity."moron": must be in [0, 1], got 7'),
        ("moron = 0.7\n", '"mo*ron" = 0.7\n', "'*' is only allowed at the start"),
        ('file = "comments-lr-v3.npz"', 'file = "missing.npz"', "models.comments.file: model file not found"),
        ("per_link = 0.2", "per_link = -0.2", "spam.per_link: must be in [0, 1]"),
        ("free_links = 1", "free_links = 1.5", "spam.free_links: must be an integer"),
        ("schema_version = 1", "schema_version = 2", "schema_version: unsupported version 2"),
        ("[thresholds]", "[thresholds\n", "invalid TOML"),
    ],
)
def test_config_errors_name_file_key_and_problem(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = write_config(tmp_path, old, new)
    with pytest.raises(ModerationConfigError) as excinfo:
        load_moderation_config(path)
    assert str(excinfo.value).startswith(f"{path}: ")
    assert message in str(excinfo.value)


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ModerationConfigError, match=re.escape(f"{missing}: moderation config file not found")):
        load_moderation_config(missing)
    assert issubclass(ModerationConfigError, ValueError)


def test_detectors_table_is_not_validated_here(tmp_path: Path) -> None:
    path = write_config(tmp_path, "spam_wave = { min_authors = 3, minutes = 5 }", 'spam_wave = "anything goes"')
    assert load_moderation_config(path).foreign["detectors"]["spam_wave"] == "anything goes"


def test_env_var_overrides_the_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, TOX_LINE, "toxicity = 0.9\n")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert load_moderation_config().thresholds["toxicity"] == 0.9
    assert load_moderation_config(DEFAULT_CONFIG_PATH).thresholds["toxicity"] == TOX_SHIPPED  # explicit path wins
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "gone.toml"))
    with pytest.raises(ModerationConfigError, match=r"gone\.toml: moderation config file not found"):
        load_moderation_config()


def test_edited_config_changes_decisions(tmp_path: Path) -> None:
    path = write_config(tmp_path, "moron = 0.7\n", "moron = 0.7\nnincompoop = 0.9\n")
    scorer = FlagScorer(load_moderation_config(path))
    result = scorer.score("what a nincompoop")
    assert "toxicity" in result.flags
    assert "lexicon:toxicity:nincompoop" in result.reasons["toxicity"]


def test_lexicon_terms_are_normalised_like_text() -> None:
    cfg = load_moderation_config()
    for category, terms in cfg.lexicons.items():
        for term in terms:
            core = term.strip("*")
            assert normalize(core), (category, term)


# -- phrase-rule macros ------------------------------------------------------------------------------


def _flat_rules() -> list[tuple[str, bool, re.Pattern[str], re.Pattern[str]]]:
    """Each shipped phrase and username rule compiled twice: with its macros as plain alternations
    (how one would write them by hand) and as loaded (tries); they must accept the same texts.
    Username rules see names with everything but letters and digits removed ("squashed")."""
    raw = tomllib.loads(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    macros = raw["macros"]

    def flat(m: re.Match[str], *, squash: bool) -> str:
        norms = [normalize(v) for v in macros[m.group(1)]]
        if squash:
            forms = [re.escape(re.sub(r"[\W_]+", "", n)) for n in norms]
        else:
            forms = [r"\s+".join(re.escape(w) for w in n.split(" ")) for n in norms]
        return "(?:" + "|".join(forms) + ")"

    config = load_moderation_config(DEFAULT_CONFIG_PATH)
    compiled: list[tuple[str, bool, re.Pattern[str], re.Pattern[str]]] = []
    for squash, sources, loaded in (
        (False, raw["phrases"], config.phrases),
        (True, raw["username"]["patterns"], config.username.patterns),
    ):
        for source, rule in zip(sources, loaded, strict=True):
            plain = re.sub(r"\{(\w+)\}", partial(flat, squash=squash), source["pattern"])
            compiled.append((rule.id, squash, re.compile(plain), rule.pattern))
    return compiled


_RULES = _flat_rules()
# Words the rules look for (macro values, literals of the patterns) plus filler.
_RULE_WORDS = sorted(
    {w for _, _, flat, _ in _RULES for w in re.findall(r"[a-z]{2,}", flat.pattern)}
    | {"i", "a", "you", "the", "and", "so", "very", "all", "of", "be", "should", "9/11", "!", ",", "...", "h8"}
)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_RULE_WORDS), min_size=1, max_size=12))
def test_macro_tries_accept_exactly_what_plain_alternations_accept(words: list[str]) -> None:
    spaced, squashed = " ".join(words), "".join(words)
    for rule_id, squash, flat, trie in _RULES:
        text = squashed if squash else spaced
        assert (flat.search(text) is None) == (trie.search(text) is None), (rule_id, text)


def test_macro_tries_agree_with_plain_alternations_on_the_sample_and_probe_texts() -> None:
    lines = PROBE.read_text(encoding="utf-8").splitlines() + SAMPLE.read_text(encoding="utf-8").splitlines()
    texts = [analyze(line).normalized for line in lines if line.strip() and not line.startswith("#")]
    matched = 0
    for rule_id, squash, flat, trie in _RULES:
        for text in texts:
            if squash:
                text = re.sub(r"[\W_]+", "", text)
            hit = flat.search(text) is not None
            assert hit == (trie.search(text) is not None), (rule_id, text)
            matched += hit
    assert matched > 0  # the comparison saw matches, not only misses


# -- streams score ----------------------------------------------------------------------------------


def run(lines: list[bytes], *, text_mode: bool = False, batch_size: int = 512) -> tuple[list[dict[str, object]], int]:
    out = io.BytesIO()
    errors = run_score(
        io.BytesIO(b"".join(lines)), out, text_mode=text_mode, batch_size=batch_size, scorer=_shared_scorer()
    )
    return [orjson.loads(line) for line in out.getvalue().splitlines()], errors


_SCORER: list[FlagScorer] = []


def _shared_scorer() -> FlagScorer:
    if not _SCORER:
        _SCORER.append(FlagScorer())
    return _SCORER[0]


def test_score_json_lines_in_order_with_errors() -> None:
    lines = [
        b'{"body": "what an absolute moron", "author": "FireBrander", "event_id": "e1"}\n',
        b"not json\n",
        b'{"body": 5}\n',
        b"[1, 2]\n",
        b'{"author": "x"}\n',
        b"\n",
        b'{"body": "Nice article, thanks.", "author": null}\r\n',
        b'{"body": "", "author": "Dindu Nuffins"}',  # no final newline
    ]
    out, errors = run(lines, batch_size=3)
    assert errors == 5
    assert len(out) == len(lines)
    assert out[0]["flags"] == ["toxicity"]
    # The input's identifying fields come back with the result (author and event_id here).
    assert set(out[0]) == {"author", "event_id", "scores", "flags", "reasons"}
    assert (out[0]["author"], out[0]["event_id"]) == ("FireBrander", "e1")
    assert str(out[1]["error"]).startswith("line 2: invalid JSON")
    assert out[2] == {"error": "line 3: field 'body' is not a string (int)"}
    assert out[3] == {"error": "line 4: expected a JSON object, got list"}
    assert out[4] == {"author": "x", "error": "line 5: field 'body' is missing"}  # identifiers kept
    assert "error" in out[5]
    assert out[6]["flags"] == []
    assert "author" not in out[6]  # null is not passed through
    assert out[7]["flags"] == ["username"]


def test_score_passes_identifiers_through_also_on_error_lines() -> None:
    lines = [
        b'{"comment_id": "c1", "event_id": "e1", "author": "Jim in MN", "body": "nice", "thread": "t"}\n',
        b'{"comment_id": 42, "body": 7}\n',
        b'{"comment_id": true, "event_id": ["x"], "body": "hello"}\n',
    ]
    out, errors = run(lines)
    assert errors == 1
    assert {k: out[0][k] for k in ("comment_id", "event_id", "author")} == {
        "comment_id": "c1",
        "event_id": "e1",
        "author": "Jim in MN",
    }
    assert "thread" not in out[0]  # only the identifying fields
    assert out[1] == {"comment_id": 42, "error": "line 2: field 'body' is not a string (int)"}
    assert set(out[2]) == {"scores", "flags", "reasons"}  # a bool or a list is not an identifier


def test_the_score_command_exits_non_zero_when_a_line_fails() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "score"],
        input=b'{"comment_id": "a", "body": "lovely weather"}\nnot json\n{"comment_id": "c", "body": "ok"}\n',
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 1
    rows = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [row.get("comment_id") for row in rows] == ["a", None, "c"]  # every line still written
    assert "error" in rows[1] and "scores" in rows[2]
    assert b"1 line(s) could not be scored" in done.stderr


def test_score_text_mode() -> None:
    out, errors = run([b"you moron\n", b"\n", b"bad \xff utf-8 but scored\n", b"hello"], text_mode=True, batch_size=2)
    assert errors == 0
    assert [o["flags"] for o in out] == [["toxicity"], [], [], []]


def test_score_matches_scorer_output() -> None:
    out, _ = run([b'{"body": "the jews control the media"}\n'])
    expected = _shared_scorer().score("the jews control the media")
    assert out[0] == {"scores": expected.scores, "flags": expected.flags, "reasons": expected.reasons}


def test_score_writes_each_batch_as_it_completes() -> None:
    class Recorder(io.BytesIO):
        def __init__(self) -> None:
            super().__init__()
            self.writes = 0

        def write(self, data: bytes) -> int:  # type: ignore[override]
            self.writes += 1
            return super().write(data)

    out = Recorder()
    body = b"".join(b'{"body": "line %d"}\n' % i for i in range(7))
    assert run_score(io.BytesIO(body), out, text_mode=False, batch_size=3, scorer=_shared_scorer()) == 0
    assert out.writes == 3  # 3 + 3 + 1
    assert len(out.getvalue().splitlines()) == 7
    with pytest.raises(ValueError, match="batch_size"):
        run_score(io.BytesIO(b""), io.BytesIO(), text_mode=True, batch_size=0, scorer=_shared_scorer())


def test_score_survives_a_failing_scorer() -> None:
    class Flaky(FlagScorer):
        def score_many(self, items):  # type: ignore[no-untyped-def]
            if any("boom" in i.body for i in items):
                raise RuntimeError("boom")
            return super().score_many(items)

    out = io.BytesIO()
    errors = run_score(io.BytesIO(b"fine\nboom\nfine too\n"), out, text_mode=True, scorer=Flaky())
    rows = [orjson.loads(x) for x in out.getvalue().splitlines()]
    assert errors == 1
    assert "scores" in rows[0] and "scores" in rows[2]
    assert rows[1] == {"error": "line 2: scoring failed: RuntimeError: boom"}


def test_the_score_command_writes_one_line_per_input_in_order() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "score", "--text"],
        input=b"what an absolute moron\nlovely weather today\nholy shit, what a goal\n",
        capture_output=True,
        timeout=120,
        check=True,
    )
    rows = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [row["flags"] for row in rows] == [["toxicity"], [], ["profanity"]]
    refused = subprocess.run(
        [sys.executable, "-m", "streams.cli", "score", "--batch-size", "0"], capture_output=True, timeout=120
    )
    assert refused.returncode != 0 and b"--batch-size" in refused.stderr


def test_freezing_moves_live_objects_out_of_the_collectors_reach() -> None:
    gc.unfreeze()
    try:
        freeze_long_lived_objects()
        assert gc.get_freeze_count() > 10_000  # the modules and models loaded by now
        assert gc.get_count()[2] == 0
    finally:
        gc.unfreeze()


# -- adversarial input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "!" * 50_000,
        "*" * 50_000,
        "a*" * 25_000,
        "$" * 50_000,
        "a." * 25_000,
        "(((" * 15_000,
        "f u c k " * 6_000,
        "sh" + "i" * 50_000 + "t",
        "the jews " * 5_000,
        "a!1$@*.- " * 5_000,
    ],
    ids=lambda b: repr(b[:6]),
)
def test_pathological_bodies_stay_linear(scorer: FlagScorer, body: str) -> None:
    import time

    from streams.enrich.language import detect_language
    from streams.enrich.text import text_features

    started = time.process_time()
    scorer.score(body, author=body[:200])
    text_features(body)
    detect_language(body)
    # Quadratic regex backtracking would take tens of seconds here; linear work is ~0.1 s.
    assert time.process_time() - started < 3.0


# -- reasons agree with the scores ----------------------------------------------------------------


def _reason_texts() -> list[str]:
    lines = [x.strip() for x in PROBE.read_text().splitlines() if x.strip() and not x.startswith("#")]
    extra = [
        "you are a stupid idiot and i hate you",
        "holy shit, what a goal",
        "the jews control the media",
        "all muslims are terrorists and should be deported",
        "I will find you and I will hurt you",
        "Earn $500 a day from home, click www.cash.com now",
        "what a load of crap, you moron",
        "fucking immigrants ruin everything",
    ]
    return sample_comments() + lines[:80] + extra


def test_a_model_named_as_a_reason_moved_the_score(scorer: FlagScorer) -> None:
    from dataclasses import replace

    texts = _reason_texts()
    results = scorer.score_many([ScoreInput(t) for t in texts])
    cfg = scorer.config
    cited = 0
    for name, model in cfg.models.items():
        if not model.enabled:
            continue
        without = FlagScorer(replace(cfg, models={**cfg.models, name: replace(model, enabled=False)}))
        others = without.score_many([ScoreInput(t) for t in texts])
        for text, with_it, without_it in zip(texts, results, others, strict=True):
            for category, reasons in with_it.reasons.items():
                if any(r.startswith(f"model:{model.id}:") for r in reasons):
                    cited += 1
                    assert with_it.scores[category] != without_it.scores[category], (text, category, reasons)
    assert cited >= 5  # the check saw models cited


def test_toxicity_set_by_an_included_category_names_it_not_the_model(scorer: FlagScorer) -> None:
    result = scorer.score("gas the jews")
    assert result.scores["toxicity"] == result.scores["identity_attack"]
    assert "category:identity_attack" in result.reasons["toxicity"]
    assert not any(r.startswith("model:") for r in result.reasons["toxicity"])


# -- display names and the shared lexicons ----------------------------------------------------------


@pytest.mark.parametrize(
    "author",
    [
        "Scunthorpe",
        "Dickens Fan",
        "assassin_creed_fan",
        "Cockburn",
        "Penistone Town",
        "Sussex Gardener",
        "Raccoon Rescue",
        "Tycoon88",
        "Pakistani Chef",
        "Spicer",
        "Cocktail Lover",
        "Hancock",
        "Matsushita",
        "ClassicCars",
        "Therapist Jane",
        "Grape Ape",
    ],
)
def test_benign_names_containing_a_slur_are_not_flagged(scorer: FlagScorer, author: str) -> None:
    result = scorer.score("", author=author)
    assert "username" not in result.flags
    assert not any(r.startswith("username:lexicon:") for r in result.reasons.get("username", []))


@pytest.mark.parametrize(
    ("author", "reason"),
    [
        ("xXniggerXx", "username:lexicon:identity_attack:nigger"),
        ("BigCoon", "username:lexicon:identity_attack:coon"),
        ("SpicHunter", "username:lexicon:identity_attack:spic"),
        ("RetardAlert", "username:lexicon:identity_attack:retard"),
    ],
)
def test_names_with_lexicon_slurs_are_flagged_with_category_and_term(
    scorer: FlagScorer, author: str, reason: str
) -> None:
    result = scorer.score("", author=author)
    assert "username" in result.flags
    # Where the comment lexicon has the word at a higher weight, its reason stands instead.
    assert reason in result.reasons["username"] or reason.removeprefix("username:") in result.reasons["username"]


def test_mild_lexicon_terms_in_names_are_reasons_below_the_threshold(scorer: FlagScorer) -> None:
    result = scorer.score("", author="Dick Smith")  # a first name, and a mild term
    assert "username" not in result.flags
    assert 0.0 < result.scores["username"] < scorer.config.thresholds["username"]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("kike\tslurs\t3\tword", "category must be one of"),
        ("kike\tidentity_attack\t9\tword", "severity must be in [1, 3]"),
        ("kike\tidentity_attack\t3\tinside", "mode must be 'word' or 'contains'"),
        ("kike\tidentity_attack\t3", "expected 4 tab-separated fields"),
    ],
)
def test_a_broken_display_name_lexicon_is_refused_with_file_and_line(tmp_path: Path, row: str, problem: str) -> None:
    source = DEFAULT_CONFIG_PATH.parent / "username-lexicon-v1.tsv"
    (tmp_path / "username-lexicon-v1.tsv").write_text(source.read_text(encoding="utf-8") + row + "\n")
    text = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")
    (tmp_path / "moderation.toml").write_text(text)
    for model in ("comments-lr-v3.npz",):
        (tmp_path / model).symlink_to(DEFAULT_CONFIG_PATH.parent / model)
    with pytest.raises(ModerationConfigError, match=re.escape(problem)) as info:
        load_moderation_config(tmp_path / "moderation.toml")
    assert "username-lexicon-v1.tsv:" in str(info.value)
