//! The shapes of H02 messages, so that the framer, the session and the
//! parser agree on them.
//!
//! ```text
//! text:   *HQ,<id>,<type>,<field>,…#            (maker code HQ, TH, hq, …)
//! binary: $ id(5 BCD) hhmmss ddmmyy lat(4) battery lon(4½) flags(½)
//!         speed(1½) course(1½) status(4) …      (32 bytes, 45 on some firmwares)
//! ```

use crate::text::digits;

/// Size of the common binary message.
pub(crate) const BINARY_SHORT: usize = 32;
/// Size of the binary message of firmwares that append 13 bytes of extra data.
pub(crate) const BINARY_LONG: usize = 45;

/// One message as the framer cut it.
#[derive(Debug)]
pub(crate) enum Message<'a> {
    Text(Text<'a>),
    /// A `$` binary position (at least [`BINARY_SHORT`] bytes).
    Binary(&'a [u8]),
    /// An `X` message: 32 bytes of unknown meaning (Traccar ignores them too).
    Other,
}

/// A text message, split on `,`.
#[derive(Debug)]
pub(crate) struct Text<'a> {
    /// The message up to the end of its type (`*HQ,123,V0`), which
    /// heartbeats are answered with.
    pub head: &'a str,
    pub id: &'a str,
    pub kind: &'a str,
    /// The fields after the type, without the final `#`.
    pub fields: Vec<&'a str>,
}

impl<'a> Message<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Message<'a>, String> {
        match bytes.first() {
            Some(b'*') => Text::parse(bytes).map(Message::Text),
            Some(b'$') if bytes.len() >= BINARY_SHORT => Ok(Message::Binary(bytes)),
            Some(b'$') => Err(format!(
                "binary message of {} bytes, expected {BINARY_SHORT}",
                bytes.len()
            )),
            Some(b'X') => Ok(Message::Other),
            _ => Err("not an H02 message (expected '*', '$' or 'X')".into()),
        }
    }

    /// The device id the message carries: decimal for text messages, the
    /// 10 BCD digits of binary ones. `None` when it is missing or not digits.
    pub(crate) fn device_id(&self) -> Option<String> {
        match self {
            Message::Text(t) if digits(t.id) && t.id.len() <= 20 => Some(t.id.to_owned()),
            Message::Binary(b) => {
                let id = hex::encode(&b[1..6]);
                digits(&id).then_some(id)
            }
            _ => None,
        }
    }
}

impl<'a> Text<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Text<'a>, String> {
        let sentence = std::str::from_utf8(bytes)
            .map_err(|_| "text message is not ASCII".to_owned())?
            .trim_end_matches(['\r', '\n', ' ', '\0']);
        let body = sentence
            .strip_prefix('*')
            .and_then(|s| s.strip_suffix('#'))
            .ok_or("text message not enclosed in '*' … '#'")?;
        let mut parts = body.split(',');
        let _maker = parts.next().unwrap_or_default();
        let id = parts.next().ok_or("text message without a device id")?;
        let kind = parts.next().ok_or("text message without a type")?;
        let head_len = 1 + body.len() - parts.clone().map(|p| p.len() + 1).sum::<usize>();
        let head = &sentence[..head_len.min(sentence.len())];
        Ok(Text {
            head,
            id,
            kind,
            fields: parts.collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_parts() {
        let Message::Text(t) = Message::parse(b"*HQ,123,V1,1,2,#\r\n").unwrap() else {
            panic!()
        };
        assert_eq!((t.id, t.kind, t.head), ("123", "V1", "*HQ,123,V1"));
        assert_eq!(t.fields, ["1", "2", ""]);
        let Message::Text(t) = Message::parse(b"*HQ,123,HTBT#").unwrap() else {
            panic!()
        };
        assert_eq!((t.head, t.fields.len()), ("*HQ,123,HTBT", 0));
        assert!(Message::parse(b"*HQ,123#").is_err());
        assert!(Message::parse(b"*HQ,123,V1").is_err());
        assert!(Message::parse(b"$12").is_err());
        assert!(Message::parse(b"").is_err());
    }

    #[test]
    fn ids() {
        let id = |b: &[u8]| Message::parse(b).unwrap().device_id();
        assert_eq!(id(b"*HQ,4210051415,V1#").as_deref(), Some("4210051415"));
        assert_eq!(id(b"*HQ,,V1#"), None);
        let bin = hex::decode("2441060116601245431311165035313006004318210e000000fffffbffff0024")
            .unwrap();
        assert_eq!(id(&bin).as_deref(), Some("4106011660"));
    }
}
