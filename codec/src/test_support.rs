//! Helpers for the crate's unit tests, once.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// Every frame `framer` cuts from `input` in one read, as owned bytes; the
/// first error, if any (what is left unframed is not looked at).
pub(crate) fn cut_all<D>(mut framer: D, input: &[u8]) -> Result<Vec<Vec<u8>>, D::Error>
where
    D: Decoder<Item = bytes::Bytes>,
{
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(frame) = framer.decode(&mut buf)? {
        out.push(frame.to_vec());
    }
    Ok(out)
}
