//! Application payloads that dissectors (Wireshark, Zeek) decode cleanly.

use std::net::IpAddr;

fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len().min(63) as u8);
        out.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    out.push(0);
}

fn qtype(v6: bool) -> u16 {
    if v6 { 28 } else { 1 }
}

/// A recursive DNS query for `name` (type A, or AAAA when `v6`).
pub fn dns_query(id: u16, name: &str, v6: bool) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; 1 question
    put_name(&mut m, name);
    m.extend_from_slice(&qtype(v6).to_be_bytes());
    m.extend_from_slice(&[0, 1]); // class IN
    m
}

/// The answer to [`dns_query`]: one record for `addr` with a 300 s TTL.
pub fn dns_answer(id: u16, name: &str, addr: IpAddr) -> Vec<u8> {
    let v6 = addr.is_ipv6();
    let mut m = Vec::with_capacity(96);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]); // response, RD, RA
    put_name(&mut m, name);
    m.extend_from_slice(&qtype(v6).to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&[0xc0, 0x0c]); // pointer to the question's name
    m.extend_from_slice(&qtype(v6).to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0x01, 0x2c]); // IN, TTL 300
    match addr {
        IpAddr::V4(a) => {
            m.extend_from_slice(&[0, 4]);
            m.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            m.extend_from_slice(&[0, 16]);
            m.extend_from_slice(&a.octets());
        }
    }
    m
}

fn pg_msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A PostgreSQL startup message (protocol 3.0).
pub fn pg_startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for s in ["user", user, "database", database] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = (body.len() as u32 + 4).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

/// AuthenticationOk followed by ReadyForQuery (idle).
pub fn pg_ready() -> Vec<u8> {
    let mut m = pg_msg(b'R', &0u32.to_be_bytes());
    m.extend(pg_msg(b'Z', b"I"));
    m
}

/// A simple query.
pub fn pg_query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    pg_msg(b'Q', &body)
}

/// CommandComplete for a SELECT of `rows` rows, then ReadyForQuery.
pub fn pg_complete(rows: u32) -> Vec<u8> {
    let mut m = pg_msg(b'C', format!("SELECT {rows}\0").as_bytes());
    m.extend(pg_msg(b'Z', b"I"));
    m
}

/// The Terminate message.
pub fn pg_terminate() -> Vec<u8> {
    pg_msg(b'X', &[])
}

/// An HTTP/1.1 GET request.
pub fn http_get(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: demo-client/1.0\r\nAccept: */*\r\n\r\n"
    )
    .into_bytes()
}

/// An HTTP/1.1 response with `body`.
pub fn http_response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_query_layout() {
        let q = dns_query(0xbeef, "pay.example.com", false);
        assert_eq!(&q[..2], &[0xbe, 0xef]);
        assert_eq!(&q[12..16], b"\x03pay");
        assert_eq!(q.len(), 12 + 17 + 4);
    }

    #[test]
    fn pg_startup_length_prefix_matches() {
        let m = pg_startup("app", "orders");
        assert_eq!(
            u32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize,
            m.len()
        );
    }
}
