//! Does RAW have a reader for what the gateway stores? RAW keeps a message
//! by limits until the hamsters' sweep purges it once every consumer
//! acknowledged it. A frame stored while RAW has **no** consumer would be
//! read by nobody and removed unprocessed when `max_age` runs out (under
//! the interest retention RAW had before, it was dropped at once). The
//! gateway ensures the hamsters' durables at start, but a durable can be
//! deleted later (by an operator, by a bad deploy), so it checks the
//! stream's consumer count every `raw_check_ms` and, while it is zero,
//! stores and acknowledges nothing (the device keeps its data and sends it
//! again) and reports itself not ready.
//!
//! The check is cheap (one stream info request) and the interval short.

use fleetbus_wire::names;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use super::metrics::Metrics;

/// Shared flag: RAW had a consumer at the last check. Starts `true`: the
/// gateway ensured `RAW/hamsters` before it started.
#[derive(Clone, Debug)]
pub struct RawInterest(Arc<AtomicBool>);

impl Default for RawInterest {
    fn default() -> Self {
        RawInterest(Arc::new(AtomicBool::new(true)))
    }
}

impl RawInterest {
    pub fn is_kept(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    fn set(&self, kept: bool) -> bool {
        self.0.swap(kept, Ordering::SeqCst)
    }
}

/// Checks RAW's consumer count every `every`, until aborted. A check that
/// fails (no leader, the cluster unreachable) leaves the flag as it was:
/// publishes fail then anyway, and are retried.
pub async fn watch(js: jetstream::Context, flag: RawInterest, metrics: Metrics, every: Duration) {
    loop {
        match consumers(&js).await {
            Ok(n) => {
                metrics.raw_consumers.set(n as i64);
                let was = flag.set(n > 0);
                if was && n == 0 {
                    tracing::error!(
                        "RAW has no consumer: a frame stored now would never be parsed; \
                         acknowledging no device until one exists (run `fleetbus provision` or start a hamster)."
                    );
                } else if !was && n > 0 {
                    tracing::info!(consumers = n, "RAW has a consumer again; storing frames.");
                }
            }
            Err(e) => tracing::debug!("Checking RAW's consumers failed: {e}."),
        }
        tokio::time::sleep(every).await;
    }
}

async fn consumers(js: &jetstream::Context) -> Result<usize, async_nats::Error> {
    // `get_stream` asks for the stream's info: one request.
    let stream = js.get_stream(names::RAW).await?;
    Ok(stream.cached_info().state.consumer_count)
}
