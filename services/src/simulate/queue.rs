//! The fleet's outbound memory: one SQLite file holding every record a
//! device has not yet had acknowledged — what a real tracker keeps in its
//! flash. A record is deleted only after the gateway acknowledged the frame
//! that carried it.
//!
//! Records are grouped into frames *before* the first send and the grouping
//! is stored with the frame's attempt number, so what a device sends is
//! fixed by what is stored: a simulator restarted from the file sends the
//! bytes it would have sent anyway. After a lost ack a device either sends
//! the frame again ([`Queue::retry`] counts the attempt, for protocols that
//! re-encode a resend) or dissolves its grouping ([`Queue::regroup`]), so
//! that the records go out afresh with newer ones, as re-packing firmware
//! does.

use std::path::Path;

use fleetbus_codec::{Position, Protocol};
use rusqlite::{params, Connection, OptionalExtension};

use super::memory::MemoryQueue;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("simulator queue: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("simulator queue: {0}")]
    Commit(String),
    #[error("simulator queue: {0}")]
    Io(#[from] std::io::Error),
    #[error("simulator queue holds a bad record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("device {0} was never registered in the queue")]
    UnknownDevice(String),
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

/// A frame to send: its id, how many times it went out before without an
/// ack (counted by [`Queue::retry`]) and its records, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedFrame {
    pub frame: u64,
    pub attempt: u32,
    pub positions: Vec<Position>,
}

/// What a job returns to the writer thread: called with the outcome of the
/// commit, it hands the job's result to its caller.
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut Connection) -> Reply + Send>;

/// At most this many operations share one commit.
const GROUP: usize = 1024;

/// The fleet's outbound queue: the SQLite file [`Queue::open`] is given, or,
/// for the path [`MEMORY`], the process's memory (see `memory.rs`).
pub struct Queue {
    backend: Backend,
}

/// The path that keeps the queue in memory, as SQLite names it.
pub const MEMORY: &str = ":memory:";

enum Backend {
    File(FileQueue),
    Memory(MemoryQueue),
}

/// The queue file, owned by one writer thread that commits the operations
/// of all devices waiting at that moment together (group commit): one WAL
/// append per group instead of one per operation, and no device task blocks
/// the async runtime on SQLite. Each operation runs in its own savepoint,
/// and its caller hears of it only once the group's commit is done, so
/// every result is durable (WAL, `synchronous=NORMAL`) when it is seen.
/// Statements are prepared once and cached: at thousands of records a
/// second, parsing and planning the SQL each time cost more than running it.
struct FileQueue {
    /// Unbounded, but never long: every device awaits its operation before
    /// it queues another, so at most one job per device waits here.
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FileQueue {
    /// Finishes the jobs sent so far and closes the file.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn write_groups(mut conn: Connection, jobs: std::sync::mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let begun = conn.execute_batch("BEGIN IMMEDIATE");
        let replies: Vec<Reply> = group.into_iter().map(|job| job(&mut conn)).collect();
        let committed = begun
            .and_then(|()| conn.execute_batch("COMMIT"))
            .map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                format!("commit failed: {e}")
            });
        for reply in replies {
            reply(committed.clone());
        }
    }
}

impl Queue {
    /// Opens (or creates) the queue file at `path`; [`MEMORY`] keeps it in
    /// memory instead.
    pub fn open(path: &Path) -> Result<Queue, QueueError> {
        let backend = if path.as_os_str() == MEMORY {
            Backend::Memory(MemoryQueue::default())
        } else {
            Backend::File(FileQueue::open(path)?)
        };
        Ok(Queue { backend })
    }
}

/// Creates the tables, or brings a file of an older simulator up to date:
/// its devices get an attempt counter of 0, so its frames resend as that
/// simulator sent them. In one immediate transaction, so that two
/// processes opening the same old file do not both add the column.
fn create_schema(conn: &mut Connection) -> Result<(), QueueError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS devices (
             id TEXT PRIMARY KEY,
             protocol TEXT NOT NULL,
             next_seq INTEGER NOT NULL,
             base_time INTEGER NOT NULL,
             next_frame INTEGER NOT NULL,
             attempt INTEGER NOT NULL DEFAULT 0
         );
         CREATE TABLE IF NOT EXISTS records (
             device TEXT NOT NULL,
             seq INTEGER NOT NULL,
             frame INTEGER,
             position TEXT NOT NULL,
             PRIMARY KEY (device, seq)
         );",
    )?;
    let has_attempt: bool = tx.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('devices') WHERE name = 'attempt'",
        [],
        |r| r.get(0),
    )?;
    if !has_attempt {
        // The attempts of the device's formed frame: a device has at most
        // one formed frame, so its row is where the counter lives.
        tx.execute_batch("ALTER TABLE devices ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0")?;
    }
    tx.commit()?;
    Ok(())
}

impl FileQueue {
    fn open(path: &Path) -> Result<FileQueue, QueueError> {
        let mut conn = Connection::open(path)?;
        // WAL + synchronous=NORMAL: a committed delete survives a killed
        // process (the OS has it); only a power cut may lose the last
        // commits, which means records sent again, never lost.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Plan each cached statement once: without this the bundled SQLite
        // (built with STAT4) re-prepares a statement whenever a parameter
        // compared with an indexed column gets a new value — for every
        // device, on every call.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        create_schema(&mut conn)?;
        let (jobs, rx) = std::sync::mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("simulator-queue".into())
            .spawn(move || write_groups(conn, rx))?;
        Ok(FileQueue {
            jobs: Some(jobs),
            writer: Some(writer),
        })
    }

    /// Runs `op` in the writer thread, in a savepoint of the next group;
    /// its result once the group is committed.
    async fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn: &mut Connection| {
            let result = conn.savepoint().map_err(QueueError::from).and_then(|sp| {
                let out = op(&sp)?;
                sp.commit()?;
                Ok(out)
            });
            Box::new(move |committed: Result<(), String>| {
                let _ = tx.send(committed.map_err(QueueError::Commit).and(result));
            })
        });
        let closed = || QueueError::Commit("the queue's writer thread is gone".into());
        self.jobs
            .as_ref()
            .ok_or_else(closed)?
            .send(job)
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

impl Queue {
    /// One operation on either backend: `memory` at once in memory, `file`
    /// in the writer thread (its result once committed).
    async fn run<T: Send + 'static>(
        &self,
        memory: impl FnOnce(&MemoryQueue) -> Result<T, QueueError>,
        file: impl FnOnce(&Connection) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        match &self.backend {
            Backend::Memory(m) => memory(m),
            Backend::File(f) => f.call(file).await,
        }
    }

    /// The device's state, registering it on first sight.
    pub async fn device(
        &self,
        id: &str,
        protocol: Protocol,
        base_time: i64,
    ) -> Result<DeviceState, QueueError> {
        let key = id.to_string();
        self.run(
            |m| m.device(id, protocol, base_time),
            move |conn| {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO devices (id, protocol, next_seq, base_time, next_frame)
                 VALUES (?1, ?2, 0, ?3, 1)",
                )?
                .execute(params![key, protocol.name(), base_time])?;
                let (stored, next_seq, base_time): (String, i64, i64) = conn
                    .prepare_cached(
                        "SELECT protocol, next_seq, base_time FROM devices WHERE id = ?1",
                    )?
                    .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                if stored != protocol.name() {
                    return Err(QueueError::ProtocolChanged {
                        device: key,
                        stored,
                        wanted: protocol.name().into(),
                    });
                }
                Ok(DeviceState {
                    next_seq: next_seq as u64,
                    base_time,
                })
            },
        )
        .await
    }

    /// Stores a newly generated record and advances the device's sequence.
    pub async fn push(
        &self,
        device: &str,
        seq: u64,
        position: &Position,
    ) -> Result<(), QueueError> {
        // Only the file stores the record as JSON.
        let json = match &self.backend {
            Backend::File(_) => serde_json::to_string(position)?,
            Backend::Memory(_) => String::new(),
        };
        let key = device.to_string();
        self.run(
            |m| m.push(device, seq, position),
            move |conn| {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO records (device, seq, frame, position) VALUES (?1, ?2, NULL, ?3)",
            )?
            .execute(params![key, seq as i64, json])?;
            conn.prepare_cached("UPDATE devices SET next_seq = MAX(next_seq, ?2) WHERE id = ?1")?
                .execute(params![key, (seq + 1) as i64])?;
            Ok(())
        })
        .await
    }

    /// The device's oldest unacknowledged frame: one already formed (and
    /// perhaps sent) if there is one, else a new one of up to `per_frame`
    /// of its oldest records. `None` when nothing is pending.
    pub async fn next_frame(
        &self,
        device: &str,
        per_frame: usize,
    ) -> Result<Option<QueuedFrame>, QueueError> {
        let key = device.to_string();
        self.run(
            |m| m.next_frame(device, per_frame),
            move |conn| next_frame(conn, &key, per_frame),
        )
        .await
    }

    /// The gateway acknowledged `frame`: forget its records.
    pub async fn acked(&self, device: &str, frame: u64) -> Result<usize, QueueError> {
        let sql = "DELETE FROM records WHERE device = ?1 AND frame = ?2";
        self.on_frame(device, frame, |m| m.acked(device, frame), sql)
            .await
    }

    /// `frame` went out and got no ack, and goes out again as it is: count
    /// the attempt. The frame's new attempt number, or `None` when `frame`
    /// is not the device's formed frame (acknowledged or regrouped).
    pub async fn retry(&self, device: &str, frame: u64) -> Result<Option<u32>, QueueError> {
        let key = device.to_string();
        self.run(
            |m| m.retry(device, frame),
            move |conn| {
                let attempt: Option<i64> = conn
                    .prepare_cached(
                        "UPDATE devices SET attempt = attempt + 1 WHERE id = ?1 AND ?2 =
                       (SELECT MIN(frame) FROM records WHERE device = ?1 AND frame IS NOT NULL)
                     RETURNING attempt",
                    )?
                    .query_row(params![key, frame as i64], |r| r.get(0))
                    .optional()?;
                Ok(attempt.map(|a| a as u32))
            },
        )
        .await
    }

    /// `frame` went out and got no ack, and its records go out again in a
    /// new frame: forget the grouping, so that [`Queue::next_frame`] groups
    /// them afresh with the records that came since (oldest first, so
    /// these lead). How many records were in the frame (0 when `frame` is
    /// not the device's formed frame).
    pub async fn regroup(&self, device: &str, frame: u64) -> Result<usize, QueueError> {
        let sql = "UPDATE records SET frame = NULL WHERE device = ?1 AND frame = ?2";
        self.on_frame(device, frame, |m| m.regroup(device, frame), sql)
            .await
    }

    /// A statement `sql` on one frame of a device (`?1`, `?2`): the records
    /// it touched.
    async fn on_frame(
        &self,
        device: &str,
        frame: u64,
        memory: impl FnOnce(&MemoryQueue) -> Result<usize, QueueError>,
        sql: &'static str,
    ) -> Result<usize, QueueError> {
        let key = device.to_string();
        self.run(memory, move |conn| {
            Ok(conn
                .prepare_cached(sql)?
                .execute(params![key, frame as i64])?)
        })
        .await
    }

    /// Records not yet acknowledged, whole fleet.
    pub async fn pending(&self) -> Result<u64, QueueError> {
        self.run(
            |m| Ok(m.pending()),
            |conn| {
                let n: i64 = conn
                    .prepare_cached("SELECT COUNT(*) FROM records")?
                    .query_row([], |r| r.get(0))?;
                Ok(n as u64)
            },
        )
        .await
    }
}

fn next_frame(
    conn: &Connection,
    device: &str,
    per_frame: usize,
) -> Result<Option<QueuedFrame>, QueueError> {
    // The formed frame (a device has at most one), its attempts, and the
    // id a new frame would get, in one statement.
    let (formed, attempt, next): (Option<i64>, i64, i64) = conn
        .prepare_cached(
            "SELECT (SELECT MIN(frame) FROM records WHERE device = ?1 AND frame IS NOT NULL),
                    attempt, next_frame
             FROM devices WHERE id = ?1",
        )?
        .query_row(params![device], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .ok_or_else(|| QueueError::UnknownDevice(device.to_string()))?;
    let (frame, attempt) = match formed {
        Some(f) => (f, attempt),
        None => {
            let n = conn
                .prepare_cached(
                    "UPDATE records SET frame = ?2 WHERE device = ?1 AND seq IN
                       (SELECT seq FROM records WHERE device = ?1 AND frame IS NULL ORDER BY seq LIMIT ?3)",
                )?
                .execute(params![device, next, per_frame as i64])?;
            if n == 0 {
                return Ok(None);
            }
            conn.prepare_cached(
                "UPDATE devices SET next_frame = next_frame + 1, attempt = 0 WHERE id = ?1",
            )?
            .execute(params![device])?;
            (next, 0)
        }
    };
    let mut stmt = conn.prepare_cached(
        "SELECT position FROM records WHERE device = ?1 AND frame = ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![device, frame], |r| r.get::<_, String>(0))?;
    let mut positions = Vec::new();
    for row in rows {
        positions.push(serde_json::from_str(&row?)?);
    }
    Ok(Some(QueuedFrame {
        frame: frame as u64,
        attempt: attempt as u32,
        positions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn pos(device: &str, s: i64) -> Position {
        Position::new(device, "teltonika", Utc.timestamp_opt(s, 0).unwrap())
    }

    #[tokio::test]
    async fn frames_are_formed_once_and_survive_a_reopen() {
        let (_dir, path) = queue_path();
        let q = Queue::open(&path).unwrap();
        let st = q.device("d1", Protocol::Teltonika, 1000).await.unwrap();
        assert_eq!(st.next_seq, 0);
        for s in 0..5 {
            q.push("d1", s, &pos("d1", 1000 + s as i64)).await.unwrap();
        }
        let f1 = formed(&q, "d1", 2).await;
        assert_eq!(f1.positions.len(), 2);
        // Not acked: the same frame again, even after new records came.
        q.push("d1", 5, &pos("d1", 1005)).await.unwrap();
        let again = formed(&q, "d1", 3).await;
        assert_eq!(again.frame, f1.frame);
        assert_eq!(again.positions, f1.positions);
        drop(q);

        // A restarted simulator resumes from the file.
        let q = Queue::open(&path).unwrap();
        assert_eq!(
            q.device("d1", Protocol::Teltonika, 9999)
                .await
                .unwrap()
                .next_seq,
            6
        );
        assert_eq!(
            q.device("d1", Protocol::Teltonika, 9999)
                .await
                .unwrap()
                .base_time,
            1000
        );
        let same = formed(&q, "d1", 3).await;
        assert_eq!(same.positions, f1.positions);
        assert_eq!(q.acked("d1", same.frame).await.unwrap(), 2);
        let next = formed(&q, "d1", 3).await;
        assert!(next.frame > same.frame);
        assert_eq!(next.positions.len(), 3);
        q.acked("d1", next.frame).await.unwrap();
        assert_eq!(q.pending().await.unwrap(), 1);
        assert!(
            q.device("d1", Protocol::Gt06, 0).await.is_err(),
            "a device keeps its protocol"
        );
    }

    /// Both queues, fresh: the file and the memory.
    /// Where a test's queue file goes: a fresh directory (removed when the
    /// guard is dropped) and the file's path in it.
    fn queue_path() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        (dir, path)
    }

    fn both(dir: &Path) -> [Queue; 2] {
        [
            Queue::open(&dir.join("q.db")).unwrap(),
            Queue::open(Path::new(MEMORY)).unwrap(),
        ]
    }

    /// A device of `protocol` (its records from second 1000 on) with
    /// records `seqs` queued.
    async fn device_with(q: &Queue, device: &str, protocol: Protocol, seqs: std::ops::Range<u64>) {
        q.device(device, protocol, 1000).await.unwrap();
        pushed(q, device, seqs).await;
    }

    async fn pushed(q: &Queue, device: &str, seqs: std::ops::Range<u64>) {
        for s in seqs {
            q.push(device, s, &pos(device, 1000 + s as i64))
                .await
                .unwrap();
        }
    }

    /// The device's next frame, which the test knows is pending.
    async fn formed(q: &Queue, device: &str, per_frame: usize) -> QueuedFrame {
        let frame = q.next_frame(device, per_frame).await.unwrap();
        frame.expect("a frame is pending")
    }

    fn seconds(f: &QueuedFrame) -> Vec<i64> {
        f.positions.iter().map(|p| p.fix_time.timestamp()).collect()
    }

    #[tokio::test]
    async fn a_retried_frame_keeps_its_records_and_counts_its_attempts() {
        let dir = tempfile::tempdir().unwrap();
        for q in both(dir.path()) {
            device_with(&q, "d1", Protocol::Gt06, 0..2).await;
            let first = formed(&q, "d1", 1).await;
            assert_eq!(first.attempt, 0);
            assert_eq!(q.retry("d1", first.frame).await.unwrap(), Some(1));
            assert_eq!(q.retry("d1", first.frame).await.unwrap(), Some(2));
            let again = formed(&q, "d1", 1).await;
            assert_eq!(
                (again.frame, again.attempt, &again.positions),
                (first.frame, 2, &first.positions)
            );
            assert_eq!(q.acked("d1", first.frame).await.unwrap(), 1);
            assert_eq!(
                q.retry("d1", first.frame).await.unwrap(),
                None,
                "an acknowledged frame is not retried"
            );
            let next = formed(&q, "d1", 1).await;
            assert!(next.frame > first.frame);
            assert_eq!(next.attempt, 0, "a new frame starts at attempt 0");
        }
    }

    #[tokio::test]
    async fn a_regrouped_frame_goes_out_anew_with_the_records_that_came_since() {
        let dir = tempfile::tempdir().unwrap();
        for q in both(dir.path()) {
            device_with(&q, "d1", Protocol::Teltonika, 0..2).await;
            let first = formed(&q, "d1", 4).await;
            assert_eq!(seconds(&first), [1000, 1001]);
            pushed(&q, "d1", 2..7).await;
            assert_eq!(q.regroup("d1", first.frame).await.unwrap(), 2);
            assert_eq!(q.pending().await.unwrap(), 7, "no record forgotten");
            let repacked = formed(&q, "d1", 4).await;
            assert!(repacked.frame > first.frame, "a new frame");
            assert_eq!(repacked.attempt, 0);
            assert_eq!(
                seconds(&repacked),
                [1000, 1001, 1002, 1003],
                "the pending records first, then the newer ones"
            );
            assert_eq!(q.acked("d1", first.frame).await.unwrap(), 0, "stale");
            assert_eq!(q.regroup("d1", first.frame).await.unwrap(), 0, "stale");
            assert_eq!(q.acked("d1", repacked.frame).await.unwrap(), 4);
            let rest = formed(&q, "d1", 4).await;
            assert_eq!(seconds(&rest), [1004, 1005, 1006]);
        }
    }

    #[tokio::test]
    async fn attempts_and_regroupings_survive_a_reopen() {
        let (_dir, path) = queue_path();
        let q = Queue::open(&path).unwrap();
        device_with(&q, "a", Protocol::Gt06, 0..1).await;
        device_with(&q, "b", Protocol::Teltonika, 0..3).await;
        let a = formed(&q, "a", 1).await;
        q.retry("a", a.frame).await.unwrap();
        let b = formed(&q, "b", 2).await;
        q.regroup("b", b.frame).await.unwrap();
        drop(q);
        // A restarted simulator sends what this one would have sent.
        let q = Queue::open(&path).unwrap();
        let a2 = formed(&q, "a", 1).await;
        assert_eq!((a2.frame, a2.attempt), (a.frame, 1));
        let b2 = formed(&q, "b", 3).await;
        assert!(b2.frame > b.frame);
        assert_eq!(seconds(&b2), [1000, 1001, 1002]);
    }

    /// A queue file written before frames had attempt numbers: opened, it
    /// gains the column, and its formed frame resends as attempt 0 — the
    /// bytes the old simulator sent.
    #[tokio::test]
    async fn a_queue_file_of_an_older_simulator_is_upgraded_in_place() {
        let (_dir, path) = queue_path();
        {
            let old = Connection::open(&path).unwrap();
            let p = serde_json::to_string(&pos("d1", 1000)).unwrap();
            old.execute_batch(&format!(
                "CREATE TABLE devices (id TEXT PRIMARY KEY, protocol TEXT NOT NULL,
                     next_seq INTEGER NOT NULL, base_time INTEGER NOT NULL,
                     next_frame INTEGER NOT NULL);
                 CREATE TABLE records (device TEXT NOT NULL, seq INTEGER NOT NULL,
                     frame INTEGER, position TEXT NOT NULL, PRIMARY KEY (device, seq));
                 INSERT INTO devices VALUES ('d1', 'gt06', 1, 1000, 6);
                 INSERT INTO records VALUES ('d1', 0, 5, '{p}');"
            ))
            .unwrap();
        }
        let q = Queue::open(&path).unwrap();
        let f = formed(&q, "d1", 1).await;
        assert_eq!((f.frame, f.attempt, seconds(&f)), (5, 0, vec![1000]));
        assert_eq!(q.retry("d1", 5).await.unwrap(), Some(1));
        drop(q);
        // Opened again (the column is there now): nothing changes.
        let q = Queue::open(&path).unwrap();
        assert_eq!(formed(&q, "d1", 1).await.attempt, 1);
    }

    /// The memory queue answers every operation as the file does: the
    /// same random sequence of operations (duplicate pushes, frames of
    /// several sizes, acks, retries and regroupings of the current and of
    /// stale frames, a device asking with another protocol) run on both.
    #[tokio::test]
    async fn memory_and_file_answer_alike() {
        let dir = tempfile::tempdir().unwrap();
        let file = Queue::open(&dir.path().join("q.db")).unwrap();
        let memory = Queue::open(Path::new(MEMORY)).unwrap();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut last_frame = [0u64; 3];
        // That the run covered the resend operations: an attempt counted, a
        // frame dissolved, a frame handed out again after two attempts.
        let mut seen = [false; 3];
        for d in 0..3 {
            let id = format!("d{d}");
            file.device(&id, Protocol::Teltonika, 1000).await.unwrap();
            memory.device(&id, Protocol::Teltonika, 1000).await.unwrap();
        }
        for step in 0..2_000 {
            let d = next(3) as usize;
            let id = format!("d{d}");
            let (a, b) = match next(8) {
                0 => {
                    let p = if next(10) == 0 {
                        Protocol::Gt06
                    } else {
                        Protocol::Teltonika
                    };
                    (
                        format!("{:?}", file.device(&id, p, 1000).await),
                        format!("{:?}", memory.device(&id, p, 1000).await),
                    )
                }
                1 | 2 => {
                    let st = file.device(&id, Protocol::Teltonika, 1000).await.unwrap();
                    memory.device(&id, Protocol::Teltonika, 1000).await.unwrap();
                    // Now and then a record pushed again (a restart regenerating it).
                    let seq = st.next_seq.saturating_sub(next(2));
                    let p = pos(&id, 1000 + seq as i64);
                    (
                        format!("{:?}", file.push(&id, seq, &p).await),
                        format!("{:?}", memory.push(&id, seq, &p).await),
                    )
                }
                3 => {
                    let per = next(5) as usize;
                    let (f, m) = (
                        file.next_frame(&id, per).await.unwrap(),
                        memory.next_frame(&id, per).await.unwrap(),
                    );
                    if let Some(f) = &f {
                        last_frame[d] = f.frame;
                        seen[2] |= f.attempt >= 2;
                    }
                    let show =
                        |q: Option<QueuedFrame>| q.map(|q| (q.frame, q.attempt, q.positions));
                    (format!("{:?}", show(f)), format!("{:?}", show(m)))
                }
                4 => {
                    let frame = last_frame[d].saturating_sub(next(2));
                    (
                        format!("{:?}", file.acked(&id, frame).await.unwrap()),
                        format!("{:?}", memory.acked(&id, frame).await.unwrap()),
                    )
                }
                // A lost ack, of the current or of a stale frame: counted
                // as an attempt, or the frame dissolved.
                5 => {
                    let frame = last_frame[d].saturating_sub(next(2));
                    let f = file.retry(&id, frame).await.unwrap();
                    seen[0] |= f.is_some();
                    (
                        format!("{f:?}"),
                        format!("{:?}", memory.retry(&id, frame).await.unwrap()),
                    )
                }
                6 => {
                    let frame = last_frame[d].saturating_sub(next(2));
                    let f = file.regroup(&id, frame).await.unwrap();
                    seen[1] |= f > 0;
                    (
                        format!("{f:?}"),
                        format!("{:?}", memory.regroup(&id, frame).await.unwrap()),
                    )
                }
                _ => (
                    format!("{:?}", file.pending().await.unwrap()),
                    format!("{:?}", memory.pending().await.unwrap()),
                ),
            };
            assert_eq!(a, b, "step {step}: file and memory differ");
        }
        assert!(
            memory.pending().await.unwrap() > 0,
            "the run left records queued"
        );
        assert!(
            seen.iter().all(|&s| s),
            "the run counted attempts, dissolved frames and resent a frame twice: {seen:?}"
        );
    }

    #[tokio::test]
    async fn operations_of_many_devices_share_commits_and_a_failure_stays_its_own() {
        let (_dir, path) = queue_path();
        let q = std::sync::Arc::new(Queue::open(&path).unwrap());
        q.device("d0", Protocol::Teltonika, 1000).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for d in 0..50 {
            let device = q.clone();
            tasks.spawn(async move {
                let q = device;
                let id = format!("d{d}");
                q.device(&id, Protocol::Teltonika, 1000).await?;
                for s in 0..4 {
                    q.push(&id, s, &pos(&id, 1000 + s as i64)).await?;
                }
                let f = q.next_frame(&id, 3).await?.expect("records queued");
                assert_eq!(f.positions.len(), 3);
                q.acked(&id, f.frame).await
            });
            // Interleaved with them: an operation that fails.
            let q = q.clone();
            tasks.spawn(async move {
                let wrong = q.device("d0", Protocol::Gt06, 0).await;
                assert!(matches!(wrong, Err(QueueError::ProtocolChanged { .. })));
                Ok(0)
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
        assert_eq!(q.pending().await.unwrap(), 50, "one record left of each");
        drop(q);
        // All of it committed: a reopened queue sees the same.
        let q = Queue::open(&path).unwrap();
        assert_eq!(q.pending().await.unwrap(), 50);
        let f = formed(&q, "d7", 3).await;
        assert_eq!(f.positions.len(), 1);
        assert_eq!(f.positions[0].fix_time.timestamp(), 1003);
    }
}
