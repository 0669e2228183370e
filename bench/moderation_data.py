"""The labelled moderation sets in /work/shared/data/moderation, read into one row type, with
the seeded TRAIN / DEV / TEST split that bench/train_flags.py and bench/flags_eval.py share.

Read here only (training and the bench), never at run time.

Split: ``bucket = blake2b(f"{SPLIT_SEED}:{set}:{row id}") mod 10``; buckets 0-1 are TEST (20%,
never used for any choice), bucket 2 is DEV (10%, thresholds and hyper-parameters), 3-9 TRAIN.
The row id is the set's own id column where it has one (OLID, toxic_spans, YouTube, Wikipedia);
sets without one (Gab, implicit hate, ToxiGen, SMS) use the whitespace-collapsed, case-folded
text, so copies of one post always land on the same side.

Labels are per category, in [0, 1] (soft where the set has several annotators), or None where
the set says nothing about that category (such rows are left out of that head's training and of
its evaluation). What each set's labels mean for our categories is in `LABELS` (printed in the
bench and PROVENANCE.md).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DATA_ROOT = Path("/work/shared/data/moderation")
SPLIT_SEED = "comment-streams-moderation-v2"
N_BUCKETS = 10
TEST_BUCKETS = frozenset({0, 1})
DEV_BUCKETS = frozenset({2})
CATS = ("toxicity", "profanity", "identity_attack", "threat", "spam")

#: Upstream commit of each set (from the data README), recorded in the model's provenance.
SOURCES = {
    "toxic_spans": ("ipavlopoulos/toxic_spans @ beaf170, data/", "CC0-1.0"),
    "gab": ("liuchaoqun/hate-speech-datasets @ 98f3ee8, GabHateCorpus/Data/ghc_train.tsv", "CC-BY-4.0"),
    "olid": ("wenliangdai/multi-task-offensive-language-detection @ 6c2071a, OLIDv1.0/", "CC-BY-4.0"),
    "implicit_hate": ("liuchaoqun/hate-speech-datasets @ 98f3ee8, implicit-hate-corpus/", "CC-BY-4.0"),
    "toxigen": ("microsoft/TOXIGEN @ 01517e8, prompts/, demonstrations/", "MIT"),
    "youtube_spam": ("tuliocasagrande/youtube-spam-experiment @ 12165f0, data_csv/", "CC-BY-4.0"),
    "sms_spam": ("hamzaaacodes/sms-spam-collection @ f3e73e1", "CC-BY-4.0"),
    "wikipedia": ("ipavlopoulos/context_toxicity @ 5df49c2, data/CAT_LARGE (gc.csv, gn.csv)", "Apache-2.0"),
}

#: How each set's labels map onto our categories (None: not labelled by that set).
LABELS = {
    "toxic_spans": "toxicity = share of annotators who marked any toxic span; profanity / "
    "identity_attack / threat = share who marked a Profane/Obscene / Identity based Attack / Threat "
    "span; insult (eval only) = share who marked an Insult span",
    "gab": "identity_attack = hd (hate, degradation), threat = cv (call for violence), profanity = "
    "vo (vulgar/offensive language); toxicity unlabelled",
    "olid": "toxicity = subtask A OFF; NOT rows are negatives for every text category (OLID counts "
    "profanity as offensive)",
    "implicit_hate": "identity_attack = implicit or explicit hate; threat = stage-2 class "
    "'threatening' (explicit hate: unlabelled); not_hate rows negative for threat",
    "toxigen": "identity_attack = hate; neutral sentences are negatives for every text category",
    "youtube_spam": "spam = CLASS 1",
    "sms_spam": "spam = spam; ham rows negatives for toxicity, identity_attack, threat",
    "wikipedia": "toxicity = label; non-toxic rows are negatives for identity_attack and threat",
}

#: Labels read only by the bench (`Row.extra`), not trained on. (Kept apart from LABELS, which is
#: recorded in the shipped models' metadata.)
EXTRA_LABELS = {
    "toxic_spans": "insult = share of annotators who marked an Insult span; toxic_not_profane = share "
    "who marked a span of another type than Profane/Obscene",
    "olid": "offensive = subtask A OFF, which OLID defines as profanity or a targeted offence, so it is "
    "scored by max(toxicity, profanity); targeted = subtask B TIN (a targeted insult or threat; UNT, "
    "untargeted swearing, and NOT are negatives)",
}


@dataclass(frozen=True)
class Row:
    set: str
    row_id: str
    text: str
    labels: dict[str, float | None]
    author: str | None = None
    #: Extra labels used only for evaluation (e.g. toxic_spans insult).
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def bucket(self) -> int:
        digest = hashlib.blake2b(f"{SPLIT_SEED}:{self.set}:{self.row_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % N_BUCKETS

    @property
    def split(self) -> str:
        b = self.bucket
        return "test" if b in TEST_BUCKETS else "dev" if b in DEV_BUCKETS else "train"


_SPACE = re.compile(r"\s+")
# OLID replaces user names and links with these placeholders: drop them (no such tokens in our stream).
_OLID_PLACEHOLDER = re.compile(r"@USER\b|\bURL\b")


def text_key(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold()


def _labels(**known: float | None) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(CATS)
    out.update(known)
    return out


def toxic_spans(root: Path = DATA_ROOT) -> Iterator[Row]:
    d = root / "toxic_spans"
    span_types: dict[str, set[str]] = defaultdict(set)
    with (d / "spans.csv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            span_types[rec["annotation"]].add(rec["type"].strip())
    per_comment: dict[str, list[set[str]]] = defaultdict(list)
    with (d / "annotations.csv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            per_comment[rec["comment_id"]].append(span_types.get(rec["annotation"], set()))
    with (d / "comments.csv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            anns = per_comment.get(rec["comment_id"])
            if not anns:
                continue
            n = len(anns)

            def share(kind: str, anns: list[set[str]] = anns, n: int = n) -> float:
                return sum(any(t.startswith(kind) for t in a) for a in anns) / n

            yield Row(
                "toxic_spans",
                rec["comment_id"],
                rec["comment_text"],
                _labels(
                    toxicity=sum(bool(a - {""}) for a in anns) / n,
                    profanity=share("Profane"),
                    identity_attack=share("Identity"),
                    threat=share("Threat"),
                ),
                extra={
                    "insult": share("Insult"),
                    # toxicity without the spans that are only profane (the project's toxicity).
                    "toxic_not_profane": sum(any(t and not t.startswith("Profane") for t in a) for a in anns) / n,
                },
            )


def gab(root: Path = DATA_ROOT) -> Iterator[Row]:
    with (root / "gab_hate_corpus" / "ghc_train.tsv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            text = rec["text"]
            if len(text) >= 2 and text[0] == text[-1] == '"':
                text = text[1:-1].replace('""', '"')
            yield Row(
                "gab",
                text_key(text),
                text,
                _labels(identity_attack=float(rec["hd"]), threat=float(rec["cv"]), profanity=float(rec["vo"])),
            )


def olid(root: Path = DATA_ROOT) -> Iterator[Row]:
    with (root / "olid" / "olid-training-v1.0.tsv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            text = _SPACE.sub(" ", _OLID_PLACEHOLDER.sub(" ", rec["tweet"])).strip()
            off = rec["subtask_a"] == "OFF"
            labels = (
                _labels(toxicity=1.0) if off else _labels(toxicity=0.0, profanity=0.0, identity_attack=0.0, threat=0.0)
            )
            # Level B splits OFF into targeted (TIN: insults, threats) and untargeted (UNT: swearing).
            targeted = float(rec["subtask_b"] == "TIN") if off else 0.0
            yield Row("olid", rec["id"], text, labels, extra={"offensive": float(off), "targeted": targeted})


_IH_JUNK = re.compile(r'^[\s"]+|[\s"]+$')


def implicit_hate(root: Path = DATA_ROOT) -> Iterator[Row]:
    d = root / "implicit_hate"
    fine: dict[str, str] = {}
    with (d / "implicit_hate_v1_stg2_posts.tsv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f, delimiter="\t"):
            fine[rec["post"]] = rec["implicit_class"]
    with (d / "implicit_hate_v1_stg1_posts.tsv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f, delimiter="\t"):
            post, klass = rec["post"], rec["class"]
            text = _IH_JUNK.sub("", post.replace('""', '"'))
            if klass == "not_hate":
                labels = _labels(identity_attack=0.0, threat=0.0)
            elif klass == "implicit_hate":
                labels = _labels(identity_attack=1.0, threat=float(fine.get(post) == "threatening"))
            else:
                labels = _labels(identity_attack=1.0)
            yield Row("implicit_hate", text_key(text), text, labels)


def toxigen(root: Path = DATA_ROOT) -> Iterator[Row]:
    with (root / "toxigen" / "toxigen_seed_sentences.csv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            text = rec["text"].strip()
            hate = rec["label"] == "hate"
            labels = (
                _labels(identity_attack=1.0)
                if hate
                else _labels(toxicity=0.0, profanity=0.0, identity_attack=0.0, threat=0.0, spam=0.0)
            )
            yield Row("toxigen", text_key(text), text, labels, extra={"neutral": float(not hate)})


def youtube_spam(root: Path = DATA_ROOT) -> Iterator[Row]:
    for path in sorted((root / "youtube_spam").glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                yield Row(
                    "youtube_spam",
                    rec["COMMENT_ID"],
                    rec["CONTENT"],
                    _labels(spam=float(rec["CLASS"])),
                    author=rec["AUTHOR"],
                )


def sms_spam(root: Path = DATA_ROOT) -> Iterator[Row]:
    with (root / "sms_spam" / "SMSSpamCollection.tsv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            spam = rec["Label"] == "spam"
            labels = _labels(spam=1.0) if spam else _labels(spam=0.0, toxicity=0.0, identity_attack=0.0, threat=0.0)
            yield Row("sms_spam", text_key(rec["SMS"]), rec["SMS"], labels)


def wikipedia(root: Path = DATA_ROOT) -> Iterator[Row]:
    for name in ("gc.csv", "gn.csv"):
        with (root / "wikipedia_context" / name).open(newline="", encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                toxic = float(rec["label"])
                labels = _labels(toxicity=1.0) if toxic else _labels(toxicity=0.0, identity_attack=0.0, threat=0.0)
                yield Row("wikipedia", rec["id"], rec["text"], labels)


LOADERS = {
    "toxic_spans": toxic_spans,
    "gab": gab,
    "olid": olid,
    "implicit_hate": implicit_hate,
    "toxigen": toxigen,
    "youtube_spam": youtube_spam,
    "sms_spam": sms_spam,
    "wikipedia": wikipedia,
}


def load_all(root: Path = DATA_ROOT) -> list[Row]:
    """Every row of every set, deterministic order; spam negatives are added for comment sets."""
    rows: list[Row] = []
    for name, loader in LOADERS.items():
        for row in loader(root):
            if row.labels["spam"] is None and name not in ("youtube_spam", "sms_spam"):
                # Ordinary comments, toxic or not, are not spam: negatives for the spam head.
                row.labels["spam"] = 0.0
            rows.append(row)
    return rows


def file_digests(root: Path = DATA_ROOT) -> dict[str, str]:
    """sha256 of every data file read, for the model's provenance."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in (".csv", ".tsv", ".json", ".txt") and "LICENSE" not in path.name:
            if path.name.startswith("implicit_hate_v1_stg3") or path.name == "cat_small.csv":
                continue
            if path.parent.name == "lexicons":
                continue
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


if __name__ == "__main__":
    rows = load_all()
    summary: dict[str, dict[str, object]] = {}
    for r in rows:
        s = summary.setdefault(r.set, {"rows": 0, "test": 0, "dev": 0})
        s["rows"] = int(s["rows"]) + 1  # type: ignore[call-overload]
        if r.split != "train":
            s[r.split] = int(s[r.split]) + 1  # type: ignore[call-overload]
        for c, v in r.labels.items():
            if v is not None:
                key = f"{c}+"
                s[key] = int(s.get(key, 0)) + int(v >= 0.5)  # type: ignore[call-overload]
    print(json.dumps(summary, indent=1))
