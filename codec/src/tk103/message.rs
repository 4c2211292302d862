//! The shape of a TK103 message, so that the framer, the session and the
//! parser agree on it.

/// One message: `(` id command body `)`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    pub id: &'a str,
    pub command: &'a str,
    /// What follows the command (without a leading `,` and the final `)`).
    pub body: &'a str,
    /// The comma form (`(id,CMD,…)`), whose dates are `ddmmyy`.
    pub comma: bool,
}

/// Two capital letters and two digits or capitals (`BR00`, `DW3B`, `ZC20`).
pub(crate) fn is_command(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 4
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
}

impl<'a> Message<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Message<'a>, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "message is not text".to_owned())?;
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
        let body = text
            .strip_prefix('(')
            .ok_or("message does not start with '('")?;
        let body = body.strip_suffix(')').unwrap_or(body);
        // The comma form: a short id, a comma, the command, a comma or the end.
        if let Some(c) = body.find(',').filter(|&c| c > 0 && c <= 20) {
            let id = &body[..c];
            if let Some(command) = body.get(c + 1..c + 5).filter(|s| is_command(s)) {
                let rest = &body[c + 5..];
                if (rest.is_empty() || rest.starts_with(','))
                    && id.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Ok(Message {
                        id,
                        command,
                        body: rest.strip_prefix(',').unwrap_or(rest),
                        comma: true,
                    });
                }
            }
        }
        for id_len in [12, 11] {
            let Some(command) = body.get(id_len..id_len + 4).filter(|s| is_command(s)) else {
                continue;
            };
            let id = &body[..id_len];
            if id.contains(',') {
                continue;
            }
            let rest = &body[id_len + 4..];
            return Ok(Message {
                id,
                command,
                body: rest.strip_prefix(',').unwrap_or(rest),
                comma: false,
            });
        }
        Err("no command after the device id".into())
    }

    /// The id, when it is printable and not blank.
    pub(crate) fn device_id(&self) -> Option<String> {
        let id = self.id.trim();
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic())).then(|| id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Message<'_> {
        Message::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn forms() {
        let a = m("(088047365460BR00151024A2555.3531S)");
        assert_eq!(
            (a.id, a.command, a.body, a.comma),
            ("088047365460", "BR00", "151024A2555.3531S", false)
        );
        let b = m("(352606090042050,BP05,240414,A)");
        assert_eq!(
            (b.id, b.command, b.body, b.comma),
            ("352606090042050", "BP05", "240414,A", true)
        );
        let c = m("(01602009983BR00160830V1855.7022S)");
        assert_eq!((c.id, c.command), ("01602009983", "BR00"));
        let d = m("(BALLESTEROS3BR00190408A)");
        assert_eq!(d.id, "BALLESTEROS3");
        let e = m("(027028258309BQ86,0,05550c21b1,161117005322,01000001)");
        assert_eq!(
            (e.id, e.command, e.body),
            ("027028258309", "BQ86", "0,05550c21b1,161117005322,01000001")
        );
        let f = m("(013632651491,ZC20,180716,144222,6,392,65535,255)");
        assert_eq!((f.command, f.comma), ("ZC20", true));
        assert!(Message::parse(b"(hello)").is_err());
        assert!(Message::parse(b"hello").is_err());
        assert!(Message::parse(b"").is_err());
    }
}
