//! The fleet's outbound memory: one SQLite file holding every record a
//! device has not yet had acknowledged — what a real tracker keeps in its
//! flash. A record is deleted only after the gateway acknowledged the frame
//! that carried it.
//!
//! Records are grouped into frames *before* the first send and the grouping
//! is stored, so a frame resent after a lost ack (or after a simulator
//! restart) has exactly the same bytes, hence the same `Nats-Msg-Id`, and
//! JetStream stores it once.

use std::path::Path;
use std::sync::Mutex;

use fleetbus_codec::{Position, Protocol};
use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("simulator queue: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("simulator queue holds a bad record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("device {device} is {stored} in the queue, not {wanted}")]
    ProtocolChanged {
        device: String,
        stored: String,
        wanted: String,
    },
}

/// A device's state in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// Records generated so far (the next record's sequence number).
    pub next_seq: u64,
    /// Unix time of record 0's fix; record n's fix is `base + n` seconds,
    /// so every record of a device has its own fix time.
    pub base_time: i64,
}

/// A frame to send: its id (also the GT06 serial number) and its records.
#[derive(Debug, Clone)]
pub struct QueuedFrame {
    pub frame: u64,
    pub positions: Vec<Position>,
}

/// The queue file. One connection behind a mutex: every operation is a
/// few rows, and WAL mode keeps commits cheap.
pub struct Queue {
    conn: Mutex<Connection>,
}

impl Queue {
    pub fn open(path: &Path) -> Result<Queue, QueueError> {
        let conn = Connection::open(path)?;
        // WAL + synchronous=NORMAL: a committed delete survives a killed
        // process (the OS has it); only a power cut may lose the last
        // commits, which means records sent again, never lost.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS devices (
                 id TEXT PRIMARY KEY,
                 protocol TEXT NOT NULL,
                 next_seq INTEGER NOT NULL,
                 base_time INTEGER NOT NULL,
                 next_frame INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS records (
                 device TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 frame INTEGER,
                 position TEXT NOT NULL,
                 PRIMARY KEY (device, seq)
             );",
        )?;
        Ok(Queue {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device's state, registering it on first sight.
    pub fn device(
        &self,
        id: &str,
        protocol: Protocol,
        base_time: i64,
    ) -> Result<DeviceState, QueueError> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO devices (id, protocol, next_seq, base_time, next_frame)
             VALUES (?1, ?2, 0, ?3, 1)",
            params![id, protocol.name(), base_time],
        )?;
        let (stored, next_seq, base_time): (String, i64, i64) = conn.query_row(
            "SELECT protocol, next_seq, base_time FROM devices WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        if stored != protocol.name() {
            return Err(QueueError::ProtocolChanged {
                device: id.into(),
                stored,
                wanted: protocol.name().into(),
            });
        }
        Ok(DeviceState {
            next_seq: next_seq as u64,
            base_time,
        })
    }

    /// Stores a newly generated record and advances the device's sequence.
    pub fn push(&self, device: &str, seq: u64, position: &Position) -> Result<(), QueueError> {
        let json = serde_json::to_string(position)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO records (device, seq, frame, position) VALUES (?1, ?2, NULL, ?3)",
            params![device, seq as i64, json],
        )?;
        tx.execute(
            "UPDATE devices SET next_seq = MAX(next_seq, ?2) WHERE id = ?1",
            params![device, (seq + 1) as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The device's oldest unacknowledged frame: one already formed (and
    /// perhaps sent) if there is one, else a new one of up to `per_frame`
    /// of its oldest records. `None` when nothing is pending.
    pub fn next_frame(
        &self,
        device: &str,
        per_frame: usize,
    ) -> Result<Option<QueuedFrame>, QueueError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let formed: Option<i64> = tx
            .query_row(
                "SELECT MIN(frame) FROM records WHERE device = ?1 AND frame IS NOT NULL",
                params![device],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let frame = match formed {
            Some(f) => f,
            None => {
                let f: i64 = tx.query_row(
                    "SELECT next_frame FROM devices WHERE id = ?1",
                    params![device],
                    |r| r.get(0),
                )?;
                let n = tx.execute(
                    "UPDATE records SET frame = ?2 WHERE device = ?1 AND seq IN
                       (SELECT seq FROM records WHERE device = ?1 AND frame IS NULL ORDER BY seq LIMIT ?3)",
                    params![device, f, per_frame as i64],
                )?;
                if n == 0 {
                    return Ok(None);
                }
                tx.execute(
                    "UPDATE devices SET next_frame = next_frame + 1 WHERE id = ?1",
                    params![device],
                )?;
                f
            }
        };
        let positions = {
            let mut stmt = tx.prepare(
                "SELECT position FROM records WHERE device = ?1 AND frame = ?2 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![device, frame], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(serde_json::from_str(&row?)?);
            }
            out
        };
        tx.commit()?;
        Ok(Some(QueuedFrame {
            frame: frame as u64,
            positions,
        }))
    }

    /// The gateway acknowledged `frame`: forget its records.
    pub fn acked(&self, device: &str, frame: u64) -> Result<usize, QueueError> {
        Ok(self.conn().execute(
            "DELETE FROM records WHERE device = ?1 AND frame = ?2",
            params![device, frame as i64],
        )?)
    }

    /// Records not yet acknowledged, whole fleet.
    pub fn pending(&self) -> Result<u64, QueueError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn pos(device: &str, s: i64) -> Position {
        Position::new(device, "teltonika", Utc.timestamp_opt(s, 0).unwrap())
    }

    #[test]
    fn frames_are_formed_once_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let q = Queue::open(&path).unwrap();
        let st = q.device("d1", Protocol::Teltonika, 1000).unwrap();
        assert_eq!(st.next_seq, 0);
        for s in 0..5 {
            q.push("d1", s, &pos("d1", 1000 + s as i64)).unwrap();
        }
        let f1 = q.next_frame("d1", 2).unwrap().unwrap();
        assert_eq!(f1.positions.len(), 2);
        // Not acked: the same frame again, even after new records came.
        q.push("d1", 5, &pos("d1", 1005)).unwrap();
        let again = q.next_frame("d1", 3).unwrap().unwrap();
        assert_eq!(again.frame, f1.frame);
        assert_eq!(again.positions, f1.positions);
        drop(q);

        // A restarted simulator resumes from the file.
        let q = Queue::open(&path).unwrap();
        assert_eq!(
            q.device("d1", Protocol::Teltonika, 9999).unwrap().next_seq,
            6
        );
        assert_eq!(
            q.device("d1", Protocol::Teltonika, 9999).unwrap().base_time,
            1000
        );
        let same = q.next_frame("d1", 3).unwrap().unwrap();
        assert_eq!(same.positions, f1.positions);
        assert_eq!(q.acked("d1", same.frame).unwrap(), 2);
        let next = q.next_frame("d1", 3).unwrap().unwrap();
        assert!(next.frame > same.frame);
        assert_eq!(next.positions.len(), 3);
        q.acked("d1", next.frame).unwrap();
        assert_eq!(q.pending().unwrap(), 1);
        assert!(
            q.device("d1", Protocol::Gt06, 0).is_err(),
            "a device keeps its protocol"
        );
    }
}
