//! The envelope of a Meitrack message, shared by the framer, the session and
//! the parser.

/// One message: `$$`, flag, length, IMEI, command, data, `*XX`, `\r\n`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    pub flag: u8,
    pub imei: &'a str,
    pub command: &'a str,
    /// What follows `<command>,` up to the `*` before the checksum (may be
    /// binary).
    pub data: &'a [u8],
    /// The checksum the message carries, when it carries one.
    pub checksum: Option<u8>,
    /// The byte sum of everything before the checksum digits.
    pub computed: u8,
}

/// Byte sum mod 256 — the Meitrack checksum.
pub(crate) fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b))
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl<'a> Message<'a> {
    /// Splits a message, with or without its final `\r\n`. A message without
    /// a `*XX` at the end has `checksum: None`.
    pub(crate) fn parse(frame: &'a [u8]) -> Result<Message<'a>, String> {
        let body = frame.strip_suffix(b"\r\n").unwrap_or(frame);
        if body.len() < 4 || &body[..2] != b"$$" {
            return Err("message does not start with $$".into());
        }
        let flag = body[2];
        // The flag is any byte, `,` included: the length starts after it.
        let first = 3 + body[3..]
            .iter()
            .position(|&b| b == b',')
            .ok_or("no ',' after the length")?;
        let len = &body[3..first];
        if len.is_empty() || !len.iter().all(u8::is_ascii_digit) {
            return Err(format!(
                "length {:?} is not decimal",
                String::from_utf8_lossy(len)
            ));
        }
        let (content, checksum) = match body.len().checked_sub(3) {
            Some(star) if body[star] == b'*' => {
                let hi = hex_digit(body[star + 1]);
                let lo = hex_digit(body[star + 2]);
                match (hi, lo) {
                    (Some(h), Some(l)) => (&body[first + 1..star], Some((h << 4) | l)),
                    _ => (&body[first + 1..], None),
                }
            }
            _ => (&body[first + 1..], None),
        };
        let computed = match checksum {
            Some(_) => sum(&body[..body.len() - 2]),
            None => 0,
        };
        let imei_end = content
            .iter()
            .position(|&b| b == b',')
            .ok_or("no ',' after the IMEI")?;
        let imei = std::str::from_utf8(&content[..imei_end]).map_err(|_| "IMEI is not text")?;
        let rest = &content[imei_end + 1..];
        let cmd_len = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if cmd_len != 3 || (rest.len() > 3 && rest[3] != b',') {
            return Err("no 3-character command after the IMEI".into());
        }
        let command = std::str::from_utf8(&rest[..3]).map_err(|_| "command is not text")?;
        let data = rest.get(4..).unwrap_or(&[]);
        Ok(Message {
            flag,
            imei,
            command,
            data,
            checksum,
            computed,
        })
    }

    /// The IMEI, when it is 1 to 20 digits.
    pub(crate) fn device_id(&self) -> Option<String> {
        (!self.imei.is_empty()
            && self.imei.len() <= 20
            && self.imei.bytes().all(|b| b.is_ascii_digit()))
        .then(|| self.imei.to_owned())
    }

    /// `Err((received, computed))` when the checksum is missing or wrong.
    pub(crate) fn check(&self) -> Result<(), (u32, u32)> {
        match self.checksum {
            Some(c) if c == self.computed => Ok(()),
            Some(c) => Err((u32::from(c), u32::from(self.computed))),
            None => Err((0x100, u32::from(self.computed))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split() {
        let m = Message::parse(b"$$u28,864606044993987,D82,0*D6").unwrap();
        assert_eq!(
            (m.flag, m.imei, m.command, m.data, m.checksum),
            (b'u', "864606044993987", "D82", &b"0"[..], Some(0xd6))
        );
        assert!(m.check().is_ok());
        let m = Message::parse(b"$$z27,861451040910625,AAC,1*D3\r\n").unwrap();
        assert_eq!((m.command, m.data), ("AAC", &b"1"[..]));
        assert!(m.check().is_ok());
        assert_eq!(m.device_id().as_deref(), Some("861451040910625"));
        assert!(Message::parse(b"$$z27861451040910625").is_err());
        assert!(Message::parse(b"hello").is_err());
        assert!(Message::parse(b"$$z2x,1,AAA,*00").is_err());
        // Found by fuzzing: a `,` as the flag byte.
        assert!(Message::parse(b"$$,,1,AAA*00").is_err());
        let m = Message::parse(b"$$,9,1,AAA*00").unwrap();
        assert_eq!((m.flag, m.imei), (b',', "1"));
        let m = Message::parse(b"$$z9,1,AAA").unwrap();
        assert_eq!(m.checksum, None);
        assert!(m.check().is_err());
    }
}
