"""Moderation flags: a score, a decision and the reasons for each category, for one comment.

Every category score is a noisy-OR of independent pieces of evidence, each a weight in [0, 1]:
``score = 1 - prod(1 - w_i)``. Evidence comes from

- lexicon terms (``lexicon:<category>:<term>``) and phrase rules (``phrase:<category>:<id>``),
  both in `data/moderation.toml`, matched on normalised text (see `streams.enrich.normalize`);
- linear models (``model:<id>:<probability>``): our comment model, one logistic-regression head
  per text category (`comments-lr-v3`, trained by bench/train_flags.py on labelled comment sets;
  weights shipped in `data/`, scored with numpy, no pickle) and alt-profanity-check for profanity;
  a model's probability (re-based to the configured prior) times the configured weight. A model is
  named as a reason only where it moved the rounded score;
- spam signals (``spam:links=N``, ``spam:duplicate_authors=N``);
- for `username`, the display name checked against username rules, the comment lexicons and the
  display-name lexicon (`data/username-lexicon-v1.tsv`: category and severity per term).

`toxicity` is at least the score of the categories it includes (identity attacks and threats are
toxic too), with reason ``category:<name>``. A category is flagged when its score reaches its
threshold. Scores are rounded to 4 decimals; reasons are listed even below the threshold, so a
moderator sees why a comment scored what it did.

Modules: `config` (the validated config and its loader), `linear` (our model's features and the
linear heads), `profanity` (alt-profanity-check and the per-process model cache), `evidence`
(noisy-OR and reasons), `scorer` (`FlagScorer`). Their public names are importable from here
(``X as X``: public, though not in `__all__`).
"""

from streams.enrich.flags.config import (
    CATEGORIES,
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    ModerationConfig,
    ModerationConfigError,
    PhraseRule,
    load_moderation_config,
)
from streams.enrich.flags.config import DATA_DIR as DATA_DIR
from streams.enrich.flags.config import FOREIGN_TABLES as FOREIGN_TABLES
from streams.enrich.flags.config import PROFANITY_CHECK as PROFANITY_CHECK
from streams.enrich.flags.config import SCHEMA_VERSION as SCHEMA_VERSION
from streams.enrich.flags.config import SEVERITY_BANDS as SEVERITY_BANDS
from streams.enrich.flags.config import TEXT_CATEGORIES as TEXT_CATEGORIES
from streams.enrich.flags.config import ModelConfig as ModelConfig
from streams.enrich.flags.config import SpamConfig as SpamConfig
from streams.enrich.flags.config import UsernameConfig as UsernameConfig
from streams.enrich.flags.config import model_version_of as model_version_of
from streams.enrich.flags.evidence import Evidence as Evidence
from streams.enrich.flags.linear import SparseLinearModel, WordFeaturizer, model_features
from streams.enrich.flags.linear import TfMode as TfMode
from streams.enrich.flags.profanity import ProfanityCheckModel as ProfanityCheckModel
from streams.enrich.flags.scorer import FlagScorer, ScoreInput
from streams.models import FlagResult as FlagResult

__all__ = [
    "CATEGORIES",
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "FlagScorer",
    "ModerationConfig",
    "ModerationConfigError",
    "PhraseRule",
    "ScoreInput",
    "SparseLinearModel",
    "WordFeaturizer",
    "load_moderation_config",
    "model_features",
]
