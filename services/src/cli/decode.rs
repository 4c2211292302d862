//! `fleetbus decode <protocol>`: a debugging tool and a stable interface.
//!
//! Reads stdin, one hex-encoded frame per line, and writes one JSON object per
//! input line, in order: `{"positions":[…]}` (empty for frames without a
//! position) or `{"error":"…"}`. With `--records`, `{"records":[…]}`
//! instead: every record of the frame, the array written by the same
//! function that writes a PARSED payload ([`records_payload`]). Identity
//! from a login line is remembered for the lines after it, as on a real
//! connection. Exit status is 0 unless stdin cannot be read or stdout
//! cannot be written.

use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use fleetbus_codec::{FrameDecoder, Position, Protocol, Record};
use fleetbus_wire::parsed::records_payload;
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Protocol of the frames (see --list).
    #[arg(required_unless_present = "list")]
    pub protocol: Option<Protocol>,
    /// Print the supported protocols and exit.
    #[arg(long)]
    pub list: bool,
    /// Device model, for protocols whose clones differ per model (GT06:
    /// `LW4G-4B`, `SEEWORLD`, `R11`, `G18`, …; see docs/protocols.md).
    #[arg(long)]
    pub model: Option<String>,
    /// Print every record of each frame (positions, logins, heartbeats,
    /// command replies, status), each as it travels on PARSED, with its
    /// `type`: `{"records":[…]}` per line instead of `{"positions":[…]}`.
    #[arg(long)]
    pub records: bool,
}

/// What a decoded frame prints as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `{"positions":[…]}`: the positions only (the original interface).
    Positions,
    /// `{"records":[…]}`: every record, as a PARSED payload holds it.
    Records,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if args.list {
        for p in Protocol::ALL {
            writeln!(out, "{}\t{}", p.name(), p.default_port())?;
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let protocol = args.protocol.context("a protocol is required")?;
    let shape = if args.records {
        Shape::Records
    } else {
        Shape::Positions
    };
    decode_lines(
        FrameDecoder::new(protocol).with_model(args.model),
        shape,
        io::stdin().lock(),
        &mut out,
    )?;
    out.flush().context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Decodes every line of `input` into one JSON line of `out`.
pub fn decode_lines(
    mut decoder: FrameDecoder,
    shape: Shape,
    input: impl BufRead,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    for line in input.lines() {
        let line = line.context("cannot read stdin")?;
        let decoded = frame_of(&line).and_then(|frame| {
            decoder
                .decode(&frame, Utc::now())
                .map_err(|e| e.to_string())
        });
        match (decoded, shape) {
            (Ok(records), Shape::Positions) => {
                let positions: Vec<&Position> =
                    records.iter().filter_map(Record::as_position).collect();
                serde_json::to_writer(&mut *out, &json!({ "positions": positions }))?;
            }
            (Ok(records), Shape::Records) => {
                // The PARSED payload itself, spliced in untouched: not
                // parsed back into a Value, which would reorder its keys.
                let records: Vec<&Record> = records.iter().collect();
                out.write_all(b"{\"records\":")?;
                out.write_all(&records_payload(&records))?;
                out.write_all(b"}")?;
            }
            (Err(error), _) => serde_json::to_writer(&mut *out, &json!({ "error": error }))?,
        }
        out.write_all(b"\n").context("cannot write to stdout")?;
    }
    Ok(())
}

/// The frame a line spells, or why it spells none.
fn frame_of(line: &str) -> Result<Vec<u8>, String> {
    // Tolerate what people paste: surrounding blanks, spaces between bytes, 0x.
    let cleaned: String = line
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    match hex::decode(&cleaned) {
        Ok(b) if !b.is_empty() => Ok(b),
        Ok(_) => Err("empty line: expected one hex-encoded frame".to_string()),
        Err(e) => Err(format!("not hex: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_gets_one_answer_in_order_in_either_shape() {
        for (shape, key) in [(Shape::Positions, "positions"), (Shape::Records, "records")] {
            let input = "zz\n\n00\n";
            let mut out = Vec::new();
            decode_lines(
                FrameDecoder::new(Protocol::Teltonika),
                shape,
                input.as_bytes(),
                &mut out,
            )
            .unwrap();
            let lines: Vec<serde_json::Value> = String::from_utf8(out)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(lines.len(), 3);
            assert!(lines[0]["error"].as_str().unwrap().contains("not hex"));
            assert!(lines[1]["error"].as_str().unwrap().contains("empty"));
            assert!(lines[2].get("error").is_some() || lines[2].get(key).is_some());
        }
    }
}
