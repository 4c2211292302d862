//! Record identity: when two records are the same record, whatever frame
//! carried them.
//!
//! A tracker that does not get its acknowledgement sends its pending
//! records again, and real firmware rarely sends the same bytes: Teltonika,
//! Ruptela and Meitrack devices re-pack the pending records with newer ones
//! into a new frame, GT06 and JT808 devices re-encode them with a new
//! serial number, Queclink devices as `+BUFF` with another send time. A
//! frame's message id (a hash of its bytes) cannot see any of that. A
//! record's identity can: it is a hash of what the device measured — the
//! device, the fix time, the fix and every attribute — and leaves out what
//! only the packaging changes ([`VOLATILE`]).
//!
//! Only positions have an identity: they carry their own fix time. Logins,
//! heartbeats and status records have none and are deduplicated frame by
//! frame only (they change no state downstream).
//!
//! [`Memory`] is what the hamsters keep per device (docs/reliability.md):
//! the identities of the device's recent records, each with the frame that
//! carries it. The first frame to claim an identity carries the record;
//! any later frame with the same record leaves it out. Claims are made
//! before the records are published, and a frame that comes again (a
//! redelivery) finds its own claims, so it carries exactly what it carried
//! the first time.

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::{Position, Record};

/// Attributes that a resend may change without the record changing: how
/// the record travelled, not what it says. `archive` marks a record sent
/// from the device's buffer (GT06 re-uploads, JT808 blind-area batches,
/// Ruptela and Suntech archive flags): the first attempt was live, the
/// resend comes from the buffer.
pub const VOLATILE: &[&str] = &["archive"];

/// The identity of a position: a 64-bit hash of its canonical content.
/// `None` for records without a fix time of their own.
pub fn record_identity(record: &Record) -> Option<u64> {
    record.as_position().map(position_identity)
}

/// The identity of a position (what [`record_identity`] gives for it).
pub fn position_identity(p: &Position) -> u64 {
    // Streamed into the hash, nothing copied: each text and value framed by
    // its length or a byte JSON never contains, the numbers as their bits
    // (-0.0 as 0.0). serde_json's Map is ordered by key, so the order a
    // parser set the attributes in does not matter.
    let mut h = Xxh3::new();
    let text = |h: &mut Xxh3, t: &str| {
        h.update(&(t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    };
    text(&mut h, &p.device_id);
    text(&mut h, &p.protocol);
    h.update(&p.fix_time.timestamp_millis().to_le_bytes());
    h.update(&[u8::from(p.valid)]);
    for x in [p.latitude, p.longitude, p.altitude, p.speed, p.course] {
        h.update(&(x + 0.0).to_bits().to_le_bytes());
    }
    h.update(&p.satellites.map_or(u64::MAX, u64::from).to_le_bytes());
    for (key, value) in &p.attributes {
        if VOLATILE.contains(&key.as_str()) {
            continue;
        }
        text(&mut h, key);
        // Writing JSON into the hasher cannot fail.
        let _ = serde_json::to_writer(Hashing(&mut h), value);
        h.update(&[0xff]);
    }
    h.digest()
}

/// An `io::Write` that feeds the hash.
struct Hashing<'a>(&'a mut Xxh3);

impl std::io::Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The owner tag of a frame in [`Memory`]: a 32-bit hash of its RAW id.
/// (A collision only matters between two frames carrying the same record,
/// and then costs a duplicate, never a loss.)
pub fn owner_tag(raw_id: &str) -> u32 {
    xxh3_64(raw_id.as_bytes()) as u32
}

/// Why a stored memory could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    #[error("not a fleetbus identity memory (bad header)")]
    Header,
    #[error("identity memory truncated at byte {0}")]
    Truncated(usize),
}

/// The identities of one device's recent records, grouped by the frame
/// (owner) that carries them, oldest first. Bounded: past `cap` identities
/// the oldest frames are forgotten.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    owner: u32,
    ids: Vec<u64>,
}

/// What [`Memory::claim`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// For each identity asked about: whether this frame carries it.
    pub carry: Vec<bool>,
    /// Whether the memory changed (and must be written back).
    pub changed: bool,
}

const MAGIC: [u8; 3] = [b'F', b'I', 1];
const GROUP_HEADER: usize = 4 + 2;

impl Memory {
    /// Identities remembered.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.ids.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Claims `ids` (a frame's records' identities, in frame order) for
    /// `owner`. An identity already claimed by another owner is not
    /// carried; one claimed by this owner (the frame came again) or by
    /// nobody is. An identity twice in `ids` is carried once. Then the
    /// oldest other frames are forgotten while more than `cap` identities
    /// are remembered.
    pub fn claim(&mut self, owner: u32, ids: &[u64], cap: usize) -> Claim {
        let mut carry = Vec::with_capacity(ids.len());
        let mut new: Vec<u64> = Vec::new();
        let mut changed = false;
        for &id in ids {
            if new.contains(&id) {
                carry.push(false);
                continue;
            }
            match self.owner_of(id) {
                Some(o) if o == owner => {
                    // Our own claim: carried again, once.
                    carry.push(!carry_seen(ids, &carry, id));
                }
                Some(_) => carry.push(false),
                None => {
                    new.push(id);
                    carry.push(true);
                }
            }
        }
        if !new.is_empty() {
            changed = true;
            match self.groups.iter_mut().find(|g| g.owner == owner) {
                Some(g) => g.ids.extend(new),
                None => self.groups.push(Group { owner, ids: new }),
            }
        }
        while self.len() > cap && self.groups.len() > 1 {
            // Never forget the frame being claimed for: its claims must
            // still be there when it is published.
            let oldest = self.groups.iter().position(|g| g.owner != owner);
            match oldest {
                Some(i) => {
                    self.groups.remove(i);
                    changed = true;
                }
                None => break,
            }
        }
        Claim { carry, changed }
    }

    fn owner_of(&self, id: u64) -> Option<u32> {
        self.groups
            .iter()
            .find(|g| g.ids.contains(&id))
            .map(|g| g.owner)
    }

    /// The stored form: `F I 1`, then per group `owner:u32 count:u16
    /// ids:u64…`, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + self.len() * 8 + self.groups.len() * 6);
        out.extend_from_slice(&MAGIC);
        for g in &self.groups {
            // A group never holds more than u16::MAX: a frame has at most
            // a few hundred records.
            let n = g.ids.len().min(usize::from(u16::MAX));
            out.extend_from_slice(&g.owner.to_le_bytes());
            out.extend_from_slice(&(n as u16).to_le_bytes());
            for id in &g.ids[..n] {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Memory, MemoryError> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(MemoryError::Header);
        }
        let mut groups = Vec::new();
        let mut at = MAGIC.len();
        while at < bytes.len() {
            let head = bytes
                .get(at..at + GROUP_HEADER)
                .ok_or(MemoryError::Truncated(at))?;
            let owner = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
            let n = usize::from(u16::from_le_bytes(head[4..].try_into().expect("2 bytes")));
            at += GROUP_HEADER;
            let body = bytes
                .get(at..at + 8 * n)
                .ok_or(MemoryError::Truncated(at))?;
            let ids = body
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            at += 8 * n;
            groups.push(Group { owner, ids });
        }
        Ok(Memory { groups })
    }

    /// The largest stored size of a memory of `cap` identities: every
    /// identity in a frame of its own.
    pub fn max_encoded_len(cap: usize) -> usize {
        MAGIC.len() + cap * (8 + GROUP_HEADER)
    }
}

/// Whether `id` was already marked as carried earlier in this claim.
fn carry_seen(ids: &[u64], carry: &[bool], id: u64) -> bool {
    ids.iter().zip(carry).any(|(&i, &c)| i == id && c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::Map;

    fn fix(sec: u32) -> Position {
        let mut p = Position::new(
            "356307042441013",
            "teltonika",
            Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, sec).unwrap(),
        );
        p.valid = true;
        p.latitude = 54.68721;
        p.longitude = 25.27972;
        p.speed = 42.0;
        p.set("ignition", true);
        p.set("event", 0);
        p
    }

    #[test]
    fn the_same_record_in_other_packaging_has_the_same_identity() {
        let live = Record::Position(fix(5));
        let mut buffered = fix(5);
        buffered.set("archive", true);
        // Attribute order does not matter either.
        let mut reordered = Position::new("356307042441013", "teltonika", fix(5).fix_time);
        reordered.valid = true;
        reordered.latitude = 54.68721;
        reordered.longitude = 25.27972;
        reordered.speed = 42.0;
        reordered.set("event", 0);
        reordered.set("ignition", true);
        let id = record_identity(&live).unwrap();
        assert_eq!(record_identity(&Record::Position(buffered)), Some(id));
        assert_eq!(record_identity(&Record::Position(reordered)), Some(id));
    }

    #[test]
    fn anything_the_device_measured_makes_another_record() {
        let base = record_identity(&Record::Position(fix(5))).unwrap();
        let variants: Vec<Position> = vec![
            fix(6),
            Position {
                latitude: 54.68722,
                ..fix(5)
            },
            Position {
                device_id: "356307042441014".into(),
                ..fix(5)
            },
            {
                // Same time and place, ignition changed: parked without a
                // new fix, a real new record.
                let mut p = fix(5);
                p.set("ignition", false);
                p
            },
            {
                let mut p = fix(5);
                p.set("event", 239);
                p
            },
        ];
        for v in variants {
            assert_ne!(
                record_identity(&Record::Position(v.clone())),
                Some(base),
                "{v:?}"
            );
        }
    }

    #[test]
    fn identities_and_ids_are_pinned() {
        // These must not change between versions: a device resending
        // across an upgrade would otherwise be stored twice.
        let r = Record::Position(fix(5));
        assert_eq!(record_identity(&r), Some(0x02eb_78f9_8895_2fe0));
        let login = Record::Login(crate::DeviceMessage {
            device_id: "1".into(),
            protocol: "gt06".into(),
            time: fix(0).fix_time,
            attributes: Map::new(),
        });
        assert_eq!(record_identity(&login), None);
        assert_eq!(owner_tag("teltonika:1:abc"), owner_tag("teltonika:1:abc"));
    }

    #[test]
    fn the_first_frame_carries_a_record_and_a_repacked_resend_only_the_new_ones() {
        let mut m = Memory::default();
        let (a, b) = (owner_tag("frame-a"), owner_tag("frame-b"));
        let first = m.claim(a, &[1, 2, 3, 4, 5], 256);
        assert_eq!(first.carry, vec![true; 5]);
        assert!(first.changed);
        // The device lost the ack and re-packed its 5 pending records with 2 new ones.
        let resend = m.claim(b, &[1, 2, 3, 4, 5, 6, 7], 256);
        assert_eq!(
            resend.carry,
            vec![false, false, false, false, false, true, true]
        );
        // Frame A comes again (a hamster died before acknowledging it):
        // it carries what it carried the first time, and writes nothing.
        let again = m.claim(a, &[1, 2, 3, 4, 5], 256);
        assert_eq!(again.carry, vec![true; 5]);
        assert!(!again.changed);
        // And B again: its two.
        assert_eq!(
            m.claim(b, &[1, 2, 3, 4, 5, 6, 7], 256).carry,
            vec![false, false, false, false, false, true, true]
        );
        assert_eq!(m.len(), 7);
    }

    #[test]
    fn a_record_twice_in_one_frame_is_carried_once() {
        let mut m = Memory::default();
        let o = owner_tag("x");
        assert_eq!(m.claim(o, &[9, 9, 8], 256).carry, vec![true, false, true]);
        assert_eq!(m.claim(o, &[9, 9, 8], 256).carry, vec![true, false, true]);
    }

    #[test]
    fn the_oldest_frames_are_forgotten_past_the_cap_but_never_the_claiming_one() {
        let mut m = Memory::default();
        for f in 0..10u32 {
            let ids: Vec<u64> = (0..3).map(|i| u64::from(f * 10 + i)).collect();
            m.claim(f, &ids, 9);
        }
        assert_eq!(m.len(), 9, "three frames of three");
        assert_eq!(m.owner_of(0), None, "the oldest is forgotten");
        assert_eq!(m.owner_of(91), Some(9));
        // A frame larger than the cap keeps all its claims.
        let big: Vec<u64> = (1000..1020).collect();
        let c = m.claim(77, &big, 9);
        assert!(c.carry.iter().all(|&x| x));
        assert_eq!(m.len(), 20);
        assert!(Memory::decode(&m.encode()).unwrap() == m);
    }

    #[test]
    fn the_stored_form_round_trips_and_refuses_what_it_is_not() {
        let mut m = Memory::default();
        m.claim(1, &[u64::MAX, 0, 42], 256);
        m.claim(2, &[7], 256);
        let bytes = m.encode();
        assert_eq!(bytes.len(), 3 + (6 + 24) + (6 + 8));
        assert_eq!(Memory::decode(&bytes).unwrap(), m);
        assert_eq!(Memory::decode(b"").unwrap_err(), MemoryError::Header);
        assert_eq!(Memory::decode(b"{}").unwrap_err(), MemoryError::Header);
        assert_eq!(
            Memory::decode(&bytes[..bytes.len() - 1]).unwrap_err(),
            MemoryError::Truncated(3 + 30 + 6)
        );
        assert_eq!(Memory::decode(&MAGIC).unwrap(), Memory::default());
        assert!(Memory::max_encoded_len(256) >= m.encode().len());
    }
}
