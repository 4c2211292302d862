//! What the framer, session and parser share: the fields of a message and
//! where the device id is.

/// Whether a message is binary (a type byte, then a 16-bit length whose
/// high byte is zero).
pub(crate) fn is_binary(frame: &[u8]) -> bool {
    frame.len() >= 2 && frame[1] == 0
}

/// The text fields, split on `;` (binary bytes in a field become U+FFFD).
pub(crate) fn fields(frame: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(frame);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    text.split(';').map(str::to_owned).collect()
}

/// A plausible device id: 1 to 20 letters and digits.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The device id of a message: the hex of bytes 3–7 of a binary message;
/// otherwise the field after the header (`ST910;<type>;<id>` and
/// `…CMD;Res;<id>` have one more field before it).
pub(crate) fn device_id(frame: &[u8]) -> Option<String> {
    if is_binary(frame) {
        return frame.get(3..8).map(hex::encode);
    }
    let f = fields(frame);
    let header = f.first()?;
    let at = if header.starts_with("ST9") || header.ends_with("CMD") {
        2
    } else {
        1
    };
    f.get(at).filter(|id| valid_id(id)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(device_id(b"SA200ALV;317652").as_deref(), Some("317652"));
        assert_eq!(
            device_id(b"ST910;Alert;123456;410;20141018;18:30:12\r").as_deref(),
            Some("123456")
        );
        assert_eq!(
            device_id(b"ST300CMD;Res;511848119;315;PresetA").as_deref(),
            Some("511848119")
        );
        assert_eq!(
            device_id(&hex::decode("0200321051134087").unwrap()).as_deref(),
            Some("1051134087")
        );
        assert_eq!(device_id(b"-Error"), None);
        assert_eq!(device_id(b"STT;a b;1"), None);
    }
}
