//! The shape of a JT/T 808 message after the framer has unescaped it.
//!
//! ```text
//! 7e | id:u16 | attributes:u16 | [version:u8] | terminal:6 BCD (10 in 2019) | serial:u16
//!    | [packages:u16 package:u16] | body | xor:u8 | 7e
//! ```
//!
//! `attributes` holds the body length (bits 0–9), encryption (10–12), the
//! sub-package flag (13) and the 2019 version flag (14). The checksum is the
//! XOR of every byte from the message id to the end of the body. Some
//! devices use `e7` as delimiter with a 7-byte terminal id.

/// Delimiter of standard frames.
pub(crate) const DELIMITER: u8 = 0x7e;
/// Delimiter of the alternative frames some devices send.
pub(crate) const DELIMITER_ALT: u8 = 0xe7;

/// Messages whose serial is a single byte.
pub(crate) fn short_serial(id: u16) -> bool {
    matches!(id, 0x5501 | 0x5502)
}

/// A parsed message header and where its body is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub delimiter: u8,
    pub id: u16,
    pub attributes: u16,
    pub version: Option<u8>,
    /// The terminal id bytes (BCD phone number, usually).
    pub terminal: &'a [u8],
    pub serial: u16,
    /// The body as sent (up to the checksum).
    pub body: &'a [u8],
    /// The body followed by the checksum and the end delimiter (what
    /// Traccar's decoder reads from, trailer included).
    pub body_and_trailer: &'a [u8],
    /// The checksum byte the frame carries.
    pub checksum: u8,
    /// The bytes the checksum covers.
    pub covered: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Reads the header of an unescaped binary frame (delimiters included).
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Frame<'a>, String> {
        let delimiter = *bytes.first().ok_or("empty frame")?;
        if delimiter != DELIMITER && delimiter != DELIMITER_ALT {
            return Err(format!("frame starts with {delimiter:#04x}, not 7e"));
        }
        let n = bytes.len();
        if n < 2 + 1 || bytes[n - 1] != delimiter {
            return Err("frame does not end with its delimiter".into());
        }
        let inner = &bytes[1..n - 1];
        let (covered, checksum) = match inner.split_last() {
            Some((&c, covered)) => (covered, c),
            None => return Err("frame without checksum".into()),
        };
        let get = |from: usize, len: usize| covered.get(from..from + len);
        let too_short = || format!("frame of {n} bytes is too short for its header");
        let id_bytes = get(0, 2).ok_or_else(too_short)?;
        let id = u16::from_be_bytes([id_bytes[0], id_bytes[1]]);
        let attr_bytes = get(2, 2).ok_or_else(too_short)?;
        let attributes = u16::from_be_bytes([attr_bytes[0], attr_bytes[1]]);
        let mut at = 4;
        let version = if attributes & 0x4000 != 0 {
            at += 1;
            Some(*covered.get(4).ok_or_else(too_short)?)
        } else {
            None
        };
        let terminal_len = match (version, delimiter) {
            (Some(_), _) => 10,
            (None, DELIMITER_ALT) => 7,
            (None, _) => 6,
        };
        let terminal = get(at, terminal_len).ok_or_else(too_short)?;
        at += terminal_len;
        let serial = if short_serial(id) {
            let s = *covered.get(at).ok_or_else(too_short)?;
            at += 1;
            u16::from(s)
        } else {
            let s = get(at, 2).ok_or_else(too_short)?;
            at += 2;
            u16::from_be_bytes([s[0], s[1]])
        };
        if attributes & 0x2000 != 0 && !short_serial(id) {
            get(at, 4).ok_or_else(too_short)?;
            at += 4;
        }
        let body = covered.get(at..).ok_or_else(too_short)?;
        let body_and_trailer = &bytes[1 + at..];
        Ok(Frame {
            delimiter,
            id,
            attributes,
            version,
            terminal,
            serial,
            body,
            body_and_trailer,
            checksum,
            covered,
        })
    }

    /// The XOR checksum of the covered bytes.
    pub(crate) fn computed_checksum(&self) -> u8 {
        xor(self.covered)
    }

    /// The device id: the terminal id's digits when it is BCD, else (some
    /// devices put a binary IMEI there) the IMEI from its first six bytes
    /// with its Luhn digit, as Traccar reads it.
    pub(crate) fn device_id(&self) -> Option<String> {
        let hex = hex::encode(self.terminal);
        if hex.bytes().all(|b| b.is_ascii_digit()) {
            return Some(hex);
        }
        let t = self.terminal;
        let imei = (u64::from(u16::from_be_bytes([t[0], t[1]])) << 32)
            | u64::from(u32::from_be_bytes([t[2], t[3], t[4], t[5]]));
        Some(format!("{imei}{}", luhn(imei)))
    }
}

/// XOR of all bytes.
pub(crate) fn xor(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

/// The Luhn check digit of `number`.
fn luhn(number: u64) -> u64 {
    let mut sum = 0;
    let mut n = number;
    let mut double = true;
    while n > 0 {
        let mut d = n % 10;
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
        n /= 10;
    }
    (10 - sum % 10) % 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header() {
        let b = hex::decode("7e0002000004304832546500b7ca7e").unwrap();
        let f = Frame::parse(&b).unwrap();
        assert_eq!((f.id, f.serial, f.body.len()), (0x0002, 0xb7, 0));
        assert_eq!(f.device_id().as_deref(), Some("043048325465"));
        assert_eq!(f.checksum, f.computed_checksum());
        // 2019 version: version byte and 10-byte terminal id.
        let b = hex::decode("7e0100405c010000086649607758216452180000000000000000000000000000004d4433303000000000000000000000000000000000000000000000000000383636343936303737353832313634020000000000000000000000000000000000000000000000000000000000000000ea7e").unwrap();
        let f = Frame::parse(&b).unwrap();
        assert_eq!(f.version, Some(1));
        assert_eq!(f.device_id().as_deref(), Some("00000866496077582164"));
        assert!(Frame::parse(b"").is_err());
        assert!(Frame::parse(&[0x7e, 0x7e]).is_err());
        assert!(Frame::parse(&[0x7e, 0, 2, 0x7e]).is_err());
    }

    #[test]
    fn luhn_digit() {
        assert_eq!(luhn(7992739871), 3);
        assert_eq!(luhn(35288707191199), 8);
    }
}
