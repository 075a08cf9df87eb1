//! Counts the flow records in NetFlow v5, v9 and IPFIX datagrams, learning
//! the templates (and options templates) as they come, so that `replay` can
//! say how many records it sent.
//!
//! Only counting: fields are not decoded. v5 records come from the header's
//! count; v9 and IPFIX data records from their template's length (IPFIX
//! variable-length fields walked record by record). Data records of options
//! templates are not flow records and are not counted. Templates are keyed by
//! (exporter, version, observation domain / source id, template id).

use std::collections::HashMap;
use std::net::IpAddr;

/// What one datagram holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Export version (5, 9, 10), 0 if not an export.
    pub version: u16,
    /// Flow records.
    pub records: u64,
    /// Options data records (not flow records).
    pub options_records: u64,
    /// Templates and options templates defined.
    pub templates: u64,
    /// Data sets whose template was not (yet) known: their records are not counted.
    pub sets_without_template: u64,
    /// Whether the datagram was cut short or malformed somewhere.
    pub malformed: bool,
}

#[derive(Debug, Clone)]
struct Template {
    /// Field lengths; 65535 is an IPFIX variable-length field.
    lengths: Vec<u16>,
    options: bool,
}

type Key = (IpAddr, u16, u32, u16);

/// Templates learned so far.
#[derive(Debug, Default)]
pub struct Counter {
    templates: HashMap<Key, Template>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at + 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl Counter {
    /// Counts the records of one datagram from `exporter`.
    pub fn count(&mut self, exporter: IpAddr, d: &[u8]) -> Count {
        match be16(d, 0) {
            Some(5) => v5(d),
            Some(9) => self.v9(exporter, d),
            Some(10) => self.ipfix(exporter, d),
            _ => Count::default(),
        }
    }

    fn v9(&mut self, exporter: IpAddr, d: &[u8]) -> Count {
        let mut c = Count {
            version: 9,
            ..Count::default()
        };
        let Some(domain) = be32(d, 16) else {
            c.malformed = true;
            return c;
        };
        let mut off = 20;
        while off + 4 <= d.len() {
            let (id, len) = (
                be16(d, off).unwrap_or(0),
                usize::from(be16(d, off + 2).unwrap_or(0)),
            );
            let Some(set) = d.get(off + 4..off + len).filter(|_| len >= 4) else {
                c.malformed = true;
                break;
            };
            off += len;
            match id {
                0 => {
                    let mut p = 0;
                    while let (Some(tid), Some(n)) = (be16(set, p), be16(set, p + 2)) {
                        if tid < 256 {
                            break; // padding
                        }
                        let n = usize::from(n);
                        let Some(fields) = set.get(p + 4..p + 4 + 4 * n) else {
                            c.malformed = true;
                            break;
                        };
                        let lengths = fields
                            .chunks(4)
                            .map(|f| u16::from_be_bytes([f[2], f[3]]))
                            .collect();
                        self.templates.insert(
                            (exporter, 9, domain, tid),
                            Template {
                                lengths,
                                options: false,
                            },
                        );
                        c.templates += 1;
                        p += 4 + 4 * n;
                    }
                }
                1 => {
                    let mut p = 0;
                    while let (Some(tid), Some(scope), Some(opts)) =
                        (be16(set, p), be16(set, p + 2), be16(set, p + 4))
                    {
                        if tid < 256 {
                            break;
                        }
                        let n = usize::from(scope) + usize::from(opts);
                        let Some(fields) = set.get(p + 6..p + 6 + n).filter(|_| n % 4 == 0) else {
                            c.malformed = true;
                            break;
                        };
                        let lengths = fields
                            .chunks(4)
                            .map(|f| u16::from_be_bytes([f[2], f[3]]))
                            .collect();
                        self.templates.insert(
                            (exporter, 9, domain, tid),
                            Template {
                                lengths,
                                options: true,
                            },
                        );
                        c.templates += 1;
                        p += 6 + n;
                    }
                }
                256.. => match self.templates.get(&(exporter, 9, domain, id)) {
                    Some(t) => {
                        let reclen: usize = t.lengths.iter().map(|&l| usize::from(l)).sum();
                        if let Some(n) = set.len().checked_div(reclen) {
                            let n = n as u64;
                            if t.options {
                                c.options_records += n;
                            } else {
                                c.records += n;
                            }
                        }
                    }
                    None => c.sets_without_template += 1,
                },
                _ => {}
            }
        }
        c
    }

    fn ipfix(&mut self, exporter: IpAddr, d: &[u8]) -> Count {
        let mut c = Count {
            version: 10,
            ..Count::default()
        };
        let (Some(total), Some(domain)) = (be16(d, 2), be32(d, 12)) else {
            c.malformed = true;
            return c;
        };
        let total = usize::from(total);
        if total > d.len() {
            c.malformed = true;
        }
        let d = &d[..total.min(d.len())];
        let mut off = 16;
        while off + 4 <= d.len() {
            let (id, len) = (
                be16(d, off).unwrap_or(0),
                usize::from(be16(d, off + 2).unwrap_or(0)),
            );
            let Some(set) = d.get(off + 4..off + len).filter(|_| len >= 4) else {
                c.malformed = true;
                break;
            };
            off += len;
            match id {
                2 | 3 => {
                    let options = id == 3;
                    let head = if options { 6 } else { 4 };
                    let mut p = 0;
                    while p + head <= set.len() {
                        let (tid, n) = (be16(set, p).unwrap_or(0), be16(set, p + 2).unwrap_or(0));
                        if tid < 256 && !(tid == 2 || tid == 3) {
                            break; // padding
                        }
                        p += head;
                        if n == 0 {
                            // Withdrawal: one template, or all of them (id 2 / 3).
                            if tid < 256 {
                                self.templates
                                    .retain(|k, _| k.0 != exporter || k.1 != 10 || k.2 != domain);
                            } else {
                                self.templates.remove(&(exporter, 10, domain, tid));
                            }
                            continue;
                        }
                        let mut lengths = Vec::with_capacity(usize::from(n));
                        for _ in 0..n {
                            let (Some(ie), Some(l)) = (be16(set, p), be16(set, p + 2)) else {
                                c.malformed = true;
                                return c;
                            };
                            p += if ie & 0x8000 != 0 { 8 } else { 4 };
                            lengths.push(l);
                        }
                        if p > set.len() {
                            c.malformed = true;
                            return c;
                        }
                        self.templates
                            .insert((exporter, 10, domain, tid), Template { lengths, options });
                        c.templates += 1;
                    }
                }
                256.. => match self.templates.get(&(exporter, 10, domain, id)) {
                    Some(t) => {
                        let (n, bad) = ipfix_records(&t.lengths, set);
                        c.malformed |= bad;
                        if t.options {
                            c.options_records += n;
                        } else {
                            c.records += n;
                        }
                    }
                    None => c.sets_without_template += 1,
                },
                _ => {}
            }
        }
        c
    }
}

/// Records in an IPFIX data set (its body) of a template with `lengths`,
/// and whether a record ran past the set.
fn ipfix_records(lengths: &[u16], set: &[u8]) -> (u64, bool) {
    let fixed: usize = lengths
        .iter()
        .filter(|&&l| l != 65535)
        .map(|&l| usize::from(l))
        .sum();
    let variable = lengths.iter().filter(|&&l| l == 65535).count();
    if variable == 0 {
        return (set.len().checked_div(fixed).unwrap_or(0) as u64, false);
    }
    // Smallest record: every variable-length field empty (one length byte).
    let min = fixed + variable;
    let mut p = 0;
    let mut n = 0;
    while set.len() - p >= min {
        for &l in lengths {
            let step = if l == 65535 {
                match set.get(p) {
                    Some(255) => match be16(set, p + 1) {
                        Some(v) => 3 + usize::from(v),
                        None => return (n, true),
                    },
                    Some(&v) => 1 + usize::from(v),
                    None => return (n, true),
                }
            } else {
                usize::from(l)
            };
            p += step;
            if p > set.len() {
                return (n, true);
            }
        }
        n += 1;
    }
    (n, false)
}

/// A v5 datagram: the header's count, if the datagram holds that many records.
fn v5(d: &[u8]) -> Count {
    let n = u64::from(be16(d, 2).unwrap_or(0));
    let room = (d.len().saturating_sub(24) / 48) as u64;
    Count {
        version: 5,
        records: n.min(room),
        malformed: d.len() < 24 || room < n,
        ..Count::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    fn set(id: u16, body: &[u8]) -> Vec<u8> {
        let mut s = id.to_be_bytes().to_vec();
        s.extend_from_slice(&u16::try_from(body.len() + 4).unwrap().to_be_bytes());
        s.extend_from_slice(body);
        s
    }

    fn v9(sets: &[Vec<u8>]) -> Vec<u8> {
        let mut d = vec![0, 9, 0, 1];
        d.extend_from_slice(&[0; 12]);
        d.extend_from_slice(&7u32.to_be_bytes());
        for s in sets {
            d.extend_from_slice(s);
        }
        d
    }

    fn ipfix(sets: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = sets.concat();
        let mut d = vec![0, 10];
        d.extend_from_slice(&u16::try_from(body.len() + 16).unwrap().to_be_bytes());
        d.extend_from_slice(&[0; 8]);
        d.extend_from_slice(&1u32.to_be_bytes());
        d.extend_from_slice(&body);
        d
    }

    #[test]
    fn v5_uses_the_header_count() {
        let mut d = vec![0, 5, 0, 2];
        d.resize(24 + 2 * 48, 0);
        assert_eq!(Counter::default().count(ip(), &d).records, 2);
        d.truncate(24 + 48);
        let c = Counter::default().count(ip(), &d);
        assert_eq!((c.records, c.malformed), (1, true));
    }

    #[test]
    fn v9_counts_data_records_with_their_template() {
        let mut k = Counter::default();
        // Data before its template: not counted.
        let data = set(256, &[0u8; 3 * 12 + 2]);
        let c = k.count(ip(), &v9(std::slice::from_ref(&data)));
        assert_eq!((c.records, c.sets_without_template), (0, 1));
        // Template 256: 8 + 4 bytes; options template 257 (scope 4, option 2).
        let tmpl = set(0, &[1, 0, 0, 2, 0, 8, 0, 8, 0, 1, 0, 4]);
        let opts = set(1, &[1, 1, 0, 4, 0, 4, 0, 1, 0, 4, 0, 34, 0, 2, 0, 0]);
        let c = k.count(ip(), &v9(&[tmpl, opts, data.clone(), set(257, &[0; 12])]));
        assert_eq!((c.records, c.options_records, c.templates), (3, 2, 2));
        // Another source id does not share the template.
        let mut other = v9(&[data]);
        other[19] = 8;
        assert_eq!(k.count(ip(), &other).sets_without_template, 1);
    }

    #[test]
    fn ipfix_walks_variable_length_fields_and_withdrawals() {
        let mut k = Counter::default();
        // Template 300: a 4-byte field, a variable one, an enterprise 2-byte field.
        let tmpl = set(
            2,
            &[
                1, 44, 0, 3, 0, 8, 0, 4, 0, 82, 255, 255, 0x80, 1, 0, 2, 0, 0, 0x71, 0x59,
            ],
        );
        // Records: 4 + (1+3) + 2 = 10 bytes, 4 + (3+300) + 2, then 2 bytes padding.
        let mut body = vec![0u8; 4];
        body.extend_from_slice(&[3, b'e', b't', b'h', 0, 0]);
        body.extend_from_slice(&[0; 4]);
        body.extend_from_slice(&[255, 1, 44]);
        body.extend_from_slice(&[b'x'; 300]);
        body.extend_from_slice(&[0, 0, 0, 0]);
        let c = k.count(ip(), &ipfix(&[tmpl, set(300, &body)]));
        assert_eq!((c.records, c.templates, c.malformed), (2, 1, false));
        // Withdrawn: the next data set has no template.
        let c = k.count(ip(), &ipfix(&[set(2, &[1, 44, 0, 0]), set(300, &body)]));
        assert_eq!((c.records, c.sets_without_template), (0, 1));
    }

    #[test]
    fn not_an_export() {
        assert_eq!(Counter::default().count(ip(), b"GET / HTTP/1.1").version, 0);
        assert_eq!(Counter::default().count(ip(), &[]).records, 0);
    }
}
