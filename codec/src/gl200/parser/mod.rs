//! Queclink text messages to records.
//!
//! Fields are comma-separated; the last two are the send time
//! (`yyyyMMddHHmmss`) and a 4-hex-digit count. A location block is
//! `hdop,speed,course,altitude,longitude,latitude,fix time`, optionally
//! WiFi access points, then `mcc,mnc,lac,cell` (lac and cell hex) and one
//! field that is the odometer (km, with a point) or an append mask. Which
//! fields surround the blocks depends on the message type and, for some,
//! on the model, which the protocol version's first two characters name
//! (as Traccar reads it; a configured model wins).

mod attrs;
mod basic;
mod block;
mod eri;
mod fri;
mod ign;
mod inf;

use serde_json::{Map, Value};

use crate::{DeviceMessage, ParseContext, ParseError, Record};

use super::message::{fields, header, is_binary};
use super::NAME;
use basic::basic;
use block::{invalid, time14};
use eri::eri;
use fri::fri;
use ign::ign;
use inf::inf;

type Attrs = Map<String, Value>;

/// The model a protocol version stands for (its first two characters, or
/// six for the longer versions).
fn model_of(version: &str) -> &'static str {
    let key = if version.len() > 6 {
        version.get(..6).unwrap_or("")
    } else {
        version.get(..2).unwrap_or("")
    };
    match key {
        "02" | "21" => "GL200",
        "04" | "35" => "GV200",
        "06" | "25" => "GV300",
        "08" | "3F" => "GMT100",
        "09" => "GV50P",
        "0F" | "2F" => "GV55",
        "10" => "GV55 LITE",
        "11" | "40" => "GL500",
        "1A" | "30" => "GL300",
        "1F" | "36" => "GV500",
        "27" => "GV300W",
        "28" => "GL300VC",
        "2C" => "GL300W",
        "2D" => "GV500VC",
        "4F" => "GV56",
        "31" => "GV65",
        "41" => "GV75W",
        "42" => "GT501",
        "44" => "GL530",
        "45" => "GB100",
        "50" => "GV55W",
        "52" => "GL50",
        "55" => "GL50B",
        "5E" => "GV500MAP",
        "6E" => "GV310LAU",
        "74" => "GV350CEU",
        "BD" => "CV200",
        "C2" => "GV600M",
        "C3" => "GL320M",
        "DC" => "GV600MG",
        "DE" => "GL500M",
        "DF" => "CV100LG",
        "F1" => "GV350M",
        "F8" => "GV800W",
        "FC" => "GV600W",
        "802004" => "GV58LAU",
        "802005" => "GV355CEU",
        "80201E" => "GV30CEU",
        _ => "",
    }
}

pub(crate) fn parse(frame: &[u8], ctx: &ParseContext) -> Result<Vec<Record>, ParseError> {
    if is_binary(frame) {
        return super::binary::parse(frame, ctx);
    }
    let v = fields(frame).ok_or_else(|| ParseError::Invalid("message is not text".into()))?;
    let (kind, ty) = header(&v).ok_or_else(|| invalid("header", &v[0]))?;
    if v.len() < 4 {
        return Err(ParseError::Truncated(format!("{} field(s)", v.len())));
    }
    let model = ctx
        .model
        .as_deref()
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| model_of(&v[1]).to_owned());
    let sent = time14(&v[v.len() - 2]);
    let mut records = if kind == "ACK" {
        let mut m = DeviceMessage::new(ctx, NAME);
        if let Some(t) = sent {
            m.time = t;
        }
        if ty == "HBD" {
            vec![Record::Heartbeat(m)]
        } else {
            m.set("result", v[0].as_str());
            vec![Record::CommandReply(m)]
        }
    } else {
        match ty {
            "FRI" | "GEO" | "RTL" | "DOG" => fri(&v, sent, ctx)?,
            "ERI" => eri(&v, &model, sent, ctx)?,
            "IGN" | "IGF" | "VGN" | "VGF" => vec![ign(&v, ty, &model, sent, ctx)?],
            "INF" => vec![inf(&v, &model, sent, ctx)],
            _ => vec![basic(&v, ty, &model, sent, ctx)?],
        }
    };
    if kind != "ACK" {
        for r in &mut records {
            match r {
                Record::Position(p) => {
                    p.attributes.insert("type".into(), ty.into());
                }
                Record::Status(m) => {
                    m.attributes.insert("type".into(), ty.into());
                }
                _ => {}
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ctx() -> ParseContext {
        ParseContext::new(
            "865284042140479",
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    fn run(s: &str) -> Vec<Record> {
        parse(s.as_bytes(), &ctx()).unwrap()
    }

    #[test]
    fn fixed_report() {
        let r = run("+RESP:GTFRI,DE0114,865284042140479,,0,0,1,1,0.0,0,28.0,-118.268093,33.975430,20200901105954,0311,0480,3500,00D07F02,18,0,,93,0,,,20200901110000,0355$");
        assert_eq!(r.len(), 1);
        let Record::Position(p) = &r[0] else {
            panic!("{r:?}")
        };
        assert_eq!(
            (p.latitude, p.longitude, p.altitude),
            (33.975430, -118.268093, 28.0)
        );
        assert_eq!(
            p.fix_time,
            Utc.with_ymd_and_hms(2020, 9, 1, 10, 59, 54).unwrap()
        );
        assert!(p.valid);
        assert_eq!(p.attributes["batteryLevel"], 93);
        assert_eq!(
            p.attributes["network"]["cellTowers"][0]["cellId"],
            0x00D07F02
        );
    }

    #[test]
    fn vehicle_tail_status() {
        let r = run("+RESP:GTFRI,380903,869606020188383,,,40,1,2,43.4,80,252.4,8.606297,50.700200,20200721090109,0262,0001,1932,1BA4,00,0.0,,,,0,220100,,,,20200721090110,00B9$");
        let a = r[0].attributes();
        assert_eq!(a["in1"], false);
        assert_eq!(a["ignition"], true);
        assert!(a.get("speed").is_none());
    }

    #[test]
    fn vin_as_last_field_does_not_panic() {
        // Found by fuzzing: a 17-character VIN-like field ends the message.
        let _ = parse(
            b"+RESP:GTFRI,1A0200,865284042140479,ABCDEFGHJKLMNPRST",
            &ctx(),
        );
        let crash = b"+RESP:GTFRI,1A]0200,8605+RE2\0:GTIN****,1010";
        let _ = parse(crash, &ctx());
    }

    #[test]
    fn without_fix_is_status() {
        let r = run("+RESP:GTPFA,F50201,866425030235982,GL300M,20190208124849,0BD4$");
        assert!(matches!(&r[0], Record::Status(m) if m.attributes["alarm"] == "powerOff"));
        let r = run("+ACK:GTHBD,0F0106,862193020451183,,20160727001255,3B7D$");
        assert!(matches!(&r[0], Record::Heartbeat(_)));
        assert!(parse(b"+RESP:GTFRI,1,2", &ctx()).is_err());
        assert!(parse(&hex::decode("2b4556540c00fc1fbf005c45").unwrap(), &ctx()).is_err());
    }
}
