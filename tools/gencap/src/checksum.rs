//! The Internet checksum (RFC 1071): the ones' complement of the ones'
//! complement sum of 16-bit big-endian words.

/// Adds `data` to a running ones' complement sum.
///
/// Words are read as 32-bit big-endian values into a 64-bit accumulator:
/// since 2^16 ≡ 1 (mod 2^16 − 1), folding the wide sum gives the same result
/// as summing 16-bit words, in half the steps. `data` must start on an even
/// offset of the summed region (every caller passes whole headers or payloads
/// that start on an even offset).
pub fn accumulate(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        sum += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        sum += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        // An odd trailing byte is padded with a zero byte on the right.
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds a running sum to 16 bits and complements it.
pub fn finish(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 significant bits.
    !(sum as u16)
}

/// The checksum of one contiguous buffer.
#[cfg(test)]
pub fn checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2,
        // so the checksum is its complement, 220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(accumulate(0, &data)), !0xddf2);
        assert_eq!(checksum(&data), 0x220d);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn split_sums_agree_with_one_pass() {
        let data: Vec<u8> = (0u32..1001).map(|i| (i * 37 % 251) as u8).collect();
        let whole = checksum(&data);
        // Splitting at an even offset must not change the result.
        let split = finish(accumulate(accumulate(0, &data[..300]), &data[300..]));
        assert_eq!(whole, split);
    }

    #[test]
    fn header_with_its_checksum_verifies_to_zero() {
        // An IPv4 header (checksum field zeroed) from a real-looking packet.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xac, 0x10,
            0x0a, 0x63, 0xac, 0x10, 0x0a, 0x0c,
        ];
        let c = checksum(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&hdr), 0);
        assert_eq!(c, 0xb1e6);
    }
}
