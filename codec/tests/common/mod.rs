//! What the protocols' property tests share.

#![allow(dead_code)] // each test file uses its own part

use bytes::{Bytes, BytesMut};
use fleetbus_codec::FrameError;
use tokio_util::codec::Decoder;

/// Feeds `input` to `framer` in chunks of the given sizes (then the rest at
/// once), checking after every call that
///
/// * a frame is never above `max` and is exactly the bytes consumed after a
///   prefix the framer may discard,
/// * whatever is consumed without a frame, or on an error, may be discarded,
/// * the framer never holds `max` bytes or more while waiting,
///
/// where `may_discard` says which bytes a framer may drop (line ends between
/// text messages; nothing at all for most binary protocols). Returns the
/// frames, or the first error.
pub fn run_framer<F>(
    mut framer: F,
    input: &[u8],
    chunks: &[usize],
    max: usize,
    may_discard: impl Fn(&[u8]) -> bool,
) -> Result<Vec<Vec<u8>>, FrameError>
where
    F: Decoder<Item = Bytes, Error = FrameError>,
{
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut sizes = chunks.iter().copied().chain(std::iter::repeat(usize::MAX));
    loop {
        let before = buf.clone();
        let result = framer.decode(&mut buf);
        let consumed = before.len() - buf.len();
        match result {
            Ok(Some(frame)) => {
                assert!(
                    frame.len() <= max,
                    "frame of {} bytes above max {max}",
                    frame.len()
                );
                assert!(consumed >= frame.len(), "frame not taken from the buffer");
                let skipped = consumed - frame.len();
                assert!(
                    may_discard(&before[..skipped]),
                    "dropped data before a frame"
                );
                assert_eq!(&before[skipped..consumed], &frame[..]);
                frames.push(frame.to_vec());
            }
            Ok(None) => {
                assert!(
                    may_discard(&before[..consumed]),
                    "dropped data without a frame"
                );
                assert!(buf.len() < max, "holds {} bytes, max {max}", buf.len());
                if fed == input.len() {
                    return Ok(frames);
                }
                let n = sizes.next().unwrap_or(1).clamp(1, input.len() - fed);
                buf.extend_from_slice(&input[fed..fed + n]);
                fed += n;
            }
            Err(e) => {
                assert!(may_discard(&before[..consumed]), "dropped data on error");
                return Err(e);
            }
        }
    }
}

/// Line ends, blanks and NULs between text messages.
pub fn filler(b: &[u8]) -> bool {
    b.iter().all(|c| matches!(c, b'\r' | b'\n' | b' ' | b'\0'))
}
