//! A bounds-checked big-endian cursor over one frame, so that no device input
//! can make the parser index out of range.

use crate::ParseError;

use super::frame::{STOP, TRAILER_LEN};

#[derive(Clone)]
pub(crate) struct Reader<'a> {
    /// The frame without its stop bytes: reads may run into the serial and
    /// CRC, as they do in Traccar for clones that send neither.
    data: &'a [u8],
    pos: usize,
    /// Where the serial number starts in a well-formed frame.
    content_end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over the whole `frame`, positioned at `start`.
    pub(crate) fn new(frame: &'a [u8], start: usize) -> Self {
        let data = &frame[..frame.len().saturating_sub(STOP.len())];
        Reader {
            data,
            pos: start.min(data.len()),
            content_end: frame.len().saturating_sub(TRAILER_LEN),
        }
    }

    /// A reader over a sub-block (a module's value): all of it is content.
    pub(crate) fn over(block: &'a [u8]) -> Self {
        Reader {
            data: block,
            pos: 0,
            content_end: block.len(),
        }
    }

    /// Content bytes left before the serial number (Traccar's `readableBytes() - 6`).
    pub(crate) fn remaining(&self) -> usize {
        self.content_end.saturating_sub(self.pos)
    }

    /// Bytes left before the stop bytes, serial and CRC included.
    pub(crate) fn available(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| {
                ParseError::Truncated(format!(
                    "needs {n} more byte(s) at offset {}, the frame has {} before its stop bytes",
                    self.pos,
                    self.data.len()
                ))
            })?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// The content up to the serial number, consumed.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let end = self.content_end.max(self.pos).min(self.data.len());
        let slice = &self.data[self.pos..end];
        self.pos = end;
        slice
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), ParseError> {
        self.bytes(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn peek_u8(&self) -> Result<u8, ParseError> {
        self.data
            .get(self.pos)
            .copied()
            .ok_or_else(|| ParseError::Truncated(format!("needs a byte at offset {}", self.pos)))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i8(&mut self) -> Result<i8, ParseError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ParseError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16, ParseError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u24(&mut self) -> Result<u32, ParseError> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32, ParseError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ParseError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, ParseError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Hex text of the next `n` bytes, as Traccar writes ids.
    pub(crate) fn hex(&mut self, n: usize) -> Result<String, ParseError> {
        self.bytes(n).map(hex::encode)
    }

    /// The next `n` bytes as text (ASCII; anything else replaced).
    pub(crate) fn text(&mut self, n: usize) -> Result<String, ParseError> {
        self.bytes(n)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_bounds() {
        // 78 78 | 07 | 99 | 01 02 03 | 00 01 | ab cd | 0d 0a
        let frame = hex::decode("7878079901020300 01abcd0d0a".replace(' ', "")).unwrap();
        let mut r = Reader::new(&frame, 4);
        assert_eq!(r.remaining(), 3);
        assert_eq!(r.u16().unwrap(), 0x0102);
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.u8().unwrap(), 3);
        assert_eq!(r.remaining(), 0);
        // Into the serial and CRC, never into the stop bytes.
        assert_eq!(r.u32().unwrap(), 0x0001abcd);
        assert!(matches!(r.u8(), Err(ParseError::Truncated(_))));
        assert_eq!(r.available(), 0);
    }

    #[test]
    fn rest_stops_at_the_serial() {
        let frame = hex::decode("787807990102030001abcd0d0a").unwrap();
        let mut r = Reader::new(&frame, 4);
        assert_eq!(r.rest(), &[1, 2, 3]);
        assert_eq!(r.rest(), &[] as &[u8]);
    }

    #[test]
    fn tiny_frames_do_not_panic() {
        let mut r = Reader::new(&[0x78], 10);
        assert!(r.u8().is_err());
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.rest(), &[] as &[u8]);
    }
}
