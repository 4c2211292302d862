//! A bounds-checked cursor over untrusted bytes, shared by the binary
//! protocols. Integers are big-endian unless the name ends in `_le`.
//!
//! Every fallible read names the field it reads, so that a truncated frame
//! says where it ended (the text an operator reads on a dead-lettered
//! message): `"<field>: needs <n> byte(s) at offset <pos>, <left> left"`.
//! Nothing here can panic, or allocate from a length the device sent before
//! that length was compared with what is actually there.

use crate::ParseError;

#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    /// Never past `data.len()`.
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Bytes left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The offset of the next read.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves to `pos` (clamped to the end).
    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.data.len());
    }

    /// Bytes left before the last `tail` ones (none when fewer are left):
    /// for frames whose trailer (a serial, a CRC) is not part of the content
    /// but may still be read into by devices that send none.
    pub(crate) fn remaining_before_last(&self, tail: usize) -> usize {
        self.remaining().saturating_sub(tail)
    }

    /// The next byte, not consumed; `None` at the end.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// The next byte, not consumed, where the layout needs one to decide.
    pub(crate) fn peek_u8(&self, what: &str) -> Result<u8, ParseError> {
        self.peek().ok_or_else(|| self.truncated(1, what))
    }

    fn truncated(&self, n: usize, what: &str) -> ParseError {
        ParseError::Truncated(format!(
            "{what}: needs {n} byte(s) at offset {}, {} left",
            self.pos,
            self.remaining()
        ))
    }

    /// The next `n` bytes. `n` comes from the device, so it is only trusted
    /// after it was compared with what is actually there.
    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], ParseError> {
        if n > self.remaining() {
            return Err(self.truncated(n, what));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn skip(&mut self, n: usize, what: &str) -> Result<(), ParseError> {
        self.bytes(n, what).map(|_| ())
    }

    /// Everything left, consumed.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.data[self.pos..];
        self.pos = self.data.len();
        out
    }

    /// Everything left but the last `tail` bytes, consumed (see
    /// [`Reader::remaining_before_last`]).
    pub(crate) fn rest_before_last(&mut self, tail: usize) -> &'a [u8] {
        let n = self.remaining_before_last(tail);
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        out
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, ParseError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn i8(&mut self, what: &str) -> Result<i8, ParseError> {
        Ok(i8::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i16(&mut self, what: &str) -> Result<i16, ParseError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u16_le(&mut self, what: &str) -> Result<u16, ParseError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u24(&mut self, what: &str) -> Result<u32, ParseError> {
        let [a, b, c] = self.array(what)?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32_le(&mut self, what: &str) -> Result<u32, ParseError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &str) -> Result<i32, ParseError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, ParseError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn f32(&mut self, what: &str) -> Result<f32, ParseError> {
        Ok(f32::from_be_bytes(self.array(what)?))
    }

    /// An unsigned big-endian integer of 1, 2, 4 or 8 bytes; any other
    /// width is [`ParseError::Invalid`].
    pub(crate) fn uint(&mut self, width: usize, what: &str) -> Result<u64, ParseError> {
        Ok(match width {
            1 => u64::from(self.u8(what)?),
            2 => u64::from(self.u16(what)?),
            4 => u64::from(self.u32(what)?),
            8 => self.u64(what)?,
            _ => {
                return Err(ParseError::Invalid(format!(
                    "{what}: no {width}-byte integers"
                )))
            }
        })
    }

    /// `n` bytes as text, one character per byte (Latin-1, so that ASCII
    /// reads as itself and nothing is lost).
    pub(crate) fn ascii(&mut self, n: usize, what: &str) -> Result<String, ParseError> {
        Ok(self
            .bytes(n, what)?
            .iter()
            .map(|&b| char::from(b))
            .collect())
    }

    /// `n` bytes as UTF-8, anything invalid replaced (for devices whose text
    /// fields are meant as UTF-8 rather than one character per byte).
    pub(crate) fn utf8_lossy(&mut self, n: usize, what: &str) -> Result<String, ParseError> {
        Ok(String::from_utf8_lossy(self.bytes(n, what)?).into_owned())
    }

    /// `n` bytes as lower-case hex text, as ids are printed.
    pub(crate) fn hex(&mut self, n: usize, what: &str) -> Result<String, ParseError> {
        Ok(hex::encode(self.bytes(n, what)?))
    }

    /// Fails unless every byte was read: a record layout that does not end
    /// exactly where the frame does was read with the wrong layout.
    pub(crate) fn finish(&self, what: &str) -> Result<(), ParseError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(ParseError::Invalid(format!(
                "{what}: {n} unexpected trailing byte(s)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truncated(text: &str) -> ParseError {
        ParseError::Truncated(text.into())
    }

    #[test]
    fn reads_big_endian_integers() {
        let data = [
            0x01, // u8
            0xff, // i8
            0x01, 0x02, // u16
            0xff, 0xfe, // i16
            0x01, 0x02, 0x03, // u24
            0x01, 0x02, 0x03, 0x04, // u32
            0xff, 0xff, 0xff, 0xfd, // i32
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // u64
            0x3f, 0xc0, 0x00, 0x00, // f32
        ];
        let mut r = Reader::new(&data);
        assert_eq!(r.u8("a").unwrap(), 1);
        assert_eq!(r.i8("b").unwrap(), -1);
        assert_eq!(r.u16("c").unwrap(), 0x0102);
        assert_eq!(r.i16("d").unwrap(), -2);
        assert_eq!(r.u24("e").unwrap(), 0x01_0203);
        assert_eq!(r.u32("f").unwrap(), 0x0102_0304);
        assert_eq!(r.i32("h").unwrap(), -3);
        assert_eq!(r.u64("i").unwrap(), 0x0102_0304_0506_0708);
        assert_eq!(r.f32("k").unwrap(), 1.5);
        assert!(r.is_empty());
        r.finish("frame").unwrap();
    }

    #[test]
    fn reads_little_endian_and_wide_integers() {
        let data = [
            0x01, 0x02, // u16_le
            0x01, 0x02, 0x03, 0x04, // u32_le
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, // i64
        ];
        let mut r = Reader::new(&data);
        assert_eq!(r.u16_le("a").unwrap(), 0x0201);
        assert_eq!(r.u32_le("b").unwrap(), 0x0403_0201);
        assert_eq!(r.i64("c").unwrap(), -2);
        assert!(r.is_empty());
    }

    #[test]
    fn peek_reads_without_consuming() {
        let mut r = Reader::new(&[0xfe, 0x01]);
        assert_eq!(r.peek(), Some(0xfe));
        assert_eq!(r.peek_u8("id").unwrap(), 0xfe);
        assert_eq!(r.pos(), 0);
        r.skip(2, "id").unwrap();
        assert_eq!(r.peek(), None);
        assert_eq!(
            r.peek_u8("id").unwrap_err(),
            truncated("id: needs 1 byte(s) at offset 2, 0 left")
        );
    }

    #[test]
    fn rest_before_last_keeps_the_trailer() {
        // content 01 02 03, then a 4-byte trailer (serial and CRC).
        let data = [1, 2, 3, 0xaa, 0xbb, 0xcc, 0xdd];
        let mut r = Reader::new(&data);
        assert_eq!(r.remaining_before_last(4), 3);
        r.u8("a").unwrap();
        assert_eq!(r.remaining_before_last(4), 2);
        assert_eq!(r.rest_before_last(4), &[2, 3]);
        assert_eq!(r.remaining_before_last(4), 0);
        assert_eq!(r.rest_before_last(4), &[] as &[u8]);
        // The trailer is still there to be read.
        assert_eq!(r.u32("serial and CRC").unwrap(), 0xaabb_ccdd);
        // Inside the trailer, or with a trailer longer than the input, there
        // is no content left, and nothing is consumed.
        let mut r = Reader::new(&data);
        r.seek(5);
        assert_eq!(r.remaining_before_last(4), 0);
        assert_eq!(r.rest_before_last(4), &[] as &[u8]);
        assert_eq!(r.pos(), 5);
        let mut r = Reader::new(&data[..2]);
        assert_eq!(r.rest_before_last(4), &[] as &[u8]);
        assert_eq!(r.rest_before_last(0), &[1, 2]);
    }

    #[test]
    fn hex_and_utf8_text() {
        let mut r = Reader::new(&[0x89, 0x01, 0xab, b'o', 0xc3, 0xa9, 0xff]);
        assert_eq!(r.hex(3, "ICCID").unwrap(), "8901ab");
        // Valid UTF-8 is kept, an invalid byte is replaced.
        assert_eq!(r.utf8_lossy(4, "text").unwrap(), "o\u{e9}\u{fffd}");
        assert!(r.is_empty());
        assert!(matches!(r.hex(1, "x"), Err(ParseError::Truncated(_))));
        assert!(matches!(
            r.utf8_lossy(1, "x"),
            Err(ParseError::Truncated(_))
        ));
    }

    #[test]
    fn uint_reads_every_width_and_refuses_others() {
        let mut r = Reader::new(&[1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 9]);
        assert_eq!(r.uint(1, "w").unwrap(), 1);
        assert_eq!(r.uint(2, "w").unwrap(), 2);
        assert_eq!(r.uint(4, "w").unwrap(), 3);
        assert_eq!(r.uint(8, "w").unwrap(), 4);
        assert_eq!(
            r.uint(3, "IO value").unwrap_err(),
            ParseError::Invalid("IO value: no 3-byte integers".into())
        );
        // Refusing the width consumed nothing.
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.uint(0, "w").map_err(|e| e.reason()), Err("invalid"));
        assert!(matches!(r.uint(2, "w"), Err(ParseError::Truncated(_))));
    }

    #[test]
    fn truncation_names_the_field_the_offset_and_the_counts() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03]);
        assert_eq!(r.u16("a").unwrap(), 0x0102);
        assert_eq!(
            r.u32("speed").unwrap_err(),
            truncated("speed: needs 4 byte(s) at offset 2, 1 left")
        );
        // A failed read consumes nothing.
        assert_eq!(r.pos(), 2);
        assert_eq!(r.u8("b").unwrap(), 3);
        assert_eq!(
            r.u8("speed").unwrap_err(),
            truncated("speed: needs 1 byte(s) at offset 3, 0 left")
        );
        assert_eq!(
            r.bytes(5, "IMEI").unwrap_err(),
            truncated("IMEI: needs 5 byte(s) at offset 3, 0 left")
        );
    }

    #[test]
    fn every_fallible_read_fails_on_empty_input_with_its_label() {
        let empty: &[u8] = &[];
        let mut r = Reader::new(empty);
        let errors = [
            r.u8("x").unwrap_err(),
            r.i8("x").unwrap_err(),
            r.u16("x").unwrap_err(),
            r.u16_le("x").unwrap_err(),
            r.i16("x").unwrap_err(),
            r.u24("x").unwrap_err(),
            r.u32("x").unwrap_err(),
            r.u32_le("x").unwrap_err(),
            r.i32("x").unwrap_err(),
            r.u64("x").unwrap_err(),
            r.i64("x").unwrap_err(),
            r.peek_u8("x").unwrap_err(),
            r.f32("x").unwrap_err(),
            r.uint(8, "x").unwrap_err(),
            r.bytes(1, "x").unwrap_err(),
            r.skip(1, "x").unwrap_err(),
            r.ascii(1, "x").unwrap_err(),
            r.utf8_lossy(1, "x").unwrap_err(),
            r.hex(1, "x").unwrap_err(),
        ];
        for e in errors {
            match e {
                ParseError::Truncated(text) => {
                    assert!(text.starts_with("x: needs "), "{text}");
                    assert!(text.ends_with(" at offset 0, 0 left"), "{text}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(r.bytes(0, "x").unwrap(), empty);
        assert_eq!(r.ascii(0, "x").unwrap(), "");
        assert_eq!(r.rest(), empty);
        r.finish("x").unwrap();
    }

    #[test]
    fn a_huge_length_is_never_trusted() {
        let mut r = Reader::new(&[1, 2, 3]);
        r.u8("a").unwrap();
        for n in [usize::MAX, usize::MAX - 1, usize::MAX / 2, 1 << 40, 3] {
            assert_eq!(
                r.bytes(n, "value").unwrap_err(),
                truncated(&format!("value: needs {n} byte(s) at offset 1, 2 left"))
            );
            assert!(r.skip(n, "value").is_err());
            assert!(r.ascii(n, "value").is_err());
        }
        // Nothing was consumed by the refused reads.
        assert_eq!(r.bytes(2, "value").unwrap(), &[2, 3]);
        // Seeking far is clamped, and reading there fails cleanly.
        r.seek(usize::MAX);
        assert_eq!(r.pos(), 3);
        assert!(r.bytes(usize::MAX, "value").is_err());
    }

    #[test]
    fn bytes_skip_rest_seek_and_pos() {
        let mut r = Reader::new(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(r.bytes(2, "a").unwrap(), &[1, 2]);
        assert_eq!(r.pos(), 2);
        r.skip(1, "b").unwrap();
        assert_eq!(r.clone().u8("c").unwrap(), 4);
        assert_eq!(r.pos(), 3, "a clone's read moves only the clone");
        assert_eq!(r.remaining(), 3);
        assert!(!r.is_empty());
        assert_eq!(
            r.finish("frame").unwrap_err(),
            ParseError::Invalid("frame: 3 unexpected trailing byte(s)".into())
        );
        assert_eq!(r.rest(), &[4, 5, 6]);
        assert!(r.is_empty());
        assert_eq!(r.rest(), &[] as &[u8]);
        r.seek(1);
        assert_eq!(r.u8("d").unwrap(), 2);
        r.seek(6);
        assert!(r.is_empty());
        // A clone reads on its own.
        r.seek(0);
        let mut copy = r.clone();
        assert_eq!(copy.u16("e").unwrap(), 0x0102);
        assert_eq!(r.pos(), 0);
    }

    #[test]
    fn text_reads() {
        // One character per byte, as the devices' Latin-1 text is read.
        let mut r = Reader::new(b"AB\xe9\xff");
        assert_eq!(r.ascii(4, "a").unwrap(), "AB\u{e9}\u{ff}");
        assert!(r.is_empty());
    }

    #[test]
    fn tiny_inputs_never_panic() {
        for len in 0..4usize {
            let data: Vec<u8> = (0..len as u8).collect();
            for start in 0..6 {
                let mut r = Reader::new(&data);
                r.seek(start);
                let _ = r.u8("x");
                let _ = r.i8("x");
                let _ = r.u16("x");
                let _ = r.i16("x");
                let _ = r.u24("x");
                let _ = r.u32("x");
                let _ = r.i32("x");
                let _ = r.u64("x");
                let _ = r.i64("x");
                let _ = r.u16_le("x");
                let _ = r.u32_le("x");
                let _ = r.peek_u8("x");
                let _ = r.f32("x");
                for width in 0..10 {
                    let _ = r.uint(width, "x");
                }
                for n in [0, 1, 2, 5, usize::MAX] {
                    let _ = r.bytes(n, "x");
                    let _ = r.skip(n, "x");
                    let _ = r.ascii(n, "x");
                    let _ = r.utf8_lossy(n, "x");
                    let _ = r.hex(n, "x");
                    let _ = r.remaining_before_last(n);
                    let _ = r.clone().rest_before_last(n);
                }
                let _ = r.finish("x");
                assert!(r.pos() <= data.len());
                assert_eq!(r.remaining(), data.len() - r.pos());
                let _ = r.rest();
                assert!(r.is_empty());
            }
        }
    }
}
