//! A device's entry in the `devices` bucket: its latest position.
//!
//! | | |
//! |---|---|
//! | key | the device id as a key token ([`crate::names::device_key`]) |
//! | value | JSON [`DeviceEntry`] (`wire/schema/device-entry.json`) |
//!
//! Written by the monkeys' `devices` processor (compare-and-set on the
//! revision); read by anyone (`nats kv get devices <id>`) and `fleetbus
//! verify --effects`.

use fleetbus_codec::Position;
use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Events derived from one applied record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// The record's id.
    pub source: String,
    pub events: Vec<Event>,
}

/// The value of a device's key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceEntry {
    /// The newest fix.
    pub position: Position,
    /// The id of the record it came from.
    pub source: String,
    /// Last known ignition state (the last fix that reported one).
    #[serde(default)]
    pub ignition: Option<bool>,
    /// Whether the newest fix was above the overspeed threshold.
    #[serde(default)]
    pub overspeed: bool,
    /// The last applied records that raised events, and their events
    /// (newest last), to publish again when one is redelivered.
    #[serde(default)]
    pub recent: Vec<Applied>,
}
