//! Flow exports end to end: a real exporter (softflowd) sends NetFlow v5,
//! v9 and IPFIX to `zonewatch flows --listen` on loopback; the flows must
//! equal those computed from the same capture directly, and what nfcapd +
//! nfdump decode from the same export.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{corpus, have_tool, jsonl, s, zonewatch};

type Tuple = (String, IpAddr, u16, IpAddr, u16);

/// A running `zonewatch flows --listen` and the port it bound.
struct Listener {
    child: Child,
    port: u16,
    stderr: BufReader<std::process::ChildStderr>,
    seen: String,
}

#[allow(clippy::zombie_processes)] // `Listener::stop` waits for it
fn listen(kind: &str, extra: &[&str]) -> Listener {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args(["flows", "--listen", &format!("{kind}=127.0.0.1:0")])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zonewatch starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).expect("stderr line") > 0,
            "listener exited: {seen}"
        );
        seen.push_str(&line);
        if let Some(rest) = line
            .trim()
            .strip_prefix(&format!("zonewatch: listening for {kind} on 127.0.0.1:"))
        {
            let port = rest.parse().expect("port");
            return Listener {
                child,
                port,
                stderr,
                seen,
            };
        }
        assert!(Instant::now() < deadline, "no listening line: {seen}");
    }
}

impl Listener {
    /// SIGTERM, then the flows it printed and its whole stderr.
    fn stop(mut self) -> (Vec<Value>, String) {
        thread::sleep(Duration::from_millis(300));
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill")
                .success()
        );
        let mut out = Vec::new();
        self.child
            .stdout
            .take()
            .expect("stdout")
            .read_to_end(&mut out)
            .expect("stdout");
        self.stderr.read_to_string(&mut self.seen).expect("stderr");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{status:?}: {}", self.seen);
        (jsonl(&out), self.seen)
    }
}

/// softflowd reads `pcap` and exports with `version` to 127.0.0.1:`port`.
fn softflowd(pcap: &str, port: u16, version: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    // Its output goes to a file: a pipe would be held open after it exits.
    let log = dir.path().join("log");
    let ctl = dir.path().join("ctl");
    let mut child = Command::new("softflowd")
        .args([
            "-r",
            pcap,
            "-n",
            &format!("127.0.0.1:{port}"),
            "-v",
            version,
            "-d",
        ])
        .args(["-p", s(&dir.path().join("pid")), "-c", s(&ctl)])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("softflowd runs");
    // softflowd 1.1.0 in -r mode may block on its control socket before
    // reading the capture (it tests a poll result it never polled for, so
    // it depends on the stack's contents). A harmless `statistics` request
    // through softflowctl lets it go on; it then reads the whole capture,
    // exports and exits.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if ctl.exists() {
            let _ = Command::new("softflowctl")
                .args(["-c", s(&ctl), "statistics"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        assert!(Instant::now() < deadline, "softflowd did not finish");
        thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "softflowd: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Packets and bytes per canonical 5-tuple, both directions summed.
fn totals(flows: &[Value], v4_only: bool) -> BTreeMap<Tuple, (u64, u64)> {
    let mut m = BTreeMap::new();
    for f in flows {
        let a: IpAddr = f["src"].as_str().unwrap().parse().unwrap();
        let b: IpAddr = f["dst"].as_str().unwrap().parse().unwrap();
        if v4_only && !a.is_ipv4() {
            continue;
        }
        let (ap, bp) = (
            f["sport"].as_u64().unwrap() as u16,
            f["dport"].as_u64().unwrap() as u16,
        );
        let key = if (a, ap) <= (b, bp) {
            (f["proto"].as_str().unwrap().to_string(), a, ap, b, bp)
        } else {
            (f["proto"].as_str().unwrap().to_string(), b, bp, a, ap)
        };
        let e = m.entry(key).or_insert((0, 0));
        e.0 += f["packets"].as_u64().unwrap() + f["rpackets"].as_u64().unwrap();
        e.1 += f["bytes"].as_u64().unwrap() + f["rbytes"].as_u64().unwrap();
    }
    m
}

#[test]
fn softflowd_exports_equal_the_capture_flows() {
    let Some(corpus) = corpus() else { return };
    if !have_tool("softflowd", "softflowd") {
        return;
    }
    let pcap = corpus.join("pcap").join("zeek-wikipedia.pcap");
    let direct = jsonl(&zonewatch(&["flows", s(&pcap)]).stdout);
    for (version, extra, v4_only, stitched) in [
        ("5", vec![], true, true),
        ("9", vec![], false, true),
        ("10", vec![], false, true),
        ("10", vec!["-b"], false, true),
    ] {
        let l = listen("netflow", &[]);
        // A malformed datagram first: counted, and the listener goes on.
        let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        junk.send_to(&[0, 9, 0, 1, 0xde, 0xad], ("127.0.0.1", l.port))
            .unwrap();
        softflowd(s(&pcap), l.port, version, &extra);
        let (flows, stderr) = l.stop();
        assert!(
            stderr.contains("errors: truncated-header 1"),
            "v{version}: {stderr}"
        );
        assert!(
            !flows.is_empty(),
            "v{version} {extra:?}: no flows: {stderr}"
        );
        assert_eq!(
            totals(&flows, v4_only),
            totals(&direct, v4_only),
            "v{version} {extra:?}: {stderr}"
        );
        assert!(stderr.contains("exporter 127.0.0.1"), "{stderr}");
        for f in &flows {
            assert_eq!(f["export"]["exporter"], "127.0.0.1");
            assert!(
                f["source"]
                    .as_str()
                    .unwrap()
                    .starts_with("netflow@127.0.0.1:")
            );
        }
        if stitched {
            // Both directions of the answered TCP connections were stitched together.
            let tcp_both = flows
                .iter()
                .filter(|f| f["proto"] == "tcp" && f["rpackets"].as_u64().unwrap() > 0)
                .count();
            assert!(tcp_both > 0, "v{version}: no stitched TCP flow");
            assert!(
                flows
                    .iter()
                    .filter(|f| f["proto"] == "tcp")
                    .all(|f| f["dport"] == 80 || f["sport"] == 80 || f["dport"] == 443)
            );
        }
    }
}

#[test]
fn softflowd_export_matches_nfcapd_and_nfdump() {
    let Some(corpus) = corpus() else { return };
    if !have_tool("softflowd", "softflowd") || !have_tool("nfcapd", "nfdump") {
        return;
    }
    let pcap = corpus.join("pcap").join("zeek-wikipedia.pcap");
    // nfcapd on a free loopback port.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut nfcapd = Command::new("nfcapd")
        .args([
            "-b",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-w",
            s(dir.path()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nfcapd starts");
    thread::sleep(Duration::from_millis(500));
    softflowd(s(&pcap), port, "9", &[]);
    thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args(["-TERM", &nfcapd.id().to_string()])
        .status()
        .unwrap();
    nfcapd.wait().unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("nfcapd.")
        })
        .collect();
    assert!(!files.is_empty(), "nfcapd wrote no file");
    let mut theirs: BTreeMap<Tuple, (u64, u64)> = BTreeMap::new();
    for f in files {
        let out = Command::new("nfdump")
            .args(["-r", s(&f), "-o", "csv", "-q"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            let c: Vec<&str> = line.split(',').collect();
            if c.len() < 13 || c[0] == "ts" {
                continue;
            }
            let (Ok(a), Ok(b)) = (c[3].parse::<IpAddr>(), c[4].parse::<IpAddr>()) else {
                continue;
            };
            let (ap, bp): (u16, u16) = (c[5].parse().unwrap(), c[6].parse().unwrap());
            let proto = c[7].to_lowercase();
            let key = if (a, ap) <= (b, bp) {
                (proto, a, ap, b, bp)
            } else {
                (proto, b, bp, a, ap)
            };
            let e = theirs.entry(key).or_insert((0, 0));
            e.0 += c[11].parse::<u64>().unwrap();
            e.1 += c[12].parse::<u64>().unwrap();
        }
    }
    let l = listen("netflow", &["--unidirectional"]);
    softflowd(s(&pcap), l.port, "9", &[]);
    let (flows, stderr) = l.stop();
    assert_eq!(flows.len(), 57, "{stderr}");
    assert_eq!(totals(&flows, false), theirs);
}

#[test]
fn exporters_outside_the_allow_list_are_dropped_and_counted() {
    let Some(corpus) = corpus() else { return };
    if !have_tool("softflowd", "softflowd") {
        return;
    }
    let pcap = corpus.join("pcap").join("zeek-wikipedia.pcap");
    let l = listen("netflow", &["--allow-exporter", "192.0.2.0/24"]);
    softflowd(s(&pcap), l.port, "9", &[]);
    let (flows, stderr) = l.stop();
    assert!(flows.is_empty(), "{flows:?}");
    let line = stderr
        .lines()
        .find(|l| l.contains("exporter 127.0.0.1"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let dropped: u64 = line
        .split(" not allowed")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped >= 1, "{line}");
    assert!(line.contains(" 0 datagrams"), "{line}");
}

#[test]
fn templates_carry_across_inputs_and_data_alone_decodes_nothing() {
    let Some(corpus) = corpus() else { return };
    let nf = corpus.join("netflow");
    let expected = corpus.join("expected").join("netflow");
    for (template, data, combined) in [
        (
            "akvorado-v9-template.pcap",
            "akvorado-v9-data.pcap",
            "akvorado-v9-template+data.pcap",
        ),
        (
            "akvorado-ipfixprobe-templates.pcap",
            "akvorado-ipfixprobe-data.pcap",
            "akvorado-ipfixprobe-templates+data.pcap",
        ),
        (
            "akvorado-icmp-template.pcap",
            "akvorado-icmp-data.pcap",
            "akvorado-icmp-template+data.pcap",
        ),
    ] {
        let reference =
            std::fs::read_to_string(expected.join(format!("{combined}.records.jsonl"))).unwrap();
        let want = reference
            .lines()
            .filter(|l| l.contains("\"type\": \"record\""))
            .count();
        let out = zonewatch(&[
            "flows",
            "--unidirectional",
            s(&nf.join(template)),
            s(&nf.join(data)),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let flows = jsonl(&out.stdout);
        assert_eq!(
            flows.len(),
            want,
            "{template} then {data}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(flows.iter().all(|f| {
            f["export"]["template_id"]
                .as_u64()
                .is_some_and(|t| t >= 256)
        }));
        let alone = zonewatch(&["flows", "--unidirectional", s(&nf.join(data))]);
        assert!(alone.status.success());
        // Without its template the data decodes to nothing: the datagram is
        // only counted as ordinary UDP traffic to the collector.
        let left = jsonl(&alone.stdout);
        assert!(
            left.iter()
                .all(|f| f["export"].is_null() && f["proto"] == "udp"),
            "{data} alone decoded records: {left:?}"
        );
        assert!(
            String::from_utf8_lossy(&alone.stderr)
                .contains("1 data sets without template (0 dropped, 1 still held)"),
            "{}",
            String::from_utf8_lossy(&alone.stderr)
        );
    }
}

#[test]
fn vpc_flow_logs_raise_findings_with_their_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("flows.log");
    std::fs::write(
        &log,
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n\
         2 123456789012 eni-0a1b2c 198.51.100.23 10.2.0.10 50211 5432 6 10 840 1714557600 1714557660 ACCEPT OK\n\
         2 123456789012 eni-0a1b2c 10.2.0.10 198.51.100.23 5432 50211 6 8 4200 1714557600 1714557660 ACCEPT OK\n\
         2 123456789012 eni-0a1b2c 198.51.100.99 10.2.0.11 61000 22 6 1 40 1714557600 1714557660 REJECT OK\n\
         2 123456789012 eni-0a1b2c - - - - - - - 1714557600 1714557660 - NODATA\n\
         2 123456789012 eni-0a1b2c 198.51.100.1 not-an-address 1 2 6 1 40 1714557600 1714557660 ACCEPT OK\n",
    )
    .unwrap();
    // Gzip-compressed, as S3 delivers them: recognised by content.
    let gz = dir.path().join("flows.log.gz");
    let zipped = Command::new("gzip").arg("-c").arg(&log).output().unwrap();
    std::fs::write(&gz, zipped.stdout).unwrap();
    let zones = crate::root().join("examples").join("zones.toml");
    for input in [&log, &gz] {
        let out = zonewatch(&[
            "analyze",
            s(input),
            "--zones",
            s(&zones),
            "--format",
            "json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let fs: Value = serde_json::from_slice(&out.stdout).unwrap();
        let fs = fs.as_array().unwrap();
        let pe = fs
            .iter()
            .find(|f| f["kind"] == "public-exposure")
            .unwrap_or_else(|| panic!("{fs:#?}"));
        assert_eq!(
            (pe["dst"].as_str(), pe["service"].as_str()),
            (Some("10.2.0.10"), Some("tcp/5432"))
        );
        let ev = &pe["evidence"][0];
        assert_eq!(
            (
                ev["packets"].as_u64(),
                ev["rpackets"].as_u64(),
                ev["state"].as_str()
            ),
            (Some(10), Some(8), Some("established"))
        );
        assert_eq!(ev["export"]["protocol"], "vpc-flow-log");
        assert_eq!(ev["export"]["records"], 2);
        // The REJECT line is a blocked attempt on a forbidden path.
        let fp = fs
            .iter()
            .find(|f| f["kind"] == "forbidden-path")
            .unwrap_or_else(|| panic!("{fs:#?}"));
        assert_eq!(fp["evidence"][0]["state"], "rejected");
        assert_eq!(fp["answered"], 0);
        // The bad line is named with its file and line, and the rest still counts.
        assert!(
            stderr.contains(":6:") && stderr.contains("not-an-address"),
            "{stderr}"
        );
    }
}

#[test]
fn analyze_listen_prints_findings_with_exporter_evidence() {
    let Some(corpus) = corpus() else { return };
    if !have_tool("softflowd", "softflowd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones.toml");
    std::fs::write(
        &zones,
        "[[zone]]\nname = \"campus\"\ncidrs = [\"141.142.0.0/16\"]\ntrust = \"high\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args([
            "analyze",
            "--listen",
            "netflow=127.0.0.1:0",
            "--zones",
            s(&zones),
            "--format",
            "jsonl",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{line}"));
    softflowd(
        s(&corpus.join("pcap").join("zeek-wikipedia.pcap")),
        port,
        "9",
        &[],
    );
    thread::sleep(Duration::from_millis(300));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    let findings = jsonl(&out);
    // The campus (trust high) talking out to the internet is egress.
    let egress: Vec<&Value> = findings.iter().filter(|f| f["kind"] == "egress").collect();
    assert!(!egress.is_empty(), "{findings:#?} {rest}");
    let ev = &egress[0]["evidence"][0];
    assert_eq!(ev["export"]["exporter"], "127.0.0.1");
    assert_eq!(ev["export"]["protocol"], "netflow-v9");
    assert!(
        ev["export"]["template_id"]
            .as_u64()
            .is_some_and(|t| t >= 256)
    );
    assert!(rest.contains("findings"), "{rest}");
}

#[test]
fn duration_ends_a_listener_and_export_ports_restrict_captures() {
    let out = zonewatch(&["flows", "--listen", "netflow=0", "--duration", "0.5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("received 0 datagrams"));
    let Some(corpus) = corpus() else { return };
    let v5 = corpus.join("netflow").join("akvorado-nfv5.pcap");
    let decoded = jsonl(&zonewatch(&["flows", s(&v5)]).stdout);
    assert_eq!(decoded.len(), 29);
    // Only port 2055 is tried: this export went to 9990, so it stays a UDP flow.
    let plain = jsonl(&zonewatch(&["flows", "--export-ports", "2055", s(&v5)]).stdout);
    assert_eq!(plain.len(), 1);
    assert_eq!(
        (plain[0]["proto"].as_str(), plain[0]["dport"].as_u64()),
        (Some("udp"), Some(9990))
    );
    let allowed = jsonl(&zonewatch(&["flows", "--export-ports", "2055,9990", s(&v5)]).stdout);
    assert_eq!(allowed.len(), 29);
}

#[test]
fn listeners_print_flows_as_they_expire_not_only_at_the_end() {
    let Some(corpus) = corpus() else { return };
    if !have_tool("softflowd", "softflowd") {
        return;
    }
    let mut l = listen("netflow", &["--tcp-idle-secs", "1", "--udp-idle-secs", "1"]);
    softflowd(
        s(&corpus.join("pcap").join("zeek-wikipedia.pcap")),
        l.port,
        "9",
        &[],
    );
    // The listener keeps running; a flow idle for a second is printed while it does.
    let mut stdout = BufReader::new(l.child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let _ = tx.send(line);
        stdout
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a flow printed while listening");
    assert!(
        l.child.try_wait().unwrap().is_none(),
        "the listener had already stopped"
    );
    let f: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(f["export"]["exporter"], "127.0.0.1");
    drop(reader.join().unwrap());
    Command::new("kill")
        .args(["-TERM", &l.child.id().to_string()])
        .status()
        .unwrap();
    assert!(l.child.wait().unwrap().success());
}
