//! Service specs (`tcp/5432`, `udp/53`, `tcp/8000-8100`, `icmp/8`, `proto/47`, `any`)
//! and how they match a flow's responder side.

use std::fmt;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// A parsed service spec. [`Display`](fmt::Display) prints the canonical text
/// (`tcp/5432`, `tcp/8000-8100`, `udp/53`, `icmp`, `icmp/8`, `icmpv6/128`, `proto/47`, `any`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Service(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Any,
    /// Protocol (TCP or UDP) and an inclusive port range.
    Ports {
        proto: u8,
        lo: u16,
        hi: u16,
    },
    /// `icmp`: ICMP or ICMPv6, any type.
    IcmpAny,
    /// ICMP (`v6 = false`) or ICMPv6, one type.
    IcmpType {
        v6: bool,
        ty: u8,
    },
    /// ICMPv6, any type.
    Icmpv6Any,
    /// Any port of one IP protocol.
    Proto(u8),
}

impl Service {
    /// Every protocol and port.
    pub const ANY: Service = Service(Kind::Any);

    /// Parses `tcp/N`, `udp/N`, `tcp/N-M`, `udp/N-M`, `icmp`, `icmp/TYPE`,
    /// `icmpv6`, `icmpv6/TYPE`, `proto/N` or `any` (case-insensitive).
    pub fn parse(s: &str) -> Result<Service, String> {
        let text = s.trim().to_ascii_lowercase();
        let bad = |why: &str| format!("{s:?} is not a service: {why}");
        let (name, arg) = match text.split_once('/') {
            Some((n, a)) => (n, Some(a)),
            None => (text.as_str(), None),
        };
        let kind = match (name, arg) {
            ("any", None) => Kind::Any,
            ("icmp", None) => Kind::IcmpAny,
            ("icmpv6", None) => Kind::Icmpv6Any,
            ("icmp" | "icmpv6", Some(a)) => {
                let ty = a
                    .parse::<u8>()
                    .map_err(|_| bad("the ICMP type must be 0-255"))?;
                Kind::IcmpType {
                    v6: name == "icmpv6",
                    ty,
                }
            }
            ("proto", Some(a)) => Kind::Proto(
                a.parse::<u8>()
                    .map_err(|_| bad("the protocol must be 0-255"))?,
            ),
            ("tcp" | "udp", Some(a)) => {
                let proto = if name == "tcp" { TCP } else { UDP };
                let port = |p: &str| p.parse::<u16>().map_err(|_| bad("a port must be 0-65535"));
                let (lo, hi) = match a.split_once('-') {
                    Some((lo, hi)) => (port(lo)?, port(hi)?),
                    None => {
                        let p = port(a)?;
                        (p, p)
                    }
                };
                if lo > hi {
                    return Err(bad("the range is empty (low port above high port)"));
                }
                Kind::Ports { proto, lo, hi }
            }
            ("tcp" | "udp", None) => {
                return Err(bad(&format!(
                    "give a port or range, e.g. {name}/443 or {name}/0-65535"
                )));
            }
            _ => {
                return Err(bad(
                    "expected tcp/N, udp/N, tcp/N-M, udp/N-M, icmp, icmp/TYPE, icmpv6, icmpv6/TYPE, proto/N or any",
                ));
            }
        };
        Ok(Service(kind))
    }

    /// Whether a flow to the responder port `dport` over protocol `proto`
    /// matches. For ICMP/ICMPv6, `dport` is `type * 256 + code`.
    pub fn matches(&self, proto: u8, dport: u16) -> bool {
        match self.0 {
            Kind::Any => true,
            Kind::Ports { proto: p, lo, hi } => p == proto && lo <= dport && dport <= hi,
            Kind::IcmpAny => proto == ICMP || proto == ICMPV6,
            Kind::Icmpv6Any => proto == ICMPV6,
            Kind::IcmpType { v6, ty } => {
                let want = if v6 { ICMPV6 } else { ICMP };
                proto == want && (dport >> 8) == u16::from(ty)
            }
            Kind::Proto(p) => p == proto,
        }
    }

    /// `(proto, dport)` when the spec names exactly one flow service
    /// (a single port, an ICMP type with code 0, or a protocol).
    pub(crate) fn concrete(&self) -> Option<(u8, u16)> {
        match self.0 {
            Kind::Ports { proto, lo, hi } if lo == hi => Some((proto, lo)),
            Kind::IcmpType { v6, ty } => Some((if v6 { ICMPV6 } else { ICMP }, u16::from(ty) << 8)),
            Kind::Proto(p) => Some((p, 0)),
            _ => None,
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Kind::Any => f.write_str("any"),
            Kind::Ports { proto, lo, hi } => {
                let name = if proto == TCP { "tcp" } else { "udp" };
                if lo == hi {
                    write!(f, "{name}/{lo}")
                } else {
                    write!(f, "{name}/{lo}-{hi}")
                }
            }
            Kind::IcmpAny => f.write_str("icmp"),
            Kind::Icmpv6Any => f.write_str("icmpv6"),
            Kind::IcmpType { v6: false, ty } => write!(f, "icmp/{ty}"),
            Kind::IcmpType { v6: true, ty } => write!(f, "icmpv6/{ty}"),
            Kind::Proto(p) => write!(f, "proto/{p}"),
        }
    }
}

/// A flow's service as text (see [`PathQuery::service_text`](crate::PathQuery::service_text)).
pub(crate) fn describe(proto: u8, dport: u16) -> String {
    match proto {
        TCP => format!("tcp/{dport}"),
        UDP => format!("udp/{dport}"),
        ICMP | ICMPV6 => {
            let name = if proto == ICMP { "icmp" } else { "icmpv6" };
            let (ty, code) = (dport >> 8, dport & 0xff);
            if code == 0 {
                format!("{name}/{ty}")
            } else {
                format!("{name}/{ty}/{code}")
            }
        }
        p => format!("proto/{p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(s: &str) -> Service {
        Service::parse(s).unwrap()
    }

    #[test]
    fn canonical_text_round_trips() {
        for s in [
            "tcp/5432",
            "tcp/8000-8100",
            "udp/53",
            "udp/0-65535",
            "icmp",
            "icmp/8",
            "icmpv6",
            "icmpv6/128",
            "proto/47",
            "any",
        ] {
            assert_eq!(svc(s).to_string(), s);
        }
        assert_eq!(svc(" TCP/80-80 ").to_string(), "tcp/80");
    }

    #[test]
    fn rejects_bad_specs() {
        for s in [
            "",
            "tcp",
            "tcp/",
            "tcp/65536",
            "tcp/90-80",
            "tcp/a",
            "udp/-1",
            "icmp/256",
            "proto/300",
            "sctp/80",
            "any/1",
            "tcp/1-2-3",
        ] {
            assert!(Service::parse(s).is_err(), "{s:?} parsed");
        }
        let e = Service::parse("tcp/99999").unwrap_err();
        assert!(e.contains("\"tcp/99999\""), "{e}");
    }

    #[test]
    fn ports_and_ranges_match_their_protocol_only() {
        assert!(svc("tcp/5432").matches(6, 5432));
        assert!(!svc("tcp/5432").matches(17, 5432));
        assert!(!svc("tcp/5432").matches(6, 5433));
        let r = svc("tcp/8000-8100");
        assert!(r.matches(6, 8000) && r.matches(6, 8100) && r.matches(6, 8050));
        assert!(!r.matches(6, 7999) && !r.matches(6, 8101));
        assert!(svc("udp/53").matches(17, 53));
        assert!(!svc("udp/53").matches(6, 53));
    }

    #[test]
    fn icmp_matches_types() {
        // echo request: type 8, code 0 -> dport 0x0800
        assert!(svc("icmp/8").matches(1, 8 << 8));
        assert!(!svc("icmp/8").matches(1, 0));
        assert!(svc("icmp/3").matches(1, (3 << 8) | 1)); // any code
        assert!(!svc("icmp/8").matches(58, 8 << 8));
        assert!(svc("icmp").matches(1, 1234));
        assert!(svc("icmp").matches(58, 128 << 8));
        assert!(!svc("icmp").matches(6, 0));
        assert!(svc("icmpv6").matches(58, 0));
        assert!(!svc("icmpv6").matches(1, 0));
        assert!(svc("icmpv6/128").matches(58, 128 << 8));
        assert!(!svc("icmpv6/128").matches(1, 128 << 8));
    }

    #[test]
    fn proto_and_any() {
        assert!(svc("proto/47").matches(47, 0));
        assert!(svc("proto/47").matches(47, 999));
        assert!(!svc("proto/47").matches(6, 0));
        assert!(svc("proto/6").matches(6, 22));
        assert!(svc("any").matches(6, 22) && svc("any").matches(132, 0));
    }

    #[test]
    fn describe_flow_services() {
        assert_eq!(describe(6, 5432), "tcp/5432");
        assert_eq!(describe(17, 53), "udp/53");
        assert_eq!(describe(1, 8 << 8), "icmp/8");
        assert_eq!(describe(1, (3 << 8) | 13), "icmp/3/13");
        assert_eq!(describe(58, 128 << 8), "icmpv6/128");
        assert_eq!(describe(47, 0), "proto/47");
    }
}
