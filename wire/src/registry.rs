//! The device registry: which devices a gateway admits, and the unknown
//! ones waiting for an operator.
//!
//! | bucket | key | value | written by | read by |
//! |---|---|---|---|---|
//! | `registry` | the device id ([`registry_key`]) | [`KnownDevice`] | `fleetbus device add/import/accept` (admin) | gateways (a watched copy in memory) |
//! | `pending` | the device id | [`PendingDevice`] | gateways under `admission = "register"` | `fleetbus device pending/accept` |
//!
//! A device is known by its id alone, as the gateway sees it (an IMEI for
//! most protocols; the 12-digit terminal number for JT808 and TK103). An
//! entry may pin the protocol: the device is then admitted on that
//! protocol's listeners only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::key_token;

/// The bucket of registered devices.
pub const REGISTRY_BUCKET: &str = "registry";
/// The bucket of unknown devices held for an operator (`register`).
pub const PENDING_BUCKET: &str = "pending";

/// A device's key in [`REGISTRY_BUCKET`] and [`PENDING_BUCKET`].
pub fn registry_key(device: &str) -> String {
    key_token(device)
}

/// A registered device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KnownDevice {
    /// The device id, as the gateway sees it.
    pub id: String,
    /// Admitted on this protocol only (`None`: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The model, for protocols whose clones differ (GT06); overrides the
    /// listener's `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The authentication code the registry issued, for protocols whose
    /// devices authenticate (JT808: handed out in the register response,
    /// checked at every authentication). `None`: nothing to check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_code: Option<String>,
    pub added_at: DateTime<Utc>,
}

impl KnownDevice {
    /// Whether the entry admits the device on `protocol`.
    pub fn admits(&self, protocol: &str) -> bool {
        self.protocol.as_deref().is_none_or(|p| p == protocol)
    }
}

/// An unknown device that tried to connect while its gateway's admission
/// was `register`. It got no acknowledgement, so it still has its data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingDevice {
    pub id: String,
    /// The protocol it spoke.
    pub protocol: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The gateway and the remote address it was last seen at.
    pub gateway: String,
    pub peer: String,
    /// How many times it was seen (at most one count per gateway a minute).
    pub attempts: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_without_a_protocol_admits_any_and_reads_back_from_minimal_json() {
        let d: KnownDevice =
            serde_json::from_str(r#"{"id":"356307042441013","added_at":"2026-12-03T12:00:00Z"}"#)
                .unwrap();
        assert!(d.admits("gt06") && d.admits("teltonika"));
        let pinned = KnownDevice {
            protocol: Some("gt06".into()),
            ..d.clone()
        };
        assert!(pinned.admits("gt06") && !pinned.admits("teltonika"));
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"id":"356307042441013","added_at":"2026-12-03T12:00:00Z"}"#
        );
        assert_eq!(registry_key("ab.c*"), "ab_c_");
    }
}
