//! Helpers shared by the actors crate's integration tests.

use std::future::Future;
use std::time::Duration;

/// Awaits `fut` for at most `limit` of tokio's time (virtual in a paused
/// test, where the limit passes at once when nothing else can happen), and
/// fails naming `what` when it takes longer: a bug makes a test fail, not
/// hang.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {limit:?}"))
}
