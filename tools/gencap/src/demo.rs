//! The example capture `examples/captures/demo.pcap`: a few minutes of a small network
//! that, held against `examples/zones.toml`, raises every kind of finding.
//! Each block below names the part of `examples/README.md` it plays.

use std::io::{self, Write};
use std::net::IpAddr;

use crate::flow::{self, Dir, Flow, Host, Payload, Seg, Timeline};
use crate::packet::{self, flags};
use crate::payloads::*;
use crate::pcap::PcapWriter;
use crate::rng::Rng;

/// 2024-05-01T10:00:00Z in µs since the Unix epoch.
pub const START_US: u64 = 1_714_557_600_000_000;

/// The MAC of the upstream router: frames from the internet arrive with it.
const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x00, 0x01];

const MS: u64 = 1_000;
const S: u64 = 1_000_000;

/// A host; addresses from `outside` sit behind the router.
fn host(ip: &str, outside: bool) -> Host {
    let ip: IpAddr = ip.parse().expect("demo addresses are valid literals");
    let mac = if outside {
        ROUTER_MAC
    } else {
        let o = match ip {
            IpAddr::V4(a) => a.octets(),
            IpAddr::V6(a) => {
                let b = a.octets();
                [b[12], b[13], b[14], b[15]]
            }
        };
        [0x02, 0x42, o[0], o[1], o[2], o[3]]
    };
    Host {
        ip,
        mac,
        ttl: if outside { 51 } else { 64 },
    }
}

/// One request and its response segments.
struct Exchange {
    think: u64,
    request: Payload,
    response: Vec<Payload>,
}

fn ex(think: u64, request: Payload, response: Vec<Payload>) -> Exchange {
    Exchange {
        think,
        request,
        response,
    }
}

fn bytes(b: Vec<u8>) -> Payload {
    Payload::Bytes(b)
}

struct Demo {
    rng: Rng,
    flows: Vec<Flow>,
}

impl Demo {
    fn push(&mut self, client: Host, sport: u16, server: Host, dport: u16, tl: Timeline) {
        let f = Flow::new(client, server, sport, dport, tl.into_pkts(), &mut self.rng);
        self.flows.push(f);
    }

    /// A full TCP session: handshake, the exchanges, an orderly close.
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        at: u64,
        client: Host,
        sport: u16,
        server: Host,
        dport: u16,
        rtt: u64,
        exchanges: Vec<Exchange>,
    ) {
        let mut tl = Timeline::new(at);
        tl.open(rtt);
        for e in exchanges {
            tl.data(e.think + 150, Dir::Fwd, e.request);
            let n = e.response.len();
            for (i, p) in e.response.into_iter().enumerate() {
                let dt = if i == 0 { rtt + 300 } else { 25 };
                let last = i + 1 == n;
                if last {
                    tl.data(dt, Dir::Rev, p);
                } else {
                    tl.tcp(dt, Dir::Rev, flags::ACK, p);
                }
            }
            if n > 0 {
                tl.ack(rtt / 10 + 40, Dir::Fwd);
            }
        }
        tl.close(200 * MS, Dir::Fwd, rtt, true);
        self.push(client, sport, server, dport, tl);
    }
}

/// Writes the demo capture.
pub fn write<W: Write>(out: W) -> io::Result<flow::Stats> {
    let mut d = Demo {
        rng: Rng::new(0x5eed_2024_0501),
        flows: Vec::new(),
    };

    let inet7 = host("198.51.100.7", true);
    let inet7_v6 = host("2001:db8:ffff::7", true);
    let web = host("203.0.113.10", false);
    let web_v6 = host("2001:db8:1::10", false);
    let app = host("10.1.0.5", false);
    let gw = host("10.1.0.1", false);
    let pg1 = host("10.2.0.10", false);
    let pg2 = host("10.2.0.11", false);
    let resolver = host("192.0.2.53", true);
    let pay = host("192.0.2.80", true);
    let office = host("192.168.10.20", false);
    let scanner = host("198.51.100.99", true);
    let stranger = host("172.16.5.5", false);
    let prom = host("10.9.0.2", false);
    let exposer = host("198.51.100.23", true);
    let redis = host("10.2.0.12", false);

    // 11. ARP (not IP: counted, never a flow): the app server resolves its
    // gateway, and later the monitoring host announces itself.
    let mut arp = Vec::new();
    let ipv4 = |h: &Host| match h.ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => [0; 4],
    };
    let mut tl = Timeline::new(500 * MS);
    packet::arp(&mut arp, 1, app.mac, ipv4(&app), [0; 6], ipv4(&gw));
    tl.send(0, Dir::Fwd, Seg::Raw(arp.clone()));
    packet::arp(&mut arp, 2, gw.mac, ipv4(&gw), app.mac, ipv4(&app));
    tl.send(180, Dir::Rev, Seg::Raw(arp.clone()));
    d.push(app, 0, gw, 0, tl);
    let mut tl = Timeline::new(229 * S + 900 * MS);
    packet::arp(&mut arp, 1, prom.mac, ipv4(&prom), [0; 6], ipv4(&prom));
    tl.send(0, Dir::Fwd, Seg::Raw(arp.clone()));
    d.push(prom, 0, prom, 0, tl);

    // 1. Allowed: the internet reaches the web group over HTTPS, IPv4 and IPv6.
    let tls = |ns: &[u16]| ns.iter().map(|&n| Payload::Tls(n)).collect::<Vec<_>>();
    d.tcp(
        2 * S,
        inet7,
        51514,
        web,
        443,
        24 * MS,
        vec![
            ex(0, Payload::Tls(517), tls(&[1400, 1220])),
            ex(30 * MS, Payload::Tls(126), tls(&[290])),
            ex(800 * MS, Payload::Tls(420), tls(&[1380, 960])),
        ],
    );
    d.tcp(
        5 * S,
        inet7_v6,
        51514,
        web_v6,
        443,
        31 * MS,
        vec![
            ex(0, Payload::Tls(517), tls(&[1380, 700])),
            ex(400 * MS, Payload::Tls(360), tls(&[820])),
        ],
    );

    // 3b. Allowed: the app tier resolves a name through an internet resolver.
    let mut tl = Timeline::new(7 * S + 900 * MS);
    tl.send(
        0,
        Dir::Fwd,
        Seg::Udp(bytes(dns_query(0x4a21, "pay.example.com", false))),
    );
    tl.send(
        18 * MS,
        Dir::Rev,
        Seg::Udp(bytes(dns_answer(0x4a21, "pay.example.com", pay.ip))),
    );
    d.push(app, 41000, resolver, 53, tl);

    // 2. Allowed: web → app on 8080.
    d.tcp(
        8 * S,
        web,
        40112,
        app,
        8080,
        300,
        vec![ex(
            0,
            bytes(http_get("app.internal:8080", "/api/orders/1842")),
            vec![bytes(http_response(
                "200 OK",
                "application/json",
                r#"{"id":1842,"status":"shipped","total":"129.90"}"#,
            ))],
        )],
    );

    // 3. Allowed: app → postgres on 5432.
    let pg_session = |sql: &str| {
        vec![
            ex(
                0,
                bytes(pg_startup("app", "orders")),
                vec![bytes(pg_ready())],
            ),
            ex(2 * MS, bytes(pg_query(sql)), vec![bytes(pg_complete(1))]),
            ex(5 * MS, bytes(pg_terminate()), vec![]),
        ]
    };
    d.tcp(
        8 * S + 10 * MS,
        app,
        53380,
        pg1,
        5432,
        200,
        pg_session("SELECT status FROM orders WHERE id = 1842"),
    );

    // 4. public-exposure: someone on the internet logs into the database,
    // three separate times.
    for (i, at) in [30u64, 150, 270].into_iter().enumerate() {
        d.tcp(
            at * S,
            exposer,
            50211 + 3 * i as u16,
            pg1,
            5432,
            35 * MS,
            pg_session("SELECT version()"),
        );
    }

    // 5. forbidden-path: SSH from the app tier into a database host.
    let ssh_banner = |s: &str| bytes(format!("SSH-2.0-{s}\r\n").into_bytes());
    d.tcp(
        60 * S,
        app,
        45022,
        pg2,
        22,
        250,
        vec![
            ex(
                0,
                ssh_banner("OpenSSH_9.6"),
                vec![ssh_banner("OpenSSH_9.2p1")],
            ),
            ex(MS, Payload::Filler(1120), vec![Payload::Filler(1080)]),
            ex(3 * MS, Payload::Filler(48), vec![Payload::Filler(564)]),
            ex(2 * S, Payload::Filler(52), vec![Payload::Filler(84)]),
            ex(3 * S, Payload::Filler(36), vec![Payload::Filler(36)]),
        ],
    );

    // 6. egress: a database host talks out to the internet over HTTPS.
    d.tcp(
        75 * S,
        pg2,
        38000,
        pay,
        443,
        42 * MS,
        vec![
            ex(0, Payload::Tls(517), tls(&[1400, 1100])),
            ex(20 * MS, Payload::Tls(640), tls(&[90])),
        ],
    );

    // 7. unexpected-path: an office PC opens RDP to the app server, then SSH
    // to the web server (office → dmz: its suppression expired on 2024-01-01).
    d.tcp(
        90 * S,
        office,
        49800,
        app,
        3389,
        700,
        vec![
            ex(0, Payload::Filler(43), vec![Payload::Filler(19)]),
            ex(
                5 * MS,
                Payload::Filler(420),
                vec![Payload::Filler(1360), Payload::Filler(880)],
            ),
            ex(900 * MS, Payload::Filler(120), vec![Payload::Filler(1240)]),
        ],
    );
    d.tcp(
        100 * S,
        office,
        49810,
        web,
        22,
        900,
        vec![
            ex(
                0,
                ssh_banner("PuTTY_Release_0.80"),
                vec![ssh_banner("OpenSSH_9.6")],
            ),
            ex(2 * MS, Payload::Filler(1020), vec![Payload::Filler(1080)]),
            ex(4 * S, Payload::Filler(52), vec![Payload::Filler(52)]),
        ],
    );

    // 8. blocked-attempt: a scan of the DMZ. Some ports are refused with
    // RST|ACK, the rest never answer.
    let mut at = 120 * S;
    for port in [22u16, 23, 3389] {
        for last in 11u8..=30 {
            let target = host(&format!("203.0.113.{last}"), false);
            let mut tl = Timeline::new(at);
            tl.tcp(0, Dir::Fwd, flags::SYN, Payload::Empty);
            if (u16::from(last) + port) % 4 == 0 {
                tl.tcp(22 * MS, Dir::Rev, flags::RST | flags::ACK, Payload::Empty);
            }
            d.push(scanner, 61000, target, port, tl);
            at += 3 * MS + u64::from(last) * 37;
        }
    }
    // ... and lateral reconnaissance: the app server knocks on Redis in the
    // database zone: the SYN and 3 retransmissions, same source port.
    let mut tl = Timeline::new(200 * S);
    for dt in [0, S, 2 * S, 4 * S] {
        tl.tcp(dt, Dir::Fwd, flags::SYN, Payload::Empty);
    }
    d.push(app, 51000, redis, 6379, tl);

    // 9. undeclared-address: a private address no zone owns calls the app.
    d.tcp(
        210 * S,
        stranger,
        47000,
        app,
        8080,
        800,
        vec![ex(
            0,
            bytes(http_get("10.1.0.5:8080", "/api/health")),
            vec![bytes(http_response("200 OK", "text/plain", "ok\n"))],
        )],
    );

    // 10. Suppressed: Prometheus scrapes the app's node exporter and pings it.
    d.tcp(230 * S, prom, 55000, app, 9100, 250, vec![ex(
        0,
        bytes(http_get("10.1.0.5:9100", "/metrics")),
        vec![bytes(http_response(
            "200 OK",
            "text/plain; version=0.0.4",
            "# TYPE node_load1 gauge\nnode_load1 0.42\n# TYPE node_memory_MemAvailable_bytes gauge\nnode_memory_MemAvailable_bytes 3.2e+09\n",
        ))],
    )]);
    let mut tl = Timeline::new(232 * S);
    for seq in 1u16..=3 {
        let mut echo = Vec::with_capacity(56);
        echo.extend_from_slice(&(232 + u64::from(seq) - 1 + START_US / S).to_le_bytes());
        echo.extend((0u8..48).map(|b| b.wrapping_add(0x10)));
        let rest = [0x1f, 0x2e, (seq >> 8) as u8, seq as u8];
        let dt = if seq == 1 { 0 } else { S - 230 };
        tl.send(
            dt,
            Dir::Fwd,
            Seg::Icmp {
                ty: 8,
                code: 0,
                rest,
                payload: Payload::Bytes(echo.clone()),
            },
        );
        tl.send(
            230,
            Dir::Rev,
            Seg::Icmp {
                ty: 0,
                code: 0,
                rest,
                payload: Payload::Bytes(echo),
            },
        );
    }
    d.push(prom, 0, app, 0, tl);

    // 1 again, near the end: a plain-HTTP visit redirected to HTTPS.
    d.tcp(
        295 * S,
        inet7,
        51530,
        web,
        80,
        24 * MS,
        vec![ex(
            0,
            bytes(http_get("www.example.com", "/")),
            vec![bytes(http_response(
                "301 Moved Permanently",
                "text/html",
                "<a href=\"https://www.example.com/\">moved</a>\n",
            ))],
        )],
    );

    d.flows.sort_by_key(|f| f.first_at());
    let mut w = PcapWriter::new(out)?;
    let stats = flow::play(
        &mut w,
        START_US,
        d.flows.into_iter(),
        &flow::filler_table(0xdeb0),
    )?;
    w.finish()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate() -> Vec<u8> {
        let mut buf = Vec::new();
        write(&mut buf).unwrap();
        buf
    }

    #[test]
    fn demo_is_byte_identical_across_runs() {
        let (a, b) = (generate(), generate());
        assert_eq!(a, b);
        assert!(
            a.len() < 64 * 1024,
            "demo.pcap must stay under 64 KiB, is {}",
            a.len()
        );
    }

    #[test]
    fn committed_example_matches_the_generator() {
        // examples/captures/demo.pcap is generated by `zonewatch-gencap demo`; if this
        // fails, regenerate it (see examples/README.md) and review the diff.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/captures/demo.pcap"
        );
        match std::fs::read(path) {
            Ok(committed) => assert!(
                committed == generate(),
                "examples/captures/demo.pcap is stale"
            ),
            Err(e) => panic!("cannot read {path}: {e}"),
        }
    }
}
