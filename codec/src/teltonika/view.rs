//! A zero-copy, allocation-free view of an AVL packet of Codec 8, 8 Extended
//! or 16: typed access to every record and IO element, straight from the
//! frame's bytes, without names, units or a [`Position`](crate::Position).
//!
//! [`AvlFrameView::parse`] validates a complete TCP frame up front —
//! preamble, data length, CRC-16/IBM, codec id, the two record counts, and
//! that every record and IO element fits the data field exactly (the same
//! content rules, in the same order and with the same errors, as
//! [`parse`](super::parse)) — so the iterators it hands out never fail.
//! [`AvlFrameView::from_data`] does the same for a bare data field (codec
//! id … second record count), as a UDP packet or an already-checked stored
//! frame carries it, without envelope or CRC.
//!
//! ```
//! use fleetbus_codec::teltonika::view::{AvlFrameView, IoValue};
//!
//! // The first Codec 8 example of Teltonika's documentation.
//! let frame = hex::decode("000000000000003608010000016b40d8ea30010000000000000000000000000000000105021503010101425e0f01f10000601a014e0000000000000000010000c7cf").unwrap();
//! let view = AvlFrameView::parse(&frame).unwrap();
//! let record = view.records().next().unwrap();
//! assert_eq!(record.timestamp_ms(), 1_560_161_086_000);
//! let power = record.io().find(|e| e.id == 66).unwrap();
//! assert_eq!(power.value, IoValue::Int { width: 2, raw: 24_079 });
//! ```

use chrono::{DateTime, Utc};

use crate::read::Reader;
use crate::ParseError;

use super::avl::time_from_millis;
use super::codec::{CODEC_12, CODEC_13, CODEC_16, CODEC_8, CODEC_8E, GH3000};
use super::envelope::{check_crc, MIN_DATA_LEN, TCP_OVERHEAD};

/// The latest timestamp, in ms since the epoch, a record may carry (the
/// latest instant `chrono` represents). Every timestamp from 0 to this one
/// converts, so checking the bound is the same as converting.
const MAX_TIMESTAMP_MS: u64 = DateTime::<Utc>::MAX_UTC.timestamp_millis() as u64;

/// Bytes of a record before its event IO id: timestamp (8), priority (1),
/// longitude (4), latitude (4), altitude (2), angle (2), satellites (1),
/// speed (2).
const FIX_LEN: usize = 24;

/// How the records of one codec are laid out (see the table in `avl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    wide_ids: bool,
    wide_counts: bool,
    generation_type: bool,
    variable_group: bool,
    /// The group of 16-byte values some firmware sends after the 8-byte
    /// group, detected by the records not fitting the packet without it.
    sixteen_byte_group: bool,
}

impl Layout {
    fn of(codec: u8, sixteen_byte_group: bool) -> Self {
        Layout {
            wide_ids: matches!(codec, CODEC_8E | CODEC_16),
            wide_counts: codec == CODEC_8E,
            generation_type: codec == CODEC_16,
            variable_group: codec == CODEC_8E,
            sixteen_byte_group,
        }
    }

    fn id_len(self) -> usize {
        if self.wide_ids {
            2
        } else {
            1
        }
    }

    fn count_len(self) -> usize {
        if self.wide_counts {
            2
        } else {
            1
        }
    }

    /// Offset of the total IO count in a record.
    fn io_offset(self) -> usize {
        FIX_LEN + self.id_len() + usize::from(self.generation_type)
    }

    // Checked reads, for validation: the same fields, names and order as the
    // `Position` parser always read, so errors are the same too.

    fn count(self, r: &mut Reader, what: &str) -> Result<u16, ParseError> {
        if self.wide_counts {
            r.u16(what)
        } else {
            r.u8(what).map(u16::from)
        }
    }

    fn id(self, r: &mut Reader) -> Result<u16, ParseError> {
        if self.wide_ids {
            r.u16("IO id")
        } else {
            r.u8("IO id").map(u16::from)
        }
    }
}

/// Whether `count` records of `layout` fill `body` exactly, checked a group
/// at a time: the fast path of [`check_records`], which it agrees with
/// (everything it accepts, `check_records` accepts), without naming the
/// field where a bad packet ends.
fn records_fit(layout: Layout, count: u8, body: &[u8]) -> bool {
    let (id, n_len) = (layout.id_len(), layout.count_len());
    let head = layout.io_offset() + n_len;
    let mut rest = body;
    for _ in 0..count {
        if rest.len() < head || u64::from_be_bytes(array(rest, 0)) > MAX_TIMESTAMP_MS {
            return false;
        }
        let count_at = |at: usize| {
            if layout.wide_counts {
                usize::from(u16_at(rest, at))
            } else {
                usize::from(u8_at(rest, at))
            }
        };
        let mut at = head;
        for width in [1, 2, 4, 8] {
            if rest.len() < at + n_len {
                return false;
            }
            at += n_len + count_at(at) * (id + width);
        }
        if layout.sixteen_byte_group {
            if rest.len() < at + n_len {
                return false;
            }
            at += n_len + count_at(at) * (id + 16);
        }
        if layout.variable_group {
            if rest.len() < at + 2 {
                return false;
            }
            let n = u16_at(rest, at);
            at += 2;
            for _ in 0..n {
                if rest.len() < at + 4 {
                    return false;
                }
                at += 4 + usize::from(u16_at(rest, at + 2));
            }
        }
        match rest.get(at..) {
            Some(tail) => rest = tail,
            None => return false,
        }
    }
    rest.is_empty()
}

/// Checks that `count` records of `layout` fill `body` exactly, naming the
/// field that does not fit.
fn check_records(layout: Layout, count: u8, body: &[u8]) -> Result<(), ParseError> {
    let mut r = Reader::new(body);
    for _ in 0..count {
        check_record(&mut r, layout)?;
    }
    r.finish("AVL data after the last record")
}

fn check_record(r: &mut Reader, layout: Layout) -> Result<(), ParseError> {
    let ms = r.u64("timestamp")?;
    if ms > MAX_TIMESTAMP_MS {
        time_from_millis(ms)?;
    }
    r.u8("priority")?;
    r.i32("longitude")?;
    r.i32("latitude")?;
    r.i16("altitude")?;
    r.u16("angle")?;
    r.u8("satellites")?;
    r.u16("speed")?;
    layout.id(r)?;
    if layout.generation_type {
        r.u8("generation type")?;
    }
    // The total is redundant with the group counts (and firmware disagrees
    // on whether it includes the variable-length group), so it is not checked.
    layout.count(r, "total IO count")?;
    for width in [1, 2, 4, 8] {
        for _ in 0..layout.count(r, "IO count")? {
            layout.id(r)?;
            r.uint(width, "IO value")?;
        }
    }
    if layout.sixteen_byte_group {
        for _ in 0..layout.count(r, "16-byte IO count")? {
            layout.id(r)?;
            r.bytes(16, "16-byte IO value")?;
        }
    }
    if layout.variable_group {
        for _ in 0..r.u16("variable IO count")? {
            r.u16("IO id")?;
            let len = r.u16("variable IO length")?;
            r.bytes(usize::from(len), "variable IO value")?;
        }
    }
    Ok(())
}

// Unchecked reads, for bytes validated already: a read past the end (which
// validation rules out) gives zeros instead of panicking.

#[inline]
fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..at.saturating_add(N))
        .and_then(|s| s.try_into().ok())
        .unwrap_or([0; N])
}

#[inline]
fn u8_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

#[inline]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(array(b, at))
}

#[inline]
fn bytes_at(b: &[u8], at: usize, len: usize) -> &[u8] {
    b.get(at..at.saturating_add(len)).unwrap_or(&[])
}

/// The length of the validated record at the start of `b`.
#[inline]
fn record_len(layout: Layout, b: &[u8]) -> usize {
    let (id, count) = (layout.id_len(), layout.count_len());
    let read_count = |at: usize| -> usize {
        if layout.wide_counts {
            usize::from(u16_at(b, at))
        } else {
            usize::from(u8_at(b, at))
        }
    };
    let mut at = layout.io_offset() + count;
    for width in [1, 2, 4, 8] {
        at += count + read_count(at) * (id + width);
    }
    if layout.sixteen_byte_group {
        at += count + read_count(at) * (id + 16);
    }
    if layout.variable_group {
        let n = u16_at(b, at);
        at += 2;
        for _ in 0..n {
            at += 4 + usize::from(u16_at(b, at + 2));
        }
    }
    at
}

/// A validated AVL packet of Codec 8, 8 Extended or 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvlFrameView<'a> {
    codec: u8,
    count: u8,
    layout: Layout,
    /// The data field between the two record counts.
    body: &'a [u8],
}

impl<'a> AvlFrameView<'a> {
    /// Validates one complete TCP AVL packet: `00000000` + `data_len:u32` +
    /// data + `crc:u32`, with nothing before or after it, a length field
    /// matching the frame's size, the CRC-16/IBM of the data in the CRC field
    /// (its high two bytes zero), and data as [`from_data`](Self::from_data)
    /// checks it.
    ///
    /// This is stricter than [`parse`](super::parse), which does not check
    /// the CRC again and reads hand-copied captures whose length field is
    /// off: the view is for frames straight off a connection.
    pub fn parse(frame: &'a [u8]) -> Result<Self, ParseError> {
        if frame.len() < TCP_OVERHEAD + MIN_DATA_LEN {
            return Err(ParseError::Truncated(format!(
                "AVL packet of {} bytes is shorter than the minimum {}",
                frame.len(),
                TCP_OVERHEAD + MIN_DATA_LEN
            )));
        }
        let [p0, p1, p2, p3, l0, l1, l2, l3] = array::<8>(frame, 0);
        if [p0, p1, p2, p3] != [0; 4] {
            return Err(ParseError::Invalid(format!(
                "AVL packet preamble is {}, not 00000000",
                hex::encode(&frame[..4])
            )));
        }
        let declared = u32::from_be_bytes([l0, l1, l2, l3]);
        let data_len = frame.len() - TCP_OVERHEAD;
        if usize::try_from(declared).ok() != Some(data_len) {
            return Err(ParseError::Invalid(format!(
                "AVL packet of {} bytes declares {declared} byte(s) of data, not {data_len}",
                frame.len()
            )));
        }
        let data = &frame[8..8 + data_len];
        check_crc(data, u32::from_be_bytes(array(frame, 8 + data_len)))?;
        Self::from_data(data)
    }

    /// Validates an AVL data field (codec id, record count, records, record
    /// count) exactly as [`parse`](super::parse) checks it: the counts agree,
    /// the codec is 8, 8 Extended or 16, and the records fill the field to
    /// its last byte. Errors are the ones `parse` gives for the same data;
    /// other codecs are [`ParseError::Unsupported`] here.
    pub fn from_data(data: &'a [u8]) -> Result<Self, ParseError> {
        if data.len() < MIN_DATA_LEN {
            return Err(ParseError::Truncated(format!(
                "AVL data of {} byte(s) lacks codec id and record counts",
                data.len()
            )));
        }
        let (codec, count, second) = (data[0], data[1], data[data.len() - 1]);
        if count != second {
            return Err(ParseError::Invalid(format!(
                "record counts disagree: {count} at the start, {second} at the end"
            )));
        }
        Self::new(codec, count, &data[2..data.len() - 1])
    }

    /// Validates `count` records of `codec` filling `body` (the data field
    /// between the two record counts).
    pub(crate) fn new(codec: u8, count: u8, body: &'a [u8]) -> Result<Self, ParseError> {
        match codec {
            CODEC_8 | CODEC_8E | CODEC_16 => {}
            GH3000 | CODEC_12 | CODEC_13 => {
                return Err(ParseError::Unsupported(format!(
                    "codec id {codec:#04x} carries no Codec 8/8E/16 records"
                )))
            }
            other => return Err(ParseError::Unsupported(format!("codec id {other:#04x}"))),
        }
        // The fast check first; the field-by-field one only for the error
        // (or if the fast one were ever more cautious).
        let check = |layout| match records_fit(layout, count, body) {
            true => Ok(()),
            false => check_records(layout, count, body),
        };
        let plain = Layout::of(codec, false);
        let layout = match check(plain) {
            Ok(()) => plain,
            Err(first) => {
                let extended = Layout::of(codec, true);
                check(extended).map_err(|_| first)?;
                extended
            }
        };
        Ok(AvlFrameView {
            codec,
            count,
            layout,
            body,
        })
    }

    /// The codec id: [`CODEC_8`], [`CODEC_8E`] or [`CODEC_16`].
    pub fn codec(&self) -> u8 {
        self.codec
    }

    /// The number of records, which is also what the server acknowledges.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the records carry the group of 16-byte IO values.
    pub fn has_sixteen_byte_group(&self) -> bool {
        self.layout.sixteen_byte_group
    }

    /// The records, in the order sent.
    pub fn records(&self) -> Records<'a> {
        Records {
            layout: self.layout,
            rest: self.body,
            remaining: self.count,
        }
    }
}

/// The records of an [`AvlFrameView`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    layout: Layout,
    rest: &'a [u8],
    remaining: u8,
}

impl<'a> Iterator for Records<'a> {
    type Item = RecordView<'a>;

    #[inline]
    fn next(&mut self) -> Option<RecordView<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let len = record_len(self.layout, self.rest).min(self.rest.len());
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(RecordView {
            layout: self.layout,
            bytes,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.remaining);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Records<'_> {}

/// One validated AVL record. Coordinates and sizes are as sent; the
/// conversions [`parse`](super::parse) applies are noted on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    layout: Layout,
    bytes: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// The record's bytes, from its timestamp to its last IO element.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Fix time in milliseconds since the Unix epoch (UTC).
    #[inline]
    pub fn timestamp_ms(&self) -> u64 {
        u64::from_be_bytes(array(self.bytes, 0))
    }

    /// The fix time. Validation guarantees it is representable.
    pub fn fix_time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.timestamp_ms() as i64).unwrap_or_default()
    }

    /// 0 low, 1 high, 2 panic.
    #[inline]
    pub fn priority(&self) -> u8 {
        u8_at(self.bytes, 8)
    }

    /// Longitude in 1e-7 degrees.
    #[inline]
    pub fn longitude_raw(&self) -> i32 {
        i32::from_be_bytes(array(self.bytes, 9))
    }

    /// Latitude in 1e-7 degrees.
    #[inline]
    pub fn latitude_raw(&self) -> i32 {
        i32::from_be_bytes(array(self.bytes, 13))
    }

    /// Longitude in degrees (WGS84).
    pub fn longitude(&self) -> f64 {
        f64::from(self.longitude_raw()) / 1e7
    }

    /// Latitude in degrees (WGS84).
    pub fn latitude(&self) -> f64 {
        f64::from(self.latitude_raw()) / 1e7
    }

    /// Altitude in metres (signed, as Traccar reads it).
    #[inline]
    pub fn altitude(&self) -> i16 {
        i16::from_be_bytes(array(self.bytes, 17))
    }

    /// Heading in degrees from north.
    #[inline]
    pub fn angle(&self) -> u16 {
        u16_at(self.bytes, 19)
    }

    /// Satellites in use; 0 means no fix (the last position repeated).
    #[inline]
    pub fn satellites(&self) -> u8 {
        u8_at(self.bytes, 21)
    }

    /// Speed in km/h from the GPS element (an IO element 24 may repeat it).
    #[inline]
    pub fn speed(&self) -> u16 {
        u16_at(self.bytes, 22)
    }

    /// The IO id that triggered the record, 0 for a periodic record.
    #[inline]
    pub fn event_id(&self) -> u16 {
        if self.layout.wide_ids {
            u16_at(self.bytes, FIX_LEN)
        } else {
            u16::from(u8_at(self.bytes, FIX_LEN))
        }
    }

    /// Codec 16's generation type (why the record was made); `None` for
    /// other codecs.
    pub fn generation_type(&self) -> Option<u8> {
        self.layout
            .generation_type
            .then(|| u8_at(self.bytes, FIX_LEN + self.layout.id_len()))
    }

    /// The total IO count as the device wrote it. Firmware disagrees on
    /// whether it includes the variable-length group; nothing checks it.
    pub fn declared_io_count(&self) -> u16 {
        let at = self.layout.io_offset();
        if self.layout.wide_counts {
            u16_at(self.bytes, at)
        } else {
            u16::from(u8_at(self.bytes, at))
        }
    }

    /// The IO elements in wire order: the 1-, 2-, 4- and 8-byte groups, then
    /// the 16-byte group if present, then the variable-length group (Codec 8
    /// Extended).
    #[inline]
    pub fn io(&self) -> IoElements<'a> {
        let mut io = IoElements {
            layout: self.layout,
            bytes: self.bytes,
            at: self.layout.io_offset() + self.layout.count_len(),
            group: 0,
            left: 0,
        };
        io.left = io.read_count();
        io
    }
}

/// The value of one IO element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoValue<'a> {
    /// An element of the 1-, 2-, 4- or 8-byte group: the unsigned
    /// big-endian number and its width in bytes (which decides how it is
    /// sign-extended where an id is signed).
    Int { width: u8, raw: u64 },
    /// An element of the 16-byte group.
    Sixteen(&'a [u8]),
    /// A variable-length element (Codec 8 Extended).
    Variable(&'a [u8]),
}

/// One IO element: its AVL id and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoElement<'a> {
    pub id: u16,
    pub value: IoValue<'a>,
}

/// The groups of IO elements after the four fixed-width ones (0–3), in
/// wire order; past [`VARIABLE`] the iterator is done.
const SIXTEEN: u8 = 4;
const VARIABLE: u8 = 5;
const DONE: u8 = 6;

/// The IO elements of a [`RecordView`].
#[derive(Debug, Clone)]
pub struct IoElements<'a> {
    layout: Layout,
    bytes: &'a [u8],
    /// Offset of the next count or element.
    at: usize,
    /// The group being read: 0–3 the 1-, 2-, 4- and 8-byte ones, then
    /// [`SIXTEEN`], [`VARIABLE`], [`DONE`].
    group: u8,
    /// Elements left in the current group.
    left: u16,
}

impl<'a> Iterator for IoElements<'a> {
    type Item = IoElement<'a>;

    #[inline]
    fn next(&mut self) -> Option<IoElement<'a>> {
        while self.left == 0 {
            if !self.next_group() {
                return None;
            }
        }
        self.left -= 1;
        Some(match self.group {
            0 => self.fixed::<1>(),
            1 => self.fixed::<2>(),
            2 => self.fixed::<4>(),
            3 => self.fixed::<8>(),
            SIXTEEN => {
                let id = self.id();
                let value = bytes_at(self.bytes, self.at, 16);
                self.at += 16;
                IoElement {
                    id,
                    value: IoValue::Sixteen(value),
                }
            }
            _ => {
                let id = u16_at(self.bytes, self.at);
                let len = usize::from(u16_at(self.bytes, self.at + 2));
                let value = bytes_at(self.bytes, self.at + 4, len);
                self.at += 4 + len;
                IoElement {
                    id,
                    value: IoValue::Variable(value),
                }
            }
        })
    }
}

impl<'a> IoElements<'a> {
    /// Reads the element count of the current group and moves past it.
    #[inline]
    fn read_count(&mut self) -> u16 {
        if self.group == VARIABLE || self.layout.wide_counts {
            self.at += 2;
            u16_at(self.bytes, self.at - 2)
        } else {
            self.at += 1;
            u16::from(u8_at(self.bytes, self.at - 1))
        }
    }

    /// Moves to the next group present in the record; false when none is left.
    #[inline]
    fn next_group(&mut self) -> bool {
        loop {
            self.group = (self.group + 1).min(DONE);
            let present = match self.group {
                1..=3 => true,
                SIXTEEN => self.layout.sixteen_byte_group,
                VARIABLE => self.layout.variable_group,
                _ => return false,
            };
            if present {
                self.left = self.read_count();
                return true;
            }
        }
    }

    #[inline]
    fn id(&mut self) -> u16 {
        if self.layout.wide_ids {
            self.at += 2;
            u16_at(self.bytes, self.at - 2)
        } else {
            self.at += 1;
            u16::from(u8_at(self.bytes, self.at - 1))
        }
    }

    #[inline]
    fn fixed<const W: usize>(&mut self) -> IoElement<'a> {
        let id = self.id();
        let raw: [u8; W] = array(self.bytes, self.at);
        self.at += W;
        let mut wide = [0u8; 8];
        wide[8 - W..].copy_from_slice(&raw);
        let raw = u64::from_be_bytes(wide);
        IoElement {
            id,
            value: IoValue::Int {
                width: W as u8,
                raw,
            },
        }
    }
}

impl std::iter::FusedIterator for IoElements<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::teltonika::encode::{self, AvlCodec, AvlRecord, IoElement as Io, IoValue as V};
    use crate::Position;

    /// The first Codec 8 example of Teltonika's documentation.
    const WIKI_CODEC8: &str = "000000000000003608010000016b40d8ea30010000000000000000000000000000000105021503010101425e0f01f10000601a014e0000000000000000010000c7cf";

    fn bytes(h: &str) -> Vec<u8> {
        hex::decode(h).unwrap()
    }

    /// The data field of one Codec 8 record at `ms` without IO elements,
    /// with `extra` bytes after its 8-byte group (before the last count).
    fn bare_record(ms: u64, extra: &[u8]) -> Vec<u8> {
        let mut data = vec![CODEC_8, 1];
        data.extend_from_slice(&ms.to_be_bytes());
        data.push(1); // priority
        data.extend_from_slice(&[0; 15]); // fix
        data.extend_from_slice(&[0; 6]); // event id, total, four group counts
        data.extend_from_slice(extra);
        data.push(1);
        data
    }

    #[test]
    fn wiki_codec8_fields() {
        let frame = bytes(WIKI_CODEC8);
        let view = AvlFrameView::parse(&frame).unwrap();
        assert_eq!((view.codec(), view.len()), (CODEC_8, 1));
        let r = view.records().next().unwrap();
        assert_eq!(r.timestamp_ms(), 0x0000_016b_40d8_ea30);
        assert_eq!(r.priority(), 1);
        assert_eq!(
            (r.longitude_raw(), r.latitude_raw(), r.altitude()),
            (0, 0, 0)
        );
        assert_eq!((r.angle(), r.satellites(), r.speed()), (0, 0, 0));
        assert_eq!((r.event_id(), r.declared_io_count()), (1, 5));
        assert_eq!(r.generation_type(), None);
        let io: Vec<(u16, IoValue)> = r.io().map(|e| (e.id, e.value)).collect();
        let int = |width, raw| IoValue::Int { width, raw };
        assert_eq!(
            io,
            vec![
                (0x15, int(1, 3)),
                (0x01, int(1, 1)),
                (0x42, int(2, 0x5e0f)),
                (0xf1, int(4, 0x601a)),
                (0x4e, int(8, 0)),
            ]
        );
    }

    #[test]
    fn every_envelope_error_is_caught() {
        let good = bytes(WIKI_CODEC8);
        let n = good.len();
        // CRC.
        let mut f = good.clone();
        f[n - 1] ^= 1;
        assert!(matches!(
            AvlFrameView::parse(&f),
            Err(ParseError::BadChecksum { .. })
        ));
        // High bytes of the CRC field.
        let mut f = good.clone();
        f[n - 4] = 1;
        assert!(matches!(
            AvlFrameView::parse(&f),
            Err(ParseError::BadChecksum { .. })
        ));
        // Preamble.
        let mut f = good.clone();
        f[2] = 1;
        assert!(matches!(
            AvlFrameView::parse(&f),
            Err(ParseError::Invalid(_))
        ));
        // Length field, both ways, and trailing or missing bytes.
        for delta in [-1i64, 1] {
            let mut f = good.clone();
            f[7] = (i64::from(f[7]) + delta) as u8;
            assert!(AvlFrameView::parse(&f).is_err());
        }
        let mut f = good.clone();
        f.push(0);
        assert!(AvlFrameView::parse(&f).is_err());
        assert!(AvlFrameView::parse(&good[..n - 1]).is_err());
        assert!(AvlFrameView::parse(&good[..14]).is_err());
        assert!(AvlFrameView::parse(&[]).is_err());
        // The data itself: record counts disagree (CRC made right).
        let mut data = good[8..n - 4].to_vec();
        *data.last_mut().unwrap() = 2;
        let f = encode::raw_frame(&data);
        assert!(matches!(
            AvlFrameView::parse(&f),
            Err(ParseError::Invalid(_))
        ));
        // An unsupported codec, with a valid envelope.
        let f = encode::command_response("hi").unwrap();
        assert!(matches!(
            AvlFrameView::parse(&f),
            Err(ParseError::Unsupported(_))
        ));
    }

    #[test]
    fn timestamp_bound_matches_chrono() {
        assert!(time_from_millis(MAX_TIMESTAMP_MS).is_ok());
        assert!(time_from_millis(MAX_TIMESTAMP_MS + 1).is_err());
        assert!(time_from_millis(0).is_ok());
        // A record whose timestamp is out of range is refused.
        let data = bare_record(MAX_TIMESTAMP_MS + 1, &[]);
        let err = AvlFrameView::from_data(&data).unwrap_err();
        assert_eq!(
            err,
            time_from_millis(MAX_TIMESTAMP_MS + 1).unwrap_err(),
            "the same error as parse"
        );
        AvlFrameView::from_data(&bare_record(MAX_TIMESTAMP_MS, &[])).unwrap();
        AvlFrameView::from_data(&bare_record(u64::MAX, &[])).unwrap_err();
    }

    #[test]
    fn every_group_in_every_codec() {
        let p = Position::new(
            "1",
            "teltonika",
            DateTime::from_timestamp_millis(1).unwrap(),
        );
        let io = vec![
            Io::new(239, V::U8(1)),
            Io::new(66, V::U16(12_841)),
            Io::new(16, V::U32(183_420)),
            Io::new(78, V::U64(0x0102_0304_0506_0708)),
        ];
        let mut wide = io.clone();
        wide.push(Io::new(256, V::Bytes(b"WVWZZZ1KZ6W000001".to_vec())));
        wide.push(Io::new(999, V::Bytes(vec![])));
        for (codec, io) in [
            (AvlCodec::Codec8, &io),
            (AvlCodec::Codec16, &io),
            (AvlCodec::Codec8E, &wide),
        ] {
            let record = AvlRecord {
                position: &p,
                priority: 2,
                event_id: 239,
                io: io.clone(),
            };
            let frame = encode::avl_frame(codec, &[record.clone(), record]).unwrap();
            let view = AvlFrameView::parse(&frame).unwrap();
            assert_eq!(view.len(), 2);
            assert_eq!(view.records().len(), 2);
            for r in view.records() {
                assert_eq!((r.priority(), r.event_id(), r.timestamp_ms()), (2, 239, 1));
                assert_eq!(r.generation_type().is_some(), codec == AvlCodec::Codec16);
                let got: Vec<Io> = r
                    .io()
                    .map(|e| {
                        let v = match e.value {
                            IoValue::Int { width: 1, raw } => V::U8(raw as u8),
                            IoValue::Int { width: 2, raw } => V::U16(raw as u16),
                            IoValue::Int { width: 4, raw } => V::U32(raw as u32),
                            IoValue::Int { raw, .. } => V::U64(raw),
                            IoValue::Sixteen(b) | IoValue::Variable(b) => V::Bytes(b.to_vec()),
                        };
                        Io::new(e.id, v)
                    })
                    .collect();
                assert_eq!(&got, io, "{codec:?}");
            }
        }
    }

    #[test]
    fn sixteen_byte_group_is_detected() {
        // One Codec 8 record without IO, plus an empty 16-byte group.
        let data = bare_record(1, &[0]);
        let view = AvlFrameView::from_data(&data).unwrap();
        assert!(view.has_sixteen_byte_group());
        assert_eq!(view.records().next().unwrap().io().count(), 0);
        // One 16-byte element.
        let mut extra = vec![1, 0x42];
        extra.extend_from_slice(&[0xab; 16]);
        let data = bare_record(1, &extra);
        let view = AvlFrameView::from_data(&data).unwrap();
        let io: Vec<IoElement> = view.records().next().unwrap().io().collect();
        assert_eq!(
            io,
            vec![IoElement {
                id: 0x42,
                value: IoValue::Sixteen(&[0xab; 16])
            }]
        );
    }

    /// Data fields of every codec with a few elements in each group.
    fn sample_data(codec: AvlCodec, records: usize) -> Vec<u8> {
        let p = Position::new(
            "1",
            "teltonika",
            DateTime::from_timestamp_millis(7).unwrap(),
        );
        let mut io = vec![
            Io::new(1, V::U8(1)),
            Io::new(2, V::U16(2)),
            Io::new(3, V::U32(3)),
            Io::new(4, V::U64(4)),
            Io::new(5, V::U8(5)),
        ];
        if codec == AvlCodec::Codec8E {
            io.push(Io::new(300, V::Bytes(vec![1, 2, 3])));
            io.push(Io::new(301, V::Bytes(vec![])));
        }
        let record = AvlRecord {
            position: &p,
            priority: 1,
            event_id: 2,
            io,
        };
        encode::avl_data(codec, &vec![record; records]).unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4096, ..Default::default() })]

        /// The fast check and the field-by-field one agree both ways, on
        /// valid records with bytes changed, cut or added.
        #[test]
        fn fast_check_agrees_with_the_field_by_field_one(
            codec in proptest::sample::select(vec![AvlCodec::Codec8, AvlCodec::Codec8E, AvlCodec::Codec16]),
            records in 0usize..4,
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()), 0..3),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
            sixteen in proptest::prelude::any::<bool>(),
            count_delta in 0u8..2,
        ) {
            let data = sample_data(codec, records);
            let mut body = data[2..data.len() - 1].to_vec();
            for (at, byte) in edits {
                if !body.is_empty() {
                    let i = at.index(body.len());
                    body[i] = byte;
                }
            }
            body.truncate(cut.index(body.len() + 1) + body.len() / 2);
            body.extend_from_slice(&extra);
            let layout = Layout::of(codec.id(), sixteen);
            let count = records as u8 + count_delta;
            proptest::prop_assert_eq!(
                records_fit(layout, count, &body),
                check_records(layout, count, &body).is_ok()
            );
        }
    }
}
