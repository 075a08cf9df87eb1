//! `zonewatch-gencap`: writes the synthetic pcap captures zonewatch uses for
//! its example (`examples/captures/demo.pcap`) and its benchmark (`bench/run.sh`), and
//! replays recorded flow exports to a collector on loopback (`bench/exports.sh`).
//!
//! Every frame is what a real stack would send: IPv4 header, TCP, UDP and
//! ICMP checksums are correct, TCP sessions have real handshakes and
//! sequence/acknowledgment numbers. Output depends only on the arguments (a
//! self-contained splitmix64 generator), so the same command always writes
//! the same bytes.

mod bench;
mod checksum;
mod demo;
mod flow;
mod packet;
mod payloads;
mod pcap;
mod replay;
mod rng;
mod v5;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

/// Writes synthetic pcap captures for zonewatch's example and benchmark.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the example capture that, with examples/zones.toml, raises every finding kind.
    Demo {
        /// Output pcap file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a large capture of a synthetic enterprise network.
    Bench {
        /// Output pcap file.
        #[arg(long)]
        out: PathBuf,
        /// Number of flows.
        #[arg(long, default_value_t = 100_000)]
        flows: u64,
        /// Target number of packets.
        #[arg(long, default_value_t = 2_000_000)]
        packets: u64,
        /// Also write the zones file declaring the network here.
        #[arg(long)]
        zones_out: Option<PathBuf>,
        /// Seed of the random generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Span of flow start times, in seconds of capture time.
        #[arg(long, default_value_t = 120)]
        duration_secs: u64,
    },
    /// Write a capture of synthetic NetFlow v5 export datagrams (30 records
    /// each, 1 packet of 100 bytes per record) for `replay` (the monitor's
    /// load benchmark).
    V5 {
        /// Output pcap file.
        #[arg(long)]
        out: PathBuf,
        /// Number of datagrams.
        #[arg(long, default_value_t = 10_000)]
        datagrams: u64,
        /// Distinct flows the records cycle over.
        #[arg(long, default_value_t = 50_000)]
        flows: u64,
    },
    /// Send the UDP payloads of a capture of flow exports (NetFlow v5/v9,
    /// IPFIX) to a collector on loopback at a steady rate, in file order.
    ///
    /// Prints `sent D datagrams, R records in T s (X datagrams/s)`; R counts
    /// the flow records in the datagrams sent (templates learned from the file).
    Replay {
        /// Classic pcap file of export traffic (Ethernet, loopback, raw IP, Linux cooked).
        #[arg(long)]
        pcap: PathBuf,
        /// Destination HOST:PORT; only loopback addresses are accepted.
        #[arg(long)]
        to: String,
        /// Datagrams per second.
        #[arg(long)]
        rate: f64,
        /// Stop after this many seconds (default: at the end of the file).
        #[arg(long)]
        seconds: Option<f64>,
        /// Start the file over at its end until --seconds have passed or
        /// --count datagrams are sent (nothing is rewritten).
        #[arg(long = "loop")]
        looped: bool,
        /// Stop after this many datagrams (sends that failed included).
        #[arg(long)]
        count: Option<u64>,
        /// Only read and count the capture: print `file: D datagrams, R records`.
        #[arg(long)]
        dry_run: bool,
        /// Replay only the capture's datagrams to this UDP port.
        #[arg(long)]
        port: Option<u16>,
    },
}

fn create(path: &Path) -> Result<BufWriter<File>> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::with_capacity(1 << 20, f))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    match args.command {
        Command::Demo { out } => {
            let s = demo::write(create(&out)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "wrote {}: {} packets, {} flows",
                out.display(),
                s.packets,
                s.flows
            );
        }
        Command::Bench {
            out,
            flows,
            packets,
            zones_out,
            seed,
            duration_secs,
        } => {
            if flows == 0 {
                bail!("--flows must be at least 1");
            }
            let params = bench::Params {
                flows,
                packets,
                seed,
                duration_secs,
            };
            let s = bench::write(create(&out)?, &params)
                .with_context(|| format!("cannot write {}", out.display()))?;
            let secs = started.elapsed().as_secs_f64();
            let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            eprintln!(
                "wrote {}: {} packets ({:.1}% IPv6), {} flows ({:.1}% IPv6, {:.1}% UDP, {:.1}% off-policy), \
                 peak {} live flows, {:.1} s of capture, {:.0} MiB in {:.2} s ({:.2} M packets/s)",
                out.display(),
                s.stats.packets,
                100.0 * s.stats.v6_packets as f64 / s.stats.packets.max(1) as f64,
                s.stats.flows,
                100.0 * s.v6_flows as f64 / flows as f64,
                100.0 * s.udp_flows as f64 / flows as f64,
                100.0 * s.off_policy_flows as f64 / flows as f64,
                s.stats.peak_live,
                s.stats.last_us as f64 / 1e6,
                size as f64 / (1 << 20) as f64,
                secs,
                s.stats.packets as f64 / secs / 1e6,
            );
            if let Some(z) = zones_out {
                std::fs::write(&z, bench::zones_toml())
                    .with_context(|| format!("cannot write {}", z.display()))?;
                eprintln!("wrote {}", z.display());
            }
        }
        Command::V5 {
            out,
            datagrams,
            flows,
        } => {
            let w = v5::write(create(&out)?, datagrams, flows, 1_714_557_600)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "wrote {}: {} NetFlow v5 datagrams, {} records",
                out.display(),
                w.datagrams,
                w.records
            );
        }
        Command::Replay {
            pcap,
            to,
            rate,
            seconds,
            looped,
            count,
            dry_run,
            port,
        } => {
            let s = replay::run(&replay::Params {
                pcap: &pcap,
                to: &to,
                port,
                rate,
                seconds,
                looped,
                count,
                dry_run,
            })?;
            if dry_run {
                println!("file: {} datagrams, {} records", s.datagrams, s.records);
                return Ok(());
            }
            println!(
                "sent {} datagrams, {} records in {:.3} s ({:.0} datagrams/s)",
                s.datagrams,
                s.records,
                s.secs,
                s.datagrams as f64 / s.secs.max(1e-9)
            );
        }
    }
    Ok(())
}
