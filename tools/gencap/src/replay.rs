//! `replay`: sends the UDP payloads of a recorded export capture to a
//! collector on loopback at a steady rate, for a flow-export benchmark.
//!
//! The datagrams go out in file order, always from the file's first one, so
//! the templates come before the data that needs them; with `--loop` the
//! file starts over, unchanged (v9/IPFIX sequence numbers repeat). Pacing is
//! a token bucket on [`Instant`]: tokens accrue at the rate, the sender
//! sleeps until about a millisecond's worth has accrued (so at high rates it
//! sends in small batches) and busy-waits only for the last sub-millisecond.
//! The bucket holds two batches or 5 ms of datagrams, whichever is more: a
//! sleep that overshoots is made up for, a longer stall is not, and when
//! the sender cannot keep up the rate it reaches is what it reports.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use zonewatch_collector::capture::CaptureReader;
use zonewatch_collector::netflow::{self, TemplateCache, TemplateCacheConfig};
use zonewatch_collector::packet::{Decoded, decode, ip_proto};
use zonewatch_collector::time::Timestamp;

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    pub pcap: &'a Path,
    pub to: &'a str,
    /// Only datagrams to this UDP port of the capture (all if None).
    pub port: Option<u16>,
    /// Datagrams per second.
    pub rate: f64,
    /// Stop after this long (None: at the end of the file, without `looped`).
    pub seconds: Option<f64>,
    pub looped: bool,
    /// Stop after this many datagrams (looping if needed with `looped`).
    pub count: Option<u64>,
    /// Read and count only: send nothing.
    pub dry_run: bool,
}

/// What was sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    pub datagrams: u64,
    pub records: u64,
    pub secs: f64,
    /// Sends that failed (e.g. connection refused: nothing listens).
    pub errors: u64,
}

/// Batch period of the token bucket.
const PERIOD: Duration = Duration::from_millis(1);
/// Largest delay the bucket makes up for with a burst.
const CATCH_UP: Duration = Duration::from_millis(5);
/// Below this wait the sender spins instead of sleeping.
const SPIN: Duration = Duration::from_micros(100);

/// One UDP datagram of the capture.
struct Datagram {
    /// Source address (the exporter).
    src: std::net::IpAddr,
    /// The UDP payload.
    payload: Vec<u8>,
}

/// The UDP datagrams of a capture, in file order.
struct Datagrams {
    datagrams: Vec<Datagram>,
    frames: u64,
}

/// Reads the UDP payloads of a capture with zonewatch's own reader and decoder.
fn read_datagrams(path: &Path, port: Option<u16>) -> Result<Datagrams> {
    let mut reader =
        CaptureReader::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut found = Datagrams {
        datagrams: Vec::new(),
        frames: 0,
    };
    while let Some(pkt) = reader
        .next_packet()
        .with_context(|| format!("{}", path.display()))?
    {
        found.frames += 1;
        if let Decoded::Ip(info) = decode(pkt.linktype, pkt.data)
            && info.proto == ip_proto::UDP
            && port.is_none_or(|p| p == info.dport)
            && let Some(payload) = info.udp_payload(pkt.data)
        {
            found.datagrams.push(Datagram {
                src: info.src,
                payload: payload.to_vec(),
            });
        }
    }
    Ok(found)
}

/// The destination, which must be a loopback address.
pub fn loopback_destination(to: &str) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = to
        .to_socket_addrs()
        .with_context(|| format!("--to {to}: not HOST:PORT"))?
        .collect();
    let Some(&addr) = addrs.first() else {
        bail!("--to {to}: no address");
    };
    if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        bail!(
            "--to {to}: {} is not a loopback address; replay only sends to 127.0.0.0/8 or ::1",
            bad.ip()
        );
    }
    if addr.port() == 0 {
        bail!("--to {to}: port 0");
    }
    Ok(addr)
}

pub fn run(p: &Params) -> Result<Sent> {
    let to = loopback_destination(p.to)?;
    if !(p.rate.is_finite() && p.rate > 0.0) {
        bail!("--rate must be a positive number of datagrams per second");
    }
    if let Some(s) = p.seconds
        && !(s.is_finite() && s > 0.0)
    {
        bail!("--seconds must be positive");
    }
    if p.looped && p.seconds.is_none() && p.count.is_none() {
        bail!("--loop needs --seconds or --count");
    }
    if p.count == Some(0) {
        bail!("--count must be at least 1");
    }
    let cap = read_datagrams(p.pcap, p.port)?;
    if cap.datagrams.is_empty() {
        bail!(
            "{}: no UDP datagram{} in {} frames",
            p.pcap.display(),
            p.port.map(|x| format!(" to port {x}")).unwrap_or_default(),
            cap.frames
        );
    }
    // Records per datagram, counted once by zonewatch's own decoder with the
    // templates of the file (the same count the collector reports).
    let mut cache = TemplateCache::new(TemplateCacheConfig::default());
    let mut out = Vec::new();
    let mut records = Vec::with_capacity(cap.datagrams.len());
    let (mut total, mut malformed, mut not_export) = (0u64, 0u64, 0u64);
    let mut versions = std::collections::BTreeMap::<u16, u64>::new();
    for d in &cap.datagrams {
        out.clear();
        if !netflow::looks_like_netflow(&d.payload) {
            not_export += 1;
            records.push(0);
            continue;
        }
        match netflow::decode(d.src, Timestamp(0), &d.payload, &mut cache, 1, &mut out) {
            Ok(summary) => *versions.entry(summary.version).or_default() += 1,
            Err(_) => malformed += 1,
        }
        let n = u64::try_from(out.len()).unwrap_or(0);
        records.push(n);
        total += n;
    }
    let no_template: u64 = cache.stats().values().map(|s| s.dropped_no_template).sum();
    let versions: Vec<String> = versions
        .iter()
        .map(|(v, n)| {
            if *v == 10 {
                format!("{n} IPFIX")
            } else {
                format!("{n} v{v}")
            }
        })
        .collect();
    eprintln!(
        "replay: {}: {} frames, {} UDP datagrams ({}), {} flow records",
        p.pcap.display(),
        cap.frames,
        cap.datagrams.len(),
        versions.join(", "),
        total,
    );
    if no_template + malformed + not_export > 0 {
        eprintln!(
            "replay: warning: {no_template} data sets without their template (not counted), \
             {malformed} malformed datagrams, {not_export} datagrams that are not NetFlow/IPFIX"
        );
    }

    if p.dry_run {
        return Ok(Sent {
            datagrams: cap.datagrams.len() as u64,
            records: total,
            ..Sent::default()
        });
    }
    let bind: SocketAddr = if to.is_ipv4() {
        "127.0.0.1:0".parse()?
    } else {
        "[::1]:0".parse()?
    };
    let sock = UdpSocket::bind(bind).context("cannot bind a UDP socket")?;
    sock.connect(to)
        .with_context(|| format!("cannot connect to {to}"))?;

    let batch = (p.rate * PERIOD.as_secs_f64()).ceil().max(1.0);
    // Room to catch up a few milliseconds of scheduling delay (a loaded
    // machine), no more.
    let cap_tokens = (2.0 * batch).max(p.rate * CATCH_UP.as_secs_f64());
    let start = Instant::now();
    let end = p.seconds.map(|s| start + Duration::from_secs_f64(s));
    let mut sent = Sent::default();
    let mut last_error: Option<io::Error> = None;
    let mut tokens = 1.0f64;
    let mut last = start;
    let mut i = 0usize;
    let mut finished = start;
    'outer: loop {
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        tokens = (tokens + now.duration_since(last).as_secs_f64() * p.rate).min(cap_tokens);
        last = now;
        while tokens >= 1.0 {
            if p.count.is_some_and(|n| sent.datagrams + sent.errors >= n) {
                break 'outer;
            }
            if i == cap.datagrams.len() {
                if !p.looped {
                    break 'outer;
                }
                i = 0;
            }
            match sock.send(&cap.datagrams[i].payload) {
                Ok(_) => {
                    sent.datagrams += 1;
                    sent.records += records[i];
                }
                Err(e) => {
                    sent.errors += 1;
                    last_error = Some(e);
                }
            }
            i += 1;
            tokens -= 1.0;
            finished = Instant::now();
        }
        if !p.looped && i == cap.datagrams.len() {
            break;
        }
        // Sleep until a batch is due (or the end), spin the last bit.
        let mut due = now + Duration::from_secs_f64((batch - tokens).max(0.0) / p.rate);
        if let Some(e) = end {
            due = due.min(e);
        }
        let left = due.saturating_duration_since(Instant::now());
        if left > SPIN {
            std::thread::sleep(left - SPIN);
        }
        while Instant::now() < due {
            std::hint::spin_loop();
        }
    }
    // Until the end of the last send's interval: the time the sender stopped
    // at --seconds, else the last send plus one interval at the rate.
    let stopped = Instant::now();
    sent.secs = match end {
        Some(e) if stopped >= e => e.duration_since(start).as_secs_f64(),
        _ => finished.duration_since(start).as_secs_f64() + 1.0 / p.rate,
    };
    if sent.errors > 0 {
        eprintln!(
            "replay: {} sends failed (last: {})",
            sent.errors,
            last_error.map(|e| e.to_string()).unwrap_or_default()
        );
    }
    if sent.datagrams == 0 {
        bail!("nothing was sent to {to}");
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_destinations() {
        assert!(loopback_destination("127.0.0.1:2055").is_ok());
        assert!(loopback_destination("127.1.2.3:2055").is_ok());
        assert!(loopback_destination("[::1]:4739").is_ok());
        assert!(loopback_destination("192.0.2.1:2055").is_err());
        assert!(loopback_destination("[2001:db8::1]:2055").is_err());
        assert!(loopback_destination("[::ffff:10.0.0.1]:2055").is_err());
        assert!(loopback_destination("127.0.0.1:0").is_err());
        assert!(loopback_destination("127.0.0.1").is_err());
    }
}
