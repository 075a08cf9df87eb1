//! A hand-written JSON Lines writer for flows: the same text as their serde
//! `Serialize` (a test holds the two together), without serde's per-token
//! escaping and dispatch, because printing flows is the hot path of
//! `zonewatch flows`.

use std::io::Write;
use std::net::IpAddr;

use crate::export::{ExportRecord, FlowAction, StatedDirection};
use crate::record::FlowRecord;
use crate::stitch::ExportInfo;
use crate::time::Timestamp;

fn string(out: &mut Vec<u8>, s: &str) {
    // Flow fields are addresses, names and paths: escape what JSON requires.
    out.push(b'"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn display(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    // Used for addresses, numbers and flag letters: no character needs escaping.
    out.push(b'"');
    let _ = write!(out, "{v}");
    out.push(b'"');
}

fn time(out: &mut Vec<u8>, t: Timestamp) {
    let mut buf = [0u8; 27];
    match t.rfc3339(&mut buf) {
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        None => display(out, t),
    }
}

fn num(out: &mut Vec<u8>, n: impl Into<u64>) {
    let mut n: u64 = n.into();
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

fn opt_num<T: Into<u64>>(out: &mut Vec<u8>, n: Option<T>) {
    match n {
        Some(n) => num(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

fn ip(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => {
            // Dotted quad by hand: std's Display pads through the formatter.
            out.push(b'"');
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                num(out, o);
            }
            out.push(b'"');
        }
        IpAddr::V6(_) => display(out, a),
    }
}

/// Appends one flow as a JSON object (no newline).
pub fn write_flow(out: &mut Vec<u8>, f: &FlowRecord) {
    out.extend_from_slice(b"{\"first\":");
    time(out, f.first);
    out.extend_from_slice(b",\"last\":");
    time(out, f.last);
    out.extend_from_slice(b",\"proto\":");
    display(out, f.proto);
    out.extend_from_slice(b",\"src\":");
    ip(out, f.src);
    out.extend_from_slice(b",\"sport\":");
    num(out, f.sport);
    out.extend_from_slice(b",\"dst\":");
    ip(out, f.dst);
    out.extend_from_slice(b",\"dport\":");
    num(out, f.dport);
    out.extend_from_slice(b",\"packets\":");
    num(out, f.packets);
    out.extend_from_slice(b",\"bytes\":");
    num(out, f.bytes);
    out.extend_from_slice(b",\"rpackets\":");
    num(out, f.rpackets);
    out.extend_from_slice(b",\"rbytes\":");
    num(out, f.rbytes);
    out.extend_from_slice(b",\"answered\":");
    out.extend_from_slice(match f.answered {
        Some(true) => b"true",
        Some(false) => b"false",
        None => b"null",
    });
    out.extend_from_slice(b",\"state\":");
    string(out, f.state.as_str());
    out.extend_from_slice(b",\"tcp_flags\":");
    display(out, f.tcp_flags);
    out.extend_from_slice(b",\"rtcp_flags\":");
    display(out, f.rtcp_flags);
    out.extend_from_slice(b",\"oriented_by\":");
    string(out, f.oriented_by.as_str());
    out.extend_from_slice(b",\"vlan\":[");
    for (i, v) in f.vlan.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        num(out, *v);
    }
    out.extend_from_slice(b"],\"source\":");
    string(out, &f.source);
    out.extend_from_slice(b",\"sampling\":");
    num(out, f.sampling);
    out.extend_from_slice(b",\"community_id\":");
    string(out, &f.community_id());
    if let Some(e) = &f.export {
        out.extend_from_slice(b",\"export\":");
        write_export_info(out, e);
    }
    out.push(b'}');
}

fn write_export_info(out: &mut Vec<u8>, e: &ExportInfo) {
    out.extend_from_slice(b"{\"protocol\":");
    string(out, &e.protocol);
    out.extend_from_slice(b",\"exporter\":");
    ip(out, e.exporter);
    out.extend_from_slice(b",\"domain\":");
    num(out, e.domain);
    out.extend_from_slice(b",\"template_id\":");
    opt_num(out, e.template_id);
    out.extend_from_slice(b",\"records\":");
    num(out, e.records);
    out.extend_from_slice(b",\"record\":");
    write_export_record(out, &e.record);
    out.push(b'}');
}

fn write_export_record(out: &mut Vec<u8>, r: &ExportRecord) {
    out.extend_from_slice(b"{\"protocol\":");
    string(out, r.protocol.as_str());
    out.extend_from_slice(b",\"exporter\":");
    ip(out, r.exporter);
    out.extend_from_slice(b",\"domain\":");
    num(out, r.domain);
    out.extend_from_slice(b",\"template_id\":");
    opt_num(out, r.template_id);
    out.extend_from_slice(b",\"first\":");
    time(out, r.first);
    out.extend_from_slice(b",\"last\":");
    time(out, r.last);
    out.extend_from_slice(b",\"src\":");
    ip(out, r.src);
    out.extend_from_slice(b",\"dst\":");
    ip(out, r.dst);
    out.extend_from_slice(b",\"proto\":");
    num(out, r.proto);
    out.extend_from_slice(b",\"sport\":");
    num(out, r.sport);
    out.extend_from_slice(b",\"dport\":");
    num(out, r.dport);
    out.extend_from_slice(b",\"packets\":");
    num(out, r.packets);
    out.extend_from_slice(b",\"bytes\":");
    num(out, r.bytes);
    out.extend_from_slice(b",\"tcp_flags\":");
    num(out, r.tcp_flags);
    out.extend_from_slice(b",\"sampling\":");
    num(out, r.sampling);
    out.extend_from_slice(b",\"direction\":");
    out.extend_from_slice(match r.direction {
        Some(StatedDirection::SrcIsInitiator) => b"\"src-is-initiator\"",
        Some(StatedDirection::SrcIsResponder) => b"\"src-is-responder\"",
        None => b"null",
    });
    out.extend_from_slice(b",\"reverse\":");
    match r.reverse {
        Some(rev) => {
            out.extend_from_slice(b"{\"packets\":");
            num(out, rev.packets);
            out.extend_from_slice(b",\"bytes\":");
            num(out, rev.bytes);
            out.extend_from_slice(b",\"tcp_flags\":");
            num(out, rev.tcp_flags);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"vlan\":");
    opt_num(out, r.vlan);
    out.extend_from_slice(b",\"input_if\":");
    opt_num(out, r.input_if);
    out.extend_from_slice(b",\"output_if\":");
    opt_num(out, r.output_if);
    out.extend_from_slice(b",\"action\":");
    out.extend_from_slice(match r.action {
        Some(FlowAction::Accept) => b"\"accept\"",
        Some(FlowAction::Reject) => b"\"reject\"",
        None => b"null",
    });
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::{ExportProtocol, ReverseCounters};
    use crate::record::{FlowState, OrientedBy, Proto, TcpFlags};
    use std::sync::Arc;

    fn flow() -> FlowRecord {
        FlowRecord {
            id: 7,
            first: Timestamp::from_secs_nanos(1_714_557_600, 1_000),
            last: Timestamp::from_secs_nanos(1_714_557_602, 500_000_000),
            proto: Proto(6),
            src: "198.51.100.7".parse().unwrap(),
            sport: 51514,
            dst: "2001:db8::10".parse().unwrap(),
            dport: 5432,
            packets: 6,
            bytes: 412,
            rpackets: 5,
            rbytes: 1880,
            answered: Some(true),
            state: FlowState::Established,
            tcp_flags: TcpFlags(0x1b),
            rtcp_flags: TcpFlags(0x12),
            oriented_by: OrientedBy::Handshake,
            vlan: vec![10, 20],
            source: Arc::from("dir/\"odd\" name\\\u{1}é.pcap"),
            sampling: 1,
            export: None,
        }
    }

    fn ours(f: &FlowRecord) -> String {
        let mut out = Vec::new();
        write_flow(&mut out, f);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn same_text_as_serde() {
        let mut f = flow();
        assert_eq!(ours(&f), serde_json::to_string(&f).unwrap());
        f.answered = None;
        f.state = FlowState::OneWay;
        f.vlan.clear();
        f.proto = Proto(132);
        let rec = ExportRecord {
            protocol: ExportProtocol::Ipfix,
            exporter: "192.0.2.1".parse().unwrap(),
            domain: 3,
            template_id: Some(256),
            first: f.first,
            last: f.last,
            src: f.src,
            dst: f.dst,
            proto: 6,
            sport: 1,
            dport: 2,
            packets: 3,
            bytes: 4,
            tcp_flags: 0x12,
            sampling: 100,
            direction: Some(StatedDirection::SrcIsResponder),
            reverse: Some(ReverseCounters {
                packets: 1,
                bytes: 2,
                tcp_flags: 3,
            }),
            vlan: Some(5),
            input_if: None,
            output_if: Some(9),
            action: Some(FlowAction::Reject),
        };
        f.export = Some(ExportInfo {
            protocol: "ipfix".to_string(),
            exporter: rec.exporter,
            domain: 3,
            template_id: None,
            records: 2,
            record: Box::new(rec),
        });
        assert_eq!(ours(&f), serde_json::to_string(&f).unwrap());
    }
}
