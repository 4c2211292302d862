//! AVL records of Codecs 8, 8 Extended and 16: each record is a timestamp, a
//! priority, a GPS element and IO elements grouped by value size.
//!
//! | codec | event id | IO counts | IO ids | extra |
//! | --- | --- | --- | --- | --- |
//! | 8   | 1 byte  | 1 byte  | 1 byte  | |
//! | 8E  | 2 bytes | 2 bytes | 2 bytes | variable-length (NX) group |
//! | 16  | 2 bytes | 1 byte  | 2 bytes | generation type byte after the event id |

use chrono::{DateTime, Utc};

use crate::{ParseError, Position, Record};

use super::view::{AvlFrameView, IoValue, RecordView};
use super::{io, nx, NAME};

/// Parses `count` records filling `body` (the data field between the two
/// record counts) exactly.
///
/// The records are validated and read by [`AvlFrameView`] (which detects
/// the optional 16-byte group too); this only names and converts them.
pub(crate) fn parse(
    codec: u8,
    count: u8,
    body: &[u8],
    device_id: &str,
) -> Result<Vec<Record>, ParseError> {
    let view = AvlFrameView::new(codec, count, body)?;
    Ok(view
        .records()
        .map(|r| Record::Position(record(&r, device_id)))
        .collect())
}

pub(crate) fn time_from_millis(ms: u64) -> Result<DateTime<Utc>, ParseError> {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| ParseError::Invalid(format!("timestamp {ms} ms is out of range")))
}

fn record(r: &RecordView, device_id: &str) -> Position {
    let mut p = Position::new(device_id, NAME, r.fix_time());
    p.set("priority", r.priority());
    p.longitude = r.longitude();
    p.latitude = r.latitude();
    p.altitude = f64::from(r.altitude());
    p.course = f64::from(r.angle());
    let satellites = r.satellites();
    p.satellites = Some(u32::from(satellites));
    // Teltonika sends no validity flag; like Traccar, a fix without
    // satellites is the last known position repeated, so not valid.
    p.valid = satellites != 0;
    p.speed = f64::from(r.speed());
    p.set("event", r.event_id());
    for e in r.io() {
        match e.value {
            IoValue::Int { width, raw } => io::apply(&mut p, e.id, raw, usize::from(width)),
            IoValue::Sixteen(value) => nx::raw(&mut p, e.id, value),
            IoValue::Variable(value) => nx::apply(&mut p, e.id, value),
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::teltonika::codec::{CODEC_16, CODEC_8, CODEC_8E};

    /// The record reader as it was before it was built on the view, kept
    /// verbatim as the oracle the view-based one must match exactly.
    mod legacy {
        use crate::read::Reader;
        use crate::teltonika::avl::time_from_millis;
        use crate::teltonika::codec::{CODEC_16, CODEC_8E};
        use crate::teltonika::{io, nx, NAME};
        use crate::{ParseError, Position, Record};

        #[derive(Debug, Clone, Copy)]
        struct Layout {
            wide_ids: bool,
            wide_counts: bool,
            generation_type: bool,
            variable_group: bool,
            /// A group of 16-byte values after the 8-byte group. Some firmware sends
            /// it (Traccar enables it with its `extended` option); it is detected
            /// here by the records not fitting the packet without it.
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

        /// Parses `count` records filling `body` (the data field between the two
        /// record counts) exactly.
        pub(crate) fn parse(
            codec: u8,
            count: u8,
            body: &[u8],
            device_id: &str,
        ) -> Result<Vec<Record>, ParseError> {
            records(Layout::of(codec, false), count, body, device_id).or_else(|first| {
                records(Layout::of(codec, true), count, body, device_id).map_err(|_| first)
            })
        }

        fn records(
            layout: Layout,
            count: u8,
            body: &[u8],
            device_id: &str,
        ) -> Result<Vec<Record>, ParseError> {
            let mut r = Reader::new(body);
            let mut out = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                out.push(Record::Position(record(&mut r, layout, device_id)?));
            }
            r.finish("AVL data after the last record")?;
            Ok(out)
        }

        fn record(r: &mut Reader, layout: Layout, device_id: &str) -> Result<Position, ParseError> {
            let fix_time = time_from_millis(r.u64("timestamp")?)?;
            let mut p = Position::new(device_id, NAME, fix_time);
            p.set("priority", r.u8("priority")?);
            p.longitude = f64::from(r.i32("longitude")?) / 1e7;
            p.latitude = f64::from(r.i32("latitude")?) / 1e7;
            p.altitude = f64::from(r.i16("altitude")?);
            p.course = f64::from(r.u16("angle")?);
            let satellites = r.u8("satellites")?;
            p.satellites = Some(u32::from(satellites));
            // Teltonika sends no validity flag; like Traccar, a fix without
            // satellites is the last known position repeated, so not valid.
            p.valid = satellites != 0;
            p.speed = f64::from(r.u16("speed")?);
            let event = layout.id(r)?;
            p.set("event", event);
            if layout.generation_type {
                r.u8("generation type")?;
            }
            // The total is redundant with the group counts (and firmware disagrees
            // on whether it includes the NX group), so it is not checked.
            layout.count(r, "total IO count")?;
            for width in [1, 2, 4, 8] {
                for _ in 0..layout.count(r, "IO count")? {
                    let id = layout.id(r)?;
                    let raw = r.uint(width, "IO value")?;
                    io::apply(&mut p, id, raw, width);
                }
            }
            if layout.sixteen_byte_group {
                for _ in 0..layout.count(r, "16-byte IO count")? {
                    let id = layout.id(r)?;
                    nx::raw(&mut p, id, r.bytes(16, "16-byte IO value")?);
                }
            }
            if layout.variable_group {
                for _ in 0..r.u16("variable IO count")? {
                    let id = r.u16("IO id")?;
                    let len = r.u16("variable IO length")?;
                    let value = r.bytes(usize::from(len), "variable IO value")?;
                    nx::apply(&mut p, id, value);
                }
            }
            Ok(p)
        }
    }

    fn both(codec: u8, count: u8, body: &[u8]) {
        let new = parse(codec, count, body, "1");
        let old = legacy::parse(codec, count, body, "1");
        assert_eq!(
            new,
            old,
            "codec {codec:#04x} count {count} body {}",
            hex::encode(body)
        );
    }

    /// A record of `codec` with a few elements in every group it has.
    fn record(codec: u8) -> Vec<u8> {
        let wide = codec != CODEC_8;
        let counts2 = codec == CODEC_8E;
        let mut b = Vec::new();
        b.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        b.push(1);
        b.extend_from_slice(&(-123_456_789i32).to_be_bytes());
        b.extend_from_slice(&546_872_000i32.to_be_bytes());
        b.extend_from_slice(&(-4i16).to_be_bytes());
        b.extend_from_slice(&[0, 90, 7, 0, 55]);
        let id = |b: &mut Vec<u8>, id: u16| {
            if wide {
                b.extend_from_slice(&id.to_be_bytes())
            } else {
                b.push(id as u8)
            }
        };
        let count = |b: &mut Vec<u8>, n: u16| {
            if counts2 {
                b.extend_from_slice(&n.to_be_bytes())
            } else {
                b.push(n as u8)
            }
        };
        id(&mut b, 239);
        if codec == CODEC_16 {
            b.push(2);
        }
        count(&mut b, 6);
        for (width, ids) in [
            (1usize, &[239u16, 253][..]),
            (2, &[66, 24]),
            (4, &[16]),
            (8, &[78]),
        ] {
            count(&mut b, ids.len() as u16);
            for &i in ids {
                id(&mut b, i);
                b.extend(std::iter::repeat_n(0x5a, width));
            }
        }
        if counts2 {
            b.extend_from_slice(&[0, 2, 1, 0, 0, 3, b'a', b'b', b'c', 0x2b, 0x4c, 0, 1, 0xff]);
        }
        b
    }

    #[test]
    fn same_records_as_before_for_every_codec() {
        for codec in [CODEC_8, CODEC_8E, CODEC_16] {
            let r = record(codec);
            for count in 0..3u8 {
                let body = r.repeat(usize::from(count));
                both(codec, count, &body);
                assert!(parse(codec, count, &body, "1").is_ok());
                // Every truncation and every extra byte.
                for cut in 0..body.len() {
                    both(codec, count, &body[..cut]);
                }
                let mut longer = body.clone();
                longer.push(0);
                both(codec, count, &longer);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// Valid records with bytes changed: the same positions, or the
        /// same error, as the reader before the view.
        #[test]
        fn mutated_records_agree_with_the_old_reader(
            codec in prop::sample::select(vec![CODEC_8, CODEC_8E, CODEC_16]),
            count in 1u8..4,
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            sixteen in any::<bool>(),
        ) {
            let mut body = record(codec).repeat(usize::from(count));
            if sixteen && codec != CODEC_8E {
                // An empty 16-byte group after the 8-byte group of the last record.
                body.push(0);
            }
            for (at, byte) in edits {
                let i = at.index(body.len());
                body[i] = byte;
            }
            both(codec, count, &body);
        }

        #[test]
        fn arbitrary_bodies_agree_with_the_old_reader(
            codec in prop::sample::select(vec![CODEC_8, CODEC_8E, CODEC_16]),
            count in 0u8..3,
            body in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            both(codec, count, &body);
        }
    }
}
