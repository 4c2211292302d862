//! What `fleetbus dev up` shows once the system runs: where everything is
//! ([`print_endpoints`]), then `fleetbus status`'s summary line
//! (`status::summary_line`), redrawn in place on a terminal and printed
//! every ten seconds into a log, until a signal. A process that exits
//! meanwhile is reported and the line goes on: the cluster survives one
//! node, and the line shows what is missing.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::status;

use super::procs::{out, watch_exits, Proc, Signals};

/// The endpoints, logins and logs of the local system.
pub(super) fn print_endpoints(data: &Path) {
    out("");
    out("fleetbus is up.");
    out(&format!(
        "  NATS clients   {}",
        crate::nats::LOCAL_URLS.replace(',', "  ")
    ));
    out("  monitoring     http://127.0.0.1:8222  http://127.0.0.1:8223  http://127.0.0.1:8224");
    out("  gateways       teltonika 5027/5127/5227, gt06 5023/5123/5223, … (Traccar's ports, +100 per node; see docs/gateway.md)");
    out("  gateway ops    http://127.0.0.1:9101/metrics  :9102  :9103   (/healthz, /readyz)");
    out("  admin          nats://admin:admin@127.0.0.1:4222   (nats CLI: nats -s nats://admin:admin@127.0.0.1:4222 stream ls)");
    out("  status         cargo run -q --bin fleetbus -- status");
    out(&format!(
        "  logins         {}/credentials/<role>.env",
        data.display()
    ));
    out(&format!("  logs           {}/logs/", data.display()));
    out("Ctrl-C stops everything.");
    out("");
}

/// The status line every `every_secs` (at least 1) until a signal.
pub(super) async fn status_lines(
    client: &async_nats::Client,
    every_secs: u64,
    procs: &mut [Proc],
    signals: &mut Signals,
) {
    let tty = std::io::stdout().is_terminal();
    let every = Duration::from_secs(every_secs.max(1));
    let mut last_print = Instant::now() - Duration::from_secs(3600);
    loop {
        let s = status::collect(client, Duration::from_secs(2)).await;
        let line = status::summary_line(&s);
        if tty {
            let mut out = std::io::stdout();
            let _ = write!(out, "\r\x1b[2K{line}");
            let _ = out.flush();
        } else if last_print.elapsed() >= Duration::from_secs(10) {
            let _ = writeln!(std::io::stdout(), "{line}");
            last_print = Instant::now();
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = signals.recv() => return,
            e = watch_exits(procs) => {
                // Keep running: the cluster survives one node, and the
                // status line shows what is missing.
                let _ = writeln!(std::io::stdout(), "\n{e}");
            }
        }
    }
}
