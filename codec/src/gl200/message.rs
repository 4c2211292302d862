//! What the framer, session and parser share about a message.

/// The binary message headers, with where their length is and how wide it
/// is (offset, bytes).
const BINARY: &[(&[u8; 4], usize, usize)] = &[
    (b"+RSP", 9, 2),
    (b"+BSP", 9, 2),
    (b"+EVT", 9, 2),
    (b"+BVT", 9, 2),
    (b"+INF", 7, 2),
    (b"+BNF", 7, 2),
    (b"+HBD", 5, 1),
    (b"+CRD", 6, 2),
    (b"+BRD", 6, 2),
    // The binary login of newer firmwares: its length where `+CRD` has it
    // (from a real capture in Traccar's frame decoder test).
    (b"+LGN", 6, 2),
];

/// How a message starting at `buf[0]` is framed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Need more bytes to tell.
    Unknown,
    /// Text, up to `$`.
    Text,
    /// Binary: the total length is in the header at (offset, width).
    Binary { offset: usize, width: usize },
    /// Starts with `+` but is neither known text nor known binary.
    Invalid,
}

pub(crate) fn kind(buf: &[u8]) -> Kind {
    if buf.len() < 5 {
        return Kind::Unknown;
    }
    if buf[0] != b'+' {
        return Kind::Invalid;
    }
    // The newer binary form: `+`, 0, then a 16-bit length.
    if buf[1] == 0 {
        return Kind::Binary {
            offset: 2,
            width: 2,
        };
    }
    let head = &buf[..4];
    if head == b"+ACK" && buf[4] != b':' {
        return Kind::Binary {
            offset: 6,
            width: 1,
        };
    }
    if let Some((_, offset, width)) = BINARY.iter().find(|(h, _, _)| &h[..] == head) {
        return Kind::Binary {
            offset: *offset,
            width: *width,
        };
    }
    // Text: `+` and capital letters up to `:`.
    let letters = buf[1..]
        .iter()
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    match buf.get(1 + letters) {
        Some(b':') if (2..=6).contains(&letters) => Kind::Text,
        None => Kind::Unknown,
        Some(_) if letters == buf.len() - 1 => Kind::Unknown,
        Some(_) => Kind::Invalid,
    }
}

/// Whether a (framed) message is binary.
pub(crate) fn is_binary(frame: &[u8]) -> bool {
    matches!(kind(frame), Kind::Binary { .. })
}

/// The comma-separated fields of a text message, without its terminator
/// (the `$` or NUL the framer keeps) and line ends on either side of it.
pub(crate) fn fields(frame: &[u8]) -> Option<Vec<String>> {
    if is_binary(frame) {
        return None;
    }
    let text = std::str::from_utf8(frame).ok()?;
    let text = text.trim_end_matches(['\r', '\n', '\0']);
    let text = text.strip_suffix('$').unwrap_or(text);
    let text = text.trim_end_matches(['\r', '\n', '\0']);
    Some(text.split(',').map(str::to_owned).collect())
}

/// `+RESP:GTFRI` → `("RESP", "FRI")`.
pub(crate) fn header(f: &[String]) -> Option<(&str, &str)> {
    let h = f.first()?.strip_prefix('+')?;
    let (kind, rest) = h.split_once(':')?;
    let ty = rest.strip_prefix("GT")?;
    Some((kind, ty))
}

/// A Queclink unique id: a 15-digit IMEI or 14 hex digits.
pub(crate) fn valid_id(s: &str) -> bool {
    (s.len() == 15 && s.bytes().all(|b| b.is_ascii_digit()))
        || (s.len() == 14 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(crate) fn device_id(frame: &[u8]) -> Option<String> {
    if is_binary(frame) {
        return super::binary::device_id(frame);
    }
    let f = fields(frame)?;
    header(&f)?;
    f.get(2).filter(|id| valid_id(id)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind(b"+RESP:GTFRI,"), Kind::Text);
        assert_eq!(kind(b"+ACK:GTHBD,"), Kind::Text);
        assert_eq!(
            kind(b"+ACK\x01\x7f$E"),
            Kind::Binary {
                offset: 6,
                width: 1
            }
        );
        assert_eq!(
            kind(b"+EVT\x0c\x00"),
            Kind::Binary {
                offset: 9,
                width: 2
            }
        );
        assert_eq!(
            kind(b"+\x00\x008\x00"),
            Kind::Binary {
                offset: 2,
                width: 2
            }
        );
        assert_eq!(
            kind(b"+LGN\x00\xff"),
            Kind::Binary {
                offset: 6,
                width: 2
            }
        );
        assert_eq!(kind(b"+XYZ\x00\xff"), Kind::Invalid);
        assert_eq!(kind(b"+RE"), Kind::Unknown);
        assert_eq!(kind(b"+RESP"), Kind::Unknown);
        assert_eq!(kind(b"hello"), Kind::Invalid);
    }

    #[test]
    fn fields_leave_the_terminator_out() {
        let bare = fields(b"+ACK:GTHBD,1,2").unwrap();
        assert_eq!(bare, ["+ACK:GTHBD", "1", "2"]);
        for framed in [
            &b"+ACK:GTHBD,1,2$"[..],
            b"+ACK:GTHBD,1,2\0",
            b"+ACK:GTHBD,1,2\r\n$",
            b"+ACK:GTHBD,1,2$\r\n",
        ] {
            assert_eq!(fields(framed).unwrap(), bare, "{framed:?}");
        }
    }

    #[test]
    fn ids() {
        assert_eq!(
            device_id(b"+ACK:GTHBD,0F0106,862193020451183,,20160727001255,3B7D$").as_deref(),
            Some("862193020451183")
        );
        assert_eq!(device_id(b"+ACK:GTHBD,0F0106,8621930204511,"), None);
    }
}
