//! A bounds-checked big-endian cursor, so that no device input can make the
//! parser index out of range.

use crate::ParseError;

#[derive(Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Moves to `pos` (clamped to the end).
    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos.min(self.data.len());
    }

    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8], ParseError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                ParseError::Truncated(format!("{what}: {n} bytes wanted at {}", self.pos))
            })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn skip(&mut self, n: usize, what: &str) -> Result<(), ParseError> {
        self.bytes(n, what).map(|_| ())
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, ParseError> {
        Ok(self.bytes(1, what)?[0])
    }

    pub(crate) fn i8(&mut self, what: &str) -> Result<i8, ParseError> {
        Ok(self.u8(what)? as i8)
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, ParseError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i16(&mut self, what: &str) -> Result<i16, ParseError> {
        Ok(self.u16(what)? as i16)
    }

    pub(crate) fn u24(&mut self, what: &str) -> Result<u32, ParseError> {
        let b = self.bytes(3, what)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, ParseError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
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

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.data[self.pos..];
        self.pos = self.data.len();
        out
    }
}
