//! [`ExportRecord`]: one unidirectional flow record as an exporter sent it
//! (NetFlow v5/v9, IPFIX, sFlow sample, cloud flow log line), before the
//! collector stitches the two directions into a [`crate::FlowRecord`].

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::time::Timestamp;

/// The export protocol a record came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportProtocol {
    /// NetFlow v5.
    NetflowV5,
    /// NetFlow v9.
    NetflowV9,
    /// IPFIX (NetFlow v10).
    Ipfix,
    /// sFlow v5 flow sample.
    Sflow,
    /// AWS VPC Flow Logs.
    VpcFlowLog,
}

impl ExportProtocol {
    /// Short name for summaries and evidence (`netflow-v5`, `netflow-v9`, `ipfix`, `sflow`, `vpc-flow-log`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExportProtocol::NetflowV5 => "netflow-v5",
            ExportProtocol::NetflowV9 => "netflow-v9",
            ExportProtocol::Ipfix => "ipfix",
            ExportProtocol::Sflow => "sflow",
            ExportProtocol::VpcFlowLog => "vpc-flow-log",
        }
    }
}

impl fmt::Display for ExportProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A direction the exporter stated for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatedDirection {
    /// The record's source is the flow's initiator (RFC 5103 biflowDirection
    /// 1 "initiator", ASA NSEL initiator fields, ...).
    SrcIsInitiator,
    /// The record's source is the flow's responder.
    SrcIsResponder,
}

/// What a firewall did with a flow, as the exporter stated it (AWS VPC Flow
/// Logs `action`). A rejected record is a blocked flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowAction {
    /// The traffic was allowed (`ACCEPT`).
    Accept,
    /// The traffic was blocked (`REJECT`).
    Reject,
}

/// Counters of the reverse direction carried in the same record (RFC 5103
/// biflow reverse fields, enterprise 29305).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ReverseCounters {
    /// Packets destination → source.
    pub packets: u64,
    /// Bytes destination → source.
    pub bytes: u64,
    /// TCP flags destination → source.
    pub tcp_flags: u8,
}

/// One unidirectional flow record, as exported. Counters are as the exporter
/// sent them (not yet scaled by `sampling`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportRecord {
    /// Export protocol.
    pub protocol: ExportProtocol,
    /// The exporter's address (the datagram's source, or the agent address for sFlow).
    pub exporter: IpAddr,
    /// Observation domain (IPFIX), source id (v9), engine type/id (v5: type<<8|id), sub-agent (sFlow).
    pub domain: u32,
    /// The template that decoded it (v9 / IPFIX).
    pub template_id: Option<u16>,
    /// First packet time (UTC).
    pub first: Timestamp,
    /// Last packet time (UTC).
    pub last: Timestamp,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol.
    pub proto: u8,
    /// Source port (0 when none).
    pub sport: u16,
    /// Destination port; for ICMP/ICMPv6 `type*256+code`.
    pub dport: u16,
    /// Packets source → destination, as exported.
    pub packets: u64,
    /// IP-layer bytes source → destination, as exported.
    pub bytes: u64,
    /// Union of TCP flags source → destination.
    pub tcp_flags: u8,
    /// Sampling rate in force (1 = every packet, 0 = unknown).
    pub sampling: u32,
    /// A direction the exporter stated, if any.
    pub direction: Option<StatedDirection>,
    /// Reverse-direction counters of a bidirectional record, if any.
    pub reverse: Option<ReverseCounters>,
    /// VLAN id, if exported.
    pub vlan: Option<u16>,
    /// Input interface index, if exported.
    pub input_if: Option<u32>,
    /// Output interface index, if exported.
    pub output_if: Option<u32>,
    /// The firewall action the export states, if any.
    pub action: Option<FlowAction>,
}
