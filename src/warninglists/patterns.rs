//! `substring` and `regex` lists: one automaton over every list's entries.
//!
//! - `substring` (`Warninglist::__evalSubString`): an entry occurs in the value, case
//!   included. One Aho-Corasick automaton reports every entry occurring, overlaps included.
//! - `regex` (`__evalRegex`): `preg_match(entry, value)`; see `php_regex` for how a PHP pattern
//!   is read. One `RegexSet` reports every pattern matching.
//!
//! For each list the match is its first entry in file order, as MISP tries them in order.

use aho_corasick::AhoCorasick;
use regex::bytes::{RegexBuilder, RegexSet, RegexSetBuilder};

use super::eligibility::{ListId, ListSet};

/// Larger than the crate's default: a list of thousands of patterns still compiles; the
/// patterns come from the operator's own folder.
const REGEX_SIZE_LIMIT: usize = 256 << 20;

/// Distinct entries, each with the lists holding it and its position in each.
#[derive(Default)]
struct Entries {
    texts: Vec<Box<str>>,
    owners: Vec<Vec<(ListId, usize)>>,
    by_text: foldhash::HashMap<Box<str>, usize>,
}

impl Entries {
    fn add(&mut self, text: &str, list: ListId, position: usize) -> usize {
        let id = match self.by_text.get(text) {
            Some(id) => *id,
            None => {
                let id = self.texts.len();
                self.texts.push(text.into());
                self.owners.push(Vec::new());
                self.by_text.insert(text.into(), id);
                id
            }
        };
        self.owners[id].push((list, position));
        id
    }

    /// Among the matched entries, the lowest eligible list below `before`, and its first entry.
    fn first(
        &self,
        matched: impl Iterator<Item = usize>,
        eligible: &ListSet,
        before: ListId,
    ) -> Option<(ListId, &str)> {
        let mut best: Option<(ListId, usize, usize)> = None;
        for id in matched {
            for &(list, position) in &self.owners[id] {
                let better = best.is_none_or(|(best_list, best_position, _)| {
                    (list, position) < (best_list, best_position)
                });
                if list < before && better && eligible.contains(list) {
                    best = Some((list, position, id));
                }
            }
        }
        best.map(|(list, _, id)| (list, self.texts[id].as_ref()))
    }
}

/// Why patterns cannot be compiled: the compiler's message, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum PatternError {
    /// One regex entry.
    #[error("{0}")]
    Entry(String),
    #[error("the substring lists together: {0}")]
    Substrings(String),
    #[error("the regex lists together: {0}")]
    Regexes(String),
}

#[derive(Default)]
pub(super) struct SubstringIndex {
    entries: Entries,
    automaton: Option<AhoCorasick>,
}

impl SubstringIndex {
    pub(super) fn insert(&mut self, entry: &str, list: ListId, position: usize) {
        self.entries.add(entry, list, position);
    }

    pub(super) fn build(&mut self) -> Result<(), PatternError> {
        self.entries.by_text = Default::default();
        if self.entries.texts.is_empty() {
            return Ok(());
        }
        let automaton = AhoCorasick::new(self.entries.texts.iter().map(|text| text.as_bytes()))
            .map_err(|error| PatternError::Substrings(error.to_string()))?;
        self.automaton = Some(automaton);
        Ok(())
    }

    pub(super) fn first(
        &self,
        value: &str,
        eligible: &ListSet,
        before: ListId,
    ) -> Option<(ListId, &str)> {
        let automaton = self.automaton.as_ref()?;
        let matched = automaton
            .find_overlapping_iter(value)
            .map(|found| found.pattern().as_usize());
        self.entries.first(matched, eligible, before)
    }
}

#[derive(Default)]
pub(super) struct RegexIndex {
    entries: Entries,
    /// The crate's pattern of each entry.
    patterns: Vec<String>,
    set: Option<RegexSet>,
}

impl RegexIndex {
    /// `pattern`: the entry in the crate's syntax. `Err`: why it does not compile, in one line.
    pub(super) fn insert(
        &mut self,
        entry: &str,
        pattern: String,
        list: ListId,
        position: usize,
    ) -> Result<(), PatternError> {
        if !self.entries.by_text.contains_key(entry) {
            RegexBuilder::new(&pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|error| PatternError::Entry(one_line(&error.to_string())))?;
        }
        if self.entries.add(entry, list, position) == self.patterns.len() {
            self.patterns.push(pattern);
        }
        Ok(())
    }

    pub(super) fn build(&mut self) -> Result<(), PatternError> {
        self.entries.by_text = Default::default();
        if self.patterns.is_empty() {
            return Ok(());
        }
        let set = RegexSetBuilder::new(&self.patterns)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|error| PatternError::Regexes(one_line(&error.to_string())))?;
        self.patterns = Vec::new();
        self.set = Some(set);
        Ok(())
    }

    pub(super) fn first(
        &self,
        value: &str,
        eligible: &ListSet,
        before: ListId,
    ) -> Option<(ListId, &str)> {
        let set = self.set.as_ref()?;
        if !set.is_match(value.as_bytes()) {
            return None;
        }
        self.entries
            .first(set.matches(value.as_bytes()).into_iter(), eligible, before)
    }
}

/// The crate's syntax errors span lines (the pattern, a caret line, the reason): the reason.
fn one_line(message: &str) -> String {
    let last = message.lines().rev().find(|line| !line.trim().is_empty());
    last.unwrap_or(message)
        .trim()
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warninglists::php_regex::{PhpRegex, translate};

    fn every(lists: usize) -> ListSet {
        let mut set = ListSet::new(lists);
        for list in 0..lists as ListId {
            set.insert(list);
        }
        set
    }

    #[test]
    fn substrings_match_anywhere_case_included_and_the_first_entry_of_the_first_list_wins() {
        let mut index = SubstringIndex::default();
        index.insert("any.run", 0, 0);
        index.insert("app.any.run", 0, 1);
        index.insert("intezer.com", 1, 0);
        index.insert("app.any", 1, 1);
        index.build().unwrap();
        let all = every(2);
        let hit = |value: &str| index.first(value, &all, ListId::MAX);
        assert_eq!(hit("https://app.any.run/tasks/1"), Some((0, "any.run")));
        assert_eq!(hit("analyze.intezer.com"), Some((1, "intezer.com")));
        assert_eq!(hit("APP.ANY.RUN"), None);
        assert_eq!(hit("example.com"), None);
        let mut second = ListSet::new(2);
        second.insert(1);
        assert_eq!(
            index.first("app.any.run", &second, ListId::MAX),
            Some((1, "app.any"))
        );
        assert_eq!(index.first("app.any.run", &all, 0), None);
    }

    #[test]
    fn an_empty_substring_index_matches_nothing() {
        let mut index = SubstringIndex::default();
        index.build().unwrap();
        assert_eq!(index.first("anything", &every(1), ListId::MAX), None);
    }

    fn regex_index(entries: &[(&str, ListId)]) -> RegexIndex {
        let mut index = RegexIndex::default();
        for (position, (entry, list)) in entries.iter().enumerate() {
            let PhpRegex::Usable(pattern) = translate(entry) else {
                panic!("{entry} refused")
            };
            index.insert(entry, pattern, *list, position).unwrap();
        }
        index.build().unwrap();
        index
    }

    #[test]
    fn regexes_match_with_their_delimiters_and_modifiers() {
        let index = regex_index(&[(r"/^(security|noc|soc|abuse)\@.*\..*$/i", 0), ("#^x+$#", 1)]);
        let all = every(2);
        let hit = |value: &str| index.first(value, &all, ListId::MAX).map(|(list, _)| list);
        assert_eq!(hit("Abuse@example.org"), Some(0));
        assert_eq!(hit("abuse@localhost"), None);
        assert_eq!(hit("report-abuse@example.org"), None);
        assert_eq!(hit("xxx"), Some(1));
    }

    #[test]
    fn a_pattern_the_crate_cannot_compile_is_refused_in_one_line() {
        let mut index = RegexIndex::default();
        let PhpRegex::Usable(pattern) = translate("/a(?=b)/") else {
            panic!("PHP takes it")
        };
        let problem = index
            .insert("/a(?=b)/", pattern, 0, 0)
            .unwrap_err()
            .to_string();
        assert!(
            problem.contains("look-around") && !problem.contains('\n'),
            "{problem}"
        );
    }
}
