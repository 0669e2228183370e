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

use pyo3::prelude::*;
use pyo3::types::{PyFrozenSet, PyString, PyTuple};

/// The characters leetspeak substitutes: `[013457@$!]`.
fn is_leet(b: u8) -> bool {
    matches!(b, b'0' | b'1' | b'3' | b'4' | b'5' | b'7' | b'@' | b'$' | b'!')
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
        || b.iter().any(|&c| matches!(c, b'\n' | b'\t' | b'\r' | 0x0b | 0x0c))
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
    b.windows(3).any(|w| is_letter(w[0]) && w[0] == w[1] && w[1] == w[2])
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
        out.extend(std::iter::repeat(c).take(keep));
        i = j;
    }
    out
}

/// `_split_words` (its ASCII path; the text's other characters separate words, as `_TOKEN` and the
/// Python caller's `_NON_ASCII.sub(" ", text)` make them): letter/digit runs with inner apostrophes.
fn split_words(b: &[u8]) -> Vec<String> {
    let spaced: String = b
        .iter()
        .map(|&c| if c.is_ascii_digit() || c.is_ascii_lowercase() || c == b'\'' { c as char } else { ' ' })
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
    words.windows(3).any(|w| w.iter().all(|x| x.len() == 1 && is_letter(x.as_bytes()[0])))
}

/// The rest of `_analyze` for a mapped, casefolded text without non-ASCII letters, digits or
/// spaces: `(normalized, words, elongated)`, or None where Python must run its reference code.
#[pyfunction]
fn analyze_folded<'py>(
    py: Python<'py>,
    text: &Bound<'py, PyString>,
) -> PyResult<Option<(Bound<'py, PyString>, Bound<'py, PyTuple>, Bound<'py, PyFrozenSet>)>> {
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
        let after: std::collections::HashSet<String> = split_words(&collapsed).into_iter().collect();
        let mut stretched: Vec<String> = split_words(current).into_iter().filter(|w| !after.contains(w)).collect();
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
        Some(bytes) => PyString::new(py, std::str::from_utf8(bytes).expect("ASCII-only edits keep UTF-8")),
    };
    let words = PyTuple::new(py, words.iter().map(|w| PyString::new(py, w)))?;
    let elongated = PyFrozenSet::new(py, elongated.iter().map(|w| PyString::new(py, w)))?;
    Ok(Some((normalized, words, elongated)))
}

#[pymodule]
fn streams_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(analyze_folded, m)?)?;
    Ok(())
}
