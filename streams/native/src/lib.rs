//! Compiled fast path for `streams.enrich.normalize._analyze`, the hottest pure function of the
//! scorer and of the enrichment step (profile: about a third of `FlagScorer.score_many`).
//!
//! `analyze_folded` takes a text that Python has already mapped (look-alike letters, accents) and
//! casefolded, and that holds no non-ASCII letter, digit or space (Python checks that; emoji and
//! punctuation are fine). It runs the remaining steps of `_analyze` (leetspeak, whitespace, letter
//! runs, words) and returns `(normalized, words, elongated)`, or `None` where the text needs a step
//! this code does not implement (letters spaced out to dodge filters: `f u c k`), and Python runs its
//! reference code instead. Every decision copies the Python code's regular expressions, named in
//! the comments; tests/unit/test_native.py property-tests the two against each other.
//!
//! Under the precondition, every byte >= 0x80 belongs to a character that is neither a word
//! character, a letter nor whitespace, and every step below changes ASCII bytes only, so working on
//! the UTF-8 bytes keeps the text valid UTF-8 and gives the same answers as Python's `re` on
//! characters.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFrozenSet, PyString, PyTuple};
use rustc_hash::FxHasher;

type FxBuildHasher = BuildHasherDefault<FxHasher>;
type FxMap<V> = HashMap<String, V, FxBuildHasher>;

/// The characters leetspeak substitutes: `[013457@$!]`.
fn is_leet(b: u8) -> bool {
    matches!(
        b,
        b'0' | b'1' | b'3' | b'4' | b'5' | b'7' | b'@' | b'$' | b'!'
    )
}

/// `[^\W\d_]` on this input: an ASCII letter.
fn is_letter(b: u8) -> bool {
    b.is_ascii_alphabetic()
}

/// `[\w@$!]`: a character of a leetspeak candidate word.
fn is_candidate(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'$' | b'!')
}

/// `str.isspace()` on ASCII: what `str.split()` splits on.
fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ')
}

/// `_LEET_HINT`: `[013457@$!](?<=[a-z].)[013457@$!]*+(?=[a-z])|\$(?<=[a-z].)|\$[a-z]`.
fn leet_hint(b: &[u8]) -> bool {
    let n = b.len();
    for i in 0..n {
        let c = b[i];
        if !is_leet(c) {
            continue;
        }
        if i >= 1 && b[i - 1].is_ascii_lowercase() {
            if c == b'$' {
                return true;
            }
            let mut j = i + 1;
            while j < n && is_leet(b[j]) {
                j += 1;
            }
            if j < n && b[j].is_ascii_lowercase() {
                return true;
            }
        }
        if c == b'$' && i + 1 < n && b[i + 1].is_ascii_lowercase() {
            return true;
        }
    }
    false
}

/// `_LEET_KEEP.fullmatch(core)`: `\$?\d[\d.,]*[^\W\d_]+|[^\W\d_]{3,}\d{2,}` (a candidate word holds
/// no `.` or `,`).
fn leet_keep(core: &[u8]) -> bool {
    let n = core.len();
    // First branch: an optional "$", digits, then letters to the end.
    let mut i = usize::from(core.first() == Some(&b'$'));
    if i < n && core[i].is_ascii_digit() {
        i += 1;
        while i < n && core[i].is_ascii_digit() {
            i += 1;
        }
        if i < n && core[i..].iter().all(|&c| is_letter(c)) {
            return true;
        }
    }
    // Second branch: 3+ letters, then 2+ digits to the end.
    let letters = core.iter().take_while(|&&c| is_letter(c)).count();
    let digits = n - letters;
    letters >= 3 && digits >= 2 && core[letters..].iter().all(|c| c.is_ascii_digit())
}

fn unleet(b: u8) -> u8 {
    match b {
        b'0' => b'o',
        b'1' | b'!' => b'i',
        b'3' => b'e',
        b'4' | b'@' => b'a',
        b'5' | b'$' => b's',
        b'7' => b't',
        other => other,
    }
}

/// `_leet_word`: one candidate word, with `_LEET_SPLIT` = `(@?)(!*)(.*?)(!*)`.
fn leet_word(word: &[u8], out: &mut Vec<u8>) {
    if !word.iter().any(|&c| is_letter(c)) {
        out.extend_from_slice(word); // a number, a price, "!!!"
        return;
    }
    let mut lead_end = usize::from(word[0] == b'@');
    while lead_end < word.len() && word[lead_end] == b'!' {
        lead_end += 1;
    }
    let rest = &word[lead_end..];
    let mut core_end = rest.len();
    while core_end > 0 && rest[core_end - 1] == b'!' {
        core_end -= 1;
    }
    let core = &rest[..core_end];
    if core.is_empty() || leet_keep(core) {
        out.extend_from_slice(word);
        return;
    }
    out.extend_from_slice(&word[..lead_end]);
    out.extend(core.iter().map(|&c| unleet(c)));
    out.extend_from_slice(&rest[core_end..]);
}

/// `_LEET_CANDIDATE.sub(_leet_word, text)`: every maximal run of `[\w@$!]` holding a leetspeak
/// character is a candidate (`(?<![\w@$!])[\w@$!]*?[013457@$!][\w@$!]*`).
fn apply_leet(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if !is_candidate(b[i]) {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && is_candidate(b[j]) {
            j += 1;
        }
        let run = &b[i..j];
        if run.iter().any(|&c| is_leet(c)) {
            leet_word(run, &mut out);
        } else {
            out.extend_from_slice(run);
        }
        i = j;
    }
    out
}

/// The guard of `" ".join(text.split())` in `_analyze`.
fn needs_whitespace_fix(b: &[u8]) -> bool {
    let n = b.len();
    n > 0 && (is_space(b[0]) || is_space(b[n - 1]))
        || b.windows(2).any(|w| w == b"  ")
        || b.iter()
            .any(|&c| matches!(c, b'\n' | b'\t' | b'\r' | 0x0b | 0x0c))
}

fn join_whitespace(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for part in b.split(|&c| is_space(c)).filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(part);
    }
    out
}

/// `_REPEAT3` (`([^\W\d_])\1{2,}`) finds something.
fn has_letter_run3(b: &[u8]) -> bool {
    b.windows(3)
        .any(|w| is_letter(w[0]) && w[0] == w[1] && w[1] == w[2])
}

/// `_REPEAT3.sub(r"\1\1", text)`: runs of 3+ identical letters become 2.
fn collapse_runs(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let mut j = i + 1;
        while j < b.len() && b[j] == c {
            j += 1;
        }
        let keep = if is_letter(c) { (j - i).min(2) } else { j - i };
        out.resize(out.len() + keep, c);
        i = j;
    }
    out
}

/// `_split_words` (its ASCII path; the text's other characters separate words, as `_TOKEN` and the
/// Python caller's `_NON_ASCII.sub(" ", text)` make them): letter/digit runs with inner apostrophes.
fn split_words(b: &[u8]) -> Vec<String> {
    let spaced: String = b
        .iter()
        .map(|&c| {
            if c.is_ascii_digit() || c.is_ascii_lowercase() || c == b'\'' {
                c as char
            } else {
                ' '
            }
        })
        .collect();
    let words = spaced.split(' ').filter(|w| !w.is_empty());
    if spaced.contains('\'')
        && (spaced.contains(" '")
            || spaced.contains("' ")
            || spaced.contains("''")
            || spaced.starts_with('\'')
            || spaced.ends_with('\''))
    {
        // Quotes at a word's edge or doubled are separators, not part of a word.
        return words
            .flat_map(|w| w.split("''"))
            .map(|x| x.trim_matches('\''))
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
    }
    words.map(str::to_owned).collect()
}

/// `_SPACED_HINT` over the words: three single-letter words in a row.
fn spaced_hint(words: &[String]) -> bool {
    words
        .windows(3)
        .any(|w| w.iter().all(|x| x.len() == 1 && is_letter(x.as_bytes()[0])))
}

/// `(normalized, words, elongated)`, as `streams.enrich.normalize.Analysis` holds them.
type Analysis<'py> = (
    Bound<'py, PyString>,
    Bound<'py, PyTuple>,
    Bound<'py, PyFrozenSet>,
);

/// The rest of `_analyze` for a mapped, casefolded text without non-ASCII letters, digits or
/// spaces: `(normalized, words, elongated)`, or None where Python must run its reference code.
#[pyfunction]
fn analyze_folded<'py>(
    py: Python<'py>,
    text: &Bound<'py, PyString>,
) -> PyResult<Option<Analysis<'py>>> {
    let original = text.to_str()?.as_bytes();
    if original.iter().any(|c| c.is_ascii_uppercase()) {
        return Ok(None); // not casefolded: the caller broke the contract, Python decides
    }
    let mut b: Option<Vec<u8>> = None;
    if original.iter().any(|&c| is_leet(c)) && leet_hint(original) {
        b = Some(apply_leet(original));
    }
    let current = b.as_deref().unwrap_or(original);
    if needs_whitespace_fix(current) {
        b = Some(join_whitespace(current));
    }
    let mut elongated: Vec<String> = Vec::new();
    let current = b.as_deref().unwrap_or(original);
    if has_letter_run3(current) {
        let collapsed = collapse_runs(current);
        // The words that were stretched ("shiiiit" -> "shiit"), as they read after collapsing.
        let after: std::collections::HashSet<String> =
            split_words(&collapsed).into_iter().collect();
        let mut stretched: Vec<String> = split_words(current)
            .into_iter()
            .filter(|w| !after.contains(w))
            .collect();
        stretched.sort_unstable();
        stretched.dedup();
        elongated = stretched
            .iter()
            .map(|w| String::from_utf8(collapse_runs(w.as_bytes())).expect("ASCII words"))
            .collect();
        b = Some(collapsed);
    }
    let current = b.as_deref().unwrap_or(original);
    let words = split_words(current);
    if words.len() >= 3 && spaced_hint(&words) {
        return Ok(None); // spaced-out letters: the reference code joins them
    }
    let normalized = match &b {
        None => text.clone(),
        Some(bytes) => PyString::new(
            py,
            std::str::from_utf8(bytes).expect("ASCII-only edits keep UTF-8"),
        ),
    };
    let words = PyTuple::new(py, words.iter().map(|w| PyString::new(py, w)))?;
    let elongated = PyFrozenSet::new(py, elongated.iter().map(|w| PyString::new(py, w)))?;
    Ok(Some((normalized, words, elongated)))
}

/// Non-ASCII characters that Python's `str.isalnum()` and `str.isspace()` both reject (punctuation,
/// symbols, arrows, emoji): in a text whose other characters are ASCII, `\w`, `\S` and the word
/// split treat them as this code does. tests/unit/test_native.py checks every code point listed.
pub const NEITHER_WORD_NOR_SPACE: &[(u32, u32)] = &[
    (0x2010, 0x2027),
    (0x2030, 0x205E),
    (0x2190, 0x23FF),
    (0x25A0, 0x2775),
    (0x2794, 0x27BF),
    (0x2B00, 0x2B73),
    (0xFE00, 0xFE0F),
    (0x1F300, 0x1FAFF),
];

fn neither_word_nor_space(c: char) -> bool {
    let cp = c as u32;
    NEITHER_WORD_NOR_SPACE
        .iter()
        .any(|&(lo, hi)| lo <= cp && cp <= hi)
}

/// The code point ranges of `NEITHER_WORD_NOR_SPACE` (for the test that checks them).
#[pyfunction]
fn neither_word_nor_space_ranges() -> Vec<(u32, u32)> {
    NEITHER_WORD_NOR_SPACE.to_vec()
}

/// `_has_noise`: the text may hold a link or an @mention.
fn has_noise(text: &str) -> bool {
    text.contains('@') || text.contains("http") || text.contains("ww.")
}

/// `_mark_noise` on ASCII text: `_MODEL_NOISE` = `h(?:ttps?://\S+)|w(?:ww?\.\S+)|(@\w+)`, each link
/// replaced by " xxlink ", each mention by " xxmention ".
fn mark_noise(b: &[u8]) -> Vec<u8> {
    let n = b.len();
    let rest_of_link = |k: usize| {
        let mut m = k;
        while m < n && !is_space(b[m]) {
            m += 1;
        }
        (m > k).then_some(m)
    };
    let mut out = Vec::with_capacity(n + 16);
    let mut i = 0;
    while i < n {
        let end = match b[i] {
            b'h' if b[i..].starts_with(b"https://") => {
                rest_of_link(i + 8).map(|m| (m, &b" xxlink "[..]))
            }
            b'h' if b[i..].starts_with(b"http://") => {
                rest_of_link(i + 7).map(|m| (m, &b" xxlink "[..]))
            }
            b'w' if b[i..].starts_with(b"www.") => {
                rest_of_link(i + 4).map(|m| (m, &b" xxlink "[..]))
            }
            b'w' if b[i..].starts_with(b"ww.") => {
                rest_of_link(i + 3).map(|m| (m, &b" xxlink "[..]))
            }
            b'@' => {
                let mut m = i + 1;
                while m < n && (b[m].is_ascii_alphanumeric() || b[m] == b'_') {
                    m += 1;
                }
                (m > i + 1).then_some((m, &b" xxmention "[..]))
            }
            _ => None,
        };
        match end {
            Some((m, word)) => {
                out.extend_from_slice(word);
                i = m;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// `streams.enrich.flags.linear.WordFeaturizer.batch` for whole batches: a document's words ->
/// the distinct ids of its model features (the words, their 3-5 letter prefixes "<abc", adjacent
/// word pairs "a b", the retweet marker "rt" left out) and the ids, with counts, of its words' parts
/// (split at apostrophes) in a secondary word vocabulary (alt-profanity-check's).
///
/// As in Python, each word's ids are computed once and cached, and a word pair is looked up by two
/// small word numbers rather than by its string: a vocabulary of 180k strings does not fit the CPU
/// caches, so the number of string lookups per word is what costs.
#[pyclass]
struct Featurizer {
    vocabulary: FxMap<i64>,
    secondary: FxMap<i64>,
    /// Words that occur in a pair feature -> their number; (first << 32 | second) -> pair id.
    pair_words: FxMap<u32>,
    pairs: HashMap<u64, i64, FxBuildHasher>,
    cache: FxMap<WordIds>,
}

/// One word's contribution: its own ids (the word and its prefixes), its number among the pair
/// words (NO_PAIR_WORD if none) and its parts' ids in the secondary vocabulary.
struct WordIds {
    own: Vec<i64>,
    pair_word: u32,
    other: Vec<i64>,
}

const NO_PAIR_WORD: u32 = u32::MAX;
/// Bound on cached words (cleared when full, as the Python featuriser's rows are).
const CACHE_SIZE: usize = 200_000;

impl Featurizer {
    fn word_ids(&self, word: &str) -> WordIds {
        let mut own = Vec::new();
        let mut other = Vec::new();
        // Secondary vocabulary (scikit-learn's tokeniser splits "don't" into "don", "t"); the
        // retweet marker counts there but is not a word of the comment for our model.
        for part in word.split('\'') {
            if let Some(&i) = self.secondary.get(part) {
                other.push(i);
            }
        }
        if word != "rt" {
            if let Some(&i) = self.vocabulary.get(word) {
                own.push(i);
            }
            let length = word.chars().count();
            if length > 3 {
                let mut key = String::with_capacity(word.len() + 1);
                for k in [3usize, 4, 5] {
                    if length > k {
                        let end = word.char_indices().nth(k).map_or(word.len(), |(at, _)| at);
                        key.clear();
                        key.push('<');
                        key.push_str(&word[..end]);
                        if let Some(&i) = self.vocabulary.get(key.as_str()) {
                            own.push(i);
                        }
                    }
                }
            }
        }
        let pair_word = self.pair_words.get(word).copied().unwrap_or(NO_PAIR_WORD);
        WordIds {
            own,
            pair_word,
            other,
        }
    }
}

#[pymethods]
impl Featurizer {
    #[new]
    fn new(features: Vec<String>, secondary: HashMap<String, i64>) -> Self {
        let mut pair_words: FxMap<u32> = FxMap::default();
        let mut pairs: HashMap<u64, i64, FxBuildHasher> = HashMap::default();
        for (i, feature) in features.iter().enumerate() {
            if feature.starts_with('<') {
                continue;
            }
            if let Some((first, second)) = feature.split_once(' ') {
                let mut number = |w: &str| {
                    let next = pair_words.len() as u32;
                    *pair_words.entry(w.to_owned()).or_insert(next)
                };
                let key = (u64::from(number(first)) << 32) | u64::from(number(second));
                pairs.insert(key, i as i64);
            }
        }
        let vocabulary = features
            .into_iter()
            .enumerate()
            .map(|(i, f)| (f, i as i64))
            .collect();
        Featurizer {
            vocabulary,
            secondary: secondary.into_iter().collect(),
            pair_words,
            pairs,
            cache: FxMap::default(),
        }
    }

    /// `texts`: normalised texts; `docs`: their words, one tuple or list per text. A text with a
    /// link or an @mention is read as words with those marked (`_mark_noise`): computed here when
    /// its characters allow, else by `noisy_words(text)`. Returns five little-endian int64
    /// buffers: (doc, feature id) distinct pairs sorted by document then id, and (doc, secondary
    /// id, count) sorted the same way.
    fn batch<'py>(
        &mut self,
        py: Python<'py>,
        texts: Vec<Bound<'py, PyString>>,
        docs: Vec<Bound<'py, PyAny>>,
        noisy_words: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let (mut doc_ids, mut feat_ids) = (Vec::new(), Vec::new());
        let (mut sdoc_ids, mut sfeat_ids, mut scounts) = (Vec::new(), Vec::new(), Vec::new());
        let mut feats: Vec<i64> = Vec::new();
        let mut others: Vec<i64> = Vec::new();
        for (d, (text, words)) in texts.iter().zip(docs.iter()).enumerate() {
            feats.clear();
            others.clear();
            let mut previous = NO_PAIR_WORD;
            let text = text.to_str()?;
            let mut add = |word: &str| {
                if !self.cache.contains_key(word) {
                    if self.cache.len() >= CACHE_SIZE {
                        self.cache.clear();
                    }
                    let ids = self.word_ids(word);
                    self.cache.insert(word.to_owned(), ids);
                }
                let ids = &self.cache[word];
                others.extend_from_slice(&ids.other);
                if word == "rt" {
                    return; // left out of the model's words: the pair skips over it
                }
                feats.extend_from_slice(&ids.own);
                if previous != NO_PAIR_WORD && ids.pair_word != NO_PAIR_WORD {
                    if let Some(&i) = self
                        .pairs
                        .get(&((u64::from(previous) << 32) | u64::from(ids.pair_word)))
                    {
                        feats.push(i);
                    }
                }
                previous = ids.pair_word;
            };
            let python_words = if !has_noise(text) {
                Some(words.clone())
            } else if text.is_ascii()
                || text
                    .chars()
                    .all(|c| c.is_ascii() || neither_word_nor_space(c))
            {
                for word in split_words(&mark_noise(text.as_bytes())) {
                    add(&word);
                }
                None
            } else {
                Some(noisy_words.call1((text,))?)
            };
            if let Some(words) = python_words {
                for word in words.try_iter()? {
                    let word = word?;
                    add(word.downcast::<PyString>()?.to_str()?);
                }
            }
            feats.sort_unstable();
            feats.dedup();
            doc_ids.resize(doc_ids.len() + feats.len(), d as i64);
            feat_ids.extend_from_slice(&feats);
            others.sort_unstable();
            let mut k = 0;
            while k < others.len() {
                let mut j = k + 1;
                while j < others.len() && others[j] == others[k] {
                    j += 1;
                }
                sdoc_ids.push(d as i64);
                sfeat_ids.push(others[k]);
                scounts.push((j - k) as i64);
                k = j;
            }
        }
        Ok([doc_ids, feat_ids, sdoc_ids, sfeat_ids, scounts]
            .iter()
            .map(|v| {
                PyBytes::new(
                    py,
                    &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
                )
            })
            .collect())
    }
}

#[pymodule]
fn streams_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(analyze_folded, m)?)?;
    m.add_class::<Featurizer>()?;
    m.add_function(wrap_pyfunction!(neither_word_nor_space_ranges, m)?)?;
    Ok(())
}
