//! `--listen KIND=ADDR`: flow exports over UDP. A tokio runtime on its own
//! thread receives datagrams and hands them over a bounded channel (full:
//! dropped and counted, never awaited); this thread decodes, stitches and
//! prints, until Ctrl-C, SIGTERM or `--duration`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use zonewatch_collector::exports::ExportKind;
use zonewatch_collector::ingest::{Engine, ReadStats};
use zonewatch_collector::time::Timestamp;

use crate::flags::InputArgs;
use crate::read::Delivery;

/// One received export datagram.
struct Datagram {
    kind: ExportKind,
    listener: usize,
    exporter: IpAddr,
    received_at: Timestamp,
    bytes: Vec<u8>,
}

/// Parses `netflow=127.0.0.1:2055`, `sflow=6343` (loopback), `netflow=[::1]:2055`.
pub fn parse_spec(spec: &str) -> Result<(ExportKind, SocketAddr)> {
    let (kind, addr) = spec.split_once('=').with_context(|| {
        format!("--listen {spec:?}: expected KIND=ADDR, e.g. netflow=127.0.0.1:2055")
    })?;
    let kind = match kind {
        "netflow" | "ipfix" => ExportKind::Netflow,
        "sflow" => ExportKind::Sflow,
        other => bail!(
            "--listen {spec:?}: unknown kind {other:?}: expected netflow (v5, v9, IPFIX) or sflow"
        ),
    };
    let addr = crate::config::listen_addr(addr).map_err(|e| anyhow!("--listen {spec:?}: {e}"))?;
    Ok((kind, addr))
}

/// Receive buffer asked of the kernel: bursts of export datagrams wait
/// here while the decoder catches up (the kernel may grant less; see
/// net.core.rmem_max).
const RECEIVE_BUFFER_BYTES: usize = 16 << 20;

/// A non-blocking UDP socket with a large receive buffer.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = sock.set_recv_buffer_size(RECEIVE_BUFFER_BYTES) {
        tracing::warn!(error = %e, "cannot enlarge the receive buffer");
    }
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Timestamp::from_secs_nanos(
        i64::try_from(d.as_secs()).unwrap_or(0),
        u64::from(d.subsec_nanos()),
    )
}

/// Receives datagrams from `sock` until `stop` changes, then takes what the
/// kernel already holds (it was sent before the stop) and returns.
pub async fn receive_loop(
    sock: tokio::net::UdpSocket,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    mut take: impl FnMut(SocketAddr, &[u8]),
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => take(from, &buf[..n]),
                Err(e) => tracing::warn!(error = %e, "receive failed"),
            },
            _ = stop.changed() => {
                while let Ok((n, from)) = sock.try_recv_from(&mut buf) {
                    take(from, &buf[..n]);
                }
                break;
            }
        }
    }
}

/// Receives until stopped; flows are delivered as they end.
pub fn run(
    a: &InputArgs,
    engine: &mut Engine,
    stats: &mut ReadStats,
    delivery: &mut Delivery<'_, '_>,
) -> Result<()> {
    let specs = a
        .listen
        .iter()
        .map(|s| parse_spec(s))
        .collect::<Result<Vec<_>>>()?;
    let mut sockets = Vec::new();
    let mut sources = Vec::new();
    for (kind, addr) in &specs {
        let sock = bind(*addr).with_context(|| {
            format!(
                "cannot listen for {} on {addr}: is another collector using the port?",
                kind.as_str()
            )
        })?;
        let local = sock.local_addr()?;
        tracing::info!(kind = kind.as_str(), address = %local, "listening");
        eprintln!("zonewatch: listening for {} on {local}", kind.as_str());
        sources.push(engine.add_source(&format!("{}@{local}", kind.as_str())));
        sockets.push((*kind, sock));
    }
    let (tx, rx) = mpsc::sync_channel::<Datagram>(8192);
    let dropped = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let duration = a.duration.map(Duration::from_secs_f64);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (dropped_rx, received_rx) = (dropped.clone(), received.clone());
    let receiver = std::thread::spawn(move || -> Result<()> {
        runtime.block_on(async move {
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            let mut tasks = Vec::new();
            for (i, (kind, sock)) in sockets.into_iter().enumerate() {
                let sock = tokio::net::UdpSocket::from_std(sock)?;
                let (tx, dropped, received, mut stop) = (
                    tx.clone(),
                    dropped_rx.clone(),
                    received_rx.clone(),
                    stop.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    receive_loop(sock, &mut stop, |from, bytes| {
                        received.fetch_add(1, Ordering::Relaxed);
                        let d = Datagram {
                            kind,
                            listener: i,
                            exporter: from.ip(),
                            received_at: now(),
                            bytes: bytes.to_vec(),
                        };
                        if tx.try_send(d).is_err() {
                            dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                    .await
                }));
            }
            drop(tx);
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            let sleep = async {
                match duration {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = sleep => {}
            }
            let _ = stop_tx.send(true);
            for t in tasks {
                let _ = t.await;
            }
            Ok(())
        })
    });
    let mut records = Vec::new();
    let mut out = Vec::new();
    let mut last_sweep = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(d) => {
                let source = sources[d.listener];
                engine
                    .exports
                    .datagram(d.kind, d.exporter, d.received_at, &d.bytes, &mut records);
                stats.export_datagrams += 1;
                for rec in records.drain(..) {
                    stats.saw(rec.first, rec.last);
                    engine.export(source, &rec, d.received_at, &mut out);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_sweep.elapsed() >= Duration::from_secs(1) {
            engine.stitcher.sweep(now(), &mut out);
            last_sweep = Instant::now();
        }
        if !out.is_empty() {
            delivery.deliver(&mut out);
            delivery.check()?;
        }
    }
    match receiver.join() {
        Ok(r) => r?,
        Err(_) => bail!("the UDP receiver thread failed"),
    }
    let lost = dropped.load(Ordering::Relaxed);
    eprintln!(
        "zonewatch: received {} datagrams, {} dropped because processing fell behind",
        received.load(Ordering::Relaxed),
        lost
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_default_to_loopback() {
        let (k, a) = parse_spec("netflow=2055").unwrap();
        assert_eq!(
            (k, a.to_string().as_str()),
            (ExportKind::Netflow, "127.0.0.1:2055")
        );
        let (k, a) = parse_spec("sflow=[::1]:6343").unwrap();
        assert_eq!(
            (k, a.to_string().as_str()),
            (ExportKind::Sflow, "[::1]:6343")
        );
        assert_eq!(
            parse_spec("ipfix=0.0.0.0:4739").unwrap().1.to_string(),
            "0.0.0.0:4739"
        );
        for bad in ["netflow", "jflow=2055", "netflow=host", "sflow=99999"] {
            assert!(parse_spec(bad).is_err(), "{bad}");
        }
    }
}
