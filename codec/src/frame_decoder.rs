//! Decoding of standalone frames, as `fleetbus decode` and the conformance
//! tests see them: one frame after another from one device, with the identity
//! from a login frame remembered for the frames that follow it.

use chrono::{DateTime, Utc};

use crate::{ParseContext, ParseError, Protocol, Record};

/// Device id used when frames arrive without a login frame before them.
pub const UNKNOWN_DEVICE: &str = "unknown";

#[derive(Debug)]
pub struct FrameDecoder {
    protocol: Protocol,
    device_id: Option<String>,
    model: Option<String>,
}

impl FrameDecoder {
    pub fn new(protocol: Protocol) -> Self {
        FrameDecoder {
            protocol,
            device_id: None,
            model: None,
        }
    }

    /// Decodes as for a device of this model (see [`ParseContext::model`]).
    pub fn with_model(mut self, model: Option<String>) -> Self {
        self.model = model;
        self
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Parses one complete frame received at `received_at`.
    pub fn decode(
        &mut self,
        frame: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Record>, ParseError> {
        if let Some(id) = self.protocol.identify(frame) {
            self.device_id = Some(id);
        }
        let device = self.device_id.as_deref().unwrap_or(UNKNOWN_DEVICE);
        let ctx = ParseContext::new(device, received_at).with_model(self.model.clone());
        self.protocol.parse(frame, &ctx)
    }
}
