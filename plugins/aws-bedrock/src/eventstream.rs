//! AWS event-stream framing (`application/vnd.amazon.eventstream`): each
//! message is `total length (u32) | headers length (u32) | prelude CRC32 |
//! headers | payload | message CRC32`, big-endian, CRC32 (IEEE) over the
//! bytes before it. Frames are taken whole as bytes arrive, so the result
//! does not depend on how the body was split.

/// Longest frame accepted (AWS caps messages at 16 MiB).
pub const MAX_FRAME: usize = 16 << 20;

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// String headers (`:message-type`, `:event-type`, `:exception-type`,
    /// `:content-type`); other header types are skipped.
    pub headers: Vec<(String, String)>,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl Frame {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Takes complete frames from the front of `buf`; the rest stays buffered.
pub fn take_frames(buf: &mut Vec<u8>) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    let mut at = 0;
    while buf.len() - at >= 12 {
        let b = &buf[at..];
        let total = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let headers_len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        let prelude_crc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        if crc32fast::hash(&b[..8]) != prelude_crc {
            return Err("event stream frame has a bad prelude checksum".to_owned());
        }
        if !(16..=MAX_FRAME).contains(&total) || headers_len > total - 16 {
            return Err(format!(
                "event stream frame of {total} bytes with {headers_len} bytes of headers"
            ));
        }
        if b.len() < total {
            break;
        }
        let frame = &b[..total];
        let crc = u32::from_be_bytes([
            frame[total - 4],
            frame[total - 3],
            frame[total - 2],
            frame[total - 1],
        ]);
        if crc32fast::hash(&frame[..total - 4]) != crc {
            return Err("event stream frame has a bad message checksum".to_owned());
        }
        let headers = parse_headers(&frame[12..12 + headers_len])?;
        frames.push(Frame {
            headers,
            payload: frame[12 + headers_len..total - 4].to_vec(),
        });
        at += total;
    }
    buf.drain(..at);
    Ok(frames)
}

fn parse_headers(mut h: &[u8]) -> Result<Vec<(String, String)>, String> {
    let bad = || "event stream frame has malformed headers".to_owned();
    let mut out = Vec::new();
    while !h.is_empty() {
        let name_len = *h.first().ok_or_else(bad)? as usize;
        let name = h.get(1..1 + name_len).ok_or_else(bad)?;
        let name = String::from_utf8_lossy(name).into_owned();
        h = &h[1 + name_len..];
        let kind = *h.first().ok_or_else(bad)?;
        h = &h[1..];
        // Value sizes by type (the event-stream spec); 7 is a string.
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            _ => return Err(bad()),
        };
        match fixed {
            Some(n) => h = h.get(n..).ok_or_else(bad)?,
            None => {
                let len =
                    u16::from_be_bytes([*h.first().ok_or_else(bad)?, *h.get(1).ok_or_else(bad)?])
                        as usize;
                let value = h.get(2..2 + len).ok_or_else(bad)?;
                if kind == 7 {
                    out.push((name, String::from_utf8_lossy(value).into_owned()));
                }
                h = &h[2 + len..];
            }
        }
    }
    Ok(out)
}

/// Encodes a frame with string headers (tests and fixtures).
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut hb = Vec::new();
    for (k, v) in headers {
        hb.push(k.len() as u8);
        hb.extend_from_slice(k.as_bytes());
        hb.push(7);
        hb.extend_from_slice(&(v.len() as u16).to_be_bytes());
        hb.extend_from_slice(v.as_bytes());
    }
    let total = 12 + hb.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(hb.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&out[..8]).to_be_bytes());
    out.extend_from_slice(&hb);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_their_last_byte() {
        let a = encode(
            &[(":message-type", "event"), (":event-type", "chunk")],
            b"{\"x\":1}",
        );
        let b = encode(&[(":message-type", "event")], b"");
        let mut all = [a.clone(), b.clone()].concat();
        for cut in 0..all.len() {
            let mut buf = all[..cut].to_vec();
            let first = take_frames(&mut buf).unwrap();
            buf.extend_from_slice(&all[cut..]);
            let second = take_frames(&mut buf).unwrap();
            assert_eq!(first.len() + second.len(), 2, "cut {cut}");
            assert!(buf.is_empty());
        }
        let frames = take_frames(&mut all).unwrap();
        assert_eq!(frames[0].header(":event-type"), Some("chunk"));
        assert_eq!(frames[0].payload, b"{\"x\":1}");
        assert!(frames[1].payload.is_empty());
    }

    #[test]
    fn corrupt_frames_are_refused() {
        let mut f = encode(&[(":message-type", "event")], b"hello");
        let n = f.len();
        f[n - 6] ^= 1;
        assert!(
            take_frames(&mut f.clone())
                .unwrap_err()
                .contains("message checksum")
        );
        let mut g = encode(&[], b"x");
        g[2] ^= 0x40;
        assert!(take_frames(&mut g).unwrap_err().contains("prelude"));
    }
}
