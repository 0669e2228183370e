"""Build streams/enrich/data/username-lexicon-v1.tsv from the shared slur/profanity lexicons.

    .venv/bin/python bench/build_username_lexicon.py     # deterministic; rewrites the file

Sources (/work/shared/data/moderation/lexicons, read here only): surge-ai/profanity @ 77dabf3
(MIT: terms with categories and severity 1-3), dsojevic/profanity-list @ c279243 (MIT: match
patterns, tags, severity 1-4), LDNOOBW @ 5faf2ba (CC-BY-4.0: plain words). Each term is normalised
like display names (streams.enrich.normalize), mapped to one of our categories and given one
severity on surge-ai's 1-3 scale (the highest any source gives it):

    identity_attack  racial / ethnic slurs, sexual orientation / gender, mental / physical
                     disability, religious offense (surge); racial, lgbtq (dsojevic)
    profanity        sexual anatomy / acts, bodily fluids (surge); sexual, shock, religious
                     (dsojevic); every LDNOOBW word not in the other two (severity 2)
    toxicity         general insult, animal references, physical attributes, political (surge);
                     general (dsojevic)

Match mode (the Scunthorpe problem): a term is matched inside a squashed name ("xXniggerXx") only
when it is severe (severity >= 2.5),
has at least 5 letters and no ordinary word contains it: the ordinary words are those seen
at least twice in the non-toxic rows of the TRAIN split of the labelled comment sets (Wikipedia
talk, OLID NOT, SMS ham, ToxiGen neutral), other than the term's own inflections. Every other term
matches only as a whole word of the name ("Big Coon"), never inside "Raccoon" or "Tycoon".
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import moderation_data as md  # noqa: E402

from streams.enrich.flags import DATA_DIR  # noqa: E402
from streams.enrich.normalize import normalize, tokens_of_normalized  # noqa: E402

LEX = md.DATA_ROOT / "lexicons"
OUT = DATA_DIR / "username-lexicon-v1.tsv"
SURGE = {
    "racial / ethnic slurs": "identity_attack",
    "sexual orientation / gender": "identity_attack",
    "mental disability": "identity_attack",
    "physical disability": "identity_attack",
    "religious offense": "identity_attack",
    "sexual anatomy / sexual acts": "profanity",
    "bodily fluids / excrement": "profanity",
    "other / general insult": "toxicity",
    "animal references": "toxicity",
    "physical attributes": "toxicity",
    "political": "toxicity",
}
DSOJEVIC = {"racial": "identity_attack", "lgbtq": "identity_attack", "general": "toxicity"}
# Identity attacks outrank insults, insults outrank profanity, when sources disagree.
RANK = {"identity_attack": 0, "toxicity": 1, "profanity": 2}
INFLECTIONS = ("", "s", "es", "z", "y", "ies", "ing", "in", "er", "ers", "ed", "a", "as", "ish")
MIN_CONTAINS = 5
#: Only severe terms are worth matching inside other words (the Scunthorpe risk).
MIN_CONTAINS_SEVERITY = 2.5


def squash(term: str) -> str:
    return re.sub(r"[\W_]+", "", normalize(term))


def collect() -> dict[str, tuple[str, float]]:
    terms: dict[str, tuple[str, float]] = {}

    def add(raw: str, category: str, severity: float) -> None:
        norm = " ".join(tokens_of_normalized(normalize(raw)))
        if len(squash(norm)) < 3:
            return
        old = terms.get(norm)
        if old is None:
            terms[norm] = (category, severity)
        else:
            best = min(old[0], category, key=RANK.__getitem__)
            terms[norm] = (best, max(old[1], severity))

    with (LEX / "surge_profanity_en.csv").open(newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            add(rec["text"], SURGE.get(rec["category_1"], "profanity"), float(rec["severity_rating"]))
    for entry in json.loads((LEX / "dsojevic_profanity_en.json").read_text(encoding="utf-8")):
        category = next((DSOJEVIC[t] for t in entry["tags"] if t in DSOJEVIC), "profanity")
        severity = min(3.0, float(entry["severity"]))
        for form in entry["match"].split("|"):
            add(form.replace("*", ""), category, severity)
    for line in (LEX / "ldnoobw_en.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and " ".join(tokens_of_normalized(normalize(line))) not in terms:
            add(line, "profanity", 2.0)
    return terms


def ordinary_words() -> Counter[str]:
    words: Counter[str] = Counter()
    for row in md.load_all():
        if row.split != "train" or row.set not in ("wikipedia", "olid", "sms_spam", "toxigen"):
            continue
        if any(row.labels[c] for c in ("toxicity", "identity_attack", "profanity", "threat")):
            continue
        words.update(set(tokens_of_normalized(normalize(row.text))))
    return words


def main() -> int:
    terms = collect()
    words = ordinary_words()
    common = [w for w, n in words.items() if n >= 2 and w.isalpha()]
    term_words = {squash(t) for t in terms}
    lines = []
    for term in sorted(terms):
        category, severity = terms[term]
        key = squash(term)
        benign = []
        if len(key) >= MIN_CONTAINS:
            own = {key + suffix for suffix in INFLECTIONS}
            benign = [w for w in common if key in w and w not in own and w not in term_words]
        mode = "contains" if len(key) >= MIN_CONTAINS and severity >= MIN_CONTAINS_SEVERITY and not benign else "word"
        lines.append(f"{term}\t{category}\t{severity:g}\t{mode}")
    header = [
        "# Display-name lexicon (generated by bench/build_username_lexicon.py; do not edit by hand).",
        "# Derived from surge-ai/profanity @ 77dabf3 (MIT), dsojevic/profanity-list @ c279243 (MIT),",
        "# LDNOOBW @ 5faf2ba (CC-BY-4.0); licences in LICENSE-lexicons. Columns: term (normalised),",
        "# category, severity (1-3), mode (word: a whole word of the name; contains: also inside it).",
        "term\tcategory\tseverity\tmode",
    ]
    OUT.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    modes = Counter(line.rsplit("\t", 1)[1] for line in lines)
    print(f"wrote {OUT}: {len(lines)} terms, {dict(modes)}; {len(common)} ordinary words checked")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
