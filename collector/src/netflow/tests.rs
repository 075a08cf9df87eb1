//! Unit tests on small hand-built datagrams, one feature each.

use std::net::IpAddr;

use super::*;
use crate::export::{ExportProtocol, StatedDirection};

const T0: i64 = 1_700_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs_nanos(secs, 0)
}

fn cache() -> TemplateCache {
    TemplateCache::new(TemplateCacheConfig::default())
}

fn run(
    cache: &mut TemplateCache,
    exporter: &str,
    data: &[u8],
) -> (Result<DatagramSummary, NetflowError>, Vec<ExportRecord>) {
    let mut out = Vec::new();
    let r = decode(ip(exporter), at(T0), data, cache, 1, &mut out);
    (r, out)
}

fn stats<'a>(cache: &'a TemplateCache, exporter: &str) -> &'a ExporterStats {
    &cache.stats()[&ip(exporter)]
}

// ---- builders ----

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut s = id.to_be_bytes().to_vec();
    s.extend_from_slice(&u16::try_from(body.len() + 4).unwrap().to_be_bytes());
    s.extend_from_slice(body);
    s
}

fn v9(sequence: u32, domain: u32, uptime_ms: u32, secs: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut d = vec![0, 9, 0, 1];
    d.extend_from_slice(&uptime_ms.to_be_bytes());
    d.extend_from_slice(&secs.to_be_bytes());
    d.extend_from_slice(&sequence.to_be_bytes());
    d.extend_from_slice(&domain.to_be_bytes());
    for s in sets {
        d.extend_from_slice(s);
    }
    d
}

fn ipfix(sequence: u32, domain: u32, export: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let len: usize = 16 + sets.iter().map(Vec::len).sum::<usize>();
    let mut d = vec![0, 10];
    d.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    d.extend_from_slice(&export.to_be_bytes());
    d.extend_from_slice(&sequence.to_be_bytes());
    d.extend_from_slice(&domain.to_be_bytes());
    for s in sets {
        d.extend_from_slice(s);
    }
    d
}

/// A v9 template record (or IPFIX one without enterprise fields).
fn tmpl(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut t = id.to_be_bytes().to_vec();
    t.extend_from_slice(&u16::try_from(fields.len()).unwrap().to_be_bytes());
    for (ty, len) in fields {
        t.extend_from_slice(&ty.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
    }
    t
}

/// An IPFIX template record with optional enterprise numbers.
fn ipfix_tmpl(id: u16, fields: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut t = id.to_be_bytes().to_vec();
    t.extend_from_slice(&u16::try_from(fields.len()).unwrap().to_be_bytes());
    for &(ty, len, pen) in fields {
        let ty = if pen == 0 { ty } else { ty | 0x8000 };
        t.extend_from_slice(&ty.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
        if pen != 0 {
            t.extend_from_slice(&pen.to_be_bytes());
        }
    }
    t
}

/// v9 options template: scope fields then option fields.
fn v9_options_tmpl(id: u16, scope: &[(u16, u16)], options: &[(u16, u16)]) -> Vec<u8> {
    let mut t = id.to_be_bytes().to_vec();
    t.extend_from_slice(&u16::try_from(scope.len() * 4).unwrap().to_be_bytes());
    t.extend_from_slice(&u16::try_from(options.len() * 4).unwrap().to_be_bytes());
    for (ty, len) in scope.iter().chain(options) {
        t.extend_from_slice(&ty.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
    }
    t
}

/// The classic IPv4 5-tuple + counters + uptimes template fields.
const V4_FIELDS: [(u16, u16); 9] = [
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (2, 4),
    (1, 4),
    (22, 4),
    (21, 4),
];

#[allow(clippy::too_many_arguments)] // a record is many fields
fn v4_record(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    proto: u8,
    packets: u32,
    bytes: u32,
    first: u32,
    last: u32,
) -> Vec<u8> {
    let mut r = src.to_vec();
    r.extend_from_slice(&dst);
    r.extend_from_slice(&sport.to_be_bytes());
    r.extend_from_slice(&dport.to_be_bytes());
    r.push(proto);
    r.extend_from_slice(&packets.to_be_bytes());
    r.extend_from_slice(&bytes.to_be_bytes());
    r.extend_from_slice(&first.to_be_bytes());
    r.extend_from_slice(&last.to_be_bytes());
    r
}

#[allow(clippy::too_many_arguments)] // a record is many fields
fn v5(
    count: u16,
    uptime_ms: u32,
    secs: u32,
    nsecs: u32,
    sequence: u32,
    engine: (u8, u8),
    sampling: u16,
    records: &[[u8; 48]],
) -> Vec<u8> {
    let mut d = vec![0, 5];
    d.extend_from_slice(&count.to_be_bytes());
    d.extend_from_slice(&uptime_ms.to_be_bytes());
    d.extend_from_slice(&secs.to_be_bytes());
    d.extend_from_slice(&nsecs.to_be_bytes());
    d.extend_from_slice(&sequence.to_be_bytes());
    d.push(engine.0);
    d.push(engine.1);
    d.extend_from_slice(&sampling.to_be_bytes());
    for r in records {
        d.extend_from_slice(r);
    }
    d
}

#[allow(clippy::too_many_arguments)] // a record is many fields
fn v5_record(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    proto: u8,
    packets: u32,
    bytes: u32,
    first: u32,
    last: u32,
) -> [u8; 48] {
    let mut r = [0u8; 48];
    r[0..4].copy_from_slice(&src);
    r[4..8].copy_from_slice(&dst);
    r[12..14].copy_from_slice(&3u16.to_be_bytes());
    r[14..16].copy_from_slice(&4u16.to_be_bytes());
    r[16..20].copy_from_slice(&packets.to_be_bytes());
    r[20..24].copy_from_slice(&bytes.to_be_bytes());
    r[24..28].copy_from_slice(&first.to_be_bytes());
    r[28..32].copy_from_slice(&last.to_be_bytes());
    r[32..34].copy_from_slice(&sport.to_be_bytes());
    r[34..36].copy_from_slice(&dport.to_be_bytes());
    r[37] = 0x1b;
    r[38] = proto;
    r
}

// ---- NetFlow v5 ----

#[test]
fn v5_times_sampling_and_domain() {
    let mut c = cache();
    let r = v5_record(
        [192, 0, 2, 1],
        [198, 51, 100, 2],
        40000,
        443,
        6,
        10,
        1500,
        55_000,
        59_500,
    );
    // Uptime 60 s at export time T0 + 0.25 s; sampling mode 1, interval 100.
    let d = v5(
        1,
        60_000,
        1_700_000_000,
        250_000_000,
        7,
        (1, 2),
        0x4000 | 100,
        &[r],
    );
    let (res, out) = run(&mut c, "192.0.2.200", &d);
    let s = res.unwrap();
    assert_eq!(
        (s.version, s.records, s.sequence, s.domain),
        (5, 1, 7, 0x0102)
    );
    let rec = &out[0];
    assert_eq!(rec.protocol, ExportProtocol::NetflowV5);
    assert_eq!(rec.first.to_string(), "2023-11-14T22:13:15.250000Z");
    assert_eq!(rec.last.to_string(), "2023-11-14T22:13:19.750000Z");
    assert_eq!(
        (rec.src, rec.dst, rec.sport, rec.dport, rec.proto),
        (ip("192.0.2.1"), ip("198.51.100.2"), 40000, 443, 6)
    );
    assert_eq!(
        (rec.packets, rec.bytes, rec.tcp_flags, rec.sampling),
        (10, 1500, 0x1b, 100)
    );
    assert_eq!((rec.input_if, rec.output_if), (Some(3), Some(4)));
    assert_eq!(stats(&c, "192.0.2.200").sampling, Some(100));

    // Interval 0: unknown, the default applies.
    let d = v5(1, 60_000, 1_700_000_000, 0, 8, (1, 2), 0, &[r]);
    let mut out = Vec::new();
    decode(ip("192.0.2.200"), at(T0), &d, &mut c, 7, &mut out).unwrap();
    assert_eq!(out[0].sampling, 7);
    // v5 sequences count flows: 7 + 1 = 8, no gap; then 20 is a gap.
    assert_eq!(stats(&c, "192.0.2.200").sequence_gaps, 0);
    let d = v5(1, 60_000, 1_700_000_000, 0, 20, (1, 2), 0, &[r]);
    run(&mut c, "192.0.2.200", &d).0.unwrap();
    assert_eq!(stats(&c, "192.0.2.200").sequence_gaps, 1);
}

#[test]
fn v5_uptime_wrap() {
    let mut c = cache();
    // Flow started just before the uptime counter wrapped.
    let r = v5_record(
        [192, 0, 2, 1],
        [198, 51, 100, 2],
        1,
        2,
        17,
        1,
        100,
        u32::MAX - 999,
        1000,
    );
    let d = v5(1, 2000, 1_700_000_000, 0, 0, (0, 0), 0, &[r]);
    let (_, out) = run(&mut c, "192.0.2.200", &d);
    assert_eq!(out[0].first, Timestamp::from_secs_nanos(T0 - 3, 0));
    assert_eq!(out[0].last, Timestamp::from_secs_nanos(T0 - 1, 0));
}

#[test]
fn v5_truncated_keeps_whole_records() {
    let mut c = cache();
    let r = v5_record([192, 0, 2, 1], [198, 51, 100, 2], 1, 2, 17, 1, 100, 0, 0);
    let mut d = v5(2, 0, 1_700_000_000, 0, 0, (0, 0), 0, &[r, r]);
    d.truncate(24 + 48 + 10);
    let (res, out) = run(&mut c, "192.0.2.200", &d);
    let e = res.unwrap_err();
    assert_eq!((e.reason, e.offset), ("bad-length", 72));
    assert_eq!(out.len(), 1);
    assert_eq!(stats(&c, "192.0.2.200").errors["bad-length"], 1);
    assert!(
        e.to_string()
            .starts_with("exporter 192.0.2.200: v5 header at byte 0: count 2"),
        "{e}"
    );
}

// ---- NetFlow v9 ----

#[test]
fn v9_template_then_data() {
    let mut c = cache();
    let t = v9(
        1,
        5,
        10_000,
        1_700_000_000,
        &[set(0, &tmpl(256, &V4_FIELDS))],
    );
    let (res, out) = run(&mut c, "192.0.2.200", &t);
    assert_eq!(res.unwrap().templates, 1);
    assert!(out.is_empty());
    let mut body = v4_record(
        [192, 0, 2, 1],
        [198, 51, 100, 2],
        5353,
        53,
        17,
        2,
        160,
        8_000,
        9_500,
    );
    body.extend(v4_record(
        [198, 51, 100, 2],
        [192, 0, 2, 1],
        53,
        5353,
        17,
        1,
        80,
        9_000,
        9_000,
    ));
    body.extend([0, 0, 0]); // padding
    let d = v9(2, 5, 10_000, 1_700_000_000, &[set(256, &body)]);
    let (res, out) = run(&mut c, "192.0.2.200", &d);
    let s = res.unwrap();
    assert_eq!((s.version, s.records, s.domain, s.sequence), (9, 2, 5, 2));
    assert_eq!(out[0].protocol, ExportProtocol::NetflowV9);
    assert_eq!(out[0].template_id, Some(256));
    assert_eq!(
        (out[0].sport, out[0].dport, out[0].packets, out[0].bytes),
        (5353, 53, 2, 160)
    );
    assert_eq!(out[0].first, Timestamp::from_secs_nanos(T0 - 2, 0));
    assert_eq!(out[0].last, Timestamp(at(T0).0 - 500_000_000));
    assert_eq!(out[1].src, ip("198.51.100.2"));
    let st = stats(&c, "192.0.2.200");
    assert_eq!((st.templates, st.records, st.sequence_gaps), (1, 2, 0));
    assert!(st.versions.contains(&9));
    assert_eq!(c.len(), 1);
}

#[test]
fn v9_data_before_template_is_replayed() {
    let mut c = cache();
    let body = v4_record([192, 0, 2, 1], [198, 51, 100, 2], 1, 2, 6, 3, 300, 0, 0);
    let d = v9(1, 0, 1000, 1_700_000_000, &[set(300, &body)]);
    let (res, out) = run(&mut c, "192.0.2.200", &d);
    assert_eq!(res.unwrap().records, 0);
    assert!(out.is_empty());
    assert_eq!(c.pending_len(), 1);
    // The template arrives with more data behind it: held records come first.
    let mut body2 = v4_record([192, 0, 2, 9], [198, 51, 100, 9], 1, 2, 6, 1, 40, 0, 0);
    body2.extend([0; 2]);
    let t = v9(
        2,
        0,
        2000,
        1_700_000_001,
        &[set(0, &tmpl(300, &V4_FIELDS)), set(300, &body2)],
    );
    let (res, out) = run(&mut c, "192.0.2.200", &t);
    assert_eq!(res.unwrap().records, 2);
    assert_eq!(out[0].src, ip("192.0.2.1"));
    assert_eq!(out[1].src, ip("192.0.2.9"));
    // Times of the held set come from its own header (uptime 1000 ms at T0).
    assert_eq!(out[0].first, Timestamp::from_secs_nanos(T0 - 1, 0));
    let st = stats(&c, "192.0.2.200");
    assert_eq!(
        (st.pending_decoded, st.dropped_no_template, st.records),
        (1, 0, 2)
    );
    assert_eq!(c.pending_len(), 0);
}

#[test]
fn pending_is_bounded_and_expires() {
    let mut c = TemplateCache::new(TemplateCacheConfig {
        max_pending_per_exporter: 2,
        pending_timeout_secs: 10,
        ..TemplateCacheConfig::default()
    });
    let body = v4_record([192, 0, 2, 1], [198, 51, 100, 2], 1, 2, 6, 3, 300, 0, 0);
    for i in 0..5 {
        run(&mut c, "192.0.2.200", &v9(i, 0, 0, 0, &[set(400, &body)]))
            .0
            .unwrap();
    }
    assert_eq!(c.pending_len(), 2);
    assert_eq!(stats(&c, "192.0.2.200").dropped_no_template, 3);
    // 11 s later they have expired.
    let mut out = Vec::new();
    decode(
        ip("192.0.2.200"),
        at(T0 + 11),
        &v9(5, 0, 0, 0, &[]),
        &mut c,
        1,
        &mut out,
    )
    .unwrap();
    assert_eq!(c.pending_len(), 0);
    assert_eq!(stats(&c, "192.0.2.200").dropped_no_template, 5);
}

#[test]
fn v9_options_sampling_per_domain_and_sampler() {
    let mut c = cache();
    // Options template: scope System(1, 4 bytes); samplerId(48, 1), samplerMode(49, 1), samplerRandomInterval(50, 4).
    let ot = v9_options_tmpl(257, &[(1, 4)], &[(48, 1), (49, 1), (50, 4)]);
    let mut od = Vec::new();
    od.extend([0, 0, 0, 1, 1, 2, 0, 0, 0, 10]); // sampler 1: 1 in 10
    od.extend([0, 0, 0, 1, 2, 2, 0, 0, 0, 50]); // sampler 2: 1 in 50
    od.extend([0, 0]); // padding
    let mut fields = V4_FIELDS.to_vec();
    fields.push((48, 1));
    let t = set(0, &tmpl(256, &fields));
    let mut data = v4_record([192, 0, 2, 1], [198, 51, 100, 2], 1, 2, 6, 1, 40, 0, 0);
    data.push(2); // sampler 2
    data.extend(v4_record(
        [192, 0, 2, 3],
        [198, 51, 100, 4],
        1,
        2,
        6,
        1,
        40,
        0,
        0,
    ));
    data.push(9); // unknown sampler: the domain's rate (the last learned)
    let d = v9(
        1,
        0,
        0,
        0,
        &[set(1, &ot), set(257, &od), t, set(256, &data)],
    );
    let (res, out) = run(&mut c, "192.0.2.200", &d);
    assert_eq!(res.unwrap().templates, 2);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].sampling, 50);
    assert_eq!(out[1].sampling, 50);
    let st = stats(&c, "192.0.2.200");
    assert_eq!(
        (st.options_templates, st.templates, st.sampling),
        (1, 1, Some(50))
    );

    // Sampler 1 in another datagram.
    let mut data = v4_record([192, 0, 2, 1], [198, 51, 100, 2], 1, 2, 6, 1, 40, 0, 0);
    data.push(1);
    let (_, out) = run(&mut c, "192.0.2.200", &v9(2, 0, 0, 0, &[set(256, &data)]));
    assert_eq!(out[0].sampling, 10);
    // Another domain of the same exporter learned nothing: default.
    run(
        &mut c,
        "192.0.2.200",
        &v9(1, 1, 0, 0, &[set(0, &tmpl(256, &fields))]),
    )
    .0
    .unwrap();
    let (_, out) = run(&mut c, "192.0.2.200", &v9(2, 1, 0, 0, &[set(256, &data)]));
    assert_eq!(out[0].sampling, 1);
}

#[test]
fn record_sampling_fields() {
    let mut c = cache();
    // samplingPacketInterval 1 / samplingPacketSpace 99 in the record itself: 1 in 100.
    let mut fields = V4_FIELDS.to_vec();
    fields.extend([(305, 4), (306, 4)]);
    let mut data = v4_record([192, 0, 2, 1], [198, 51, 100, 2], 1, 2, 6, 1, 40, 0, 0);
    data.extend([0, 0, 0, 1, 0, 0, 0, 99]);
    let d = ipfix(0, 0, 0, &[set(2, &tmpl(256, &fields)), set(256, &data)]);
    let (_, out) = run(&mut c, "192.0.2.200", &d);
    assert_eq!(out[0].sampling, 100);
    // samplingInterval (34).
    let mut fields = V4_FIELDS.to_vec();
    fields.push((34, 4));
    let mut data = v4_record([192, 0, 2, 1], [198, 51, 100, 2], 1, 2, 6, 1, 40, 0, 0);
    data.extend([0, 0, 1, 0]);
    let d = v9(0, 0, 0, 0, &[set(0, &tmpl(256, &fields)), set(256, &data)]);
    let (_, out) = run(&mut c, "192.0.2.200", &d);
    assert_eq!(out[0].sampling, 256);
}

// ---- IPFIX ----

#[test]
fn ipfix_varlen_and_enterprise_fields_are_skipped_by_length() {
    let mut c = cache();
    let fields = [
        (8, 4, 0),
        (82, 65535, 0), // interfaceName, variable length
        (12, 4, 0),
        (1, 65535, 9), // enterprise 9, variable length: not an octet count
        (7, 2, 0),
        (11, 2, 0),
        (1, 8, 0),
        (2, 8, 0),
        (4, 1, 0),
        (100, 3, 2636), // enterprise 2636 (Juniper), fixed 3 bytes
    ];
    let mut data = vec![192, 0, 2, 1, 3, b'e', b't', b'h', 198, 51, 100, 2];
    data.push(255); // 3-byte length form: 300 bytes
    data.extend(300u16.to_be_bytes());
    data.extend([0xaa; 300]);
    data.extend(443u16.to_be_bytes());
    data.extend(50000u16.to_be_bytes());
    data.extend(9000u64.to_be_bytes());
    data.extend(6u64.to_be_bytes());
    data.push(6);
    data.extend([1, 2, 3]);
    // Second record: empty strings.
    data.extend([192, 0, 2, 5, 0, 198, 51, 100, 6, 0]);
    data.extend(80u16.to_be_bytes());
    data.extend(1234u16.to_be_bytes());
    data.extend(100u64.to_be_bytes());
    data.extend(1u64.to_be_bytes());
    data.push(17);
    data.extend([0, 0, 0]);
    let d = ipfix(
        0,
        3,
        1_700_000_000,
        &[set(2, &ipfix_tmpl(300, &fields)), set(300, &data)],
    );
    let (res, out) = run(&mut c, "192.0.2.200", &d);
    res.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0].src, out[0].dst, out[0].sport, out[0].dport),
        (ip("192.0.2.1"), ip("198.51.100.2"), 443, 50000)
    );
    assert_eq!((out[0].bytes, out[0].packets, out[0].proto), (9000, 6, 6));
    assert_eq!((out[1].sport, out[1].bytes, out[1].proto), (80, 100, 17));
    assert_eq!(out[0].protocol, ExportProtocol::Ipfix);
    assert_eq!(out[0].domain, 3);
    // No time fields: the export time.
    assert_eq!(out[0].first, at(T0));
}

#[test]
fn ipfix_biflow_reverse_fields_and_direction() {
    let mut c = cache();
    let fields = [
        (8, 4, 0),
        (12, 4, 0),
        (7, 2, 0),
        (11, 2, 0),
        (4, 1, 0),
        (1, 4, 0),
        (2, 4, 0),
        (6, 1, 0),
        (1, 4, 29305),
        (2, 4, 29305),
        (6, 1, 29305),
        (239, 1, 0),
    ];
    let mut data = vec![192, 0, 2, 1, 198, 51, 100, 2, 0xc3, 0x50, 0, 80, 6];
    data.extend(500u32.to_be_bytes());
    data.extend(5u32.to_be_bytes());
    data.push(0x1b);
    data.extend(7000u32.to_be_bytes());
    data.extend(6u32.to_be_bytes());
    data.push(0x12);
    data.push(2);
    let d = ipfix(
        0,
        0,
        1_700_000_000,
        &[set(2, &ipfix_tmpl(256, &fields)), set(256, &data)],
    );
    let (_, out) = run(&mut c, "192.0.2.200", &d);
    let r = &out[0];
    assert_eq!((r.packets, r.bytes, r.tcp_flags), (5, 500, 0x1b));
    let rev = r.reverse.unwrap();
    assert_eq!((rev.packets, rev.bytes, rev.tcp_flags), (6, 7000, 0x12));
    assert_eq!(r.direction, Some(StatedDirection::SrcIsResponder));
}

#[test]
fn ipfix_time_fields() {
    let mut c = cache();
    let ntp = |secs: i64, frac: u32| {
        let mut v = u32::try_from(secs + 2_208_988_800)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        v.extend(frac.to_be_bytes());
        v
    };
    let addrs = [192, 0, 2, 1, 198, 51, 100, 2];
    // Milliseconds (152/153).
    let mut data = addrs.to_vec();
    data.extend(1_700_000_000_123u64.to_be_bytes());
    data.extend(1_700_000_001_456u64.to_be_bytes());
    // Microseconds NTP (154/155), nanoseconds NTP (156/157).
    let mut data_us = addrs.to_vec();
    data_us.extend(ntp(T0, 0x8000_0000));
    data_us.extend(ntp(T0 + 1, 0x4000_0000));
    // Seconds (150/151) and delta micros (158/159).
    let mut data_s = addrs.to_vec();
    data_s.extend(1_699_999_990u32.to_be_bytes());
    data_s.extend(1_699_999_995u32.to_be_bytes());
    let mut data_d = addrs.to_vec();
    data_d.extend(3_000_000u32.to_be_bytes());
    data_d.extend(500_000u32.to_be_bytes());
    let d = ipfix(
        0,
        0,
        1_700_000_000,
        &[
            set(
                2,
                &[
                    ipfix_tmpl(256, &[(8, 4, 0), (12, 4, 0), (152, 8, 0), (153, 8, 0)]),
                    ipfix_tmpl(257, &[(8, 4, 0), (12, 4, 0), (154, 8, 0), (157, 8, 0)]),
                    ipfix_tmpl(258, &[(8, 4, 0), (12, 4, 0), (150, 4, 0), (151, 4, 0)]),
                    ipfix_tmpl(259, &[(8, 4, 0), (12, 4, 0), (158, 4, 0), (159, 4, 0)]),
                ]
                .concat(),
            ),
            set(256, &data),
            set(257, &data_us),
            set(258, &data_s),
            set(259, &data_d),
        ],
    );
    let (res, out) = run(&mut c, "192.0.2.200", &d);
    assert_eq!(res.unwrap().templates, 4);
    let times: Vec<String> = out
        .iter()
        .map(|r| format!("{} {}", r.first, r.last))
        .collect();
    assert_eq!(
        times,
        [
            "2023-11-14T22:13:20.123000Z 2023-11-14T22:13:21.456000Z",
            "2023-11-14T22:13:20.500000Z 2023-11-14T22:13:21.250000Z",
            "2023-11-14T22:13:10.000000Z 2023-11-14T22:13:15.000000Z",
            "2023-11-14T22:13:17.000000Z 2023-11-14T22:13:19.500000Z",
        ]
    );
}

#[test]
fn ipfix_sysuptime_with_system_init_time_from_options() {
    let mut c = cache();
    // Options template: scope observationDomainId (149), systemInitTimeMilliseconds (160).
    let mut ot = 400u16.to_be_bytes().to_vec();
    ot.extend([0, 2, 0, 1, 0, 149, 0, 4, 0, 160, 0, 8]);
    let mut od = vec![0, 0, 0, 0];
    od.extend(1_699_990_000_000u64.to_be_bytes());
    let mut data = vec![192, 0, 2, 1, 198, 51, 100, 2];
    data.extend(5_000u32.to_be_bytes());
    data.extend(10_000u32.to_be_bytes());
    let d = ipfix(
        0,
        0,
        1_700_000_000,
        &[
            set(3, &ot),
            set(400, &od),
            set(
                2,
                &ipfix_tmpl(256, &[(8, 4, 0), (12, 4, 0), (22, 4, 0), (21, 4, 0)]),
            ),
            set(256, &data),
        ],
    );
    let (_, out) = run(&mut c, "192.0.2.200", &d);
    assert_eq!(out[0].first, Timestamp::from_secs_nanos(1_699_990_005, 0));
    assert_eq!(out[0].last, Timestamp::from_secs_nanos(1_699_990_010, 0));
}

#[test]
fn ipfix_withdrawal() {
    let mut c = cache();
    let t = [
        ipfix_tmpl(256, &[(8, 4, 0), (12, 4, 0)]),
        ipfix_tmpl(257, &[(8, 4, 0), (12, 4, 0), (4, 1, 0)]),
    ]
    .concat();
    let mut ot = 258u16.to_be_bytes().to_vec();
    ot.extend([0, 2, 0, 1, 0, 149, 0, 4, 0, 34, 0, 4]);
    run(
        &mut c,
        "192.0.2.200",
        &ipfix(0, 0, 0, &[set(2, &t), set(3, &ot)]),
    )
    .0
    .unwrap();
    // Another domain keeps its template 256.
    run(
        &mut c,
        "192.0.2.200",
        &ipfix(
            0,
            1,
            0,
            &[set(2, &ipfix_tmpl(256, &[(8, 4, 0), (12, 4, 0)]))],
        ),
    )
    .0
    .unwrap();
    assert_eq!(c.len(), 4);
    // Withdraw 256 of domain 0.
    run(
        &mut c,
        "192.0.2.200",
        &ipfix(0, 0, 0, &[set(2, &[1, 0, 0, 0])]),
    )
    .0
    .unwrap();
    assert_eq!(c.len(), 3);
    let data = [192, 0, 2, 1, 198, 51, 100, 2];
    let (_, out) = run(&mut c, "192.0.2.200", &ipfix(0, 0, 0, &[set(256, &data)]));
    assert!(out.is_empty(), "withdrawn template must not decode");
    let (_, out) = run(&mut c, "192.0.2.200", &ipfix(0, 1, 0, &[set(256, &data)]));
    assert_eq!(out.len(), 1);
    // Withdraw all templates of domain 0 (id 2): 257 goes, options template 258 stays.
    run(
        &mut c,
        "192.0.2.200",
        &ipfix(0, 0, 0, &[set(2, &[0, 2, 0, 0])]),
    )
    .0
    .unwrap();
    assert_eq!(c.len(), 2);
    // All options templates (id 3 in set 3).
    run(
        &mut c,
        "192.0.2.200",
        &ipfix(0, 0, 0, &[set(3, &[0, 3, 0, 0])]),
    )
    .0
    .unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(stats(&c, "192.0.2.200").template_withdrawals, 3);
}

#[test]
fn templates_are_scoped_by_exporter_and_domain() {
    let mut c = cache();
    // Same id 256, different layouts: exporter A / domain 0 has ports, B and domain 1 do not.
    let a = tmpl(256, &[(8, 4), (12, 4), (7, 2), (11, 2)]);
    let b = tmpl(256, &[(12, 4), (8, 4)]);
    run(&mut c, "192.0.2.1", &v9(0, 0, 0, 0, &[set(0, &a)]))
        .0
        .unwrap();
    run(&mut c, "192.0.2.2", &v9(0, 0, 0, 0, &[set(0, &b)]))
        .0
        .unwrap();
    run(&mut c, "192.0.2.1", &v9(1, 1, 0, 0, &[set(0, &b)]))
        .0
        .unwrap();
    let ab = [10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2];
    let (_, out) = run(&mut c, "192.0.2.1", &v9(2, 0, 0, 0, &[set(256, &ab)]));
    assert_eq!(
        (out.len(), out[0].src, out[0].sport),
        (1, ip("10.0.0.1"), 1)
    );
    let (_, out) = run(&mut c, "192.0.2.2", &v9(2, 0, 0, 0, &[set(256, &ab[..8])]));
    assert_eq!(
        (out.len(), out[0].src, out[0].sport),
        (1, ip("10.0.0.2"), 0)
    );
    let (_, out) = run(&mut c, "192.0.2.1", &v9(2, 1, 0, 0, &[set(256, &ab[..8])]));
    assert_eq!(
        (out.len(), out[0].src, out[0].domain),
        (1, ip("10.0.0.2"), 1)
    );
    // An exporter that never sent a template decodes nothing (and holds the set).
    let (_, out) = run(&mut c, "192.0.2.3", &v9(2, 0, 0, 0, &[set(256, &ab)]));
    assert!(out.is_empty());
    assert_eq!(c.exporter_len(ip("192.0.2.3")), 0);
}

#[test]
fn bogus_template_flood_stays_bounded() {
    let cap = 4096;
    let mut c = cache();
    let mut x: u32 = 12345;
    let mut sets = Vec::new();
    for i in 0..100_000u32 {
        // xorshift: random ids 256..65535 and random domains
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let id = u16::try_from(x % 65280).unwrap() + 256;
        sets.push(set(
            2,
            &ipfix_tmpl(
                id,
                &[
                    (8, 4, 0),
                    (12, 4, 0),
                    (u16::try_from(i % 300).unwrap(), 4, 0),
                ],
            ),
        ));
        if sets.len() == 50 {
            let (res, _) = run(&mut c, "192.0.2.66", &ipfix(i, x % 7, 0, &sets));
            res.unwrap();
            sets.clear();
        }
        assert!(c.len() <= cap);
    }
    assert!(c.len() <= cap);
    let st = stats(&c, "192.0.2.66");
    assert_eq!(st.templates, 100_000);
    assert!(st.evicted_templates > 85_000, "{}", st.evicted_templates);
    // A legitimate template refreshed after the flood decodes.
    run(
        &mut c,
        "192.0.2.66",
        &ipfix(
            0,
            0,
            0,
            &[set(2, &ipfix_tmpl(256, &[(8, 4, 0), (12, 4, 0)]))],
        ),
    )
    .0
    .unwrap();
    let (_, out) = run(
        &mut c,
        "192.0.2.66",
        &ipfix(0, 0, 0, &[set(256, &[192, 0, 2, 1, 198, 51, 100, 2])]),
    );
    assert_eq!(out.len(), 1);
}

#[test]
fn exporters_are_bounded() {
    let mut c = TemplateCache::new(TemplateCacheConfig {
        max_exporters: 3,
        ..TemplateCacheConfig::default()
    });
    for i in 0..10u8 {
        let e = format!("192.0.2.{i}");
        let mut out = Vec::new();
        decode(
            ip(&e),
            at(T0 + i64::from(i)),
            &v9(0, 0, 0, 0, &[set(0, &tmpl(256, &V4_FIELDS))]),
            &mut c,
            1,
            &mut out,
        )
        .unwrap();
    }
    assert_eq!(c.len(), 3);
    assert_eq!(c.stats().len(), 3);
    assert_eq!(c.evicted_exporters(), 7);
    assert!(c.stats().contains_key(&ip("192.0.2.9")));
}

#[test]
fn icmp_type_code_goes_to_dport() {
    let mut c = cache();
    // icmpTypeCodeIPv4 (32) and ports absent.
    let t1 = tmpl(256, &[(8, 4), (12, 4), (4, 1), (32, 2)]);
    // icmpTypeIPv6 / icmpCodeIPv6 (178/179) with zero ports present.
    let t2 = tmpl(
        257,
        &[
            (27, 16),
            (28, 16),
            (4, 1),
            (7, 2),
            (11, 2),
            (178, 1),
            (179, 1),
        ],
    );
    let d1 = [192, 0, 2, 1, 198, 51, 100, 2, 1, 8, 0];
    let mut d2 = "2001:db8::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets()
        .to_vec();
    d2.extend(
        "2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    d2.extend([58, 0, 0, 0, 0, 1, 4]);
    let d = ipfix(
        0,
        0,
        0,
        &[set(2, &[t1, t2].concat()), set(256, &d1), set(257, &d2)],
    );
    let (_, out) = run(&mut c, "192.0.2.200", &d);
    assert_eq!((out[0].proto, out[0].sport, out[0].dport), (1, 0, 0x0800));
    assert_eq!(
        (out[1].proto, out[1].sport, out[1].dport, out[1].src),
        (58, 0, 0x0104, ip("2001:db8::1"))
    );
}

#[test]
fn data_link_frame_section_gives_the_addresses() {
    let mut c = cache();
    // ingressInterface(10, 4), dataLinkFrameSection (315, varlen).
    let t = ipfix_tmpl(256, &[(10, 4, 0), (315, 65535, 0)]);
    let mut frame = vec![0u8; 12];
    frame.extend([0x81, 0x00, 0x00, 0x64, 0x08, 0x00]); // VLAN 100, IPv4
    frame.extend([
        0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2,
    ]);
    frame.extend([
        0x01, 0xbb, 0xc3, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x12, 0, 0, 0, 0, 0, 0,
    ]);
    let mut data = 7u32.to_be_bytes().to_vec();
    data.push(u8::try_from(frame.len()).unwrap());
    data.extend(&frame);
    // A record with neither addresses nor a frame is counted, not emitted.
    let t2 = ipfix_tmpl(257, &[(10, 4, 0)]);
    let d = ipfix(
        0,
        0,
        0,
        &[
            set(2, &[t, t2].concat()),
            set(256, &data),
            set(257, &[0, 0, 0, 1]),
        ],
    );
    let (_, out) = run(&mut c, "192.0.2.200", &d);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!(
        (r.src, r.dst, r.sport, r.dport, r.proto),
        (ip("192.0.2.1"), ip("198.51.100.2"), 443, 50000, 6)
    );
    assert_eq!(
        (r.packets, r.bytes, r.tcp_flags, r.vlan, r.input_if),
        (1, 40, 0x12, Some(100), Some(7))
    );
    assert_eq!(stats(&c, "192.0.2.200").records_without_addresses, 1);
}

#[test]
fn ipfix_sequence_counts_data_records() {
    let mut c = cache();
    let t = set(2, &ipfix_tmpl(256, &[(8, 4, 0), (12, 4, 0)]));
    let two = set(
        256,
        &[192, 0, 2, 1, 198, 51, 100, 2, 192, 0, 2, 3, 198, 51, 100, 4],
    );
    run(&mut c, "192.0.2.200", &ipfix(100, 0, 0, &[t, two.clone()]))
        .0
        .unwrap();
    run(
        &mut c,
        "192.0.2.200",
        &ipfix(102, 0, 0, std::slice::from_ref(&two)),
    )
    .0
    .unwrap();
    assert_eq!(stats(&c, "192.0.2.200").sequence_gaps, 0);
    run(&mut c, "192.0.2.200", &ipfix(110, 0, 0, &[two]))
        .0
        .unwrap();
    assert_eq!(stats(&c, "192.0.2.200").sequence_gaps, 1);
    // v9 counts packets, per domain.
    run(&mut c, "192.0.2.200", &v9(5, 1, 0, 0, &[])).0.unwrap();
    run(&mut c, "192.0.2.200", &v9(6, 1, 0, 0, &[])).0.unwrap();
    run(&mut c, "192.0.2.200", &v9(9, 2, 0, 0, &[])).0.unwrap();
    assert_eq!(stats(&c, "192.0.2.200").sequence_gaps, 1);
    run(&mut c, "192.0.2.200", &v9(8, 1, 0, 0, &[])).0.unwrap();
    assert_eq!(stats(&c, "192.0.2.200").sequence_gaps, 2);
}

// ---- malformed ----

#[test]
fn malformed_datagrams_each_reason() {
    let mut c = cache();
    let good_t = set(0, &tmpl(256, &[(8, 4), (12, 4)]));
    let good_d = set(256, &[192, 0, 2, 1, 198, 51, 100, 2]);
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("truncated-header", vec![0], 0),
        ("truncated-header", vec![0, 9, 0, 1, 0, 0], 0),
        ("truncated-header", vec![0, 10, 0, 16], 0),
        ("truncated-header", vec![0, 5, 0, 1], 0),
        (
            "bad-version",
            vec![0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            0,
        ),
        (
            "bad-length",
            {
                let mut d = ipfix(0, 0, 0, std::slice::from_ref(&good_d));
                d[3] += 1;
                d
            },
            0,
        ),
        (
            "bad-length",
            {
                let mut d = ipfix(0, 0, 0, &[]);
                d[3] = 8;
                d
            },
            0,
        ),
        (
            "bad-set",
            v9(
                0,
                0,
                0,
                0,
                &[good_t.clone(), good_d.clone(), vec![1, 0, 0, 2]],
            ),
            1,
        ),
        (
            "bad-set",
            v9(
                0,
                0,
                0,
                0,
                &[good_t.clone(), good_d.clone(), vec![1, 0, 0, 200, 0, 0]],
            ),
            1,
        ),
        ("bad-set", ipfix(0, 0, 0, &[vec![0, 2, 0, 0]]), 0),
        (
            "bad-template",
            v9(0, 0, 0, 0, &[set(0, &tmpl(12, &[(8, 4)]))]),
            0,
        ),
        (
            "bad-template",
            v9(0, 0, 0, 0, &[set(0, &tmpl(256, &[(8, 0)]))]),
            0,
        ),
        (
            "bad-template",
            v9(0, 0, 0, 0, &[set(0, &[1, 0, 0, 3, 0, 8, 0, 4])]),
            0,
        ),
        (
            "bad-template",
            v9(
                0,
                0,
                0,
                0,
                &[set(1, &[1, 0, 0, 3, 0, 4, 0, 8, 0, 4, 0, 1, 0, 4])],
            ),
            0,
        ),
        (
            "bad-template",
            ipfix(0, 0, 0, &[set(3, &[1, 0, 0, 1, 0, 0, 0, 8, 0, 4])]),
            0,
        ),
        (
            "bad-template",
            ipfix(0, 0, 0, &[set(2, &[1, 0, 0, 1, 0x80, 8, 0, 4, 0, 0])]),
            0,
        ),
        (
            "bad-template",
            ipfix(0, 0, 0, &[set(2, &tmpl(256, &vec![(8, 4); 600]))]),
            0,
        ),
        (
            "bad-record",
            ipfix(
                0,
                0,
                0,
                &[
                    set(
                        2,
                        &ipfix_tmpl(300, &[(8, 4, 0), (12, 4, 0), (82, 65535, 0)]),
                    ),
                    set(
                        300,
                        &[
                            192, 0, 2, 1, 198, 51, 100, 2, 0, 192, 0, 2, 1, 198, 51, 100, 2, 9, 0,
                        ],
                    ),
                ],
            ),
            1,
        ),
    ];
    for (i, (want, d, records)) in cases.iter().enumerate() {
        let exporter = format!("198.51.100.{i}");
        let (res, out) = run(&mut c, &exporter, d);
        let e = res.expect_err(want);
        assert_eq!(e.reason, *want, "case {i}: {e}");
        assert_eq!(out.len(), *records, "case {i}: {e}");
        assert_eq!(stats(&c, &exporter).errors[want], 1);
        assert_eq!(e.detail.to_lowercase(), e.detail);
        assert!(!e.to_string().ends_with('.'));
        assert!(
            e.to_string().starts_with(&format!("exporter {exporter}: ")),
            "{e}"
        );
    }
}

#[test]
fn looks_like() {
    let v5d = v5(1, 0, 0, 0, 0, (0, 0), 0, &[[0; 48]]);
    assert!(looks_like_netflow(&v5d));
    assert!(!looks_like_netflow(&v5d[..60]));
    assert!(looks_like_netflow(&v9(
        0,
        0,
        0,
        0,
        &[set(0, &tmpl(256, &V4_FIELDS))]
    )));
    assert!(!looks_like_netflow(&v9(0, 0, 0, 0, &[])));
    assert!(!looks_like_netflow(&v9(0, 0, 0, 0, &[set(7, &[])])));
    let ix = ipfix(0, 0, 0, &[set(2, &tmpl(256, &V4_FIELDS))]);
    assert!(looks_like_netflow(&ix));
    assert!(!looks_like_netflow(&ix[..ix.len() - 1]));
    assert!(!looks_like_netflow(b"GET / HTTP/1.1\r\n\r\n"));
    assert!(!looks_like_netflow(&[]));
}

#[test]
fn random_bytes_never_panic() {
    let mut c = TemplateCache::new(TemplateCacheConfig {
        max_templates_per_exporter: 64,
        max_pending_per_exporter: 8,
        ..TemplateCacheConfig::default()
    });
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds = [
        v9(
            0,
            0,
            0,
            0,
            &[
                set(0, &tmpl(256, &V4_FIELDS)),
                set(
                    256,
                    &v4_record([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, 6, 1, 1, 0, 0),
                ),
            ],
        ),
        ipfix(
            0,
            0,
            0,
            &[
                set(
                    2,
                    &ipfix_tmpl(256, &[(8, 4, 0), (82, 65535, 0), (1, 4, 29305)]),
                ),
                set(256, &[1, 2, 3, 4, 2, 0, 0, 0, 0, 0, 0]),
            ],
        ),
        v5(1, 0, 0, 0, 0, (0, 0), 0, &[[7; 48]]),
    ];
    let mut out = Vec::new();
    for _ in 0..20_000 {
        let mut d = seeds[usize::try_from(next() % 3).unwrap()].clone();
        for _ in 0..(next() % 6) {
            let i = usize::try_from(next()).unwrap() % d.len();
            d[i] = u8::try_from(next() & 0xff).unwrap();
        }
        if next() % 4 == 0 {
            d.truncate(usize::try_from(next()).unwrap() % (d.len() + 1));
        }
        let _ = decode(ip("192.0.2.9"), at(T0), &d, &mut c, 1, &mut out);
        out.clear();
    }
    assert!(c.len() <= 64);
    assert!(c.pending_len() <= 8);
}

#[test]
fn pending_bytes_are_bounded() {
    let mut c = cache();
    let big = vec![0u8; 60_000];
    for i in 0..100 {
        run(&mut c, "192.0.2.200", &v9(i, 0, 0, 0, &[set(999, &big)]))
            .0
            .unwrap();
    }
    // 2 MiB per exporter: 34 sets of 60 kB.
    assert_eq!(c.pending_len(), 34);
    assert_eq!(stats(&c, "192.0.2.200").dropped_no_template, 66);
}

/// Found by the `netflow_v5` fuzz target: a held set that turns out
/// malformed when its template arrives in the same datagram is counted
/// (so a datagram can add more than one error), and the datagram goes on.
#[test]
fn malformed_held_set_replayed_is_counted_and_the_datagram_goes_on() {
    let mut c = cache();
    let t = ipfix_tmpl(300, &[(8, 4, 0), (12, 4, 0), (82, 65535, 0)]);
    let held = [192, 0, 2, 1, 198, 51, 100, 2, 200, 0];
    let good = [192, 0, 2, 3, 198, 51, 100, 4, 0];
    let d = ipfix(
        0,
        0,
        0,
        &[
            set(300, &held),
            set(2, &t),
            set(300, &good),
            set(300, &held),
        ],
    );
    let (res, out) = run(&mut c, "192.0.2.200", &d);
    assert_eq!(res.unwrap_err().reason, "bad-record");
    assert_eq!(out.len(), 1);
    let st = stats(&c, "192.0.2.200");
    assert_eq!((st.errors["bad-record"], st.pending_decoded), (2, 1));
}
