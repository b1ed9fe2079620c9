//! MISP warninglists: lists of known-benign values (private networks, top domains, hashes of
//! empty files, ...) that MISP users rely on against false positives. An attribute whose value
//! is on a list makes no indicator.
//!
//! [`Warninglists::load`] reads a folder in the layout of MISP's `misp-warninglists` repository
//! (`lists/<name>/list.json`; see `files.rs` for the lenient layouts and `list_file.rs` for the
//! fields) and compiles every list once: a hash table per kind for `string` and `hostname`, a
//! table of networks per prefix length for `cidr`, one Aho-Corasick automaton for `substring`
//! and one `RegexSet` for `regex`, each over all lists of its kind, so checking a value costs a
//! few lookups however many lists there are.
//!
//! [`Warninglists::check`] answers as MISP's `Warninglist::checkValue` does for the lists that
//! apply to the attribute's type (`eligibility.rs`):
//! - The value is first put in the form MISP stores it (`stored_form.rs`: trimmed, hashes,
//!   e-mails, hostnames and domains lower-cased).
//! - A composite type (one with `|`, and `malware-sample`) is split at its first `|` and each
//!   part is checked on its own: `domain|ip` matches a `cidr` list by its address and a
//!   `hostname` list by its domain, `filename|md5` a `string` list by its hash.
//! - How each kind matches: `exact.rs` (`string`, `hostname`), `cidr.rs`, `patterns.rs`
//!   (`substring`, `regex`, with `php_regex.rs`).
//! - Lists are tried in load order (file name order, as MISP installs them) and the first
//!   list that matches is the hit.
//!
//! MISP warns only on attributes marked `to_ids` (unless `MISP.warning_for_all`); the caller
//! decides which attributes it checks.

mod cidr;
mod eligibility;
mod error;
mod exact;
mod files;
mod list_file;
mod patterns;
mod php_regex;
mod stored_form;

use std::fmt;
use std::path::{Path, PathBuf};

use cidr::{CidrIndex, Stored};
use eligibility::{Eligibility, ListId};
pub(crate) use error::WarninglistError;
use exact::ExactIndex;
use list_file::ListFile;
use patterns::{RegexIndex, SubstringIndex};
use php_regex::PhpRegex;

/// How a list's entries match a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    String,
    Substring,
    Hostname,
    Cidr,
    Regex,
}

impl ListKind {
    const ALL: [ListKind; 5] = [
        ListKind::String,
        ListKind::Substring,
        ListKind::Hostname,
        ListKind::Cidr,
        ListKind::Regex,
    ];

    /// The `type` word of `list.json`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ListKind::String => "string",
            ListKind::Substring => "substring",
            ListKind::Hostname => "hostname",
            ListKind::Cidr => "cidr",
            ListKind::Regex => "regex",
        }
    }

    fn from_word(word: &str) -> Option<ListKind> {
        ListKind::ALL.into_iter().find(|kind| kind.as_str() == word)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for ListKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One loaded list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListInfo {
    pub name: String,
    /// The `list.json` it was read from.
    pub file: PathBuf,
    pub kind: ListKind,
    pub(crate) version: String,
    pub(crate) description: String,
    /// The attribute types it applies to; empty: every type.
    pub(crate) matching_attributes: Vec<String>,
    /// Entries that can match (MISP's empty ones and refused patterns left out).
    pub entries: usize,
}

/// A value found on a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    pub list: &'a ListInfo,
    /// The entry that matched: the value itself (`string`), the domain (`hostname`), the
    /// network as written (`cidr`), the substring or the pattern.
    pub entry: &'a str,
}

/// Every list of a folder, compiled for checking.
pub struct Warninglists {
    lists: Vec<ListInfo>,
    eligibility: Eligibility,
    strings: ExactIndex,
    hostnames: ExactIndex,
    cidrs: CidrIndex,
    substrings: SubstringIndex,
    regexes: RegexIndex,
    warnings: Vec<String>,
}

impl fmt::Debug for Warninglists {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Warninglists")
            .field(
                "lists",
                &self
                    .lists
                    .iter()
                    .map(|list| list.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Warninglists {
    /// Reads and compiles every list of `folder`. A list that cannot be read or has a bad
    /// field stops the load, naming the file and the field; a list of a type this reader does
    /// not know is skipped with a warning (see [`Warninglists::warnings`]).
    pub fn load(folder: &Path) -> Result<Warninglists, WarninglistError> {
        let found = files::list_files(folder)?;
        let mut builder = Builder {
            warnings: found.warnings,
            ..Builder::default()
        };
        for file in &found.files {
            builder.add(list_file::read(file)?)?;
        }
        builder.finish()
    }

    /// The first list (in load order) that applies to `attribute_type` and holds `value`.
    pub fn check(&self, attribute_type: &str, value: &str) -> Option<Hit<'_>> {
        let eligible = self.eligibility.of(attribute_type);
        if eligible.is_empty() {
            return None;
        }
        let stored = stored_form::stored_form(attribute_type, value);
        let composite = attribute_type == "malware-sample" || attribute_type.contains('|');
        let (first, second) = match stored.split_once('|') {
            Some((first, second)) if composite => (first, Some(second)),
            _ => (stored.as_ref(), None),
        };
        let mut best: Option<(ListId, &str)> = None;
        // Within one list the first part's match counts: only a lower list replaces it.
        for part in std::iter::once(first).chain(second) {
            for kind in ListKind::ALL {
                if !eligible.needs(kind) {
                    continue;
                }
                let before = best.map_or(ListId::MAX, |(list, _)| list);
                let lists = &eligible.lists;
                let found = match kind {
                    ListKind::String => self.strings.first_string(part, lists, before),
                    ListKind::Hostname => self.hostnames.first_hostname(part, lists, before),
                    ListKind::Cidr => self.cidrs.first(part, lists, before),
                    ListKind::Substring => self.substrings.first(part, lists, before),
                    ListKind::Regex => self.regexes.first(part, lists, before),
                };
                if found.is_some() {
                    best = found;
                }
            }
        }
        best.map(|(list, entry)| Hit {
            list: &self.lists[list as usize],
            entry,
        })
    }

    /// The lists loaded, in the order they are tried.
    pub fn lists(&self) -> &[ListInfo] {
        &self.lists
    }

    /// What the load skipped or will never match, one line each, for the log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// The lists `MISP_FEED_WARNINGLISTS_PATH` names, loaded once at start-up, with what the load
/// skipped logged; `None` when no folder is set, or in compat mode (the Python connector has
/// no warninglists, and compat output must be its output).
pub(crate) fn load_configured(
    settings: &crate::config::Settings,
) -> Result<Option<std::sync::Arc<Warninglists>>, WarninglistError> {
    let feed = &settings.misp_feed;
    let Some(folder) = &feed.warninglists_path else {
        return Ok(None);
    };
    if feed.convert.reference_compat {
        tracing::warn!(
            "MISP_FEED_WARNINGLISTS_PATH is ignored with MISP_FEED_REFERENCE_COMPAT: the Python \
             connector's output has no warninglists"
        );
        return Ok(None);
    }
    let lists = Warninglists::load(folder)?;
    for warning in lists.warnings() {
        tracing::warn!("warninglists: {warning}");
    }
    let entries: usize = lists.lists().iter().map(|list| list.entries).sum();
    tracing::info!(
        lists = lists.lists().len(),
        entries,
        "{} warninglist(s) loaded ({entries} entries): values on them make no indicator",
        lists.lists().len()
    );
    Ok(Some(std::sync::Arc::new(lists)))
}

#[derive(Default)]
struct Builder {
    lists: Vec<ListInfo>,
    strings: ExactIndex,
    hostnames: ExactIndex,
    cidrs: CidrIndex,
    substrings: SubstringIndex,
    regexes: RegexIndex,
    warnings: Vec<String>,
}

impl Builder {
    fn add(&mut self, list: ListFile) -> Result<(), WarninglistError> {
        let kind = match list.kind {
            Ok(kind) => kind,
            Err(ref word) => {
                self.warnings.push(format!(
                    "warninglist {} ({:?}): type {word:?} is none of string, substring, hostname, cidr, regex: skipped",
                    list.file.display(),
                    list.name
                ));
                return Ok(());
            }
        };
        if let Some(first) = self.lists.iter().find(|known| known.name == list.name) {
            return Err(WarninglistError::DuplicateName {
                name: list.name,
                first: first.file.clone(),
                second: list.file,
            });
        }
        let id = self.lists.len() as ListId;
        let entries = match kind {
            ListKind::String => {
                self.add_each(&list, |b, entry, _| b.strings.insert_string(entry, id))
            }
            ListKind::Hostname => {
                self.add_each(&list, |b, entry, _| b.hostnames.insert_hostname(entry, id))
            }
            ListKind::Substring => self.add_each(&list, |b, entry, position| {
                b.substrings.insert(entry, id, position)
            }),
            ListKind::Cidr => self.add_networks(&list, id)?,
            ListKind::Regex => self.add_patterns(&list, id)?,
        };
        if list.kept_entries().next().is_none() {
            self.warnings.push(format!(
                "warninglist {} ({:?}) has no entries",
                list.file.display(),
                list.name
            ));
        }
        self.lists.push(ListInfo {
            name: list.name,
            file: list.file,
            kind,
            version: list.version,
            description: list.description,
            matching_attributes: list.matching_attributes,
            entries,
        });
        Ok(())
    }

    fn add_each(
        &mut self,
        list: &ListFile,
        mut insert: impl FnMut(&mut Self, &str, usize),
    ) -> usize {
        let mut count = 0;
        for (position, entry) in list.kept_entries() {
            insert(self, entry, position);
            count += 1;
        }
        count
    }

    fn add_networks(&mut self, list: &ListFile, id: ListId) -> Result<usize, WarninglistError> {
        let mut stored = 0;
        let mut never: Vec<&str> = Vec::new();
        for (position, entry) in list.kept_entries() {
            match self.cidrs.insert(entry, id) {
                Ok(Stored::Yes) => stored += 1,
                Ok(Stored::NeverMatches) => never.push(entry),
                Err(problem) => {
                    return Err(WarninglistError::field(
                        &list.file,
                        format!("list[{position}]"),
                        problem.to_string(),
                    ));
                }
            }
        }
        if let Some(example) = never.first() {
            self.warnings.push(format!(
                "warninglist {}: {} IPv4 networks have host bits set (such as {example:?}): MISP never matches them, nor does misp-feed",
                list.file.display(),
                never.len()
            ));
        }
        Ok(stored)
    }

    fn add_patterns(&mut self, list: &ListFile, id: ListId) -> Result<usize, WarninglistError> {
        let mut usable = 0;
        let mut refused: Vec<(usize, String)> = Vec::new();
        for (position, entry) in list.kept_entries() {
            match php_regex::translate(entry) {
                PhpRegex::Usable(pattern) => {
                    self.regexes
                        .insert(entry, pattern, id, position)
                        .map_err(|problem| {
                            WarninglistError::field(
                                &list.file,
                                format!("list[{position}]"),
                                format!("the regex {entry:?} cannot be used: {problem}"),
                            )
                        })?;
                    usable += 1;
                }
                PhpRegex::Refused(reason) => refused.push((position, reason)),
            }
        }
        if let Some((position, reason)) = refused.first() {
            self.warnings.push(format!(
                "warninglist {}: PHP refuses {} of its regexes (list[{position}]: {reason}): MISP never matches them, nor does misp-feed",
                list.file.display(),
                refused.len()
            ));
        }
        Ok(usable)
    }

    fn finish(mut self) -> Result<Warninglists, WarninglistError> {
        self.strings.shrink();
        self.hostnames.shrink();
        self.substrings
            .build()
            .map_err(|reason| WarninglistError::Compile {
                reason: reason.to_string(),
            })?;
        self.regexes
            .build()
            .map_err(|reason| WarninglistError::Compile {
                reason: reason.to_string(),
            })?;
        let applicability: Vec<(ListKind, &[String])> = self
            .lists
            .iter()
            .map(|list| (list.kind, list.matching_attributes.as_slice()))
            .collect();
        let eligibility = Eligibility::new(&applicability);
        Ok(Warninglists {
            lists: self.lists,
            eligibility,
            strings: self.strings,
            hostnames: self.hostnames,
            cidrs: self.cidrs,
            substrings: self.substrings,
            regexes: self.regexes,
            warnings: self.warnings,
        })
    }
}

#[cfg(test)]
mod tests;
