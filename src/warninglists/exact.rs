//! `string` and `hostname` lists: one hash table per kind over every list's entries, each entry
//! stored once with the lists holding it (top-N lists repeat each other's entries).
//!
//! - `string` (`Warninglist::__evalString`): the value equals an entry, byte for byte.
//! - `hostname` (`__evalHostname`, `getFilteredEntries`): entries are lower-cased and stripped
//!   of dots at both ends. The value's host is what precedes the first `/`, or, when the value
//!   holds `//`, what follows the second `/` (so a URL's host, port included, as MISP splits
//!   it); trailing dots are dropped. The host, then each parent domain from the top-level one
//!   down to the host itself, is looked up: `a.b.example.com` matches an entry `example.com`.
//!   The value itself is not lower-cased (MISP stores hostnames and domains lower-cased; URLs
//!   keep their case, so `https://Bio.fm/x` matches no entry `bio.fm` there either).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::eligibility::{ListId, ListSet};

/// Marks `Slot::owners` as an index into `ExactIndex::shared` rather than a list.
const SHARED: u32 = 1 << 31;

/// One entry: where its text is in the arena, and the lists holding it.
#[derive(Clone, Copy)]
struct Slot {
    start: usize,
    len: u32,
    /// The one list holding it, or `SHARED | i` for `shared[i]`.
    owners: u32,
}

/// Entries live back to back in one string and the table holds only their place: a
/// million-entry list costs no million allocations.
#[derive(Default)]
pub(super) struct ExactIndex {
    text: String,
    slots: HashTable<Slot>,
    /// The lists holding an entry that several lists hold, ascending.
    shared: Vec<Vec<ListId>>,
    hasher: foldhash::fast::RandomState,
}

fn entry_of<'t>(text: &'t str, slot: &Slot) -> &'t str {
    &text[slot.start..slot.start + slot.len as usize]
}

impl ExactIndex {
    /// Lists are added in ascending order.
    pub(super) fn insert_string(&mut self, entry: &str, list: ListId) {
        let hash = self.hasher.hash_one(entry);
        let text = &self.text;
        if let Some(slot) = self
            .slots
            .find_mut(hash, |slot| entry_of(text, slot) == entry)
        {
            if slot.owners & SHARED != 0 {
                let lists = &mut self.shared[(slot.owners & !SHARED) as usize];
                if lists.last() != Some(&list) {
                    lists.push(list);
                }
            } else if slot.owners != list {
                self.shared.push(vec![slot.owners, list]);
                slot.owners = SHARED | (self.shared.len() - 1) as u32;
            }
            return;
        }
        let slot = Slot {
            start: self.text.len(),
            len: entry.len() as u32,
            owners: list,
        };
        self.text.push_str(entry);
        let (text, hasher) = (&self.text, &self.hasher);
        self.slots
            .insert_unique(hash, slot, |slot| hasher.hash_one(entry_of(text, slot)));
    }

    pub(super) fn insert_hostname(&mut self, entry: &str, list: ListId) {
        let normalized = entry.trim_matches('.').to_ascii_lowercase();
        if !normalized.is_empty() {
            self.insert_string(&normalized, list);
        }
    }

    pub(super) fn shrink(&mut self) {
        self.text.shrink_to_fit();
        self.shared.shrink_to_fit();
        let (text, hasher) = (&self.text, &self.hasher);
        self.slots
            .shrink_to_fit(|slot| hasher.hash_one(entry_of(text, slot)));
    }

    /// The lowest eligible list below `before` holding `value`, with the entry.
    pub(super) fn first_string(
        &self,
        value: &str,
        eligible: &ListSet,
        before: ListId,
    ) -> Option<(ListId, &str)> {
        let hash = self.hasher.hash_one(value);
        let slot = self
            .slots
            .find(hash, |slot| entry_of(&self.text, slot) == value)?;
        let lists: &[ListId] = if slot.owners & SHARED != 0 {
            &self.shared[(slot.owners & !SHARED) as usize]
        } else {
            std::slice::from_ref(&slot.owners)
        };
        lists
            .iter()
            .copied()
            .take_while(|list| *list < before)
            .find(|list| eligible.contains(*list))
            .map(|list| (list, entry_of(&self.text, slot)))
    }

    /// The lowest eligible list below `before` holding the value's host or a parent domain of
    /// it, with the entry; for each list, its shortest matching entry, as MISP walks up from
    /// the top-level domain.
    pub(super) fn first_hostname(
        &self,
        value: &str,
        eligible: &ListSet,
        before: ListId,
    ) -> Option<(ListId, &str)> {
        let host = host_of(value)?;
        let mut best: Option<(ListId, &str)> = None;
        let mut searched = host.len();
        loop {
            let start = host[..searched].rfind('.').map_or(0, |dot| dot + 1);
            let bound = best.map_or(before, |(list, _)| list);
            if let Some(found) = self.first_string(&host[start..], eligible, bound) {
                best = Some(found);
            }
            if start == 0 {
                return best;
            }
            searched = start - 1;
        }
    }
}

/// The host MISP takes from a value (`__evalHostname`'s split on `/`).
fn host_of(value: &str) -> Option<&str> {
    let host = if value.contains("//") {
        value.split('/').nth(2)?
    } else {
        value.split('/').next()?
    };
    Some(host.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(lists: usize) -> ListSet {
        let mut set = ListSet::new(lists);
        for list in 0..lists as ListId {
            set.insert(list);
        }
        set
    }

    #[test]
    fn strings_match_exactly_case_included() {
        let mut index = ExactIndex::default();
        index.insert_string("d41d8cd98f00b204e9800998ecf8427e", 0);
        index.insert_string("AAA", 0);
        let every = all(1);
        assert!(
            index
                .first_string("d41d8cd98f00b204e9800998ecf8427e", &every, ListId::MAX)
                .is_some()
        );
        assert!(
            index
                .first_string("D41D8CD98F00B204E9800998ECF8427E", &every, ListId::MAX)
                .is_none()
        );
        assert!(index.first_string("aaa", &every, ListId::MAX).is_none());
        assert!(
            index
                .first_string("d41d8cd98f00b204e9800998ecf8427", &every, ListId::MAX)
                .is_none()
        );
    }

    #[test]
    fn an_entry_shared_by_lists_answers_the_first_eligible_below_the_bound() {
        let mut index = ExactIndex::default();
        for list in [0, 2, 2, 5] {
            index.insert_string("example.com", list);
        }
        let every = all(6);
        assert_eq!(
            index
                .first_string("example.com", &every, ListId::MAX)
                .map(|f| f.0),
            Some(0)
        );
        assert_eq!(index.first_string("example.com", &every, 0), None);
        let mut some = ListSet::new(6);
        some.insert(5);
        assert_eq!(
            index
                .first_string("example.com", &some, ListId::MAX)
                .map(|f| f.0),
            Some(5)
        );
        assert_eq!(index.first_string("example.com", &some, 5), None);
    }

    #[test]
    fn hostnames_match_the_host_and_its_subdomains_in_values_and_urls() {
        let mut index = ExactIndex::default();
        index.insert_hostname(".Bio.FM.", 0);
        let every = all(1);
        let hit = |value: &str| {
            index
                .first_hostname(value, &every, ListId::MAX)
                .map(|f| f.1.to_string())
        };
        assert_eq!(hit("bio.fm").as_deref(), Some("bio.fm"));
        assert_eq!(
            hit("bio.fm.").as_deref(),
            Some("bio.fm"),
            "a trailing dot is dropped"
        );
        assert_eq!(hit("a.b.bio.fm").as_deref(), Some("bio.fm"));
        assert_eq!(hit("https://x.bio.fm/path?q=1").as_deref(), Some("bio.fm"));
        assert_eq!(hit("x.bio.fm/path").as_deref(), Some("bio.fm"));
        assert_eq!(hit("notbio.fm"), None, "a label is matched whole");
        assert_eq!(hit("bio.fm.evil.example"), None);
        assert_eq!(
            hit("https://x.bio.fm:443/"),
            None,
            "MISP keeps the port in the host"
        );
        assert_eq!(
            hit("https://X.Bio.fm/"),
            None,
            "the value keeps its case, as in MISP"
        );
        assert_eq!(hit("evil.example/bio.fm"), None, "only the host counts");
    }

    #[test]
    fn each_list_answers_its_shortest_matching_entry() {
        let mut index = ExactIndex::default();
        index.insert_hostname("a.example.com", 0);
        index.insert_hostname("example.com", 0);
        index.insert_hostname("example.com", 1);
        let every = all(2);
        assert_eq!(
            index.first_hostname("x.a.example.com", &every, ListId::MAX),
            Some((0, "example.com"))
        );
        let mut second = ListSet::new(2);
        second.insert(1);
        assert_eq!(
            index.first_hostname("x.a.example.com", &second, ListId::MAX),
            Some((1, "example.com"))
        );
    }
}
