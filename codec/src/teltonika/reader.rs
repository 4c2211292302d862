//! A bounds-checked big-endian cursor over untrusted bytes.
//!
//! Every read names the field it reads, so that a truncated frame says where
//! it ended; nothing here can panic or allocate from a length the device sent.

use crate::ParseError;

#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes. `n` comes from the device, so it is only trusted
    /// after it was compared with what is actually there.
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ParseError> {
        if n > self.remaining() {
            return Err(ParseError::Truncated(format!(
                "{what}: needs {n} byte(s), {} left",
                self.remaining()
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
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

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, ParseError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &str) -> Result<i32, ParseError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, ParseError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn f32(&mut self, what: &str) -> Result<f32, ParseError> {
        Ok(f32::from_be_bytes(self.array(what)?))
    }

    /// An unsigned big-endian integer of 1, 2, 4 or 8 bytes.
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

    #[test]
    fn reads_big_endian_and_reports_truncation() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03, 0xff, 0xfe]);
        assert_eq!(r.u16("a").unwrap(), 0x0102);
        assert_eq!(r.u8("b").unwrap(), 3);
        assert_eq!(r.i16("c").unwrap(), -2);
        assert!(r.is_empty());
        let err = r.u32("speed").unwrap_err();
        assert_eq!(
            err,
            ParseError::Truncated("speed: needs 4 byte(s), 0 left".into())
        );
    }

    #[test]
    fn take_never_trusts_a_huge_length() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(r.take(usize::MAX, "x").is_err());
        assert_eq!(r.take(2, "x").unwrap(), &[1, 2]);
        assert!(r.finish("frame").is_err());
        assert_eq!(r.uint(1, "y").unwrap(), 3);
        r.finish("frame").unwrap();
    }
}
