//! Encoders for both directions: device packets (for the simulator and the
//! round-trip tests) and the server's answers (for the session).

use bytes::{BufMut, Bytes, BytesMut};

use crate::Position;

use super::frame::{self, crc};

/// Why records could not be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// A records packet counts its records in one byte.
    #[error("{0} records do not fit in one packet (at most 255)")]
    TooManyRecords(usize),
}

/// A device packet: `len`, IMEI, command, payload, CRC.
pub fn packet(imei: u64, command: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(13 + payload.len());
    let len = u16::try_from(9 + payload.len()).expect("payload fits a Ruptela packet");
    b.put_u16(len);
    b.put_u64(imei);
    b.put_u8(command);
    b.put_slice(payload);
    let c = crc(&b[2..]);
    b.put_u16(c);
    b.freeze()
}

/// The server's positive answer to `command`: `00 02`, the answer's command,
/// `01`, CRC. Records and extended records are both answered by command
/// 100 (`00 02 64 01 13 bc`); the other commands by `100 + command`
/// (DTCs `6d`, identification `73`, heartbeat `74`).
pub fn ack(command: u8) -> Bytes {
    let answer = match command {
        frame::RECORDS | frame::EXTENDED_RECORDS => 100,
        other => other.wrapping_add(100),
    };
    let body = [answer, 0x01];
    let mut b = BytesMut::with_capacity(6);
    b.put_u16(2);
    b.put_slice(&body);
    b.put_u16(crc(&body));
    b.freeze()
}

/// A heartbeat (command 16) without payload.
pub fn heartbeat(imei: u64) -> Bytes {
    packet(imei, frame::HEARTBEAT, &[])
}

/// An identification packet (command 15) with the device's payload.
pub fn identification(imei: u64, payload: &[u8]) -> Bytes {
    packet(imei, frame::IDENTIFICATION, payload)
}

/// A records packet (command 1) with one record per position. Each record
/// carries `event`, and as I/O values the `ignition` attribute (id 251),
/// `power` in volts (id 29, millivolts) and `odometer` in metres (id 65),
/// when present. Speed is whole km/h, altitude decimetres, course
/// hundredths of a degree, coordinates 1e-7 degrees; values outside a
/// field's range are clamped.
pub fn records(imei: u64, positions: &[Position], event: u8) -> Result<Bytes, EncodeError> {
    let count =
        u8::try_from(positions.len()).map_err(|_| EncodeError::TooManyRecords(positions.len()))?;
    let mut b = BytesMut::new();
    b.put_u8(0); // records left in the device
    b.put_u8(count);
    for p in positions {
        let secs = u32::try_from(p.fix_time.timestamp().max(0)).unwrap_or(u32::MAX);
        b.put_u32(secs);
        b.put_u8(0); // timestamp extension
        b.put_u8(0); // priority
        b.put_i32((p.longitude.clamp(-180.0, 180.0) * 1e7).round() as i32);
        b.put_i32((p.latitude.clamp(-90.0, 90.0) * 1e7).round() as i32);
        b.put_u16((p.altitude * 10.0).round().clamp(0.0, 65535.0) as u16);
        b.put_u16((p.course * 100.0).round().clamp(0.0, 35999.0) as u16);
        b.put_u8(p.satellites.unwrap_or(0).min(255) as u8);
        b.put_u16(p.speed.round().clamp(0.0, 65535.0) as u16);
        let hdop = p
            .attributes
            .get("hdop")
            .and_then(|v| v.as_f64())
            .unwrap_or(1.0);
        b.put_u8((hdop * 10.0).round().clamp(0.0, 255.0) as u8);
        b.put_u8(event);
        let ignition = p.attributes.get("ignition").and_then(|v| v.as_bool());
        let power = p.attributes.get("power").and_then(|v| v.as_f64());
        let odometer = p.attributes.get("odometer").and_then(|v| v.as_u64());
        // 1-byte values.
        b.put_u8(u8::from(ignition.is_some()));
        if let Some(on) = ignition {
            b.put_u8(251);
            b.put_u8(u8::from(on));
        }
        // 2-byte values.
        b.put_u8(u8::from(power.is_some()));
        if let Some(volts) = power {
            b.put_u8(29);
            b.put_u16((volts * 1000.0).round().clamp(0.0, 65535.0) as u16);
        }
        // 4-byte values.
        b.put_u8(u8::from(odometer.is_some()));
        if let Some(m) = odometer {
            b.put_u8(65);
            b.put_u32(u32::try_from(m).unwrap_or(u32::MAX));
        }
        // 8-byte values.
        b.put_u8(0);
    }
    Ok(packet(imei, frame::RECORDS, &b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks() {
        assert_eq!(hex::encode(ack(1)), "0002640113bc");
        assert_eq!(hex::encode(ack(68)), "0002640113bc");
        assert_eq!(hex::encode(ack(16)), "00027401862d");
    }

    #[test]
    fn heartbeat_packet() {
        let h = heartbeat(863591024076709);
        assert_eq!(
            &h[..11],
            &hex::decode("00090003116e7438a7a510").unwrap()[..]
        );
        assert_eq!(h.len(), 13);
    }
}
