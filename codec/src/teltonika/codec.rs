//! Codec ids: the first byte of an AVL packet's data field says how the rest
//! of it is laid out.

/// Codec 7, the GH3000 personal trackers' bit-mask layout.
pub const GH3000: u8 = 0x07;
/// Codec 8: 1-byte IO ids and counts. The FMB default.
pub const CODEC_8: u8 = 0x08;
/// Codec 8 Extended: 2-byte IO ids and counts, plus variable-length (NX) IO.
pub const CODEC_8E: u8 = 0x8E;
/// Codec 12: text commands (server → device) and their responses.
pub const CODEC_12: u8 = 0x0C;
/// Codec 13: serial-port data with a timestamp, one way (device → server).
pub const CODEC_13: u8 = 0x0D;
/// Codec 16: 2-byte IO ids, 1-byte counts and a generation type per record.
pub const CODEC_16: u8 = 0x10;

/// Codecs whose packets carry AVL records and that the server acknowledges
/// with the number of records it accepted.
pub fn is_avl(codec: u8) -> bool {
    matches!(codec, GH3000 | CODEC_8 | CODEC_8E | CODEC_16)
}
