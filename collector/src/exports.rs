//! Flow exports arriving as UDP datagrams: recognising them (on any port,
//! by their header), decoding them with the right decoder and per-exporter
//! template state, and counting everything per exporter.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::export::{ExportProtocol, ExportRecord};
use crate::netflow::{self, TemplateCache, TemplateCacheConfig};
use crate::sflow;
use crate::time::Timestamp;

/// Which decoder a listener feeds (a capture tries both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExportKind {
    /// NetFlow v5, v9 and IPFIX, told apart by the version field.
    Netflow,
    /// sFlow v5.
    Sflow,
}

impl ExportKind {
    /// `netflow` or `sflow`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportKind::Netflow => "netflow",
            ExportKind::Sflow => "sflow",
        }
    }
}

/// An allowed exporter range (`--allow-exporter CIDR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExporterRange {
    addr: IpAddr,
    prefix: u8,
}

impl ExporterRange {
    /// Parses `192.0.2.0/24`, `2001:db8::/32` or a bare address.
    pub fn parse(s: &str) -> Result<ExporterRange, String> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() {
            max
        } else {
            p.parse::<u8>()
                .map_err(|_| format!("{s:?}: bad prefix length"))?
        };
        if prefix > max {
            return Err(format!("{s:?}: prefix length above {max}"));
        }
        Ok(ExporterRange {
            addr: addr.to_canonical(),
            prefix,
        })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        // IPv4 sits in the top 32 bits, so the prefix counts from the top either way.
        let shift = 128 - u32::from(self.prefix);
        let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
        bits(ip) & mask == bits(self.addr) & mask
    }
}

/// Per-exporter counters of what the collector did with its datagrams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExporterCounters {
    /// Export protocols seen (`netflow-v9`, `sflow`, ...).
    pub protocols: std::collections::BTreeSet<&'static str>,
    /// Datagrams taken.
    pub datagrams: u64,
    /// Flow records decoded.
    pub records: u64,
    /// sFlow counter samples (counted, not flows).
    pub counter_samples: u64,
    /// Malformed datagrams by reason.
    pub errors: BTreeMap<&'static str, u64>,
    /// Datagrams dropped because the exporter is not allowed.
    pub not_allowed: u64,
    /// Last sampling rate seen.
    pub sampling: Option<u32>,
}

/// What became of one UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not an export (or not on an export port): treat it as ordinary traffic.
    NotExport,
    /// Decoded: this many records.
    Decoded(usize),
    /// An export that could not be decoded (counted per exporter under `reason`).
    Malformed {
        /// Short tag (`truncated-header`, ...), as counted.
        reason: &'static str,
        /// What is wrong, for a log line.
        message: String,
    },
    /// From an exporter outside `--allow-exporter`: dropped and counted.
    NotAllowed,
}

/// Decodes export datagrams for any number of exporters.
pub struct ExportDecoder {
    cache: TemplateCache,
    default_sampling: u32,
    allowed: Vec<ExporterRange>,
    ports: Option<Vec<u16>>,
    exporters: BTreeMap<IpAddr, ExporterCounters>,
    /// Templates the last NetFlow datagram carried.
    last_templates: usize,
}

impl ExportDecoder {
    /// A decoder. `allowed` empty means every exporter; `ports` restricts
    /// which UDP destination ports are tried in captures.
    pub fn new(
        default_sampling: u32,
        allowed: Vec<ExporterRange>,
        ports: Option<Vec<u16>>,
    ) -> ExportDecoder {
        ExportDecoder {
            cache: TemplateCache::new(TemplateCacheConfig::default()),
            default_sampling,
            allowed,
            ports,
            exporters: BTreeMap::new(),
            last_templates: 0,
        }
    }

    /// Per-exporter counters of this decoder.
    pub fn exporters(&self) -> &BTreeMap<IpAddr, ExporterCounters> {
        &self.exporters
    }

    /// The template cache (per-exporter template statistics).
    pub fn templates(&self) -> &TemplateCache {
        &self.cache
    }

    /// Whether [`ExportDecoder::captured`] could take a datagram to `dport`
    /// with this payload for an export; `false`: it would say
    /// [`Outcome::NotExport`] without looking further.
    pub fn may_be_export(&self, dport: u16, payload: &[u8]) -> bool {
        self.port_allowed(dport)
            && (sflow::looks_like_sflow(payload) || netflow::looks_like_netflow(payload))
    }

    fn port_allowed(&self, dport: u16) -> bool {
        self.ports.as_ref().is_none_or(|p| p.contains(&dport))
    }

    /// A UDP datagram seen in a capture: decoded if it is an export.
    pub fn captured(
        &mut self,
        exporter: IpAddr,
        dport: u16,
        received_at: Timestamp,
        payload: &[u8],
        out: &mut Vec<ExportRecord>,
    ) -> Outcome {
        if !self.port_allowed(dport) {
            return Outcome::NotExport;
        }
        if sflow::looks_like_sflow(payload) {
            return self.datagram(ExportKind::Sflow, exporter, received_at, payload, out);
        }
        if !netflow::looks_like_netflow(payload) {
            return Outcome::NotExport;
        }
        // A NetFlow v9 header is a weak signature (any UDP payload starting
        // 00 09 with a plausible set): a datagram that gives neither records
        // nor templates, from a source with no templates, stays ordinary
        // traffic, so a DNS packet with id 9 is never lost from the flows.
        let known = self.cache.exporter_len(exporter.to_canonical()) > 0;
        let outcome = self.datagram(ExportKind::Netflow, exporter, received_at, payload, out);
        if !known
            && self.last_templates == 0
            && outcome == Outcome::Decoded(0)
            && payload.starts_with(&[0, 9])
        {
            return Outcome::NotExport;
        }
        outcome
    }

    /// A datagram received by a listener of `kind`.
    pub fn datagram(
        &mut self,
        kind: ExportKind,
        exporter: IpAddr,
        received_at: Timestamp,
        payload: &[u8],
        out: &mut Vec<ExportRecord>,
    ) -> Outcome {
        let exporter = exporter.to_canonical();
        let counters = self.exporters.entry(exporter).or_default();
        if !self.allowed.is_empty() && !self.allowed.iter().any(|r| r.contains(exporter)) {
            counters.not_allowed += 1;
            return Outcome::NotAllowed;
        }
        counters.datagrams += 1;
        let before = out.len();
        let mut templates = 0;
        let result = match kind {
            ExportKind::Netflow => netflow::decode(
                exporter,
                received_at,
                payload,
                &mut self.cache,
                self.default_sampling,
                out,
            )
            .map(|s| {
                templates = s.templates;
                let protocol = match s.version {
                    5 => ExportProtocol::NetflowV5,
                    9 => ExportProtocol::NetflowV9,
                    _ => ExportProtocol::Ipfix,
                };
                counters.protocols.insert(protocol.as_str());
            })
            .map_err(|e| (e.reason, e.to_string())),
            ExportKind::Sflow => sflow::decode(exporter, received_at, payload, out)
                .map(|s| {
                    counters.protocols.insert(ExportProtocol::Sflow.as_str());
                    counters.counter_samples += u64::try_from(s.counter_samples).unwrap_or(0);
                })
                .map_err(|e| (e.reason, e.to_string())),
        };
        self.last_templates = templates;
        let decoded = out.len() - before;
        counters.records += u64::try_from(decoded).unwrap_or(0);
        if let Some(r) = out[before..].iter().rev().find(|r| r.sampling > 0) {
            counters.sampling = Some(r.sampling);
        }
        match result {
            Ok(()) => Outcome::Decoded(decoded),
            Err((reason, text)) => {
                *counters.errors.entry(reason).or_insert(0) += 1;
                Outcome::Malformed {
                    reason,
                    message: text,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v9_lookalike_from_an_unknown_source_stays_ordinary_traffic() {
        // 00 09 ...: a DNS message with id 9 can look like a v9 header and a data set.
        let mut d = vec![
            0, 9, 0, 1, 0, 0, 0, 0, 0x66, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
        ];
        d.extend_from_slice(&[0x01, 0x2c, 0, 8, 1, 2, 3, 4]);
        let mut dec = ExportDecoder::new(1, Vec::new(), None);
        let mut out = Vec::new();
        let src: IpAddr = "192.0.2.53".parse().unwrap();
        assert_eq!(
            dec.captured(src, 53, Timestamp(0), &d, &mut out),
            Outcome::NotExport
        );
        assert!(out.is_empty());
        // Not on an allowed port at all: not even tried.
        let mut only = ExportDecoder::new(1, Vec::new(), Some(vec![2055]));
        assert_eq!(
            only.captured(src, 53, Timestamp(0), &d, &mut out),
            Outcome::NotExport
        );
        assert!(only.exporters().is_empty());
        // The one-pass packet reader leaves it to `captured` all the same.
        assert!(dec.may_be_export(53, &d));
        assert!(!only.may_be_export(53, &d));
        assert!(only.may_be_export(2055, &d));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// A datagram `may_be_export` rules out is ordinary traffic to
        /// `captured`, which keeps no trace of it.
        #[test]
        fn what_may_be_export_rules_out_captured_ignores(
            version in proptest::prop_oneof![
                proptest::strategy::Just(5u16),
                proptest::strategy::Just(9),
                proptest::strategy::Just(10),
                proptest::prelude::any::<u16>(),
            ],
            sflow in proptest::prelude::any::<bool>(),
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..160),
            ports in 0usize..4,
            dport in proptest::prop_oneof![
                proptest::strategy::Just(53u16),
                proptest::strategy::Just(2055),
                proptest::strategy::Just(6343),
                proptest::prelude::any::<u16>(),
            ],
        ) {
            let head: Vec<u8> = if sflow {
                // sFlow v5 from agent 192.0.2.1 with no samples: plausible.
                let mut h = vec![0, 0, 0, 5, 0, 0, 0, 1, 192, 0, 2, 1];
                h.extend_from_slice(&[0; 16]);
                h
            } else {
                version.to_be_bytes().to_vec()
            };
            let payload = [head, rest].concat();
            let ports = [None, Some(vec![2055]), Some(vec![]), Some(vec![6343, 53])]
                .into_iter()
                .nth(ports)
                .flatten();
            let mut dec = ExportDecoder::new(1, Vec::new(), ports);
            if !dec.may_be_export(dport, &payload) {
                let mut out = Vec::new();
                let src: IpAddr = "192.0.2.9".parse().unwrap();
                proptest::prop_assert_eq!(
                    dec.captured(src, dport, Timestamp(0), &payload, &mut out),
                    Outcome::NotExport
                );
                proptest::prop_assert!(out.is_empty());
                proptest::prop_assert!(dec.exporters().is_empty());
            }
        }
    }

    #[test]
    fn exporter_ranges() {
        let r = ExporterRange::parse("192.0.2.0/24").unwrap();
        assert!(r.contains("192.0.2.77".parse().unwrap()));
        assert!(!r.contains("192.0.3.1".parse().unwrap()));
        assert!(r.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!r.contains("2001:db8::1".parse().unwrap()));
        let h = ExporterRange::parse("2001:db8::1").unwrap();
        assert!(h.contains("2001:db8::1".parse().unwrap()));
        assert!(!h.contains("2001:db8::2".parse().unwrap()));
        assert!(
            ExporterRange::parse("0.0.0.0/0")
                .unwrap()
                .contains("203.0.113.9".parse().unwrap())
        );
        assert!(ExporterRange::parse("10.0.0.0/33").is_err());
        assert!(ExporterRange::parse("nonsense").is_err());
    }
}
