//! Message 0x0900 (transparent data uplink): a type byte, then vendor data.
//! Known types: 0x40 text (a `GTSL|…` driver card, or free text), 0x41
//! `$OBD-RT` values, 0xF0 vehicle data with a location (values, trouble
//! codes, alarms, trips, VIN, events), 0xFF a position, 0xF3 collision data,
//! 0x53/0x54 a position with sensor tags or values.

use serde_json::Value;

use crate::read::Reader;
use crate::{DeviceMessage, ParseContext, ParseError, Position, Record};

use super::location::{add_alarm, coordinates, obd_rt, read_date, TIME_ZONE_HOURS};
use super::NAME;

/// A status record with the position's attributes (no fix of its own).
fn status(p: Position, ctx: &ParseContext) -> Record {
    let mut m = DeviceMessage::new(ctx, NAME);
    m.time = p.fix_time;
    m.attributes = p.attributes;
    Record::Status(m)
}

pub(crate) fn transparent(
    body: &[u8],
    ctx: &ParseContext,
    model: Option<&str>,
) -> Result<Vec<Record>, ParseError> {
    let mut r = Reader::new(body);
    let kind = r.u8("transparent type")?;
    let mut p = Position::new(&ctx.device_id, NAME, ctx.received_at);
    match kind {
        0x40 => {
            let data = r.ascii(r.remaining(), "text")?;
            let data = data.trim_matches(|c: char| c <= ' ');
            if data.starts_with("GTSL") {
                if let Some(id) = data.split('|').nth(4) {
                    p.set("driverUniqueId", id);
                }
            } else if !data.is_empty() {
                p.set("data", data);
            }
            if p.attributes.is_empty() {
                return Ok(vec![]);
            }
            Ok(vec![status(p, ctx)])
        }
        0x41 => {
            let data = r.ascii(r.remaining(), "obd")?;
            obd_rt(&mut p, data.trim_matches(|c: char| c <= ' '));
            Ok(vec![status(p, ctx)])
        }
        0xf0 => vehicle_data(&mut r, p, ctx, model),
        0xff => {
            p.fix_time = read_date(&mut r, TIME_ZONE_HOURS)?;
            p.valid = true;
            p.latitude = f64::from(r.u32("latitude")? as i32) / 1_000_000.0;
            p.longitude = f64::from(r.u32("longitude")? as i32) / 1_000_000.0;
            p.altitude = f64::from(r.i16("altitude")?);
            p.speed = f64::from(r.u16("speed")?) / 10.0;
            p.course = f64::from(r.u16("course")?);
            Ok(vec![Record::Position(p)])
        }
        0xf3 => {
            while r.remaining() > 4 {
                let t = r.u16("type")?;
                let l = usize::from(r.u16("length")?);
                let end = r.pos() + l;
                match t {
                    0x0002 => p.set("collision", f64::from(r.u16("collision")?) / 256.0 / 100.0),
                    0x0006 => p.fix_time = read_date(&mut r, TIME_ZONE_HOURS)?,
                    _ => {}
                }
                r.seek(end);
            }
            Ok(vec![status(p, ctx)])
        }
        0x53 | 0x54 => {
            coordinates(&mut r, &mut p, model)?;
            p.altitude = f64::from(r.i16("altitude")?);
            p.speed = f64::from(r.u16("speed")?) / 10.0;
            p.course = f64::from(r.u16("course")?);
            p.fix_time = read_date(&mut r, TIME_ZONE_HOURS)?;
            if kind == 0x53 {
                r.skip(1, "node count")?;
                while r.remaining() > 0 {
                    let i = u32::from(r.u8("tag")?) + 1;
                    p.set(&format!("tag{i}Mac"), hex::encode(r.bytes(6, "mac")?));
                    p.set(&format!("tag{i}Rssi"), r.i8("rssi")?);
                    let l = usize::from(r.u8("length")?);
                    p.set(&format!("tag{i}Data"), hex::encode(r.bytes(l, "data")?));
                }
            } else {
                while r.remaining() >= 8 {
                    let mask = r.u16("mask")?;
                    r.skip(6, "sample time")?;
                    if mask & 1 != 0 {
                        p.set("lightSensor", r.u16("light")?);
                    }
                    if mask & 2 != 0 {
                        p.set("deviceTemp", f64::from(r.i16("temperature")?) / 10.0);
                        p.set("humidity", f64::from(r.i16("humidity")?) / 10.0);
                    }
                    if mask & 4 != 0 {
                        p.set("temp3", f64::from(r.i16("temperature")?) / 10.0);
                    }
                    if mask & 8 != 0 {
                        r.skip(6, "acceleration")?;
                    }
                    if mask & 16 != 0 {
                        p.set("airPressure", r.u16("air pressure")?);
                    }
                }
            }
            Ok(vec![Record::Position(p)])
        }
        other => Err(ParseError::Unsupported(format!(
            "transparent data type {other:#04x}"
        ))),
    }
}

/// Type 0xF0: time, archive flag, vehicle type, subtype and its data,
/// mostly followed by a status word and coordinates.
fn vehicle_data(
    r: &mut Reader,
    mut p: Position,
    ctx: &ParseContext,
    model: Option<&str>,
) -> Result<Vec<Record>, ParseError> {
    p.fix_time = read_date(r, TIME_ZONE_HOURS)?;
    if r.u8("archive")? > 0 {
        p.set("archive", true);
    }
    r.skip(1, "vehicle type")?;
    let subtype = r.u8("subtype")?;
    let with_location = match subtype {
        0x01 => {
            let count = r.u8("count")?;
            for _ in 0..count {
                let id = r.u16("id")?;
                let len = usize::from(r.u8("length")?);
                match id {
                    0x0102 | 0x0528 | 0x0546 => {
                        p.set("odometer", u64::from(r.u32("odometer")?) * 100)
                    }
                    0x0103 => p.set("fuel", f64::from(r.u32("fuel")?) / 100.0),
                    0x0111 => p.set("fuelTemp", i32::from(r.u8("fuel temperature")?) - 40),
                    0x012e => p.set("oilLevel", f64::from(r.u16("oil level")?) / 10.0),
                    0x052a => p.set("fuel", f64::from(r.u16("fuel")?) / 100.0),
                    0x0105 | 0x052c => p.set("fuelUsed", f64::from(r.u32("fuel used")?) / 100.0),
                    0x014a | 0x0537 | 0x0538 | 0x0539 => p.set(
                        "fuelConsumption",
                        f64::from(r.u16("fuel consumption")?) / 100.0,
                    ),
                    0x052b => p.set("fuel", r.u8("fuel")?),
                    0x052d => p.set("coolantTemp", i32::from(r.u8("coolant")?) - 40),
                    0x052e => p.set("airTemp", i32::from(r.u8("air temperature")?) - 40),
                    0x0530 => p.set("power", f64::from(r.u16("power")?) / 1000.0),
                    0x0535 => p.set("obdSpeed", f64::from(r.u16("obd speed")?) / 10.0),
                    0x0536 => p.set("rpm", r.u16("rpm")?),
                    0x053d => p.set(
                        "intakePressure",
                        f64::from(r.u16("intake pressure")?) / 10.0,
                    ),
                    0x0544 => p.set("liquidLevel", r.u8("liquid level")?),
                    0x0547 | 0x0548 => p.set("throttle", r.u8("throttle")?),
                    0xfeec => p.set("vin", r.ascii(len, "vin")?),
                    _ => {
                        let key = format!("io{id}");
                        match len {
                            1 => p.set(&key, r.u8("value")?),
                            2 => p.set(&key, r.u16("value")?),
                            4 => p.set(&key, r.u32("value")?),
                            _ => r.skip(len, "value")?,
                        }
                    }
                }
            }
            true
        }
        0x02 => {
            let mut codes = Vec::new();
            let count = r.u16("count")?;
            for _ in 0..count {
                r.skip(4, "system id")?;
                let n = r.u16("code count")?;
                for _ in 0..n {
                    r.skip(8, "dtc and status")?;
                    let l = usize::from(r.u16("code length")?);
                    codes.push(
                        r.ascii(l, "code")?
                            .trim_matches(|c: char| c <= ' ')
                            .to_owned(),
                    );
                }
            }
            p.set("dtcs", codes.join(" "));
            true
        }
        0x03 => {
            let count = r.u8("count")?;
            for _ in 0..count {
                let id = r.u8("alarm id")?;
                let len = usize::from(r.u8("alarm length")?);
                let alarm = match id {
                    0x01 => Some("powerRestored"),
                    0x02 => Some("powerCut"),
                    0x0e => Some("idle"),
                    0x1a => Some("hardAcceleration"),
                    0x1b => Some("hardBraking"),
                    0x1c => Some("hardCornering"),
                    0x1d..=0x1f => Some("laneChange"),
                    0x23 => Some("fatigueDriving"),
                    0x25 => Some("overspeed"),
                    0x26..=0x28 => Some("accident"),
                    0x31 | 0x32 => Some("door"),
                    _ => None,
                };
                if let Some(alarm) = alarm {
                    add_alarm(&mut p.attributes, alarm);
                }
                r.skip(len, "alarm data")?;
            }
            true
        }
        0x04 => {
            let property = r.u8("trip property")?;
            p.set("tripNumber", r.u32("trip number")?);
            r.skip(6, "start time")?;
            if property == 0x02 {
                r.skip(23, "end time and locations")?;
                p.set("idlingCount", r.u16("idling count")?);
                p.set("idlingTime", r.u16("idling time")?);
                p.set("tripOdometer", u64::from(r.u16("trip odometer")?) * 100);
                p.set("tripFuel", f64::from(r.u16("trip fuel")?) / 100.0);
            }
            false
        }
        0x0b => {
            if r.u8("vin flag")? > 0 {
                p.set("vin", r.ascii(17, "vin")?);
            }
            false
        }
        0x15 => {
            let event = r.u32("event")? as i32;
            match event {
                51 => add_alarm(&mut p.attributes, "hardAcceleration"),
                52 => add_alarm(&mut p.attributes, "hardBraking"),
                53 => add_alarm(&mut p.attributes, "hardCornering"),
                54 => add_alarm(&mut p.attributes, "laneChange"),
                56 => add_alarm(&mut p.attributes, "accident"),
                _ => p.set("event", Value::from(event)),
            }
            false
        }
        other => {
            return Err(ParseError::Unsupported(format!(
                "vehicle data subtype {other:#04x}"
            )))
        }
    };
    if with_location {
        coordinates(r, &mut p, model)?;
        return Ok(vec![Record::Position(p)]);
    }
    Ok(vec![status(p, ctx)])
}
