//! The shapes of GPS103 messages, so that the framer, the session and the
//! parser agree on them.

use crate::text::digits;

/// Longest message Traccar takes for a login (`##,imei:<imei>,A;`).
const LOGIN_MAX: usize = 30;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    /// `##,imei:<imei>,A` (any short message with `imei:` in it, as Traccar
    /// reads it). `imei` is `None` when it is not decimal.
    Login { imei: Option<&'a str> },
    /// `<imei>` alone.
    Heartbeat { imei: &'a str },
    /// `[<digits>]imei:<imei>,<fields>…`.
    Data(Data<'a>),
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Data<'a> {
    pub imei: &'a str,
    /// The fields after the IMEI, without the final delimiter.
    pub fields: Vec<&'a str>,
    /// The message ended with `*` (the alternative layout).
    pub alternative: bool,
    /// The message came after a heartbeat in the same frame (`<imei>imei:…`).
    pub after_heartbeat: bool,
}

impl<'a> Message<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Message<'a>, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "message is not ASCII".to_owned())?;
        let text = text.trim_matches(|c: char| c == '\r' || c == '\n' || c == ' ' || c == '\0');
        if text.is_empty() {
            return Err("empty message".into());
        }
        let alternative = text.ends_with('*');
        let body = text
            .strip_suffix(';')
            .or_else(|| text.strip_suffix('*'))
            .unwrap_or(text);
        if text.contains("imei:") && text.len() <= LOGIN_MAX {
            let imei = body
                .split_once("imei:")
                .and_then(|(_, rest)| rest.split(',').next())
                .filter(|imei| digits(imei));
            return Ok(Message::Login { imei });
        }
        let mut after_heartbeat = false;
        let rest = if body.starts_with(|c: char| c.is_ascii_digit()) {
            match body.find("imei:") {
                None if digits(body) => return Ok(Message::Heartbeat { imei: body }),
                None => return Err(format!("not a GPS103 message: {:?}", shorten(body))),
                Some(at) => {
                    after_heartbeat = true;
                    &body[at..]
                }
            }
        } else {
            body
        };
        let rest = rest
            .strip_prefix("imei:")
            .ok_or_else(|| format!("not a GPS103 message: {:?}", shorten(body)))?;
        let mut fields = rest.split(',');
        let imei = fields.next().unwrap_or_default();
        if !digits(imei) {
            return Err(format!("IMEI {:?} is not decimal", shorten(imei)));
        }
        Ok(Message::Data(Data {
            imei,
            fields: fields.collect(),
            alternative,
            after_heartbeat,
        }))
    }

    pub(crate) fn imei(&self) -> Option<&'a str> {
        match self {
            Message::Login { imei } => *imei,
            Message::Heartbeat { imei } => Some(imei),
            Message::Data(d) => Some(d.imei),
        }
    }
}

fn shorten(s: &str) -> &str {
    let end = s.char_indices().nth(40).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(
            Message::parse(b"##,imei:359586015829802,A;").unwrap(),
            Message::Login {
                imei: Some("359586015829802")
            }
        );
        assert_eq!(
            Message::parse(b"359586015829802;").unwrap(),
            Message::Heartbeat {
                imei: "359586015829802"
            }
        );
        let Message::Data(d) =
            Message::parse(b"imei:359586015829802,tracker,0809231929,,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,;\r\n")
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(d.imei, "359586015829802");
        assert_eq!(d.fields[0], "tracker");
        assert_eq!(d.fields.last(), Some(&""));
        assert!(!d.alternative);
        assert!(matches!(
            Message::parse(b"imei:861359038609986,Equipo 1,---,------,----,214734,241018,26,1,-33.42317,-70.61930,067,229,0674,1.00,08,0,1,---,*"),
            Ok(Message::Data(Data { alternative: true, .. }))
        ));
        assert!(Message::parse(b"hello").is_err());
        assert!(Message::parse(b"").is_err());
        assert!(Message::parse(b"imei:12a4,tracker,1,2,3,4,5,6,7,8,9;").is_err());
    }
}
