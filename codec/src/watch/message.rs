//! The shape of a watch message, so that the framer, the session and the
//! parser agree on it: the header grammar (read incrementally by the framer)
//! and the escaping of binary content.

use std::borrow::Cow;

/// Longest device id accepted (IMEIs are 15 digits, most watches send 10).
pub(crate) const MAX_ID: usize = 20;
/// Longest header: `[` vendor(2) `*` id `*` index(4) `*` length(4) `*`.
pub(crate) const MAX_HEADER: usize = 1 + 2 + 1 + MAX_ID + 1 + 4 + 1 + 4 + 1;

/// The escape byte of binary content and what each code after it stands for.
const ESCAPE: u8 = b'}';
pub(crate) const ESCAPED: [u8; 5] = [b'}', b'[', b']', b',', b'*'];

/// What the header at the start of a buffer (which starts with `[`) is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// The bytes so far fit the grammar; more are needed to tell.
    Incomplete,
    /// Not a header: some byte breaks the grammar.
    Invalid,
    Complete(Fields),
}

/// Where a complete header's parts are (byte ranges into the buffer).
#[derive(Debug, PartialEq, Eq, Clone)]
pub(crate) struct Fields {
    pub id: std::ops::Range<usize>,
    pub index: Option<std::ops::Range<usize>>,
    /// The content's length as announced.
    pub length: usize,
    /// Header length: the content starts here.
    pub len: usize,
}

fn hex4(b: &[u8]) -> Option<usize> {
    if b.len() == 4 && b.iter().all(u8::is_ascii_hexdigit) {
        usize::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
    } else {
        None
    }
}

/// Whether `b` could be the start of a 4-hex-digit field and its `*`.
fn hex_field_prefix(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| {
        if i < 4 {
            c.is_ascii_hexdigit()
        } else {
            *c == b'*'
        }
    })
}

/// Reads the header at the start of `buf` (`buf[0]` is `[`). Decided on
/// the bytes seen only, so a stream cut anywhere gives the same answer once
/// enough bytes are there.
pub(crate) fn header(buf: &[u8]) -> Header {
    use Header::*;
    let at = |i: usize| buf.get(i).copied();
    if at(0) != Some(b'[') {
        return Invalid;
    }
    for i in 1..3 {
        match at(i) {
            None => return Incomplete,
            Some(c) if c.is_ascii_alphanumeric() => {}
            Some(_) => return Invalid,
        }
    }
    match at(3) {
        None => return Incomplete,
        Some(b'*') => {}
        Some(_) => return Invalid,
    }
    // The id: alphanumerics up to the next `*`.
    let id_start = 4;
    let mut i = id_start;
    loop {
        match at(i) {
            None => return Incomplete,
            Some(b'*') if i > id_start => break,
            Some(c) if c.is_ascii_alphanumeric() && i - id_start < MAX_ID => i += 1,
            Some(_) => return Invalid,
        }
    }
    let id = id_start..i;
    // First 4-hex field: the length, or the index when a second follows.
    let first = i + 1;
    let rest = &buf[first.min(buf.len())..];
    if rest.len() < 5 {
        return if hex_field_prefix(rest) {
            Incomplete
        } else {
            Invalid
        };
    }
    let Some(a) = hex4(&rest[..4]).filter(|_| rest[4] == b'*') else {
        return Invalid;
    };
    let second = &rest[5..];
    if second.len() < 5 && hex_field_prefix(second) {
        // `[ZJ*id*0034*04` could still become an index and a length.
        return Incomplete;
    }
    match hex4(second.get(..4).unwrap_or_default()).filter(|_| second.get(4) == Some(&b'*')) {
        Some(length) => Complete(Fields {
            id,
            index: Some(first..first + 4),
            length,
            len: first + 10,
        }),
        None => Complete(Fields {
            id,
            index: None,
            length: a,
            len: first + 5,
        }),
    }
}

/// `content` with the escapes of binary data taken out (`}` followed by
/// 0x01…0x05); a `}` followed by anything else stays as it is.
pub(crate) fn unescape(content: &[u8]) -> Cow<'_, [u8]> {
    if !content.contains(&ESCAPE) {
        return Cow::Borrowed(content);
    }
    let mut out = Vec::with_capacity(content.len());
    let mut i = 0;
    while i < content.len() {
        match (content[i], content.get(i + 1)) {
            (ESCAPE, Some(&code @ 1..=5)) => {
                out.push(ESCAPED[usize::from(code - 1)]);
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// One message: `[` vendor `*` id `*` [index `*`] length `*` content `]`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    pub vendor: &'a str,
    pub id: &'a str,
    pub index: Option<&'a str>,
    /// The content, escapes taken out.
    pub content: Cow<'a, [u8]>,
}

impl<'a> Message<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Message<'a>, String> {
        let Header::Complete(f) = header(bytes) else {
            return Err("message does not start with a [vendor*id*length* header".into());
        };
        let content = bytes[f.len..]
            .strip_suffix(b"]")
            .ok_or("message does not end with ']'")?;
        // The header is ASCII (checked byte by byte above).
        let text = |r: std::ops::Range<usize>| std::str::from_utf8(&bytes[r]).unwrap_or_default();
        Ok(Message {
            vendor: text(1..3),
            id: text(f.id.clone()),
            index: f.index.map(text),
            content: unescape(content),
        })
    }

    /// The content's type: what comes before its first `,` (`LK`, `UD2`).
    pub(crate) fn kind(&self) -> &str {
        let end = self
            .content
            .iter()
            .position(|&b| b == b',')
            .unwrap_or(self.content.len());
        std::str::from_utf8(&self.content[..end]).unwrap_or("")
    }

    /// What follows the type and its `,` (empty when nothing does).
    pub(crate) fn body(&self) -> &[u8] {
        match self.content.iter().position(|&b| b == b',') {
            Some(c) => &self.content[c + 1..],
            None => &[],
        }
    }

    pub(crate) fn device_id(&self) -> Option<String> {
        (!self.id.is_empty()).then(|| self.id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let h = |s: &str| header(s.as_bytes());
        let Header::Complete(f) = h("[SG*8800000015*0002*LK]") else {
            panic!()
        };
        assert_eq!((f.id, f.index, f.length, f.len), (4..14, None, 2, 20));
        let Header::Complete(f) = h("[ZJ*014111001350304*0033*0064*UD,") else {
            panic!()
        };
        assert_eq!((f.index, f.length), (Some(20..24), 0x64));
        // An index can only be told from a length once the next field is seen.
        assert_eq!(h("[ZJ*0141*0033*00"), Header::Incomplete);
        assert_eq!(h("[ZJ*0141*0033*"), Header::Incomplete);
        assert!(matches!(h("[ZJ*0141*0033*L"), Header::Complete(_)));
        assert!(matches!(h("[SG*1*0001*A]"), Header::Complete(_)));
        assert_eq!(h("[S"), Header::Incomplete);
        assert_eq!(h("[SG*12345"), Header::Incomplete);
        assert_eq!(h("[LG_Wall-Mount A/C]"), Header::Invalid);
        assert_eq!(h("[SG**0002*LK]"), Header::Invalid);
        assert_eq!(h("[SG*1*00G2*LK]"), Header::Invalid);
        assert_eq!(h("[SG*1*002*LK]"), Header::Invalid);
        assert_eq!(h("[SG*123456789012345678901*0002*LK]"), Header::Invalid);
        assert_eq!(h("(SG"), Header::Invalid);
    }

    #[test]
    fn messages() {
        let m = Message::parse(b"[3G*8800000015*0003*TKQ]").unwrap();
        assert_eq!(
            (m.vendor, m.id, m.index, m.kind()),
            ("3G", "8800000015", None, "TKQ")
        );
        assert_eq!(m.body(), b"");
        let m = Message::parse(b"[ZJ*5678901234*0001*0009*TEMP,36.5]").unwrap();
        assert_eq!(
            (m.index, m.kind(), m.body()),
            (Some("0001"), "TEMP", &b"36.5"[..])
        );
        let m =
            Message::parse(b"[CS*1234567890*000e*TK,#!AMR}\x01}\x02}\x03}\x04}\x05\xff]").unwrap();
        assert_eq!(&m.content[..], b"TK,#!AMR}[],*\xff");
        assert!(Message::parse(b"[CS*1234567890*000e*TK").is_err());
        assert!(Message::parse(b"hello").is_err());
    }
}
