//! Longest-prefix classification of addresses into zones.
//!
//! Declared prefixes (zone CIDRs and group hosts) always win over the
//! built-in ranges, whatever their lengths: an address a zone declares
//! belongs to that zone. Only unmatched addresses fall back to the built-in
//! ranges (`undeclared`, `local`) and finally to `internet`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

use crate::{AddressClass, Classification, GroupId, ZoneId};

/// Built-in private ranges: unmatched addresses here are `undeclared`.
pub(crate) const PRIVATE_V4: [Ipv4Net; 4] = [
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16),
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10),
];
/// Built-in private IPv6 range (ULA).
pub(crate) const PRIVATE_V6: [Ipv6Net; 1] = [Ipv6Net::new_assert(
    Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
    7,
)];
/// Built-in local ranges: loopback, link-local, multicast, broadcast, unspecified.
pub(crate) const LOCAL_V4: [Ipv4Net; 5] = [
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16),
    Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4),
    Ipv4Net::new_assert(Ipv4Addr::BROADCAST, 32),
    Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, 32),
];
/// Built-in local IPv6 ranges.
pub(crate) const LOCAL_V6: [Ipv6Net; 4] = [
    Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128),
    Ipv6Net::new_assert(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    Ipv6Net::new_assert(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
    Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 128),
];

/// What a declared prefix points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) zone: ZoneId,
    pub(crate) group: Option<GroupId>,
}

/// The LPM tables, built once at load, and the address runs made from them
/// by [`Classifier::seal`].
#[derive(Clone, Debug)]
pub(crate) struct Classifier {
    v4: PrefixMap<Ipv4Net, Owner>,
    v6: PrefixMap<Ipv6Net, Owner>,
    builtin_v4: PrefixMap<Ipv4Net, AddressClass>,
    builtin_v6: PrefixMap<Ipv6Net, AddressClass>,
    internet: ZoneId,
    undeclared: ZoneId,
    local: ZoneId,
    /// Empty until sealed (and again after an insert).
    runs_v4: Runs<u32>,
    runs_v6: Runs<u128>,
}

/// Every address classified by runs: between two consecutive prefix edges
/// (a prefix's first address, or the one after its last) the set of
/// prefixes containing an address does not change, so neither does its
/// classification. A binary search over the run starts (a few KiB for a
/// thousand prefixes) finds it in a handful of cache lines, where the tries
/// take a node per level, cold in the cache when a burst of flows ends.
#[derive(Clone, Debug, Default)]
struct Runs<A> {
    /// First address of each run, ascending, the first one 0 (the runs
    /// cover every address); neighbours never share a classification.
    starts: Vec<A>,
    /// Each run's classification.
    classes: Vec<Classification>,
}

/// Where runs may start: each prefix's first address, and the address
/// after its last (`next`; none after the last address of all).
fn edges<A: Copy>(prefixes: impl Iterator<Item = (A, A)>, next: fn(A) -> Option<A>) -> Vec<A> {
    prefixes
        .flat_map(|(first, last)| std::iter::once(first).chain(next(last)))
        .collect()
}

impl<A: Copy + Ord + Default> Runs<A> {
    /// Runs from prefix `edges` (any order, duplicates allowed), each
    /// classified by `classify` of its first address.
    fn new(mut edges: Vec<A>, classify: impl Fn(A) -> Classification) -> Runs<A> {
        edges.push(A::default());
        edges.sort_unstable();
        edges.dedup();
        let mut runs = Runs::default();
        for start in edges {
            let c = classify(start);
            if runs.classes.last() != Some(&c) {
                runs.starts.push(start);
                runs.classes.push(c);
            }
        }
        runs
    }

    /// The classification of `a`; `None` when there are no runs.
    fn get(&self, a: A) -> Option<Classification> {
        // Runs starting at or before `a`: at least the first (0) when sealed.
        let n = self.starts.partition_point(|&s| s <= a);
        self.classes.get(n.checked_sub(1)?).copied()
    }
}

impl Classifier {
    pub(crate) fn new(internet: ZoneId, undeclared: ZoneId, local: ZoneId) -> Classifier {
        let mut builtin_v4 = PrefixMap::new();
        let mut builtin_v6 = PrefixMap::new();
        for net in PRIVATE_V4 {
            builtin_v4.insert(net, AddressClass::Undeclared);
        }
        for net in LOCAL_V4 {
            builtin_v4.insert(net, AddressClass::Local);
        }
        for net in PRIVATE_V6 {
            builtin_v6.insert(net, AddressClass::Undeclared);
        }
        for net in LOCAL_V6 {
            builtin_v6.insert(net, AddressClass::Local);
        }
        Classifier {
            v4: PrefixMap::new(),
            v6: PrefixMap::new(),
            builtin_v4,
            builtin_v6,
            internet,
            undeclared,
            local,
            runs_v4: Runs::default(),
            runs_v6: Runs::default(),
        }
    }

    /// Adds a declared prefix (canonical). A later insert of the same prefix
    /// replaces the earlier one; the loader inserts zone CIDRs before group
    /// hosts so a group host equal to its zone's CIDR wins.
    pub(crate) fn insert(&mut self, net: IpNet, owner: Owner) {
        self.runs_v4 = Runs::default();
        self.runs_v6 = Runs::default();
        match net {
            IpNet::V4(n) => {
                self.v4.insert(n, owner);
            }
            IpNet::V6(n) => {
                self.v6.insert(n, owner);
            }
        }
    }

    /// Builds the address runs from the prefixes inserted so far; classify
    /// then uses them (until the next insert).
    pub(crate) fn seal(&mut self) {
        let v4 = self.v4.iter().map(|(n, _)| n);
        let v4 = v4.chain(self.builtin_v4.iter().map(|(n, _)| n));
        let edges_v4 = edges(
            v4.map(|n| (u32::from(n.network()), u32::from(n.broadcast()))),
            |a| a.checked_add(1),
        );
        let v6 = self.v6.iter().map(|(n, _)| n);
        let v6 = v6.chain(self.builtin_v6.iter().map(|(n, _)| n));
        let edges_v6 = edges(
            v6.map(|n| (u128::from(n.network()), u128::from(n.broadcast()))),
            |a| a.checked_add(1),
        );
        self.runs_v4 = Runs::new(edges_v4, |a| self.lookup(IpAddr::V4(Ipv4Addr::from(a))));
        self.runs_v6 = Runs::new(edges_v6, |a| self.lookup(IpAddr::V6(Ipv6Addr::from(a))));
    }

    pub(crate) fn classify(&self, ip: IpAddr) -> Classification {
        let ip = ip.to_canonical();
        let sealed = match ip {
            IpAddr::V4(a) => self.runs_v4.get(u32::from(a)),
            IpAddr::V6(a) => self.runs_v6.get(u128::from(a)),
        };
        sealed.unwrap_or_else(|| self.lookup(ip))
    }

    /// [`Classifier::classify`] by the tries: longest declared prefix, then
    /// the built-in ranges, then `internet`. `ip` is canonical.
    fn lookup(&self, ip: IpAddr) -> Classification {
        let declared = match ip {
            IpAddr::V4(a) => self
                .v4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(n, o)| (IpNet::V4(n), *o)),
            IpAddr::V6(a) => self
                .v6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(n, o)| (IpNet::V6(n), *o)),
        };
        if let Some((prefix, owner)) = declared {
            return Classification {
                zone: owner.zone,
                group: owner.group,
                class: AddressClass::Declared,
                prefix: Some(prefix),
            };
        }
        let builtin = match ip {
            IpAddr::V4(a) => self
                .builtin_v4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(n, c)| (IpNet::V4(n), *c)),
            IpAddr::V6(a) => self
                .builtin_v6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(n, c)| (IpNet::V6(n), *c)),
        };
        match builtin {
            Some((prefix, class)) => Classification {
                zone: if class == AddressClass::Local {
                    self.local
                } else {
                    self.undeclared
                },
                group: None,
                class,
                prefix: Some(prefix),
            },
            None => Classification {
                zone: self.internet,
                group: None,
                class: AddressClass::Internet,
                prefix: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use ipnet::IpNet;
    use proptest::prelude::*;

    use super::{LOCAL_V4, LOCAL_V6, PRIVATE_V4, PRIVATE_V6};
    use crate::{AddressClass, Policy};

    /// The built-in class of an unmatched address, from std's predicates
    /// (independent of the tables above).
    fn builtin_class(ip: IpAddr) -> AddressClass {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let cgnat = a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64;
                if a.is_loopback()
                    || a.is_link_local()
                    || a.is_multicast()
                    || a.is_broadcast()
                    || a.is_unspecified()
                {
                    AddressClass::Local
                } else if a.is_private() || cgnat {
                    AddressClass::Undeclared
                } else {
                    AddressClass::Internet
                }
            }
            IpAddr::V6(a) => {
                if a.is_loopback()
                    || a.is_unspecified()
                    || a.is_multicast()
                    || a.is_unicast_link_local()
                {
                    AddressClass::Local
                } else if a.is_unique_local() {
                    AddressClass::Undeclared
                } else {
                    AddressClass::Internet
                }
            }
        }
    }

    /// Declared prefix -> (zone index, group index within that zone).
    type Layout = BTreeMap<IpNet, (usize, Option<usize>)>;

    /// Writes a zones file: zone `zN` owns the prefixes without a group;
    /// group `gN_M` owns the others (each lies inside a prefix of zone N).
    fn zones_file(layout: &Layout, zones: usize) -> String {
        let mut text = String::new();
        for z in 0..zones {
            let cidrs: Vec<String> = layout
                .iter()
                .filter(|(_, (zz, g))| *zz == z && g.is_none())
                .map(|(n, _)| format!("\"{n}\""))
                .collect();
            let _ = writeln!(
                text,
                "[[zone]]\nname = \"z{z}\"\ncidrs = [{}]\n",
                cidrs.join(", ")
            );
        }
        let mut groups: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
        for (n, (z, g)) in layout {
            if let Some(g) = g {
                groups.entry((*z, *g)).or_default().push(format!("\"{n}\""));
            }
        }
        for ((z, g), hosts) in groups {
            let _ = writeln!(
                text,
                "[[group]]\nname = \"g{z}_{g}\"\nzone = \"z{z}\"\nhosts = [{}]\n",
                hosts.join(", ")
            );
        }
        text
    }

    /// Zone prefixes (in a few crowded areas, so they nest and overlap),
    /// plus group hosts carved out of some of them.
    fn layout_v4() -> impl Strategy<Value = (Layout, usize)> {
        let base = prop_oneof![Just(0x0a00_0000u32), Just(0xc633_6400), Just(0x0808_0000)];
        let prefix = (
            base,
            any::<u32>(),
            8u8..=32,
            0usize..4,
            any::<bool>(),
            0usize..2,
        );
        proptest::collection::vec(prefix, 1..40).prop_map(|items| {
            let mut layout = Layout::new();
            let mut groups = Vec::new();
            for (base, bits, len, zone, with_group, g) in items {
                // Stay near `base` so prefixes overlap.
                let addr = base | (bits & 0x0003_ffff);
                let Ok(net) = ipnet::Ipv4Net::new(Ipv4Addr::from(addr), len) else {
                    continue;
                };
                let net = IpNet::V4(net.trunc());
                if layout.contains_key(&net) {
                    continue;
                }
                layout.insert(net, (zone, None));
                if with_group && len < 32 {
                    // A host inside this zone prefix.
                    let host = IpNet::from(IpAddr::V4(Ipv4Addr::from(addr)));
                    groups.push((host, zone, g));
                }
            }
            for (host, zone, g) in groups {
                layout.entry(host).or_insert((zone, Some(g)));
            }
            (layout, 4)
        })
    }

    fn addresses_v4() -> impl Strategy<Value = Vec<u32>> {
        let near = prop_oneof![Just(0x0a00_0000u32), Just(0xc633_6400), Just(0x0808_0000)]
            .prop_flat_map(|b| (Just(b), 0u32..0x0004_0000))
            .prop_map(|(b, off)| b | off);
        proptest::collection::vec(prop_oneof![near, any::<u32>()], 1..64)
    }

    /// Longest declared prefix containing `ip`, by a linear scan.
    fn linear(layout: &Layout, ip: IpAddr) -> Option<(IpNet, (usize, Option<usize>))> {
        let ip = ip.to_canonical();
        layout
            .iter()
            .filter(|(n, _)| n.contains(&ip))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(n, v)| (*n, *v))
    }

    /// The addresses where a run of the sealed classifier may start or
    /// end: each prefix's first and last address and their neighbours.
    fn edges(net: IpNet) -> Vec<IpAddr> {
        let (first, last) = (net.network(), net.broadcast());
        [step(first, -1), Some(first), Some(last), step(last, 1)]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The address `by` (±1) after `ip`, if any.
    fn step(ip: IpAddr, by: i8) -> Option<IpAddr> {
        match ip {
            IpAddr::V4(a) => u32::from(a)
                .checked_add_signed(by.into())
                .map(|x| IpAddr::V4(x.into())),
            IpAddr::V6(a) => u128::from(a)
                .checked_add_signed(by.into())
                .map(|x| IpAddr::V6(x.into())),
        }
    }

    /// `ips` and the edges of every declared prefix classify as the linear
    /// scan of `layout` says.
    fn check(layout: &Layout, zones: usize, ips: &[IpAddr]) -> Result<(), TestCaseError> {
        let text = zones_file(layout, zones);
        let p = Policy::parse(&text, "gen.toml")
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let edges = layout.keys().flat_map(|&n| edges(n));
        for ip in ips.iter().copied().chain(edges) {
            let c = p.classify(ip);
            match linear(layout, ip) {
                Some((net, (z, g))) => {
                    prop_assert_eq!(c.class, AddressClass::Declared, "{}", ip);
                    prop_assert_eq!(c.prefix, Some(net), "{}", ip);
                    prop_assert_eq!(&p.zone(c.zone).name, &format!("z{z}"), "{}", ip);
                    let group = c.group.map(|id| p.group(id).name.clone());
                    prop_assert_eq!(group, g.map(|g| format!("g{z}_{g}")), "{}", ip);
                }
                None => {
                    let class = builtin_class(ip);
                    prop_assert_eq!(c.class, class, "{}", ip);
                    prop_assert_eq!(c.group, None);
                    let zone = match class {
                        AddressClass::Local => p.local(),
                        AddressClass::Undeclared => p.undeclared(),
                        _ => p.internet(),
                    };
                    prop_assert_eq!(c.zone, zone, "{}", ip);
                    if let Some(prefix) = c.prefix {
                        prop_assert!(prefix.contains(&ip.to_canonical()));
                    }
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn lpm_matches_linear_scan_v4((layout, zones) in layout_v4(), ips in addresses_v4()) {
            let mut all: Vec<IpAddr> = ips.iter().map(|&a| IpAddr::V4(Ipv4Addr::from(a))).collect();
            // The same addresses, IPv4-mapped, classify the same.
            all.extend(ips.iter().map(|&a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())));
            check(&layout, zones, &all)?;
        }

        #[test]
        fn lpm_matches_linear_scan_v6(
            nets in proptest::collection::vec((any::<u16>(), 16u8..=128, 0usize..3), 1..30),
            ips in proptest::collection::vec((any::<bool>(), any::<u128>()), 1..64),
        ) {
            let mut layout = Layout::new();
            for (bits, len, zone) in nets {
                // Under 2001:db8::/32 and nested inside it.
                let addr = (0x2001_0db8u128 << 96) | (u128::from(bits) << 80);
                let net = ipnet::Ipv6Net::new(Ipv6Addr::from(addr), len).unwrap().trunc();
                layout.entry(IpNet::V6(net)).or_insert((zone, None));
            }
            let ips: Vec<IpAddr> = ips
                .into_iter()
                .map(|(near, x)| {
                    let a = if near { (0x2001_0db8u128 << 96) | (x >> 32) } else { x };
                    IpAddr::V6(Ipv6Addr::from(a))
                })
                .collect();
            check(&layout, 3, &ips)?;
        }

        #[test]
        fn builtin_ranges_match_std_predicates(a in any::<u32>(), b in any::<u128>()) {
            let p = Policy::parse("", "empty.toml").unwrap();
            for ip in [IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b))] {
                prop_assert_eq!(p.classify(ip).class, builtin_class(ip), "{}", ip);
            }
        }
    }

    /// A prefix anywhere in the address space, often at its ends.
    fn any_v4() -> impl Strategy<Value = ipnet::Ipv4Net> {
        let addr = prop_oneof![
            any::<u32>(),
            Just(0u32),
            Just(u32::MAX),
            (0u32..64).prop_map(|x| u32::MAX - x),
            (0u32..0x1_0000).prop_map(|x| 0x7f00_0000 | x),
        ];
        (addr, 0u8..=32)
            .prop_map(|(a, l)| ipnet::Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
    }

    fn any_v6() -> impl Strategy<Value = ipnet::Ipv6Net> {
        let addr = prop_oneof![
            any::<u128>(),
            Just(0u128),
            Just(u128::MAX),
            (0u128..64).prop_map(|x| u128::MAX - x),
            any::<u32>().prop_map(|x| 0xffff_0000_0000u128 | u128::from(x)),
            any::<u64>().prop_map(|x| (0xfe80u128 << 112) | u128::from(x)),
        ];
        (addr, 0u8..=128)
            .prop_map(|(a, l)| ipnet::Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Sealed (runs) and unsealed (tries) classifiers agree at every
        /// prefix edge, over the whole address space, before and after a
        /// later insert and a second seal; and the runs are well formed.
        #[test]
        fn sealed_runs_agree_with_the_tries(
            v4 in proptest::collection::vec((any_v4(), 0u16..3, proptest::option::of(0u16..3)), 0..20),
            v6 in proptest::collection::vec((any_v6(), 0u16..3, proptest::option::of(0u16..3)), 0..20),
            late in (any_v4(), any_v6()),
        ) {
            let owner = |z: u16, g: Option<u16>| super::Owner {
                zone: crate::ZoneId(z),
                group: g.map(crate::GroupId),
            };
            let mut c = super::Classifier::new(crate::ZoneId(100), crate::ZoneId(101), crate::ZoneId(102));
            let mut nets: Vec<IpNet> = Vec::new();
            for (n, z, g) in &v4 {
                c.insert(IpNet::V4(*n), owner(*z, *g));
                nets.push(IpNet::V4(*n));
            }
            for (n, z, g) in &v6 {
                c.insert(IpNet::V6(*n), owner(*z, *g));
                nets.push(IpNet::V6(*n));
            }
            let builtin = PRIVATE_V4.iter().chain(&LOCAL_V4).map(|&n| IpNet::V4(n))
                .chain(PRIVATE_V6.iter().chain(&LOCAL_V6).map(|&n| IpNet::V6(n)));
            nets.extend(builtin);
            let mut tries = c.clone();
            for round in 0..3 {
                if round == 1 {
                    // Inserted after sealing: the runs are dropped until the next seal.
                    for n in [IpNet::V4(late.0), IpNet::V6(late.1)] {
                        c.insert(n, owner(7, Some(7)));
                        tries.insert(n, owner(7, Some(7)));
                        nets.push(n);
                    }
                } else {
                    c.seal();
                    for starts in [c.runs_v4.starts.len(), c.runs_v6.starts.len()] {
                        prop_assert!(starts >= 1);
                    }
                    prop_assert_eq!(c.runs_v4.starts.first(), Some(&0));
                    prop_assert_eq!(c.runs_v6.starts.first(), Some(&0));
                    prop_assert!(c.runs_v4.starts.windows(2).all(|w| w[0] < w[1]));
                    prop_assert!(c.runs_v6.starts.windows(2).all(|w| w[0] < w[1]));
                    prop_assert!(c.runs_v4.classes.windows(2).all(|w| w[0] != w[1]));
                    prop_assert!(c.runs_v6.classes.windows(2).all(|w| w[0] != w[1]));
                }
                let ends = ["0.0.0.0", "255.255.255.255", "::", "::ffff:255.255.255.255"]
                    .map(|a| a.parse::<IpAddr>().unwrap());
                for ip in nets.iter().flat_map(|&n| edges(n)).chain(ends) {
                    prop_assert_eq!(c.classify(ip), tries.classify(ip), "{}", ip);
                    if let IpAddr::V4(a) = ip {
                        let mapped = IpAddr::V6(a.to_ipv6_mapped());
                        prop_assert_eq!(c.classify(mapped), tries.classify(ip), "{}", mapped);
                    }
                }
            }
        }
    }

    #[test]
    fn builtin_edges() {
        let p = Policy::parse("", "empty.toml").unwrap();
        let builtin = PRIVATE_V4
            .iter()
            .chain(&LOCAL_V4)
            .map(|&n| IpNet::V4(n))
            .chain(PRIVATE_V6.iter().chain(&LOCAL_V6).map(|&n| IpNet::V6(n)));
        for ip in builtin.flat_map(edges) {
            assert_eq!(p.classify(ip).class, builtin_class(ip), "{ip}");
        }
        for (ip, class) in [
            ("100.63.255.255", AddressClass::Internet),
            ("100.64.0.0", AddressClass::Undeclared),
            ("100.127.255.255", AddressClass::Undeclared),
            ("100.128.0.0", AddressClass::Internet),
            ("172.15.255.255", AddressClass::Internet),
            ("172.31.255.255", AddressClass::Undeclared),
            ("239.255.255.255", AddressClass::Local),
            ("240.0.0.1", AddressClass::Internet),
            ("0.0.0.1", AddressClass::Internet),
            ("198.51.100.1", AddressClass::Internet),
            ("203.0.113.1", AddressClass::Internet),
            ("fbff::1", AddressClass::Internet),
            ("fc00::1", AddressClass::Undeclared),
            ("febf::1", AddressClass::Local),
            ("fec0::1", AddressClass::Internet),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(p.classify(ip).class, class, "{ip}");
        }
    }

    #[test]
    fn declared_zone_beats_builtin_ranges_whatever_the_length() {
        let p = Policy::parse(
            "[[zone]]\nname = \"everything\"\ncidrs = [\"0.0.0.0/0\"]\n",
            "zones.toml",
        )
        .unwrap();
        let c = p.classify("10.1.2.3".parse().unwrap());
        assert_eq!(p.zone(c.zone).name, "everything");
        assert_eq!(c.prefix, Some("0.0.0.0/0".parse().unwrap()));
        let c = p.classify("::1".parse().unwrap());
        assert_eq!(c.zone, p.local());
    }
}
