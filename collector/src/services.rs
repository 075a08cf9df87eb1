//! The published list of service ports (`collector/data/service_ports.txt`).

use std::sync::OnceLock;

const LIST: &str = include_str!("../data/service_ports.txt");

/// A bit per port.
struct PortSet([u64; 1024]);

fn set() -> &'static PortSet {
    static SET: OnceLock<PortSet> = OnceLock::new();
    SET.get_or_init(|| {
        let mut bits = [0u64; 1024];
        for line in LIST.lines() {
            let text = line.split('#').next().unwrap_or("").trim();
            if text.is_empty() {
                continue;
            }
            let (lo, hi) = match text.split_once('-') {
                Some((a, b)) => (a.trim().parse::<u16>(), b.trim().parse::<u16>()),
                None => (text.parse::<u16>(), text.parse::<u16>()),
            };
            // The list is ours and checked by a test; a bad line is skipped.
            if let (Ok(lo), Ok(hi)) = (lo, hi) {
                for p in lo..=hi {
                    bits[usize::from(p >> 6)] |= 1 << (p & 63);
                }
            }
        }
        PortSet(bits)
    })
}

/// Whether `port` is a service port.
pub fn is_service_port(port: u16) -> bool {
    set().0[usize::from(port >> 6)] & (1 << (port & 63)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parses_and_answers() {
        for line in LIST.lines() {
            let text = line.split('#').next().unwrap_or("").trim();
            if text.is_empty() {
                continue;
            }
            for part in text.split('-') {
                assert!(part.trim().parse::<u16>().is_ok(), "bad line {line:?}");
            }
        }
        for p in [22, 53, 80, 443, 1023, 3306, 5432, 6379, 8080, 9200] {
            assert!(is_service_port(p), "{p}");
        }
        for p in [1024, 34855, 51514, 65535] {
            assert!(!is_service_port(p), "{p}");
        }
    }
}
