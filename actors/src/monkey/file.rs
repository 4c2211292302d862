//! The `file` built-in: every record as one JSON line, in files that rotate
//! by size — the simplest archive.
//!
//! Each line is `{"id": <msg id>, "subject": …, "record": {…}}`. Each process
//! writes its own files, `<dir>/<prefix>-<start time>-<pid>-<n>.jsonl`, so
//! several monkeys on one host never interleave; a file is closed and the
//! next one started when it would grow past `max_bytes`. A line is written
//! (to the operating system) before the message is acknowledged; after a
//! crash a redelivered record may be written a second time, with the same
//! `id`, so readers deduplicate by `id`. (Lines are not fsynced one by one:
//! set `fsync = true` to sync each line, at a cost.)

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::Utc;
use fleetbus_codec::Record;
use serde::{Deserialize, Serialize};

use super::{Meta, ProcessError, Processor};

/// Settings of the file sink (`[monkey.file]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Directory of the files; no file sink when unset.
    pub dir: Option<PathBuf>,
    /// File name prefix.
    pub prefix: String,
    /// A file is rotated before it grows past this, bytes.
    pub max_bytes: u64,
    /// fsync every line before acknowledging.
    pub fsync: bool,
}

impl Default for FileSinkConfig {
    fn default() -> Self {
        FileSinkConfig {
            dir: None,
            prefix: "parsed".into(),
            max_bytes: 64 << 20,
            fsync: false,
        }
    }
}

struct Current {
    file: Option<File>,
    written: u64,
    index: u32,
}

pub struct FileSink {
    dir: PathBuf,
    config: FileSinkConfig,
    stem: String,
    current: Mutex<Current>,
}

impl FileSink {
    pub fn open(dir: PathBuf, config: FileSinkConfig) -> std::io::Result<FileSink> {
        fs::create_dir_all(&dir)?;
        let stem = format!(
            "{}-{}-{}",
            config.prefix,
            Utc::now().format("%Y%m%dT%H%M%S"),
            std::process::id()
        );
        Ok(FileSink {
            dir,
            config,
            stem,
            current: Mutex::new(Current {
                file: None,
                written: 0,
                index: 0,
            }),
        })
    }

    /// The files written so far, oldest first.
    pub fn files(&self) -> Vec<PathBuf> {
        let index = self.current.lock().unwrap().index;
        (1..=index).map(|i| self.path(i)).collect()
    }

    fn path(&self, index: u32) -> PathBuf {
        self.dir.join(format!("{}-{index:04}.jsonl", self.stem))
    }

    /// Appends one line, rotating first if it would not fit.
    pub fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut cur = self.current.lock().unwrap();
        let len = line.len() as u64 + 1;
        if cur.file.is_none() || (cur.written > 0 && cur.written + len > self.config.max_bytes) {
            cur.index += 1;
            let path = self.path(cur.index);
            cur.file = Some(File::options().create(true).append(true).open(&path)?);
            cur.written = 0;
        }
        let file = cur.file.as_mut().expect("opened above");
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        file.write_all(&buf)?;
        if self.config.fsync {
            file.sync_data()?;
        }
        cur.written += len;
        Ok(())
    }
}

#[derive(Serialize)]
struct Line<'a> {
    id: &'a str,
    subject: &'a str,
    record: &'a Record,
}

impl Processor for FileSink {
    fn name(&self) -> &str {
        "file"
    }

    async fn process(&self, record: &Record, meta: &Meta) -> Result<(), ProcessError> {
        let line = serde_json::to_vec(&Line {
            id: &meta.msg_id,
            subject: &meta.subject,
            record,
        })
        .map_err(|e| ProcessError::Invalid(e.to_string()))?;
        self.write_line(&line)
            .map_err(|e| ProcessError::Retry(format!("write {}: {e}", self.dir.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_every_line() {
        let dir = std::env::temp_dir().join(format!("fleetbus-file-sink-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let sink = FileSink::open(
            dir.clone(),
            FileSinkConfig {
                max_bytes: 100,
                ..FileSinkConfig::default()
            },
        )
        .unwrap();
        for i in 0..10 {
            sink.write_line(format!("{{\"n\":{i},\"pad\":\"xxxxxxxxxxxxxxxx\"}}").as_bytes())
                .unwrap();
        }
        let files = sink.files();
        assert!(files.len() >= 3, "{files:?}");
        let mut lines = Vec::new();
        for f in &files {
            let text = fs::read_to_string(f).unwrap();
            assert!(
                text.len() <= 100,
                "{} has {} bytes",
                f.display(),
                text.len()
            );
            lines.extend(text.lines().map(str::to_string));
        }
        assert_eq!(lines.len(), 10);
        assert!(lines[9].contains("\"n\":9"));
        let _ = fs::remove_dir_all(&dir);
    }
}
