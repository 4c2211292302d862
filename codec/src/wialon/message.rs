//! The shape of one Wialon IPS packet, so that the framer, the session and
//! the parser agree on it: `[<version>;<id>]#<type>#<message>[<checksum>]`.
//!
//! The prefix (`<id>#` in 1.1, `<version>;<id>#` in 2.0) is how a packet
//! names its device over UDP, where there is no login. The checksum (2.0) is
//! CRC-16/ARC as hex text after the last field separator, computed over the
//! message up to and including that separator: checked against the captures
//! (`7A01`, `626B`, `F24A` and `0x9b0` — some firmwares write `0x` and drop
//! leading zeros). Whether a packet carries one is read from its shape: a
//! short data packet has 10 fields and 11 with the checksum, a data packet
//! 16 and 17, a 2.0 login 4 (`2.0;imei;password;crc`), a black box packet
//! ends with `|<crc>` instead of a record. Only a message to the driver
//! (`#M#text`) cannot tell, so the caller says which version it expects.

use crate::checksum::crc16_ibm;

/// Longest device id accepted in a UDP prefix or a login.
const MAX_ID: usize = 64;

/// What the connection knows about the protocol version, for the one
/// packet whose shape does not say whether it carries a checksum (`M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// 1.1: no checksums.
    V1,
    /// 2.0: the login said `2.0;…` (or the UDP prefix did).
    V2,
    /// Nothing said (a stored frame parsed on its own).
    Unknown,
}

/// A checksum the packet carries, and the one computed over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checksum {
    pub received: u16,
    pub computed: u16,
}

impl Checksum {
    pub fn ok(&self) -> bool {
        self.received == self.computed
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packet<'a> {
    /// The UDP prefix's version (`2.0`), if it had one.
    pub version: Option<&'a str>,
    /// The UDP prefix's device id, if the packet had a prefix.
    pub id: Option<&'a str>,
    /// `L`, `SD`, `D`, `B`, `P`, `M`, …
    pub kind: &'a str,
    /// The message without its checksum and the separator before it.
    pub body: &'a str,
    pub checksum: Option<Checksum>,
}

/// A login: `imei;password` (1.1) or `version;imei;password` (2.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Login<'a> {
    pub version: Option<&'a str>,
    pub imei: &'a str,
    pub password: Option<&'a str>,
}

impl<'a> Packet<'a> {
    pub fn parse(bytes: &'a [u8], version: Version) -> Result<Packet<'a>, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "packet is not UTF-8 text".to_owned())?;
        let text = text.trim_end_matches(['\r', '\n']);
        let (prefix, rest) = text
            .split_once('#')
            .ok_or_else(|| format!("no '#' in {:?}", shorten(text)))?;
        let (kind, message) = rest
            .split_once('#')
            .ok_or_else(|| format!("no packet type in {:?}", shorten(text)))?;
        if !packet_type(kind) {
            return Err(format!("bad packet type {:?}", shorten(kind)));
        }
        let (prefix_version, id) = if prefix.is_empty() {
            (None, None)
        } else {
            let (v, id) = split_prefix(prefix)
                .ok_or_else(|| format!("bad device prefix {:?}", shorten(prefix)))?;
            (v, Some(id))
        };
        let version = match (prefix_version, version) {
            (Some(_), _) => Version::V2,
            (None, v) => v,
        };
        let (body, checksum) = split_checksum(kind, message, version)?;
        Ok(Packet {
            version: prefix_version,
            id,
            kind,
            body,
            checksum,
        })
    }

    /// The login's fields, if this is a login.
    pub fn login(&self) -> Result<Login<'a>, String> {
        let fields: Vec<&str> = self.body.split(';').collect();
        let (version, rest) = match fields.first() {
            Some(v) if version_text(v) => (Some(*v), &fields[1..]),
            _ => (None, &fields[..]),
        };
        let imei = rest.first().copied().unwrap_or_default();
        if !device_id(imei) {
            return Err(format!(
                "login without a usable device id: {:?}",
                shorten(imei)
            ));
        }
        let password = rest.get(1).copied().filter(|p| !p.is_empty() && *p != "NA");
        Ok(Login {
            version,
            imei,
            password,
        })
    }

    /// The records of a data packet (one for `SD` and `D`, one per `|` for
    /// `B`), each as its `;`-separated fields.
    pub fn records(&self) -> Vec<Vec<&'a str>> {
        let body: &'a str = self.body;
        match self.kind {
            "B" => body
                .split('|')
                .filter(|r| !r.is_empty())
                .map(|r| r.split(';').collect())
                .collect(),
            _ => vec![body.split(';').collect()],
        }
    }
}

/// Fields of a short data record (`SD`, and black box records in that form).
pub(crate) const SHORT_FIELDS: usize = 10;
/// Fields of an extended data record (`D`).
pub(crate) const FULL_FIELDS: usize = 16;

fn packet_type(s: &str) -> bool {
    (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// `2.0`, `1.1`: digits, one point, digits.
fn version_text(s: &str) -> bool {
    match s.split_once('.') {
        Some((a, b)) => crate::text::digits(a) && crate::text::digits(b) && s.len() <= 8,
        None => false,
    }
}

/// A UDP prefix, `<id>` or `<version>;<id>`, as its version and id.
pub(crate) fn split_prefix(prefix: &str) -> Option<(Option<&str>, &str)> {
    let (version, id) = match prefix.split_once(';') {
        Some((v, id)) if version_text(v) => (Some(v), id),
        Some(_) => return None,
        None => (None, prefix),
    };
    device_id(id).then_some((version, id))
}

/// A device id as devices send it (IMEI, serial, name): printable ASCII
/// without the protocol's separators.
pub(crate) fn device_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'#' | b';' | b'|' | b','))
}

/// Splits the checksum off `message` where the packet's shape says there is one.
fn split_checksum<'a>(
    kind: &str,
    message: &'a str,
    version: Version,
) -> Result<(&'a str, Option<Checksum>), String> {
    let fields = || message.split(';').count();
    let at = match kind {
        "SD" if fields() == SHORT_FIELDS + 1 => message.rfind(';'),
        "D" if fields() == FULL_FIELDS + 1 => message.rfind(';'),
        "L" if fields() == 4 && message.split(';').next().is_some_and(version_text) => {
            message.rfind(';')
        }
        "B" => message
            .rfind('|')
            .filter(|&i| !message[i + 1..].contains(';')),
        "M" => match (version, message.rfind(';')) {
            (Version::V2, at) => at,
            // Without a version, a last field is a checksum only if it is
            // one: driver texts may end in anything.
            (_, Some(i))
                if parse_crc(&message[i + 1..]) == Some(crc16_ibm(&message.as_bytes()[..=i])) =>
            {
                Some(i)
            }
            _ => None,
        },
        _ => None,
    };
    let Some(at) = at else {
        return Ok((message, None));
    };
    let (body, text) = (&message[..at], &message[at + 1..]);
    if kind == "B" && text.is_empty() {
        // `rec|rec|`: a trailing separator, no checksum.
        return Ok((body, None));
    }
    let received =
        parse_crc(text).ok_or_else(|| format!("checksum {:?} is not hex", shorten(text)))?;
    let computed = crc16_ibm(&message.as_bytes()[..=at]);
    Ok((body, Some(Checksum { received, computed })))
}

/// `7A01`, `0x9b0`: one to four hex digits, optionally after `0x`.
fn parse_crc(s: &str) -> Option<u16> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if (1..=4).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        u16::from_str_radix(digits, 16).ok()
    } else {
        None
    }
}

pub(crate) fn shorten(s: &str) -> &str {
    let end = s.char_indices().nth(40).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_arc_over_the_message_and_its_last_separator() {
        // From the captures: CRC-16/ARC of everything after `#D#` up to the `;`.
        let p = Packet::parse(
            b"#SD#300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA;7A01\r\n",
            Version::Unknown,
        )
        .unwrap();
        assert_eq!(
            p.checksum,
            Some(Checksum {
                received: 0x7a01,
                computed: 0x7a01
            })
        );
        assert_eq!(
            p.body,
            "300924;154245;5554.350052;N;3644.670410;E;2.92;NA;NA;NA"
        );
        let p = Packet::parse(b"#D#NA;NA;5429.681944502211763;N;02654.60403650999069;E;NA;NA;NA;NA;NA;NA;NA;1.0;NA;m1:1:9196679,d1:1:15397,t1:1:20,b1:1:162,fuel1:2:21588.0,pv1:2:35.98,finish:1:1;0x9b0", Version::Unknown).unwrap();
        assert!(p.checksum.unwrap().ok());
        assert_eq!(crc16_ibm(b"123456789"), 0xBB3D);
    }

    #[test]
    fn shapes() {
        let p = Packet::parse(b"#L#2002;NA\r\n", Version::Unknown).unwrap();
        assert_eq!((p.kind, p.checksum), ("L", None));
        assert_eq!(
            p.login().unwrap(),
            Login {
                version: None,
                imei: "2002",
                password: None
            }
        );
        let p = Packet::parse(b"#L#2.0;42001300083;;CE45", Version::Unknown).unwrap();
        let login = p.login().unwrap();
        assert_eq!((login.version, login.imei), (Some("2.0"), "42001300083"));
        assert!(!p.checksum.unwrap().ok());
        let p = Packet::parse(b"2.0;354#P#\r\n", Version::Unknown).unwrap();
        assert_eq!((p.version, p.id, p.kind), (Some("2.0"), Some("354"), "P"));
        let p = Packet::parse(b"a|b;c|d;e|12AB", Version::Unknown);
        assert!(p.is_err());
        let p = Packet::parse(b"#B#1;2|3;4|", Version::Unknown).unwrap();
        assert_eq!((p.body, p.checksum), ("1;2|3;4", None));
        assert_eq!(p.records(), vec![vec!["1", "2"], vec!["3", "4"]]);
        let p = Packet::parse(b"#M#hello;BEEF", Version::Unknown).unwrap();
        assert_eq!((p.body, p.checksum), ("hello;BEEF", None));
        let p = Packet::parse(b"#M#hello;BEEF", Version::V2).unwrap();
        assert_eq!(p.body, "hello");
        assert!(!p.checksum.unwrap().ok());
        assert!(
            Packet::parse(b"#D#1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;zz", Version::V2).is_err()
        );
        assert!(Packet::parse(b"hello", Version::Unknown).is_err());
        assert!(Packet::parse(b"#d#x", Version::Unknown).is_err());
        assert!(Packet::parse(b"a b#P#", Version::Unknown).is_err());
    }
}
