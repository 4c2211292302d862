//! What the end-to-end scenarios share: the simulated fleet, waiting for
//! acknowledgements, the judge, and the operator's actions (capping a
//! stream, asking `fleetbus status`).

use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream;

use crate::{wait_for, Proc, Role, System};

/// 20 devices × 40 records, a record every 100 ms per device: ~4 s of
/// traffic, 800 records, frames of 2 records for Teltonika.
pub const FLEET: &[&str] = &[
    "--devices",
    "20",
    "--records",
    "40",
    "--interval-ms",
    "100",
    "--per-frame",
    "2",
    "--ack-timeout-secs",
    "10",
];
/// Records [`FLEET`] sends.
pub const RECORDS: usize = 800;
/// How long a scenario may take to deliver everything after its fault.
pub const FINISH: Duration = Duration::from_secs(240);

/// A fleet's arguments: `devices` × `records`, a record every
/// `interval_ms` per device, up to `per_frame` records per frame, an ack
/// awaited `ack_timeout_secs` before the device reconnects.
pub fn fleet(
    devices: usize,
    records: usize,
    interval_ms: u64,
    per_frame: usize,
    ack_timeout_secs: u64,
) -> Vec<String> {
    [
        ("--devices", devices.to_string()),
        ("--records", records.to_string()),
        ("--interval-ms", interval_ms.to_string()),
        ("--per-frame", per_frame.to_string()),
        ("--ack-timeout-secs", ack_timeout_secs.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect()
}

/// [`FLEET`] with `interval_ms` between two records of a device instead.
pub fn fleet_every(interval_ms: u64) -> Vec<String> {
    let mut args: Vec<String> = FLEET.iter().map(|s| s.to_string()).collect();
    let i = args.iter().position(|a| a == "--interval-ms").unwrap();
    args[i + 1] = interval_ms.to_string();
    args
}

/// Starts simulator `sim` with `args`.
pub async fn start_fleet(sys: &System, args: &[&str]) -> Proc {
    sys.register_fleet("sim", args)
        .await
        .expect("the fleet is registered");
    Proc::start(sys.simulator("sim", args), sys.dir()).expect("the simulator starts")
}

/// Waits until the simulator has `n` acknowledged records. Generous: the
/// faults slow everything down, and a 2-core CI machine more so.
pub async fn acked_at_least(sys: &System, n: usize) {
    wait_for(
        "records acknowledged",
        Duration::from_secs(180),
        || async move { Ok((sys.reported("sim") >= n).then_some(())) },
    )
    .await
    .unwrap();
}

/// The promise, checked after the whole pipeline drained: the fleet
/// delivered everything (exit 0 = its queue is empty), every acknowledged
/// record is in PARSED exactly once and unaltered, and the monkeys' effects
/// are right (latest positions, each event once). Returns verify's report.
pub async fn assert_delivered_once(
    sys: &mut System,
    sim: &mut Proc,
    scenario: &str,
    records: usize,
) -> String {
    judge(sys, sim, scenario, records, &[]).await
}

/// [`assert_delivered_once`] for a scenario that makes the monkeys process
/// a device's fixes out of order (a monkey host paused past `ack_wait`
/// while another takes its messages over): transitions inside the
/// reordered stretch may never show, and that alone does not fail it;
/// every event that does show must still be real and once, every latest
/// position right. See docs/reliability.md, "Ordering".
pub async fn assert_delivered_once_out_of_order(
    sys: &mut System,
    sim: &mut Proc,
    scenario: &str,
    records: usize,
) -> String {
    judge(sys, sim, scenario, records, &["--allow-lost-transitions"]).await
}

async fn judge(
    sys: &mut System,
    sim: &mut Proc,
    scenario: &str,
    records: usize,
    more: &[&str],
) -> String {
    let t = Instant::now();
    let exit = sim.wait_exit(FINISH).await;
    assert!(
        exit.is_some_and(|e| e.success()),
        "{scenario}: the simulator did not deliver everything ({exit:?}):\n{}",
        sim.log_tail(15)
    );
    let summary = sim.log_tail(1);
    let report = sys
        .verify_with("check", "sim", more)
        .await
        .unwrap_or_else(|e| panic!("{scenario}: {e:#}"));
    eprintln!(
        "{scenario}: {summary}\n{scenario}: {report}(finished {:?} after the fault)",
        t.elapsed()
    );
    assert!(
        report.contains(&format!(
            "{records} records reported, {records} in PARSED exactly once"
        )),
        "{report}"
    );
    assert!(
        report.contains("\nOK\n") || report.ends_with("OK\n"),
        "{report}"
    );
    report
}

/// An admin's JetStream context.
pub async fn admin(sys: &System) -> jetstream::Context {
    jetstream::new(sys.cluster.connect(Role::Admin).await.unwrap())
}

/// Messages in `stream` now.
pub async fn messages(js: &jetstream::Context, stream: &str) -> u64 {
    let mut s = js.get_stream(stream).await.unwrap();
    s.info().await.unwrap().state.messages
}

/// As an operator would: sets `stream`'s `max_msgs` to `limit` (-1: none).
pub async fn set_max_msgs(js: &jetstream::Context, stream: &str, limit: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let mut s = js.get_stream(stream).await?;
            let mut config = s.info().await?.config.clone();
            config.max_messages = limit;
            js.update_stream(config).await?;
            anyhow::Ok(())
        };
        match attempt.await {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("capping {stream} failed, trying again: {e:#}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("cannot set {stream} max_msgs: {e:#}"),
        }
    }
}

/// `fleetbus status --json` as the operator sees it: (exit code, JSON).
pub async fn status(sys: &System) -> anyhow::Result<(i32, serde_json::Value)> {
    let out = sys.fleetbus(Role::Admin, &["status", "--json"]).await?;
    let v = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("status output: {}", crate::system::text(&out)))?;
    Ok((out.status.code().unwrap_or(-1), v))
}

/// The problems `fleetbus status` lists, one line each.
pub fn problems(status: &serde_json::Value) -> Vec<String> {
    status["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
