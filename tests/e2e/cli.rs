//! The example, the output formats, exit codes and input kinds.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{corpus, have_tool, jsonl, root, s, zonewatch};

fn example() -> (String, String) {
    let ex = root().join("examples");
    (
        s(&ex.join("captures").join("demo.pcap")).to_string(),
        s(&ex.join("zones.toml")).to_string(),
    )
}

fn analyze_json(extra: &[&str]) -> (Vec<Value>, std::process::Output) {
    let (pcap, zones) = example();
    let mut args = vec![
        "analyze",
        pcap.as_str(),
        "--zones",
        zones.as_str(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = zonewatch(&args);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (v.as_array().expect("array").clone(), out)
}

fn find<'a>(fs: &'a [Value], kind: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    fs.iter()
        .find(|f| f["kind"] == kind && pred(f))
        .unwrap_or_else(|| panic!("no {kind} finding matching in {fs:#?}"))
}

#[test]
fn example_raises_every_finding_kind() {
    let (fs, out) = analyze_json(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kinds: BTreeSet<&str> = fs.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    for k in [
        "public-exposure",
        "unexpected-path",
        "forbidden-path",
        "blocked-attempt",
        "egress",
        "undeclared-address",
    ] {
        assert!(kinds.contains(k), "missing {k}: {kinds:?}");
    }
    let pe = find(&fs, "public-exposure", |_| true);
    assert_eq!(pe["severity"], "critical");
    assert_eq!(pe["src_zone"], "internet");
    assert_eq!(pe["dst_zone"], "db");
    assert_eq!(pe["dst"], "10.2.0.10");
    assert_eq!(pe["service"], "tcp/5432");
    assert_eq!(pe["flows"], 3);
    assert_eq!(pe["answered"], 3);
    assert_eq!(pe["initiators"], serde_json::json!(["198.51.100.23"]));
    assert_eq!(pe["confidence"], "high");
    assert!(
        pe["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["state"] == "established" && e["oriented_by"] == "handshake")
    );

    let fp = find(&fs, "forbidden-path", |_| true);
    assert_eq!(fp["severity"], "critical");
    assert_eq!(fp["service"], "tcp/22");
    assert_eq!(fp["dst"], "10.2.0.11");

    let eg = find(&fs, "egress", |_| true);
    assert_eq!(
        (eg["src_zone"].as_str(), eg["dst_zone"].as_str()),
        (Some("db"), Some("internet"))
    );
    assert_eq!(eg["severity"], "high");

    // The scan is one finding, not one per port or host.
    let scan = find(&fs, "blocked-attempt", |f| {
        f["initiators"][0] == "198.51.100.99"
    });
    assert_eq!(scan["severity"], "low");
    assert!(
        scan["hosts"].as_u64().unwrap() > 1 && scan["ports"].as_u64().unwrap() > 1,
        "{scan:#}"
    );
    assert_eq!(scan["answered"], 0);
    let states: BTreeSet<&str> = scan["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert!(
        states
            .iter()
            .all(|s| *s == "rejected" || *s == "unanswered"),
        "{states:?}"
    );
    // Lateral reconnaissance toward a high-trust zone is medium.
    let lateral = find(&fs, "blocked-attempt", |f| f["initiators"][0] == "10.1.0.5");
    assert_eq!(lateral["severity"], "medium");
    assert_eq!(lateral["dst_zone"], "db");

    let und = find(&fs, "undeclared-address", |f| f["dst"] == "172.16.5.5");
    assert_eq!(und["severity"], "medium");

    // The expired suppression no longer applies and is named.
    let office = find(&fs, "unexpected-path", |f| {
        f["src_zone"] == "office" && f["dst_zone"] == "dmz"
    });
    assert!(office["suppressed"].is_null());
    assert!(
        office["expired_suppression"]["until"] == "2024-01-01",
        "{office:#}"
    );

    // Suppressed findings are hidden, counted, and shown on request.
    assert!(fs.iter().all(|f| f["src_zone"] != "monitoring"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 suppressed") || stderr.contains("2 suppressed"),
        "{stderr}"
    );
    let (pcap, zones) = example();
    let table = zonewatch(&["analyze", &pcap, "--zones", &zones, "--show-suppressed"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(text.matches("(suppressed)").count(), 2, "{text}");
    let (all, _) = analyze_json(&["--show-suppressed"]);
    let sup = find(&all, "unexpected-path", |f| f["src_zone"] == "monitoring");
    assert_eq!(sup["suppressed"]["owner"], "netops");
    assert_eq!(sup["suppressed"]["reason"], "Prometheus scrapes every host");
}

#[test]
fn finding_ids_are_stable_and_formats_agree() {
    let (a, _) = analyze_json(&[]);
    let (b, _) = analyze_json(&[]);
    let ids = |v: &[Value]| {
        v.iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), ids(&b));
    assert!(ids(&a).iter().all(|i| i.starts_with("f-") && i.len() == 14));
    let (pcap, zones) = example();
    let lines =
        jsonl(&zonewatch(&["analyze", &pcap, "--zones", &zones, "--format", "jsonl"]).stdout);
    assert_eq!(ids(&lines), ids(&a));
    let table = zonewatch(&["analyze", &pcap, "--zones", &zones]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("SEVERITY"), "{text}");
    assert_eq!(text.lines().count(), a.len() + 1);
    let md = zonewatch(&["analyze", &pcap, "--zones", &zones, "--format", "markdown"]);
    let md = String::from_utf8_lossy(&md.stdout);
    for id in ids(&a) {
        assert!(md.contains(&id), "markdown lacks {id}");
    }
}

#[test]
fn fail_on_sets_the_exit_code() {
    let (pcap, zones) = example();
    let code = |extra: &[&str]| {
        let mut args = vec!["analyze", pcap.as_str(), "--zones", zones.as_str()];
        args.extend_from_slice(extra);
        zonewatch(&args).status.code()
    };
    assert_eq!(code(&[]), Some(0));
    assert_eq!(code(&["--fail-on", "critical"]), Some(1));
    assert_eq!(code(&["--fail-on", "info"]), Some(1));
    assert_eq!(code(&["--fail-on", "bogus"]), Some(2));
    // A clean policy: allow everything between the example's zones.
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open.toml");
    std::fs::write(&open, "[[allow]]\nfrom = \"any\"\nto = \"any\"\n").unwrap();
    let out = zonewatch(&[
        "analyze",
        &pcap,
        "--zones",
        s(&open),
        "--fail-on",
        "low",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Only undeclared addresses remain (they are about the declaration, not a path).
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] == "undeclared-address"),
        "{v:#}"
    );
    assert_eq!(out.status.code(), Some(1));
    let out = zonewatch(&["analyze", &pcap, "--zones", s(&open), "--fail-on", "high"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn flows_formats_and_summary() {
    let (pcap, _) = example();
    let out = zonewatch(&["flows", &pcap]);
    assert!(out.status.success());
    let flows = jsonl(&out.stdout);
    assert!(!flows.is_empty());
    let keys = [
        "first",
        "last",
        "proto",
        "src",
        "sport",
        "dst",
        "dport",
        "packets",
        "bytes",
        "rpackets",
        "rbytes",
        "answered",
        "state",
        "tcp_flags",
        "rtcp_flags",
        "oriented_by",
        "vlan",
        "source",
        "sampling",
        "community_id",
    ];
    for f in &flows {
        let obj = f.as_object().unwrap();
        assert_eq!(
            obj.keys().collect::<BTreeSet<_>>(),
            keys.iter()
                .map(|k| k.to_string())
                .collect::<BTreeSet<_>>()
                .iter()
                .collect()
        );
        assert!(
            f["first"].as_str().unwrap().ends_with('Z') && f["first"].as_str().unwrap().len() == 27
        );
        assert!(f["community_id"].as_str().unwrap().starts_with("1:"));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{} flows", flows.len())),
        "{stderr}"
    );
    // The same input gives the same output, byte for byte (the flow table's
    // hasher is randomly seeded; its order must not leak).
    assert_eq!(zonewatch(&["flows", &pcap]).stdout, out.stdout);
    let csv = zonewatch(&["flows", &pcap, "--format", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert_eq!(csv.lines().count(), flows.len() + 1);
    assert!(csv.starts_with("first,last,proto,src,sport,dst,dport"));
    let table = zonewatch(&["flows", &pcap, "--format", "table"]);
    assert_eq!(
        String::from_utf8_lossy(&table.stdout).lines().count(),
        flows.len() + 1
    );
}

#[test]
fn stdin_from_tcpdump_gives_the_same_findings() {
    if !have_tool("tcpdump", "tcpdump") {
        return;
    }
    let (pcap, zones) = example();
    let script = format!(
        "tcpdump -r '{pcap}' -w - 2>/dev/null | '{}' analyze - --zones '{zones}' --format json",
        env!("CARGO_BIN_EXE_zonewatch")
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let piped: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (direct, _) = analyze_json(&[]);
    let strip = |v: &[Value]| {
        v.iter()
            .map(|f| (f["id"].clone(), f["flows"].clone(), f["bytes"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(piped.as_array().unwrap()), strip(&direct));
}

#[test]
fn folders_gzip_and_time_order() {
    let Some(corpus) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Named so that name order and time order disagree.
    let older = corpus.join("pcap").join("zeek-communityid-tcp.pcap"); // 2003
    let newer = corpus.join("pcap").join("zeek-wikipedia.pcap"); // 2011
    std::fs::copy(&newer, dir.path().join("a.pcap")).unwrap();
    let gz = std::process::Command::new("gzip")
        .arg("-c")
        .arg(&older)
        .output()
        .unwrap();
    std::fs::write(dir.path().join("b.pcap.gz"), gz.stdout).unwrap();
    std::fs::write(dir.path().join(".hidden.pcap"), b"junk").unwrap();
    std::fs::write(dir.path().join("c.pcap.part"), b"junk").unwrap();
    let out = zonewatch(&["flows", s(dir.path())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flows = jsonl(&out.stdout);
    let direct = |p: &std::path::Path| jsonl(&zonewatch(&["flows", s(p)]).stdout).len();
    assert_eq!(flows.len(), direct(&older) + direct(&newer));
    let years: Vec<&str> = flows
        .iter()
        .map(|f| &f["first"].as_str().unwrap()[..4])
        .collect();
    let mut sorted = years.clone();
    sorted.sort();
    assert_eq!(years, sorted, "older capture's flows come first");
    assert!(flows.iter().all(|f| f["source"] == s(dir.path())));
}

#[test]
fn evidence_pcaps_open_in_tshark() {
    if !have_tool("tshark", "tshark") {
        return;
    }
    let (pcap, zones) = example();
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("ev");
    let out = zonewatch(&[
        "analyze",
        &pcap,
        "--zones",
        &zones,
        "--format",
        "json",
        "--evidence-dir",
        s(&ev),
        "--evidence-packets",
        "4",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pe = find(fs.as_array().unwrap(), "public-exposure", |_| true);
    let file = ev.join(format!(
        "{}-public-exposure.pcap",
        pe["id"].as_str().unwrap()
    ));
    assert!(file.exists(), "{file:?}");
    let t = Command::new("tshark")
        .args([
            "-n",
            "-r",
            s(&file),
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.srcport",
        ])
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let rows = String::from_utf8_lossy(&t.stdout);
    // 3 sample flows, at most 4 packets each, all of the exposed service.
    assert_eq!(rows.lines().count(), 12, "{rows}");
    assert!(rows.lines().all(|l| l.contains("5432")), "{rows}");
}

#[test]
fn zones_check_lists_every_error_with_lines() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("zones.toml");
    std::fs::write(
        &bad,
        "[[zone]]\nname = \"db\"\ncidrs = [\"10.2.0.0/33\"]\n\n[[zone]]\nname = \"app\"\ncidrs = [\"10.1.0.0/16\"]\ntrust = \"sky-high\"\n\n[[allow]]\nfrom = \"app\"\nto = \"nowhere\"\n",
    )
    .unwrap();
    let out = zonewatch(&["zones", "check", s(&bad)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zones.toml:3:") && err.contains("10.2.0.0/33"),
        "{err}"
    );
    assert!(err.contains("zones.toml:8:"), "{err}");
    assert!(
        err.contains("zones.toml:12:") && err.contains("nowhere"),
        "{err}"
    );
    let (_, zones) = example();
    let ok = zonewatch(&["zones", "check", &zones]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // analyze refuses a broken zones file with exit 2 and says what to run.
    let (pcap, _) = example();
    let out = zonewatch(&["analyze", &pcap, "--zones", s(&bad)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zones check"));
}

#[test]
fn zones_explain_names_zones_and_rule() {
    let (_, zones) = example();
    let out = zonewatch(&[
        "zones",
        "explain",
        &zones,
        "198.51.100.23",
        "10.2.0.10",
        "tcp/5432",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("internet") && text.contains("db") && text.contains("postgres"),
        "{text}"
    );
    let out = zonewatch(&[
        "zones",
        "explain",
        &zones,
        "10.1.0.5",
        "10.2.0.11",
        "tcp/22",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("deny"), "{text}");
}

#[test]
fn broken_pipe_exits_quietly() {
    let Some(corpus) = corpus() else { return };
    let file = corpus.join("pcap").join("ndpi-webex.pcap");
    // The same capture twenty times: far more output than a pipe buffers.
    let mut args = vec!["flows".to_string()];
    args.extend(std::iter::repeat_n(s(&file).to_string(), 20));
    let mut child = Command::new(env!("CARGO_BIN_EXE_zonewatch"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'));
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(0) && !err.contains("error"),
        "{:?} {err}",
        out.status
    );
    let _ = std::io::stdout().flush();
}

#[test]
fn progress_bar_on_a_terminal_only() {
    let Some(corpus) = corpus() else { return };
    if !have_tool("script", "bsdutils") {
        return;
    }
    let file = corpus.join("pcap").join("ndpi-webex.pcap");
    let mut cmd = format!("'{}' flows", env!("CARGO_BIN_EXE_zonewatch"));
    for _ in 0..150 {
        cmd.push_str(&format!(" '{}'", s(&file)));
    }
    // `script` gives the command a terminal; stdout goes to /dev/null, so
    // what comes back is stderr as a terminal shows it.
    let tty = Command::new("script")
        .args(["-qec", &format!("{cmd} > /dev/null"), "/dev/null"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(
        shown.contains("MiB") && shown.contains("packets"),
        "no progress bar on a terminal: {shown:?}"
    );
    // In a pipe: only the summary line.
    let piped = Command::new("sh")
        .args(["-c", &format!("{cmd} 2>&1 >/dev/null | cat")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&piped.stdout);
    assert!(!text.contains('\r') && !text.contains("MiB"), "{text:?}");
    assert_eq!(text.lines().count(), 1, "{text:?}");
}
