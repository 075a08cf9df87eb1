//! Live capture on the loopback interface (cargo feature `live`).
//!
//! Capturing needs root or `cap_net_raw,cap_net_admin`. Where opening `lo`
//! is not permitted the tests say so and skip, unless
//! `ZONEWATCH_REQUIRE_TOOLS=1`, which turns the skip into a failure.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use zonewatch_collector::live::{LiveCapture, LiveConfig, LiveError, LiveStats};
use zonewatch_collector::packet::{Decoded, PacketInfo, decode, tcp_flags};
use zonewatch_collector::time::Timestamp;

/// Generous: the machine running the tests may be busy.
const WAIT: Duration = Duration::from_secs(10);

/// Opens a capture, or says why it skips (permission only).
fn open_or_skip(cfg: &LiveConfig) -> Option<LiveCapture> {
    match LiveCapture::open(cfg) {
        Ok(cap) => Some(cap),
        Err(e @ LiveError::PermissionDenied { .. }) => {
            assert!(
                std::env::var("ZONEWATCH_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "ZONEWATCH_REQUIRE_TOOLS=1 but live capture is not possible: {e}"
            );
            eprintln!("skipped: live capture on lo is not permitted here: {e}");
            None
        }
        Err(e) => panic!("opening {}: {e}", cfg.interface),
    }
}

fn lo(filter: &str) -> LiveConfig {
    LiveConfig {
        filter: Some(filter.to_owned()),
        ..LiveConfig::new("lo")
    }
}

type Running = (
    Arc<AtomicBool>,
    Receiver<(Timestamp, Vec<u8>)>,
    JoinHandle<Result<LiveStats, LiveError>>,
);

/// Runs the capture on its own thread; frames come out of the receiver.
fn spawn(mut cap: LiveCapture) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let flag = Arc::clone(&stop);
    let handle = thread::spawn(move || {
        cap.run(&flag, &mut |ts, data| {
            let _ = tx.send((ts, data.to_vec()));
        })
    });
    (stop, rx, handle)
}

fn listener() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
}

/// Serves one connection: reads the request up to the blank line, answers, closes.
fn serve_once(l: TcpListener, answer: &'static [u8]) -> JoinHandle<()> {
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 512];
        while !req.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(answer).unwrap();
    })
}

/// Sends a request and reads the answer to the end; returns the client's port.
fn request(port: u16, req: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    let local = s.local_addr().unwrap().port();
    s.write_all(req).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    (local, answer)
}

#[test]
fn captures_a_tcp_exchange_on_lo_through_the_filter() {
    let (server, other) = (listener(), listener());
    let port = server.local_addr().unwrap().port();
    let other_port = other.local_addr().unwrap().port();
    let Some(cap) = open_or_skip(&lo(&format!("tcp port {port}"))) else {
        return;
    };
    let linktype = cap.linktype();
    let stats = cap.stats_handle();
    let (stop, frames, handle) = spawn(cap);

    // Traffic the filter must drop, before the traffic it keeps: frames on
    // lo come in order, so had it been captured it would come first.
    let other_server = serve_once(other, b"pong");
    let (_, pong) = request(other_port, b"ping\r\n\r\n");
    assert_eq!(pong, b"pong");
    other_server.join().unwrap();

    let server = serve_once(server, b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    let (client_port, answer) = request(port, b"GET / HTTP/1.0\r\nHost: test\r\n\r\n");
    assert!(answer.starts_with(b"HTTP/1.0 200 OK"));
    server.join().unwrap();

    // Collect until both sides' FIN was captured.
    let mut packets: Vec<(Timestamp, PacketInfo)> = Vec::new();
    let (mut client_fin, mut server_fin) = (false, false);
    let deadline = Instant::now() + WAIT;
    while !(client_fin && server_fin) {
        let left = deadline.saturating_duration_since(Instant::now());
        let (ts, data) = frames.recv_timeout(left).unwrap_or_else(|e| {
            panic!(
                "capture incomplete after {WAIT:?} ({e}): {} packets",
                packets.len()
            )
        });
        let Decoded::Ip(info) = decode(linktype, &data) else {
            panic!("frame of link type {linktype} does not decode to IP: {data:02x?}");
        };
        assert!(
            info.sport != other_port && info.dport != other_port,
            "the filter let through a packet of port {other_port}"
        );
        if info.tcp_flags & tcp_flags::FIN != 0 {
            client_fin |= info.sport == client_port;
            server_fin |= info.sport == port;
        }
        packets.push((ts, info));
    }
    stop.store(true, Ordering::Relaxed);
    let run_stats = handle.join().unwrap().unwrap();

    let lo_addr = std::net::IpAddr::from(Ipv4Addr::LOCALHOST);
    for (_, p) in &packets {
        assert_eq!(p.proto, 6);
        assert_eq!((p.src, p.dst), (lo_addr, lo_addr));
        let mut ports = [p.sport, p.dport];
        ports.sort_unstable();
        let mut want = [client_port, port];
        want.sort_unstable();
        assert_eq!(ports, want, "packet {p:?}");
    }
    let (_, first) = &packets[0];
    assert_eq!((first.sport, first.dport), (client_port, port));
    assert_eq!(
        first.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK),
        tcp_flags::SYN,
        "the first packet is the client's SYN"
    );
    // The request and the answer both carry data.
    assert!(
        packets
            .iter()
            .any(|(_, p)| p.sport == client_port && p.payload_len > 0)
    );
    assert!(
        packets
            .iter()
            .any(|(_, p)| p.sport == port && p.payload_len > 0)
    );
    // Capture times are real times and do not go back.
    let now_secs = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert!(packets.windows(2).all(|w| w[0].0 <= w[1].0));
    assert!((packets[0].0.secs() - now_secs).abs() < 600);

    assert!(run_stats.received >= u64::try_from(packets.len()).unwrap());
    assert_eq!(stats.get(), run_stats);
}

#[test]
fn run_returns_soon_after_stop_without_traffic() {
    // A port nobody talks to: nothing matches the filter.
    let idle = listener();
    let port = idle.local_addr().unwrap().port();
    let Some(cap) = open_or_skip(&lo(&format!("tcp port {port}"))) else {
        return;
    };
    let (stop, _frames, handle) = spawn(cap);
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let result = handle.join().unwrap();
        let _ = done_tx.send(result);
    });
    // Let it settle into waiting for packets.
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let result = done_rx
        .recv_timeout(Duration::from_secs(1))
        .expect("run did not return within 1 s of stop");
    let stats = result.unwrap();
    assert_eq!(stats.received, 0);
    waiter.join().unwrap();
}

#[test]
fn a_bad_filter_is_named_in_the_error() {
    let cfg = lo("tcp port nope");
    match LiveCapture::open(&cfg) {
        Err(e @ LiveError::BadFilter { .. }) => {
            let text = e.to_string();
            let LiveError::BadFilter {
                filter, message, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(filter, "tcp port nope");
            assert!(!message.is_empty());
            assert_eq!(
                text,
                format!("bad capture filter \"tcp port nope\" on \"lo\": {message}")
            );
        }
        Err(e @ LiveError::PermissionDenied { .. }) => {
            // Reported as open_or_skip does.
            assert!(open_or_skip(&cfg).is_none(), "{e}");
        }
        Err(e) => panic!("expected a filter error, got: {e}"),
        Ok(_) => panic!("the filter \"tcp port nope\" was accepted"),
    }
}

#[test]
fn an_unknown_interface_lists_the_interfaces() {
    let e = LiveCapture::open(&LiveConfig::new("zw-nonexistent0")).unwrap_err();
    let LiveError::NoSuchInterface {
        interface,
        available,
    } = &e
    else {
        panic!("expected an unknown interface error, got: {e}");
    };
    assert_eq!(interface, "zw-nonexistent0");
    assert!(available.iter().any(|n| n == "lo"), "{available:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("no interface named \"zw-nonexistent0\"; interfaces here: "),
        "{text}"
    );
    assert!(text.contains("lo"), "{text}");
}
