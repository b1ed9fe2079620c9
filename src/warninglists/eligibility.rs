//! Which lists apply to an attribute type, decided once per type at load.
//!
//! MISP checks a list when its types hold the attribute's type or `ALL`
//! (`Warninglist::checkForWarning`), and stores `ALL` for a list whose `matching_attributes`
//! is missing or empty (`__updateList`). Types are compared exactly, case included.

use super::ListKind;

/// A list's position in load order: the lower one wins when several match, as MISP checks
/// its lists in order.
pub(super) type ListId = u32;

/// A set of lists, one bit each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListSet(Box<[u64]>);

impl ListSet {
    pub(super) fn new(lists: usize) -> ListSet {
        ListSet(vec![0; lists.div_ceil(64)].into_boxed_slice())
    }

    pub(super) fn insert(&mut self, list: ListId) {
        self.0[list as usize / 64] |= 1 << (list % 64);
    }

    pub(super) fn contains(&self, list: ListId) -> bool {
        self.0
            .get(list as usize / 64)
            .is_some_and(|word| word & (1 << (list % 64)) != 0)
    }

    fn union_with(&mut self, other: &ListSet) {
        for (word, other) in self.0.iter_mut().zip(other.0.iter()) {
            *word |= other;
        }
    }
}

/// The lists that apply to one attribute type, and which kinds of matcher they need.
#[derive(Debug, Clone)]
pub(super) struct Eligible {
    pub(super) lists: ListSet,
    kinds: u8,
}

impl Eligible {
    fn new(lists: usize) -> Eligible {
        Eligible {
            lists: ListSet::new(lists),
            kinds: 0,
        }
    }

    fn insert(&mut self, list: ListId, kind: ListKind) {
        self.lists.insert(list);
        self.kinds |= kind.bit();
    }

    pub(super) fn is_empty(&self) -> bool {
        self.kinds == 0
    }

    pub(super) fn needs(&self, kind: ListKind) -> bool {
        self.kinds & kind.bit() != 0
    }
}

pub(super) struct Eligibility {
    by_type: foldhash::HashMap<Box<str>, Eligible>,
    /// Types no list names: only the lists for every type.
    other_types: Eligible,
}

impl Eligibility {
    /// `lists[id]`: the list's kind and its `matching_attributes` (empty: every type).
    pub(super) fn new(lists: &[(ListKind, &[String])]) -> Eligibility {
        let mut by_type: foldhash::HashMap<Box<str>, Eligible> = Default::default();
        let mut every_type = Eligible::new(lists.len());
        for (id, (kind, types)) in (0..).zip(lists) {
            if types.is_empty() || types.iter().any(|t| t == "ALL") {
                every_type.insert(id, *kind);
            } else {
                for attribute_type in types.iter() {
                    by_type
                        .entry(attribute_type.as_str().into())
                        .or_insert_with(|| Eligible::new(lists.len()))
                        .insert(id, *kind);
                }
            }
        }
        for eligible in by_type.values_mut() {
            eligible.lists.union_with(&every_type.lists);
            eligible.kinds |= every_type.kinds;
        }
        Eligibility {
            by_type,
            other_types: every_type,
        }
    }

    pub(super) fn of(&self, attribute_type: &str) -> &Eligible {
        self.by_type
            .get(attribute_type)
            .unwrap_or(&self.other_types)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn a_list_applies_to_its_types_and_an_empty_or_all_list_to_every_type() {
        let ips = types(&["ip-src", "ip-dst"]);
        let every = types(&[]);
        let all = types(&["ALL"]);
        let mails = types(&["email-dst"]);
        let eligibility = Eligibility::new(&[
            (ListKind::Cidr, &ips),
            (ListKind::String, &every),
            (ListKind::Regex, &mails),
            (ListKind::Substring, &all),
        ]);
        let ip = eligibility.of("ip-dst");
        assert!(ip.lists.contains(0) && ip.lists.contains(1) && ip.lists.contains(3));
        assert!(!ip.lists.contains(2));
        assert!(ip.needs(ListKind::Cidr) && !ip.needs(ListKind::Regex));
        let other = eligibility.of("comment");
        assert!(!other.lists.contains(0) && other.lists.contains(1) && other.lists.contains(3));
        assert!(!other.needs(ListKind::Cidr) && other.needs(ListKind::String));
        assert!(
            !eligibility.of("IP-DST").lists.contains(0),
            "types are case-sensitive"
        );
    }

    #[test]
    fn no_list_for_a_type_is_empty() {
        let ips = types(&["ip-src"]);
        let eligibility = Eligibility::new(&[(ListKind::Cidr, &ips)]);
        assert!(eligibility.of("domain").is_empty());
        assert!(!eligibility.of("ip-src").is_empty());
    }

    #[test]
    fn sets_hold_more_than_one_word_of_lists() {
        let mut set = ListSet::new(130);
        set.insert(129);
        set.insert(64);
        assert!(set.contains(129) && set.contains(64) && !set.contains(63));
        assert!(!set.contains(500));
    }
}
