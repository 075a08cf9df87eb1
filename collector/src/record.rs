//! [`FlowRecord`]: the one normalised biflow every input produces.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::packet::{ip_proto, tcp_flags};
use crate::time::Timestamp;

/// An IP protocol number, printed as `tcp`, `udp`, `icmp`, `icmpv6` or the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Proto(pub u8);

impl Proto {
    /// Whether this is ICMP or ICMPv6.
    pub fn is_icmp(self) -> bool {
        self.0 == ip_proto::ICMP || self.0 == ip_proto::ICMPV6
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ip_proto::TCP => f.write_str("tcp"),
            ip_proto::UDP => f.write_str("udp"),
            ip_proto::ICMP => f.write_str("icmp"),
            ip_proto::ICMPV6 => f.write_str("icmpv6"),
            n => write!(f, "{n}"),
        }
    }
}

impl Serialize for Proto {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How the flow's direction (who initiated) was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrientedBy {
    /// A TCP SYN / SYN-ACK, or an ICMP request/reply pair.
    Handshake,
    /// The exporter stated the direction.
    Exporter,
    /// The side on a service port is the responder (else the lower port).
    ServicePort,
    /// The sender of the first packet initiated.
    FirstPacket,
}

impl OrientedBy {
    /// The contract name (`handshake`, `exporter`, `service-port`, `first-packet`).
    pub fn as_str(self) -> &'static str {
        match self {
            OrientedBy::Handshake => "handshake",
            OrientedBy::Exporter => "exporter",
            OrientedBy::ServicePort => "service-port",
            OrientedBy::FirstPacket => "first-packet",
        }
    }
}

/// What the responder did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowState {
    /// TCP SYN-ACK or payload back; UDP/other: at least one packet back.
    Established,
    /// TCP RST from the responder, or an ICMP unreachable about this flow.
    Rejected,
    /// Both directions were visible and nothing came back.
    Unanswered,
    /// The reverse direction could not be seen.
    OneWay,
}

impl FlowState {
    /// `true` established, `false` rejected/unanswered, `None` one-way.
    pub fn answered(self) -> Option<bool> {
        match self {
            FlowState::Established => Some(true),
            FlowState::Rejected | FlowState::Unanswered => Some(false),
            FlowState::OneWay => None,
        }
    }

    /// The contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::Established => "established",
            FlowState::Rejected => "rejected",
            FlowState::Unanswered => "unanswered",
            FlowState::OneWay => "one-way",
        }
    }
}

/// TCP flags printed as letters in the order S A F P R U E C (`SAFP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ORDER: [(u8, char); 8] = [
            (tcp_flags::SYN, 'S'),
            (tcp_flags::ACK, 'A'),
            (tcp_flags::FIN, 'F'),
            (tcp_flags::PSH, 'P'),
            (tcp_flags::RST, 'R'),
            (tcp_flags::URG, 'U'),
            (tcp_flags::ECE, 'E'),
            (tcp_flags::CWR, 'C'),
        ];
        for (bit, c) in ORDER {
            if self.0 & bit != 0 {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl Serialize for TcpFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One bidirectional, oriented flow. Field names are DESIGN.md's contract
/// (its `community_id` is computed when it is printed: most flows of an
/// analysis never are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    /// The table's id of this flow (not part of the output contract).
    pub id: u64,
    /// Time of the first packet.
    pub first: Timestamp,
    /// Time of the last packet.
    pub last: Timestamp,
    /// IP protocol.
    pub proto: Proto,
    /// Initiator address.
    pub src: IpAddr,
    /// Initiator port (0 for ICMP and portless protocols).
    pub sport: u16,
    /// Responder address.
    pub dst: IpAddr,
    /// Responder port; for ICMP `type*256+code` of the initiator's message.
    pub dport: u16,
    /// Packets initiator → responder.
    pub packets: u64,
    /// IP-layer bytes initiator → responder.
    pub bytes: u64,
    /// Packets responder → initiator.
    pub rpackets: u64,
    /// IP-layer bytes responder → initiator.
    pub rbytes: u64,
    /// `state.answered()`.
    pub answered: Option<bool>,
    /// What the responder did.
    pub state: FlowState,
    /// Union of TCP flags initiator → responder.
    pub tcp_flags: TcpFlags,
    /// Union of TCP flags responder → initiator.
    pub rtcp_flags: TcpFlags,
    /// How the direction was decided.
    pub oriented_by: OrientedBy,
    /// VLAN ids, outermost first (priority tag 0 excluded).
    pub vlan: Vec<u16>,
    /// The input that produced it (file name, folder, `-`, exporter).
    pub source: Arc<str>,
    /// Sampling rate (1 = every packet).
    pub sampling: u32,
    /// For flows from exports: exporter, domain, template and the first record.
    pub export: Option<crate::stitch::ExportInfo>,
}

impl Serialize for FlowRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("FlowRecord", 21)?;
        st.serialize_field("first", &self.first)?;
        st.serialize_field("last", &self.last)?;
        st.serialize_field("proto", &self.proto)?;
        st.serialize_field("src", &self.src)?;
        st.serialize_field("sport", &self.sport)?;
        st.serialize_field("dst", &self.dst)?;
        st.serialize_field("dport", &self.dport)?;
        st.serialize_field("packets", &self.packets)?;
        st.serialize_field("bytes", &self.bytes)?;
        st.serialize_field("rpackets", &self.rpackets)?;
        st.serialize_field("rbytes", &self.rbytes)?;
        st.serialize_field("answered", &self.answered)?;
        st.serialize_field("state", &self.state)?;
        st.serialize_field("tcp_flags", &self.tcp_flags)?;
        st.serialize_field("rtcp_flags", &self.rtcp_flags)?;
        st.serialize_field("oriented_by", &self.oriented_by)?;
        st.serialize_field("vlan", &self.vlan)?;
        st.serialize_field("source", &self.source)?;
        st.serialize_field("sampling", &self.sampling)?;
        st.serialize_field("community_id", &self.community_id())?;
        if let Some(e) = &self.export {
            st.serialize_field("export", e)?;
        }
        st.end()
    }
}

impl FlowRecord {
    /// Community ID v1, seed 0 (for ICMP, of the initiator's type and code).
    pub fn community_id(&self) -> String {
        if self.proto.is_icmp() {
            crate::community_id::community_id(
                0,
                self.src,
                self.dst,
                self.proto.0,
                self.dport >> 8,
                self.dport & 0xff,
            )
        } else {
            crate::community_id::community_id(
                0,
                self.src,
                self.dst,
                self.proto.0,
                self.sport,
                self.dport,
            )
        }
    }

    /// The service (responder side) as a policy would name it: `tcp/5432`,
    /// `udp/53`, `icmp/8`, `proto/47`.
    pub fn service(&self) -> String {
        match self.proto.0 {
            ip_proto::TCP | ip_proto::UDP => format!("{}/{}", self.proto, self.dport),
            ip_proto::ICMP | ip_proto::ICMPV6 => format!("{}/{}", self.proto, self.dport >> 8),
            n => format!("proto/{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_in_contract_order() {
        let f = TcpFlags(tcp_flags::SYN | tcp_flags::ACK | tcp_flags::FIN | tcp_flags::PSH);
        assert_eq!(f.to_string(), "SAFP");
        assert_eq!(TcpFlags(0).to_string(), "");
        assert_eq!(TcpFlags(0xff).to_string(), "SAFPRUEC");
    }

    #[test]
    fn proto_names() {
        assert_eq!(Proto(6).to_string(), "tcp");
        assert_eq!(Proto(58).to_string(), "icmpv6");
        assert_eq!(Proto(132).to_string(), "132");
    }
}
