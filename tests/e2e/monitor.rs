//! `zonewatch monitor` as a user runs it: a real process with a config file,
//! watched folders with real capture files, a UDP listener fed by a real
//! exporter (softflowd), `/metrics` over HTTP, SIGTERM and `kill -9`, and
//! the real SQLite store read back through the library's reader.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use zonewatch_analyzer::store::Reader;
use zonewatch_collector::pcap_writer::PcapWriter;
use zonewatch_collector::time::Timestamp;

use crate::{s, zonewatch};

/// A running monitor with its output collected.
pub struct Monitor {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Monitor {
    pub fn start(config: &Path) -> Monitor {
        Monitor::start_with(config, &[])
    }

    pub fn start_with(config: &Path, extra: &[&str]) -> Monitor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
            .args(["monitor", "--config", s(config)])
            .args(extra)
            .env("ZONEWATCH_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("monitor starts");
        let collect = |r: Box<dyn Read + Send>| {
            let buf = Arc::new(Mutex::new(String::new()));
            let b = buf.clone();
            thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    let mut g = b.lock().unwrap();
                    g.push_str(&line);
                    g.push('\n');
                }
            });
            buf
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Monitor {
            child,
            stdout,
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until `cond` holds (checked every 100 ms), or fails after `secs`.
    pub fn wait_for(&mut self, what: &str, secs: u64, mut cond: impl FnMut(&Monitor) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if cond(self) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "monitor exited ({status}) while waiting for {what}\nstderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}\nstderr:\n{}", self.stderr());
    }

    /// The address `/metrics` is served on (from the log).
    pub fn metrics_addr(&mut self) -> String {
        self.wait_for("the /metrics address", 20, |m| {
            m.stderr().contains("serving /metrics")
        });
        let err = self.stderr();
        let line = err
            .lines()
            .find(|l| l.contains("serving /metrics"))
            .unwrap();
        let at = line.find("address=").expect("address field") + "address=".len();
        line[at..].split_whitespace().next().unwrap().to_string()
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self) -> (i32, String, String) {
        let pid = self.child.id().to_string();
        let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(st.success());
        let status = self.child.wait().unwrap();
        thread::sleep(Duration::from_millis(200));
        (status.code().unwrap_or(-1), self.stdout(), self.stderr())
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) -> String {
        self.child.kill().unwrap();
        let _ = self.child.wait();
        self.stderr()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /metrics` over plain HTTP/1.1.
pub fn scrape(addr: &str) -> String {
    let mut c = TcpStream::connect(addr).expect("connect to /metrics");
    c.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut body = String::new();
    c.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}

/// The value of one sample line (`name{labels} value`), summed over lines starting with `prefix`.
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A raw IPv4 TCP segment (link type 101).
fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let len = 40 + payload;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.resize(len, 0x61);
    p
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;

/// A complete TCP session (handshake, one request and answer, FIN both
/// ways): 8 packets. Returns its packets with times from `at` (seconds).
fn session(c: [u8; 4], srv: [u8; 4], sport: u16, dport: u16, at: f64) -> Vec<(f64, Vec<u8>)> {
    vec![
        (at, tcp(c, srv, sport, dport, SYN, 0)),
        (at + 0.001, tcp(srv, c, dport, sport, SYN | ACK, 0)),
        (at + 0.002, tcp(c, srv, sport, dport, ACK, 0)),
        (at + 0.003, tcp(c, srv, sport, dport, PSH | ACK, 120)),
        (at + 0.004, tcp(srv, c, dport, sport, PSH | ACK, 900)),
        (at + 0.005, tcp(c, srv, sport, dport, FIN | ACK, 0)),
        (at + 0.006, tcp(srv, c, dport, sport, FIN | ACK, 0)),
        (at + 0.007, tcp(c, srv, sport, dport, ACK, 0)),
    ]
}

/// Writes packets as a raw-IP pcap, atomically (written aside, renamed in).
fn write_pcap(path: &Path, mut packets: Vec<(f64, Vec<u8>)>) {
    packets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let tmp = path.with_extension("part");
    let f = fs::File::create(&tmp).unwrap();
    let mut w = PcapWriter::new(std::io::BufWriter::new(f), 101, 65535).unwrap();
    for (t, data) in &packets {
        let secs = t.floor();
        let ts = Timestamp::from_secs_nanos(secs as i64, ((t - secs) * 1e9).round() as u64);
        w.write_packet(ts, u32::try_from(data.len()).unwrap(), data)
            .unwrap();
    }
    w.finish().unwrap();
    fs::rename(&tmp, path).unwrap();
}

const ZONES: &str = r#"
[[zone]]
name = "app"
cidrs = ["10.1.0.0/16"]

[[zone]]
name = "db"
cidrs = ["10.2.0.0/16"]
trust = "high"
exposure = "private"

[[allow]]
from = "app"
to = "db"
services = ["tcp/5432"]
"#;

const APP: [u8; 4] = [10, 1, 0, 5];
const DB: [u8; 4] = [10, 2, 0, 10];
const OUTSIDE: [u8; 4] = [198, 51, 100, 7];
/// 2024-05-01T10:00:00Z.
const T0: f64 = 1_714_557_600.0;

/// One rotated capture: allowed app→db traffic, one unexpected path
/// (app→db ssh), and one public exposure (internet→db postgres).
fn rotated_capture(path: &Path, at: f64, salt: u16) {
    let mut p = Vec::new();
    for i in 0..5u16 {
        p.extend(session(
            APP,
            DB,
            40_000 + salt * 10 + i,
            5432,
            at + f64::from(i),
        ));
    }
    p.extend(session(APP, DB, 41_000 + salt, 22, at + 6.0));
    p.extend(session(OUTSIDE, DB, 42_000 + salt, 5432, at + 7.0));
    write_pcap(path, p);
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    spool: PathBuf,
    config: PathBuf,
    db: PathBuf,
}

fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let spool = root.join("spool");
    fs::create_dir(&spool).unwrap();
    fs::write(root.join("zones.toml"), ZONES).unwrap();
    let config = root.join("zonewatch.toml");
    fs::write(
        &config,
        format!(
            "zones = \"zones.toml\"\nstore = \"zonewatch.db\"\n\n[monitor]\ncommit_interval = \"200ms\"\n{extra}\n\n[[source]]\ntype = \"watch\"\nname = \"spool\"\npath = \"spool\"\nsettle = \"0s\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    Setup {
        _dir: dir,
        db: root.join("zonewatch.db"),
        root,
        spool,
        config,
    }
}

fn ledger(db: &Path) -> usize {
    Reader::open(db)
        .and_then(|r| r.files())
        .map_or(0, |f| f.len())
}

/// Findings by id: (kind, flows, packets).
fn stored_findings(db: &Path) -> BTreeMap<String, (String, u64, u64)> {
    Reader::open(db)
        .unwrap()
        .findings()
        .unwrap()
        .into_iter()
        .map(|f| {
            let j = f.to_json();
            (
                j["id"].as_str().unwrap().to_string(),
                (
                    j["kind"].as_str().unwrap().to_string(),
                    j["flows"].as_u64().unwrap(),
                    j["packets"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// What `zonewatch analyze` finds in the same files, offline.
fn offline_findings(zones: &Path, files: &[PathBuf]) -> BTreeMap<String, (String, u64, u64)> {
    let mut args = vec!["analyze", "--format", "json", "--zones", s(zones)];
    args.extend(files.iter().map(|f| s(f)));
    let out = zonewatch(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap().to_string(),
                (
                    j["kind"].as_str().unwrap().to_string(),
                    j["flows"].as_u64().unwrap(),
                    j["packets"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn dump_config_prints_the_effective_settings_and_a_bad_config_lists_every_error() {
    let st = setup("baseline = \"1h\"");
    let out = zonewatch(&["monitor", "--config", s(&st.config), "--dump-config"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("baseline = \"1h\""), "{text}");
    assert!(
        text.contains("checkpoint = \"1m\""),
        "defaults are filled in: {text}"
    );
    assert!(
        text.contains(&format!("path = \"{}\"", s(&st.spool))),
        "{text}"
    );
    // The dump is a valid config that means the same.
    let again = st.root.join("again.toml");
    fs::write(&again, &text).unwrap();
    let out2 = zonewatch(&["monitor", "--config", s(&again), "--dump-config"]);
    let text2 = String::from_utf8(out2.stdout).unwrap();
    assert_eq!(
        text.lines().skip(1).collect::<Vec<_>>(),
        text2.lines().skip(1).collect::<Vec<_>>()
    );

    let bad = st.root.join("bad.toml");
    fs::write(
        &bad,
        "zones = \"zones.toml\"\n[monitor]\nbaseline = \"soon\"\n[[source]]\ntype = \"netflow\"\nlisten = \"nowhere\"\n[[source]]\ntype = \"tap\"\n",
    )
    .unwrap();
    let out = zonewatch(&["monitor", "--config", s(&bad)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let name = s(&bad);
    for want in [
        format!("{name}:3: monitor.baseline"),
        format!("{name}:6: [[source]] #1 listen"),
        format!("{name}:8: [[source]] #2: unknown type \"tap\""),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}

#[test]
fn watched_files_are_ingested_exactly_once_across_kill_9_and_restarts() {
    let st = setup("");
    let zones = st.root.join("zones.toml");
    let names: Vec<PathBuf> = (0..6u16)
        .map(|i| st.spool.join(format!("tap-{i:02}.pcap")))
        .collect();
    for (i, p) in names.iter().take(3).enumerate() {
        rotated_capture(p, T0 + 60.0 * i as f64, i as u16);
    }
    // A file still being written is invisible until renamed into place.
    fs::write(st.spool.join("tap-99.pcap.part"), b"partial").unwrap();

    let mut m = Monitor::start(&st.config);
    let addr = m.metrics_addr();
    let db = st.db.clone();
    m.wait_for("three files in the ledger", 60, |_| ledger(&db) == 3);
    let text = scrape(&addr);
    assert_eq!(
        metric(&text, "zonewatch_files_ingested_total"),
        3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "zonewatch_packets_total{source=\"spool\"}"),
        3.0 * 56.0,
        "{text}"
    );
    // New files land, and the monitor dies without any chance to flush.
    for (i, p) in names.iter().enumerate().skip(3) {
        rotated_capture(p, T0 + 60.0 * i as f64, i as u16);
    }
    thread::sleep(Duration::from_millis(300));
    m.kill9();
    let after_kill = ledger(&st.db);

    // The restarted monitor takes the rest, and only the rest.
    let mut m = Monitor::start(&st.config);
    let addr = m.metrics_addr();
    m.wait_for("six files in the ledger", 60, |_| ledger(&db) == 6);
    let text = scrape(&addr);
    assert_eq!(
        metric(&text, "zonewatch_files_ingested_total"),
        (6 - after_kill) as f64,
        "{after_kill} files were in the ledger at the kill: {text}"
    );
    // A renamed copy has the same content: not ingested again.
    fs::copy(&names[0], st.spool.join("renamed-copy.pcap")).unwrap();
    m.wait_for("the copy to be recognised", 30, |m| {
        m.stderr().contains("already ingested")
    });
    let (code, _, err) = m.terminate();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("everything is committed"), "{err}");

    let r = Reader::open(&st.db).unwrap();
    assert_eq!(r.files().unwrap().len(), 6);
    let totals = r.totals().unwrap();
    // 6 files x 7 sessions x 8 packets, each counted once.
    assert_eq!((totals.flows, totals.packets), (42, 336));
    // Findings equal what the offline analysis of the same six files finds.
    assert_eq!(stored_findings(&st.db), offline_findings(&zones, &names));
}

/// A NetFlow v5 datagram with `n` records; record `i` of datagram `seq`
/// has `packets = 1 + (seq + i) % 7` and 100 bytes a packet.
fn v5_datagram(seq: u32, n: u16, unix_secs: u32) -> (Vec<u8>, u64, u64) {
    let mut d = Vec::with_capacity(24 + 48 * usize::from(n));
    d.extend_from_slice(&5u16.to_be_bytes());
    d.extend_from_slice(&n.to_be_bytes());
    d.extend_from_slice(&1_000_000u32.to_be_bytes()); // sys_uptime ms
    d.extend_from_slice(&unix_secs.to_be_bytes());
    d.extend_from_slice(&0u32.to_be_bytes()); // nsecs
    d.extend_from_slice(&(seq * u32::from(n)).to_be_bytes()); // flow sequence
    d.extend_from_slice(&[0, 0, 0, 0]); // engine type/id, sampling (none)
    let (mut packets, mut bytes) = (0, 0);
    for i in 0..u32::from(n) {
        let k = seq * u32::from(n) + i;
        let p = 1 + (seq + i) % 7;
        d.extend_from_slice(&[10, 1, (k >> 8) as u8, k as u8]); // src app
        d.extend_from_slice(&[10, 2, 0, 10]); // dst db
        d.extend_from_slice(&[0, 0, 0, 0]); // next hop
        d.extend_from_slice(&[0, 1, 0, 2]); // input, output ifindex
        d.extend_from_slice(&p.to_be_bytes());
        d.extend_from_slice(&(p * 100).to_be_bytes());
        d.extend_from_slice(&999_000u32.to_be_bytes()); // first (uptime ms)
        d.extend_from_slice(&999_500u32.to_be_bytes()); // last
        d.extend_from_slice(&(20_000 + (k % 40_000) as u16).to_be_bytes()); // sport
        d.extend_from_slice(&5432u16.to_be_bytes()); // dport
        d.extend_from_slice(&[0, 0x1b, 6, 0]); // pad, tcp flags, proto, tos
        d.extend_from_slice(&[0, 0, 0, 0, 24, 16, 0, 0]); // AS, masks, pad
        packets += u64::from(p);
        bytes += u64::from(p * 100);
    }
    (d, packets, bytes)
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn exports_at_a_steady_rate_are_all_counted_and_stored() {
    let port = free_udp_port();
    let st = setup(&format!(
        "\n[[source]]\ntype = \"netflow\"\nname = \"routers\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    // The watch source of `setup` stays; its silence is not this test's concern.
    let mut m = Monitor::start(&st.config);
    let addr = m.metrics_addr();
    m.wait_for("the listener", 20, |m| m.stderr().contains("listening"));
    let sock = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let unix = u32::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    // 2,000 datagrams of 30 records at 1,000 datagrams/s (30,000 records/s).
    let (datagrams, per) = (2_000u32, 30u16);
    let (mut sent_packets, mut sent_bytes) = (0u64, 0u64);
    let start = Instant::now();
    for seq in 0..datagrams {
        let (d, p, b) = v5_datagram(seq, per, unix);
        sent_packets += p;
        sent_bytes += b;
        sock.send_to(&d, ("127.0.0.1", port)).unwrap();
        let due = start + Duration::from_micros(1_000 * u64::from(seq + 1));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    m.wait_for("every record counted", 30, |_| {
        metric(
            &scrape(&addr),
            "zonewatch_packets_total{source=\"routers\"}",
        ) == sent_packets as f64
    });
    let text = scrape(&addr);
    assert_eq!(
        metric(&text, "zonewatch_bytes_total{source=\"routers\"}"),
        sent_bytes as f64
    );
    assert_eq!(metric(&text, "zonewatch_dropped_total"), 0.0, "{text}");
    assert_eq!(
        metric(&text, "zonewatch_decode_errors_total"),
        0.0,
        "{text}"
    );
    // A NetFlow v9 data set whose template never arrives: a visibility gap
    // (the records it carries cannot be counted), reported at once.
    let mut v9 = Vec::new();
    for w in [9u16, 1] {
        v9.extend_from_slice(&w.to_be_bytes());
    }
    for w in [1_000_000u32, unix, 1, 7] {
        v9.extend_from_slice(&w.to_be_bytes());
    }
    v9.extend_from_slice(&[0x01, 0x2c, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8]);
    sock.send_to(&v9, ("127.0.0.1", port)).unwrap();
    m.wait_for("the missing template to be reported", 20, |m| {
        m.stdout()
            .lines()
            .any(|l| l.contains("\"visibility-gap\"") && l.contains("missing-template"))
    });
    // Another exporter (127.0.0.2) sends v9 with a template but never a
    // sampling rate: its counters may be sampled, nobody can tell.
    let other = std::net::UdpSocket::bind(("127.0.0.2", 0)).unwrap();
    let mut v9 = Vec::new();
    for w in [9u16, 2] {
        v9.extend_from_slice(&w.to_be_bytes());
    }
    for w in [1_000_000u32, unix, 1, 9] {
        v9.extend_from_slice(&w.to_be_bytes());
    }
    // Template 256: src, dst, sport, dport, proto, packets, bytes.
    let fields: [(u16, u16); 7] = [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4)];
    v9.extend_from_slice(&[0, 0]);
    v9.extend_from_slice(&(8 + 4 * fields.len() as u16).to_be_bytes());
    v9.extend_from_slice(&256u16.to_be_bytes());
    v9.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (t, l) in fields {
        v9.extend_from_slice(&t.to_be_bytes());
        v9.extend_from_slice(&l.to_be_bytes());
    }
    v9.extend_from_slice(&[1, 0, 0, 28]);
    v9.extend_from_slice(&[10, 1, 9, 9, 10, 2, 0, 10, 0x9c, 0x40, 0x15, 0x38, 6]);
    v9.extend_from_slice(&3u32.to_be_bytes());
    v9.extend_from_slice(&300u32.to_be_bytes());
    v9.extend_from_slice(&[0, 0, 0]);
    other.send_to(&v9, ("127.0.0.1", port)).unwrap();
    m.wait_for("the unknown sampling to be reported", 20, |m| {
        m.stdout().lines().any(|l| {
            l.contains("\"visibility-gap\"")
                && l.contains("unknown-sampling")
                && l.contains("exporter 127.0.0.2")
        })
    });
    sent_packets += 3;
    sent_bytes += 300;
    // SIGTERM ends every flow still waiting for its reverse and commits them.
    let (code, _, err) = m.terminate();
    assert_eq!(code, 0, "{err}");
    let totals = Reader::open(&st.db).unwrap().totals().unwrap();
    assert_eq!(
        (totals.flows, totals.packets, totals.bytes),
        (
            u64::from(datagrams) * u64::from(per) + 1,
            sent_packets,
            sent_bytes
        )
    );
}

#[test]
fn zones_edits_apply_without_restart_and_a_broken_edit_keeps_the_old_policy() {
    let st = setup("baseline = \"10m\"\nsilent_after = \"2s\"");
    let mut m = Monitor::start(&st.config);
    rotated_capture(&st.spool.join("a.pcap"), T0, 1);
    let db = st.db.clone();
    m.wait_for("the first file", 60, |_| ledger(&db) == 1);
    m.wait_for("the ssh finding on stdout", 20, |m| {
        m.stdout().contains("\"unexpected-path\"")
    });

    // A broken edit: the previous policy stays, the log says exactly what is wrong.
    let zones = st.root.join("zones.toml");
    fs::write(
        &zones,
        format!("{ZONES}\n[[allow]]\nfrom = \"app\"\nto = \"nowhere\"\nservices = [\"tcp/22\"]\n"),
    )
    .unwrap();
    m.wait_for("the error about the edit", 30, |m| {
        m.stderr().contains("previous policy stays") && m.stderr().contains("zones.toml:")
    });
    // An empty save (truncated file) keeps the previous policy too.
    fs::write(&zones, "").unwrap();
    m.wait_for("the refusal of an empty zones file", 30, |m| {
        m.stderr().contains("declares no zone")
    });
    assert!(!m.stderr().contains("zones reloaded"), "{}", m.stderr());
    // A good edit allows ssh from app to db from now on.
    fs::write(
        &zones,
        format!("{ZONES}\n[[allow]]\nfrom = \"app\"\nto = \"db\"\nservices = [\"tcp/22\"]\n"),
    )
    .unwrap();
    m.wait_for("the reload", 30, |m| m.stderr().contains("zones reloaded"));
    let ssh_before = stored_findings(&db)
        .into_values()
        .find(|f| f.0 == "unexpected-path")
        .expect("ssh finding")
        .1;
    // An hour later: the same traffic plus a path never seen before.
    let later = T0 + 3600.0;
    let mut p = Vec::new();
    p.extend(session(APP, DB, 45_000, 22, later));
    p.extend(session(APP, DB, 45_001, 6432, later + 1.0));
    write_pcap(&st.spool.join("b.pcap"), p);
    m.wait_for("the second file", 60, |_| ledger(&db) == 2);
    m.wait_for("the new-path finding", 20, |m| {
        m.stdout().contains("\"new-path\"")
    });
    // The watched folder stays quiet: that is a visibility gap, not "no findings".
    m.wait_for("the silence to be reported", 30, |m| {
        m.stdout().contains("\"visibility-gap\"")
    });
    let (code, out, err) = m.terminate();
    assert_eq!(code, 0, "{err}");
    let found = stored_findings(&st.db);
    let ssh_after = found.values().find(|f| f.0 == "unexpected-path").unwrap().1;
    assert_eq!(
        ssh_after, ssh_before,
        "allowed ssh after the reload raised nothing more"
    );
    let new_paths: Vec<_> = found.values().filter(|f| f.0 == "new-path").collect();
    // tcp/6432 is new; tcp/22 and tcp/5432 were seen in the baseline.
    assert_eq!(new_paths.len(), 1, "{found:?}");
    let line = out
        .lines()
        .find(|l| l.contains("\"new-path\""))
        .expect("new-path line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["service"], "tcp/6432");
    assert_eq!(v["severity"], "info");
    let gap = out
        .lines()
        .find(|l| l.contains("\"visibility-gap\""))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(gap).unwrap();
    assert_eq!(
        (v["src_zone"].as_str(), v["dst_zone"].as_str()),
        (Some("spool"), Some("silent"))
    );
}

#[test]
fn logs_can_be_json_lines() {
    let st = setup("");
    let mut m = Monitor::start_with(&st.config, &["--log-format", "json"]);
    m.wait_for("the metrics log line", 20, |m| {
        m.stderr().contains("serving /metrics")
    });
    let (code, _, err) = m.terminate();
    assert_eq!(code, 0, "{err}");
    let logs: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let metrics = logs
        .iter()
        .find(|v| v["fields"]["message"] == "serving /metrics")
        .expect("the /metrics line as JSON");
    assert_eq!(metrics["level"], "INFO");
    assert!(
        metrics["fields"]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(
        logs.iter().any(|v| v["fields"]["message"] == "watching"),
        "{err}"
    );
}

#[test]
fn a_tap_that_sees_one_direction_only_is_a_visibility_gap() {
    let st = setup("one_way_min_flows = 5");
    let mut m = Monitor::start(&st.config);
    // Six sessions of which only the client's packets were captured.
    let mut p = Vec::new();
    for i in 0..6u16 {
        p.extend(
            session(APP, DB, 46_000 + i, 5432, T0 + f64::from(i))
                .into_iter()
                .filter(|(_, pkt)| pkt[12..16] == APP),
        );
    }
    write_pcap(&st.spool.join("half.pcap"), p);
    m.wait_for("the one-way gap", 60, |m| {
        m.stdout()
            .lines()
            .any(|l| l.contains("\"visibility-gap\"") && l.contains("\"one-way\""))
    });
    let (code, _, err) = m.terminate();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn zones_suggest_turns_observed_paths_into_allow_rules_that_make_them_allowed() {
    let st = setup("");
    let mut m = Monitor::start(&st.config);
    rotated_capture(&st.spool.join("a.pcap"), T0, 1);
    let db = st.db.clone();
    m.wait_for("the file", 60, |_| ledger(&db) == 1);
    let (code, _, err) = m.terminate();
    assert_eq!(code, 0, "{err}");
    let out = zonewatch(&["zones", "suggest", "--db", s(&st.db)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let patch = String::from_utf8(out.stdout).unwrap();
    assert!(patch.contains("[[allow]]"), "{patch}");
    assert!(patch.contains("tcp/22"), "{patch}");
    // internet -> db (private) is never suggested as an allow rule.
    assert!(!patch.contains("from = \"internet\""), "{patch}");
    let zones = st.root.join("zones.toml");
    let patched = st.root.join("patched.toml");
    fs::write(
        &patched,
        format!("{}\n{patch}", fs::read_to_string(&zones).unwrap()),
    )
    .unwrap();
    let out = zonewatch(&[
        "zones",
        "explain",
        s(&patched),
        "10.1.0.5",
        "10.2.0.10",
        "tcp/22",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    // ("not-allowed" contains "allowed": the decision line must start with it.)
    assert!(
        text.lines()
            .any(|l| l.starts_with("decision: allowed by allow app -> db")),
        "{text}"
    );
    // Before the patch the same path was not allowed.
    let out = zonewatch(&[
        "zones",
        "explain",
        s(&zones),
        "10.1.0.5",
        "10.2.0.10",
        "tcp/22",
    ]);
    let before = String::from_utf8_lossy(&out.stdout);
    assert!(
        before
            .lines()
            .any(|l| l.starts_with("decision: not-allowed")),
        "{before}"
    );
}

/// A monitor capturing on `lo` with `filter`, zones app = 127.0.0.2 and
/// db = 127.0.0.3 (high trust), checkpoints every `checkpoint`. `None` when
/// capture is not permitted here (a failure under ZONEWATCH_REQUIRE_TOOLS=1).
#[cfg(feature = "live")]
fn live_monitor(filter: &str, checkpoint: &str) -> Option<(tempfile::TempDir, Monitor)> {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("zones.toml"),
        "[[zone]]\nname = \"app\"\ncidrs = [\"127.0.0.2/32\"]\n\n[[zone]]\nname = \"db\"\ncidrs = [\"127.0.0.3/32\"]\ntrust = \"high\"\n",
    )
    .unwrap();
    let config = dir.path().join("zonewatch.toml");
    fs::write(
        &config,
        format!(
            "zones = \"zones.toml\"\nstore = \"zonewatch.db\"\n[monitor]\ncommit_interval = \"200ms\"\ncheckpoint = \"{checkpoint}\"\n[[source]]\ntype = \"pcap_live\"\nname = \"lo\"\ninterface = \"lo\"\nfilter = \"{filter}\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let m = Monitor::start(&config);
    let started = Instant::now();
    loop {
        let err = m.stderr();
        if err.contains("capturing") {
            return Some((dir, m));
        }
        if err.contains("permission") || err.contains("Operation not permitted") {
            assert!(
                std::env::var("ZONEWATCH_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "live capture is not permitted here: {err}"
            );
            eprintln!(
                "skipped: live capture on lo is not permitted here (run as root or give the binary cap_net_raw)"
            );
            return None;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no capture started:\n{err}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP connection from 127.0.0.2 to `server` (on 127.0.0.3): a request
/// and its answer; the connection stays open until the stream is dropped.
#[cfg(feature = "live")]
fn open_connection(server: std::net::TcpListener) -> (TcpStream, thread::JoinHandle<usize>) {
    use std::net::SocketAddr;
    let port = server.local_addr().unwrap().port();
    let accept = thread::spawn(move || {
        let (mut conn, _) = server.accept().unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).unwrap();
        conn.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .unwrap();
        // Hold the connection open until the client closes it.
        let _ = conn.read(&mut buf);
        n
    });
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    client
        .bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())
        .unwrap();
    client
        .connect(&SocketAddr::from(([127, 0, 0, 3], port)).into())
        .unwrap();
    let mut conn: TcpStream = client.into();
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = [0u8; 128];
    let n = conn.read(&mut answer).unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.0 200"));
    (conn, accept)
}

/// The stored findings of `kind`, as JSON.
#[cfg(feature = "live")]
fn stored(db: &Path, kind: &str) -> Vec<serde_json::Value> {
    Reader::open(db)
        .and_then(|r| r.findings())
        .map(|f| {
            f.iter()
                .map(|f| f.to_json())
                .filter(|j| j["kind"] == kind)
                .collect()
        })
        .unwrap_or_default()
}

/// Live capture on `lo`: a real TCP connection between two loopback
/// addresses declared as zones. Checkpoints are an hour apart, so the
/// finding can only come from its first evidence (the SYN-ACK): it appears
/// while the connection is still open, long before any timeout ends it.
#[cfg(feature = "live")]
#[test]
fn live_capture_on_loopback_raises_a_finding_at_its_first_evidence() {
    let server = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let Some((dir, mut m)) = live_monitor(&format!("tcp port {port}"), "1h") else {
        return;
    };
    let (conn, accept) = open_connection(server);
    m.wait_for("the finding while the connection is open", 20, |m| {
        m.stdout().contains("\"unexpected-path\"")
    });
    let line = m
        .stdout()
        .lines()
        .find(|l| l.contains("\"unexpected-path\""))
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["src_zone"].as_str(), v["dst_zone"].as_str()),
        (Some("app"), Some("db"))
    );
    assert_eq!(v["service"], format!("tcp/{port}"));
    assert_eq!(v["evidence"][0]["src"], "127.0.0.2");
    assert_eq!(v["evidence"][0]["oriented_by"], "handshake");
    drop(conn);
    assert!(accept.join().unwrap() > 0);
    let (code, _, err) = m.terminate();
    assert_eq!(code, 0, "{err}");
    // The whole flow is in the store once: one flow, answered, in one finding.
    let db = dir.path().join("zonewatch.db");
    let totals = Reader::open(&db).unwrap().totals().unwrap();
    assert_eq!((totals.flows, totals.answered), (1, 1), "{err}");
    // Handshake, request, answer (and whatever closing the capture saw).
    assert!(totals.packets >= 5, "{totals:?}");
    let f = stored(&db, "unexpected-path");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0]["flows"].as_u64(), f[0]["answered"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(f[0]["packets"].as_u64(), Some(totals.packets));
}

/// With checkpoints every second: an open connection reaches the store
/// before it ends, and a UDP query answered only after a checkpoint passed
/// is still one answered flow in one finding (not an unanswered attempt
/// plus an empty finding).
#[cfg(feature = "live")]
#[test]
fn live_flows_are_checkpointed_into_the_store_and_counted_once() {
    use std::net::{SocketAddr, UdpSocket};
    let server = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let udp_server = UdpSocket::bind("127.0.0.3:0").unwrap();
    let uport = udp_server.local_addr().unwrap().port();
    let Some((dir, mut m)) = live_monitor(&format!("tcp port {port} or udp port {uport}"), "1s")
    else {
        return;
    };
    let db = dir.path().join("zonewatch.db");
    let (conn, accept) = open_connection(server);
    m.wait_for("the open flow in the store", 20, |_| {
        Reader::open(&db)
            .and_then(|r| r.totals())
            .is_ok_and(|t| t.flows == 1 && t.packets >= 5 && t.answered == 1)
    });
    // The query, then its answer 2.5 s (two checkpoints) later.
    let client = UdpSocket::bind("127.0.0.2:0").unwrap();
    client
        .send_to(b"query", SocketAddr::from(([127, 0, 0, 3], uport)))
        .unwrap();
    let mut buf = [0u8; 16];
    let (_, from) = udp_server.recv_from(&mut buf).unwrap();
    thread::sleep(Duration::from_millis(2500));
    udp_server.send_to(b"answer", from).unwrap();
    m.wait_for("the UDP finding", 20, |_| {
        stored(&db, "unexpected-path")
            .iter()
            .any(|f| f["service"] == format!("udp/{uport}"))
    });
    drop(conn);
    assert!(accept.join().unwrap() > 0);
    let (code, _, err) = m.terminate();
    assert_eq!(code, 0, "{err}");
    let blocked = stored(&db, "blocked-attempt");
    assert!(blocked.is_empty(), "{blocked:?}");
    let udp: Vec<_> = stored(&db, "unexpected-path")
        .into_iter()
        .filter(|f| f["service"] == format!("udp/{uport}"))
        .collect();
    assert_eq!(udp.len(), 1);
    assert_eq!(
        (
            udp[0]["flows"].as_u64(),
            udp[0]["answered"].as_u64(),
            udp[0]["packets"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    let totals = Reader::open(&db).unwrap().totals().unwrap();
    assert_eq!((totals.flows, totals.answered), (2, 2), "{err}");
}
