//! Live capture from a network interface with libpcap (cargo feature `live`).
//!
//! [`LiveCapture::open`] opens an interface as a [`LiveConfig`] describes
//! (BPF filter, snaplen, promiscuous mode, kernel buffer) and
//! [`LiveCapture::run`] hands every captured frame to a callback until a stop
//! flag is set. The frames go to [`crate::packet::decode`] with
//! [`LiveCapture::linktype`], as frames read from a file do.
//!
//! libpcap's blocking read can wait forever when no packet matches the
//! filter, whatever read timeout is set, so the handle is put in non-blocking
//! mode and `run` waits on its selectable file descriptor with `poll(2)` for
//! at most [`POLL_INTERVAL`] at a time: it notices the stop flag within that
//! interval even on a silent interface. `run` blocks the calling thread: give
//! it a dedicated thread (or `spawn_blocking`), never an async task.
//!
//! Packets reach the callback up to about [`READ_TIMEOUT_MS`] after they were
//! captured: the kernel hands them over in blocks, when a block is full or
//! when that timeout expires.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pcap::{Active, Capture, Device};
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::capture::CapturedPacket;
use crate::time::Timestamp;

/// Default snapshot length: whole frames.
pub const DEFAULT_SNAPLEN: i32 = 262_144;
/// Default kernel capture buffer: 16 MiB.
pub const DEFAULT_BUFFER_BYTES: i32 = 16 * 1024 * 1024;
/// The libpcap read timeout: the longest a captured packet waits in the
/// kernel buffer before it is handed over.
pub const READ_TIMEOUT_MS: i32 = 100;
/// The longest [`LiveCapture::run`] waits before looking at its stop flag.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often [`LiveCapture::run`] refreshes the counters behind
/// [`LiveCapture::stats_handle`].
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// What to capture, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    /// Interface name (`eth1`; `any` for all interfaces, as Linux cooked frames).
    pub interface: String,
    /// BPF filter expression (`not port 22`), as tcpdump takes it.
    pub filter: Option<String>,
    /// Bytes kept of each frame.
    pub snaplen: i32,
    /// Put the interface in promiscuous mode (see traffic not addressed to this host).
    pub promiscuous: bool,
    /// Kernel capture buffer in bytes; packets that arrive while it is full
    /// are dropped and counted in [`LiveStats::dropped_kernel`].
    pub buffer_bytes: i32,
}

impl LiveConfig {
    /// A config for `interface` with the defaults: no filter, whole frames,
    /// promiscuous, a 16 MiB kernel buffer.
    pub fn new(interface: impl Into<String>) -> LiveConfig {
        LiveConfig {
            interface: interface.into(),
            filter: None,
            snaplen: DEFAULT_SNAPLEN,
            promiscuous: true,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
        }
    }
}

/// Capture counters since the capture was opened, as libpcap reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets that passed the filter (on Linux: including those then dropped).
    pub received: u64,
    /// Packets dropped because the kernel buffer was full (the reader was too slow).
    pub dropped_kernel: u64,
    /// Packets the interface or its driver dropped (not supported everywhere; 0 then).
    pub dropped_interface: u64,
}

/// Why a live capture could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The interface does not exist.
    #[error("no interface named {interface:?}; interfaces here: {}", available.join(", "))]
    NoSuchInterface {
        /// The name asked for.
        interface: String,
        /// The interfaces libpcap can capture on.
        available: Vec<String>,
    },
    /// The process may not capture.
    #[error(
        "no permission to capture on {interface:?} ({message}): run as root, or run \
         `setcap cap_net_raw,cap_net_admin+eip` on the binary"
    )]
    PermissionDenied {
        /// The interface.
        interface: String,
        /// libpcap's message.
        message: String,
    },
    /// The BPF filter does not compile.
    #[error("bad capture filter {filter:?} on {interface:?}: {message}")]
    BadFilter {
        /// The interface.
        interface: String,
        /// The filter as given.
        filter: String,
        /// libpcap's message.
        message: String,
    },
    /// Any other failure to open the interface.
    #[error("cannot capture on {interface:?}: {message}")]
    Open {
        /// The interface.
        interface: String,
        /// libpcap's message.
        message: String,
    },
    /// Reading packets or counters failed (the interface went down, ...).
    #[error("capture on {interface:?} failed: {message}")]
    Read {
        /// The interface.
        interface: String,
        /// libpcap's message.
        message: String,
    },
    /// Waiting for packets failed.
    #[error("capture on {interface:?}: waiting for packets failed")]
    Poll {
        /// The interface.
        interface: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The counters of a running capture, readable from another thread while
/// [`LiveCapture::run`] blocks (refreshed about once a second).
#[derive(Debug, Clone, Default)]
pub struct LiveStatsHandle(Arc<Mutex<LiveStats>>);

impl LiveStatsHandle {
    /// The counters as last refreshed.
    pub fn get(&self) -> LiveStats {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, stats: LiveStats) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    }
}

/// An open live capture.
pub struct LiveCapture {
    cap: Capture<Active>,
    interface: String,
    linktype: u32,
    /// libpcap's 32-bit counters as last read, to extend them to 64 bits.
    raw: [u32; 3],
    totals: LiveStats,
    shared: LiveStatsHandle,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("interface", &self.interface)
            .field("linktype", &self.linktype)
            .field("totals", &self.totals)
            .finish_non_exhaustive()
    }
}

/// The message inside a pcap error (without the crate's "libpcap error: " prefix).
fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The interfaces libpcap can capture on (empty when listing fails).
fn interface_names() -> Vec<String> {
    Device::list()
        .map(|devs| devs.into_iter().map(|d| d.name).collect())
        .unwrap_or_default()
}

/// Link type as the packet decoder and pcap files know it, from libpcap's
/// DLT value (they differ only for raw IP, whose DLT varies by platform).
fn linktype_of(dlt: i32) -> u32 {
    match dlt {
        12 | 14 => crate::packet::linktype::RAW,
        other => u32::try_from(other).unwrap_or(u32::MAX),
    }
}

impl LiveCapture {
    /// Opens the interface, applies the filter and makes the capture
    /// non-blocking. Needs root or the `cap_net_raw` and `cap_net_admin`
    /// capabilities.
    pub fn open(cfg: &LiveConfig) -> Result<LiveCapture, LiveError> {
        let interface = cfg.interface.clone();
        let open_error = |e: pcap::Error| {
            let message = pcap_message(&e);
            let available = interface_names();
            if !available.contains(&interface) {
                LiveError::NoSuchInterface {
                    interface: interface.clone(),
                    available,
                }
            } else if is_permission_message(&message) {
                LiveError::PermissionDenied {
                    interface: interface.clone(),
                    message,
                }
            } else {
                LiveError::Open {
                    interface: interface.clone(),
                    message,
                }
            }
        };
        let mut cap = Capture::from_device(cfg.interface.as_str())
            .map_err(open_error)?
            .snaplen(cfg.snaplen)
            .promisc(cfg.promiscuous)
            .buffer_size(cfg.buffer_bytes)
            .timeout(READ_TIMEOUT_MS)
            .open()
            .map_err(open_error)?;
        if let Some(filter) = &cfg.filter {
            cap.filter(filter, true).map_err(|e| LiveError::BadFilter {
                interface: interface.clone(),
                filter: filter.clone(),
                message: pcap_message(&e),
            })?;
        }
        let cap = cap.setnonblock().map_err(|e| LiveError::Open {
            interface: interface.clone(),
            message: pcap_message(&e),
        })?;
        let linktype = linktype_of(cap.get_datalink().0);
        Ok(LiveCapture {
            cap,
            interface,
            linktype,
            raw: [0; 3],
            totals: LiveStats::default(),
            shared: LiveStatsHandle::default(),
        })
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The link type of the frames, as [`crate::packet::decode`] takes it.
    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Captures until `stop` is set, calling `on_packet` with each frame's
    /// capture time and bytes; returns the counters then. Blocks the calling
    /// thread, and returns within about [`POLL_INTERVAL`] of `stop` being set
    /// even when no packet arrives. May be called again after it returned.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        on_packet: &mut dyn FnMut(Timestamp, &[u8]),
    ) -> Result<LiveStats, LiveError> {
        self.run_captured(stop, &mut |pkt| on_packet(pkt.ts, pkt.data))
    }

    /// [`run`](Self::run), handing over each frame as a [`CapturedPacket`]
    /// (with its wire length and link type).
    pub fn run_captured(
        &mut self,
        stop: &AtomicBool,
        on_packet: &mut dyn FnMut(&CapturedPacket<'_>),
    ) -> Result<LiveStats, LiveError> {
        let wait = Timespec {
            tv_sec: 0,
            tv_nsec: i64::try_from(POLL_INTERVAL.as_nanos()).unwrap_or(100_000_000),
        };
        let mut next_stats = Instant::now() + STATS_INTERVAL;
        // poll(2) reporting an error condition while nothing can be read, in a row.
        let mut idle_errors = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let read = self.drain(stop, on_packet)?;
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if Instant::now() >= next_stats {
                self.stats()?;
                next_stats = Instant::now() + STATS_INTERVAL;
            }
            let mut fds = [PollFd::new(&self.cap, PollFlags::IN)];
            match rustix::event::poll(&mut fds, Some(&wait)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(LiveError::Poll {
                        interface: self.interface.clone(),
                        source: e.into(),
                    });
                }
            }
            let revents = fds[0].revents();
            if revents.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) && read == 0 {
                idle_errors += 1;
                // libpcap normally reports the cause on the next read; if it
                // does not, do not spin on a descriptor that stays in error.
                if idle_errors > 2 {
                    return Err(LiveError::Read {
                        interface: self.interface.clone(),
                        message: format!("the capture descriptor reports {revents:?}"),
                    });
                }
            } else {
                idle_errors = 0;
            }
        }
        self.stats()
    }

    /// Reads every packet available now; returns how many.
    fn drain(
        &mut self,
        stop: &AtomicBool,
        on_packet: &mut dyn FnMut(&CapturedPacket<'_>),
    ) -> Result<u64, LiveError> {
        let mut n = 0u64;
        loop {
            match self.cap.next_packet() {
                Ok(p) => {
                    n += 1;
                    let ts = Timestamp::from_secs_nanos(
                        p.header.ts.tv_sec,
                        u64::try_from(p.header.ts.tv_usec)
                            .unwrap_or(0)
                            .saturating_mul(1000),
                    );
                    let pkt = CapturedPacket {
                        ts,
                        caplen: p.header.caplen,
                        wire_len: p.header.len,
                        linktype: self.linktype,
                        interface: 0,
                        data: p.data,
                    };
                    on_packet(&pkt);
                    // A busy interface must not keep `run` from stopping.
                    if n.is_multiple_of(256) && stop.load(Ordering::Relaxed) {
                        return Ok(n);
                    }
                }
                Err(pcap::Error::TimeoutExpired) => return Ok(n),
                Err(e) => {
                    return Err(LiveError::Read {
                        interface: self.interface.clone(),
                        message: pcap_message(&e),
                    });
                }
            }
        }
    }

    /// The counters since the capture was opened. libpcap keeps 32-bit
    /// counters; they are extended to 64 bits here, which holds as long as
    /// they are read (by this or by `run`, once a second) before 2³² more
    /// packets arrive.
    pub fn stats(&mut self) -> Result<LiveStats, LiveError> {
        let s = self.cap.stats().map_err(|e| LiveError::Read {
            interface: self.interface.clone(),
            message: pcap_message(&e),
        })?;
        let now = [s.received, s.dropped, s.if_dropped];
        let totals = [
            &mut self.totals.received,
            &mut self.totals.dropped_kernel,
            &mut self.totals.dropped_interface,
        ];
        for ((total, raw), value) in totals.into_iter().zip(&mut self.raw).zip(now) {
            *total += u64::from(value.wrapping_sub(*raw));
            *raw = value;
        }
        self.shared.set(self.totals);
        Ok(self.totals)
    }

    /// A handle on the counters that another thread can read while
    /// [`run`](Self::run) blocks (for metrics).
    pub fn stats_handle(&self) -> LiveStatsHandle {
        self.shared.clone()
    }
}

/// Whether libpcap's message means the process lacks the right to capture.
fn is_permission_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("permission") || m.contains("not permitted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<LiveCapture>();
        assert_send::<LiveError>();
    }

    #[test]
    fn raw_ip_dlts_become_linktype_raw() {
        assert_eq!(linktype_of(1), 1);
        assert_eq!(linktype_of(12), 101);
        assert_eq!(linktype_of(14), 101);
        assert_eq!(linktype_of(113), 113);
    }

    #[test]
    fn permission_messages_are_recognised() {
        assert!(is_permission_message(
            "eth0: You don't have permission to perform this capture on that device (socket: Operation not permitted)"
        ));
        assert!(is_permission_message("socket: Operation not permitted"));
        assert!(!is_permission_message("eth0: No such device exists"));
    }

    #[test]
    fn errors_speak_to_the_user() {
        let e = LiveError::NoSuchInterface {
            interface: "eth9".into(),
            available: vec!["lo".into(), "eth0".into()],
        };
        assert_eq!(
            e.to_string(),
            "no interface named \"eth9\"; interfaces here: lo, eth0"
        );
        let e = LiveError::PermissionDenied {
            interface: "eth0".into(),
            message: "socket: Operation not permitted".into(),
        };
        assert!(
            e.to_string()
                .contains("setcap cap_net_raw,cap_net_admin+eip")
        );
    }
}
