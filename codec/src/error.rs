//! Error types. Every variant has a stable, low-cardinality `reason()` used as
//! a metric label (`error_type`) by the services.

use thiserror::Error;

/// Why a byte stream could not be cut into a frame. The connection that
/// produced it is closed without an acknowledgement, so the device resends.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("bad checksum: frame carries {received:#06x}, computed {computed:#06x}")]
    BadChecksum { received: u32, computed: u32 },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("i/o error while framing: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// Stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::TooLarge { .. } => "too_large",
            FrameError::BadChecksum { .. } => "bad_checksum",
            FrameError::Malformed(_) => "malformed",
            FrameError::Io(_) => "io",
        }
    }
}

/// Why a well-framed message was refused by the protocol session
/// (for example data before the device identified itself).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("device sent data before identifying itself")]
    NotIdentified,
    #[error("invalid device identity: {0}")]
    BadIdentity(String),
    #[error("bad checksum: frame carries {received:#06x}, computed {computed:#06x}")]
    BadChecksum { received: u32, computed: u32 },
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The device presented a credential the registry does not hold for it
    /// (JT808: another authentication code).
    #[error("wrong credential: {0}")]
    BadCredential(String),
    /// The registry holds a credential for the device, and it sent data
    /// without presenting it first (JT808: no authentication).
    #[error("device sent data before authenticating")]
    NotAuthenticated,
}

impl SessionError {
    /// Stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SessionError::NotIdentified => "not_identified",
            SessionError::BadIdentity(_) => "bad_identity",
            SessionError::BadChecksum { .. } => "bad_checksum",
            SessionError::Malformed(_) => "malformed",
            SessionError::BadCredential(_) => "bad_credential",
            SessionError::NotAuthenticated => "not_authenticated",
        }
    }
}

/// Why a frame could not be turned into records. A parse error is permanent:
/// the same bytes will never parse, so workers dead-letter the frame.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("frame truncated: {0}")]
    Truncated(String),
    #[error("bad checksum: frame carries {received:#06x}, computed {computed:#06x}")]
    BadChecksum { received: u32, computed: u32 },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("invalid frame: {0}")]
    Invalid(String),
}

impl ParseError {
    /// Stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Truncated(_) => "truncated",
            ParseError::BadChecksum { .. } => "bad_checksum",
            ParseError::Unsupported(_) => "unsupported",
            ParseError::Invalid(_) => "invalid",
        }
    }
}
