//! `fleetbus decode <protocol>`: a debugging tool and a stable interface.
//!
//! Reads stdin, one hex-encoded frame per line, and writes one JSON object per
//! input line, in order: `{"positions":[…]}` (empty for frames without a
//! position) or `{"error":"…"}`. Identity from a login line is remembered for
//! the lines after it, as on a real connection. Exit status is 0 unless stdin
//! cannot be read or stdout cannot be written.

use std::io::{self, BufRead, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use fleetbus_codec::{FrameDecoder, Position, Protocol, Record};
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
    decode_lines(
        FrameDecoder::new(protocol).with_model(args.model),
        io::stdin().lock(),
        &mut out,
    )?;
    out.flush().context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Decodes every line of `input` into one JSON line of `out`.
pub fn decode_lines(
    mut decoder: FrameDecoder,
    input: impl BufRead,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    for line in input.lines() {
        let line = line.context("cannot read stdin")?;
        let answer = decode_line(&mut decoder, &line);
        serde_json::to_writer(&mut *out, &answer)?;
        out.write_all(b"\n").context("cannot write to stdout")?;
    }
    Ok(())
}

fn decode_line(decoder: &mut FrameDecoder, line: &str) -> serde_json::Value {
    // Tolerate what people paste: surrounding blanks, spaces between bytes, 0x.
    let cleaned: String = line
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bytes = match hex::decode(&cleaned) {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => return json!({ "error": "empty line: expected one hex-encoded frame" }),
        Err(e) => return json!({ "error": format!("not hex: {e}") }),
    };
    match decoder.decode(&bytes, Utc::now()) {
        Ok(records) => {
            let positions: Vec<&Position> =
                records.iter().filter_map(Record::as_position).collect();
            json!({ "positions": positions })
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_gets_one_answer_in_order() {
        let input = "zz\n\n00\n";
        let mut out = Vec::new();
        decode_lines(
            FrameDecoder::new(Protocol::Teltonika),
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
        assert!(lines[2].get("error").is_some() || lines[2].get("positions").is_some());
    }
}
