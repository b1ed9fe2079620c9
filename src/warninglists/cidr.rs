//! `cidr` lists: one hash table of networks per prefix length, over every list, for IPv4 and
//! IPv6 apart. A value is looked up once per prefix length present (at most 33 or 129 probes,
//! a few dozen in practice), whatever the number of lists and entries.
//!
//! As MISP's `CidrTool` (`contains`, `filterInputList`):
//! - An entry without `/len` is one address (`/32`, `/128`).
//! - The value may carry `/len` (`10.1.0.0/16`, only the first `/` part counts); then only
//!   entries at most that long match, so a network wider than the entry is not on the list.
//!   A `/0` or empty `/` puts no such limit (PHP reads `"0"` as false).
//! - IPv4 values match IPv4 entries and IPv6 values IPv6 entries; `::ffff:10.0.0.1` is IPv6.
//! - An IPv4 entry with host bits set (`10.0.0.1/8`) never matches: MISP looks up the value's
//!   network address as text. IPv6 entries are compared under their mask, host bits or not.
//! - For each list the shortest matching entry is the match. (MISP's IPv6 loop keeps the last
//!   prefix length it tried instead, which only changes the answer for a value with `/len`
//!   against a list holding nested IPv6 networks; we keep the rule IPv4 follows.)

use std::hash::Hash;
use std::net::IpAddr;

use super::eligibility::{ListId, ListSet};

trait Address: Copy + Eq + Hash {
    fn network(self, length: u8) -> Self;
}

impl Address for u32 {
    fn network(self, length: u8) -> u32 {
        match length {
            0 => 0,
            _ => self & (u32::MAX << (32 - u32::from(length))),
        }
    }
}

impl Address for u128 {
    fn network(self, length: u8) -> u128 {
        match length {
            0 => 0,
            _ => self & (u128::MAX << (128 - u32::from(length))),
        }
    }
}

struct Prefixes<A> {
    length: u8,
    /// Each network with the lists holding it (ascending) and the entry as written.
    networks: foldhash::HashMap<A, Vec<(ListId, Box<str>)>>,
}

/// Ascending prefix lengths.
struct Table<A>(Vec<Prefixes<A>>);

impl<A: Address> Table<A> {
    fn insert(&mut self, network: A, length: u8, list: ListId, entry: &str) {
        let position = match self.0.binary_search_by_key(&length, |p| p.length) {
            Ok(position) => position,
            Err(position) => {
                self.0.insert(
                    position,
                    Prefixes {
                        length,
                        networks: Default::default(),
                    },
                );
                position
            }
        };
        let owners = self.0[position].networks.entry(network).or_default();
        if owners.last().is_none_or(|(last, _)| *last != list) {
            owners.push((list, entry.into()));
        }
    }

    fn first(
        &self,
        address: A,
        longest: Option<i64>,
        eligible: &ListSet,
        before: ListId,
    ) -> Option<(ListId, &str)> {
        let mut best: Option<(ListId, &str)> = None;
        for prefixes in &self.0 {
            if longest.is_some_and(|longest| longest < i64::from(prefixes.length)) {
                break;
            }
            let bound = best.map_or(before, |(list, _)| list);
            let Some(owners) = prefixes.networks.get(&address.network(prefixes.length)) else {
                continue;
            };
            if let Some((list, entry)) = owners
                .iter()
                .take_while(|(list, _)| *list < bound)
                .find(|(list, _)| eligible.contains(*list))
            {
                best = Some((*list, entry));
            }
        }
        best
    }
}

impl<A> Default for Table<A> {
    fn default() -> Self {
        Table(Vec::new())
    }
}

/// What became of an entry.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stored {
    Yes,
    /// An IPv4 entry with host bits set: MISP never matches it.
    NeverMatches,
}

/// Why a `cidr` list entry is no address or network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum BadNetwork {
    #[error("{0:?} is no IPv4 or IPv6 address or network")]
    NoAddress(String),
    #[error("{entry:?} has no prefix length from 0 to {bits}")]
    NoPrefixLength { entry: String, bits: u8 },
}

#[derive(Default)]
pub(super) struct CidrIndex {
    v4: Table<u32>,
    v6: Table<u128>,
}

impl CidrIndex {
    /// Lists are added in ascending order. `Err`: why the entry is no address or network.
    pub(super) fn insert(&mut self, entry: &str, list: ListId) -> Result<Stored, BadNetwork> {
        let (address, length) = match entry.split_once('/') {
            Some((address, length)) => (address, Some(length)),
            None => (entry, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| BadNetwork::NoAddress(entry.to_string()))?;
        let bits = match address {
            IpAddr::V4(_) => u32::BITS as u8,
            IpAddr::V6(_) => u128::BITS as u8,
        };
        let length = match length {
            None => bits,
            Some(text) => text
                .parse::<u8>()
                .ok()
                .filter(|length| *length <= bits)
                .ok_or_else(|| BadNetwork::NoPrefixLength {
                    entry: entry.to_string(),
                    bits,
                })?,
        };
        match address {
            IpAddr::V4(v4) => {
                let address = u32::from(v4);
                if address.network(length) != address {
                    return Ok(Stored::NeverMatches);
                }
                self.v4.insert(address, length, list, entry);
            }
            IpAddr::V6(v6) => {
                self.v6
                    .insert(u128::from(v6).network(length), length, list, entry);
            }
        }
        Ok(Stored::Yes)
    }

    /// The lowest eligible list below `before` holding a network the value is in, with the
    /// entry.
    pub(super) fn first(
        &self,
        value: &str,
        eligible: &ListSet,
        before: ListId,
    ) -> Option<(ListId, &str)> {
        let mut pieces = value.split('/');
        let address: IpAddr = pieces.next()?.parse().ok()?;
        let longest = pieces.next().and_then(value_prefix_length);
        match address {
            IpAddr::V4(v4) => self.v4.first(u32::from(v4), longest, eligible, before),
            IpAddr::V6(v6) => self.v6.first(u128::from(v6), longest, eligible, before),
        }
    }
}

/// The value's `/len` as MISP compares it: `""` and `"0"` are false in PHP and set no limit.
fn value_prefix_length(text: &str) -> Option<i64> {
    match text {
        "" | "0" => None,
        _ => text.trim().parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(lists: usize) -> ListSet {
        let mut set = ListSet::new(lists);
        for list in 0..lists as ListId {
            set.insert(list);
        }
        set
    }

    fn index(entries: &[(&str, ListId)]) -> CidrIndex {
        let mut index = CidrIndex::default();
        for (entry, list) in entries {
            index.insert(entry, *list).unwrap();
        }
        index
    }

    fn hit<'a>(index: &'a CidrIndex, value: &str, lists: usize) -> Option<(ListId, &'a str)> {
        index.first(value, &every(lists), ListId::MAX)
    }

    #[test]
    fn an_address_in_a_network_matches_and_one_outside_does_not() {
        let index = index(&[("10.0.0.0/8", 0), ("172.16.0.0/12", 0), ("192.0.2.7", 0)]);
        assert_eq!(hit(&index, "10.200.3.4", 1), Some((0, "10.0.0.0/8")));
        assert_eq!(hit(&index, "172.31.255.255", 1), Some((0, "172.16.0.0/12")));
        assert_eq!(hit(&index, "172.32.0.0", 1), None);
        assert_eq!(hit(&index, "192.0.2.7", 1), Some((0, "192.0.2.7")));
        assert_eq!(hit(&index, "192.0.2.8", 1), None);
        assert_eq!(hit(&index, "11.0.0.1", 1), None);
        assert_eq!(hit(&index, "example.com", 1), None);
        assert_eq!(
            hit(&index, "010.0.0.1", 1),
            None,
            "leading zeros are no address"
        );
    }

    #[test]
    fn a_value_network_matches_only_inside_an_entry() {
        let index = index(&[("10.0.0.0/8", 0)]);
        assert!(hit(&index, "10.1.0.0/16", 1).is_some());
        assert!(hit(&index, "10.0.0.0/8", 1).is_some());
        assert!(
            hit(&index, "10.0.0.0/7", 1).is_none(),
            "wider than the entry"
        );
        assert!(
            hit(&index, "10.0.0.0/0", 1).is_some(),
            "PHP reads /0 as no mask"
        );
        assert!(hit(&index, "10.0.0.0/", 1).is_some());
        assert!(
            hit(&index, "10.1.2.3/16/99", 1).is_some(),
            "only the first part counts"
        );
    }

    #[test]
    fn ipv6_networks_match_ipv6_values_only() {
        let index = index(&[("fc00::/7", 0), ("2001:db8::1/32", 1), ("10.0.0.0/8", 2)]);
        assert_eq!(hit(&index, "fd12:3456::1", 3), Some((0, "fc00::/7")));
        assert_eq!(
            hit(&index, "2001:db8:ffff::9", 3),
            Some((1, "2001:db8::1/32")),
            "host bits of an IPv6 entry are masked"
        );
        assert_eq!(hit(&index, "2001:db9::1", 3), None);
        assert_eq!(
            hit(&index, "::ffff:10.0.0.1", 3),
            None,
            "a mapped address is IPv6"
        );
        assert!(hit(&index, "fd00::/8", 3).is_some());
        assert!(hit(&index, "fc00::/6", 3).is_none());
    }

    #[test]
    fn an_ipv4_entry_with_host_bits_set_never_matches() {
        let mut index = CidrIndex::default();
        assert_eq!(index.insert("10.0.0.1/8", 0), Ok(Stored::NeverMatches));
        assert_eq!(hit(&index, "10.0.0.1", 1), None);
    }

    #[test]
    fn each_list_answers_its_shortest_entry_and_the_lowest_list_wins() {
        let index = index(&[("10.1.0.0/16", 0), ("10.0.0.0/8", 1), ("10.1.2.0/24", 1)]);
        assert_eq!(hit(&index, "10.1.2.3", 2), Some((0, "10.1.0.0/16")));
        let mut second = ListSet::new(2);
        second.insert(1);
        assert_eq!(
            index.first("10.1.2.3", &second, ListId::MAX),
            Some((1, "10.0.0.0/8"))
        );
        assert_eq!(index.first("10.1.2.3", &every(2), 0), None);
    }

    #[test]
    fn a_zero_length_entry_holds_everything() {
        let index = index(&[("0.0.0.0/0", 0), ("::/0", 0)]);
        assert!(hit(&index, "203.0.113.9", 1).is_some());
        assert!(hit(&index, "2001:db8::1", 1).is_some());
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        let mut index = CidrIndex::default();
        for (entry, reason) in [
            ("10.0.0.0/33", "prefix length"),
            ("fc00::/129", "prefix length"),
            ("10.0.0.0/x", "prefix length"),
            ("10.0.0/8", "no IPv4"),
            ("example.com", "no IPv4"),
        ] {
            let problem = index.insert(entry, 0).unwrap_err().to_string();
            assert!(
                problem.contains(reason) && problem.contains(entry),
                "{problem}"
            );
        }
    }
}
