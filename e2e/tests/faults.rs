//! The end-to-end fault suite: the whole system as separate processes —
//! three nats-server nodes, three gateways, hamsters, monkeys — with the
//! simulator as the devices and `fleetbus verify` as the judge. Each
//! scenario asserts the promise: every record a device was told is stored
//! is in PARSED exactly once with the values sent, and the simulator's
//! queue drains to zero (it exits 0 only then).
//!
//! Faults are injected once the flow is established (some records already
//! acknowledged), never at a fixed time.

use std::time::{Duration, Instant};

use fleetbus_e2e::{wait_for, Proc, System, SystemOptions};

/// 20 devices × 40 records, a record every 100 ms per device: ~4 s of
/// traffic, 800 records, frames of 2 records for Teltonika.
const FLEET: &[&str] = &[
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
const RECORDS: usize = 800;
const FINISH: Duration = Duration::from_secs(240);

async fn system(opts: SystemOptions) -> System {
    let sys = System::start(opts).await.expect("system starts");
    sys.prepare_verify("check").await.unwrap();
    sys
}

async fn start_fleet(sys: &System) -> Proc {
    Proc::start(sys.simulator("sim", FLEET), sys.dir()).unwrap()
}

/// The same fleet, spread over ~12 s (a record every 300 ms per device), for
/// faults that take a while to inject (restarting every node).
async fn start_slow_fleet(sys: &System) -> Proc {
    let mut args = FLEET.to_vec();
    let i = args.iter().position(|a| *a == "--interval-ms").unwrap();
    args[i + 1] = "300";
    Proc::start(sys.simulator("sim", &args), sys.dir()).unwrap()
}

/// Waits until the simulator has `n` acknowledged records. Generous: the
/// faults slow everything down, and a 2-core CI machine more so.
async fn acked_at_least(sys: &System, n: usize) {
    wait_for(
        "records acknowledged",
        Duration::from_secs(180),
        || async move { Ok((sys.reported("sim") >= n).then_some(())) },
    )
    .await
    .unwrap();
}

/// The promise, checked: the fleet delivered everything (exit 0 = queue
/// empty) and verify finds every record once, unaltered.
async fn assert_delivered_once(sys: &System, sim: &mut Proc, scenario: &str) {
    let t = Instant::now();
    let exit = sim.wait_exit(FINISH).await;
    assert!(
        exit.is_some_and(|e| e.success()),
        "{scenario}: the simulator did not deliver everything ({exit:?}):\n{}",
        sim.log_tail(15)
    );
    let summary = sim.log_tail(1);
    let report = sys
        .verify("check", "sim")
        .await
        .unwrap_or_else(|e| panic!("{scenario}: {e:#}"));
    eprintln!(
        "{scenario}: {summary}\n{scenario}: {report}(finished {:?} after the fault)",
        t.elapsed()
    );
    assert!(
        report.contains(&format!(
            "{RECORDS} records reported, {RECORDS} in PARSED exactly once"
        )),
        "{report}"
    );
}

#[tokio::test]
async fn steady_state() {
    let sys = system(SystemOptions::default()).await;
    let mut sim = start_fleet(&sys).await;
    assert_delivered_once(&sys, &mut sim, "steady state").await;
}

#[tokio::test]
async fn kill_9_of_the_raw_leader_mid_flow() {
    let mut sys = system(SystemOptions::default()).await;
    let mut sim = start_fleet(&sys).await;
    acked_at_least(&sys, 100).await;
    let leader = sys.cluster.stream_leader("RAW").await.unwrap();
    let i = sys.cluster.node_index(&leader).unwrap();
    sys.cluster.kill(i);
    assert_delivered_once(&sys, &mut sim, "kill -9 of the RAW leader").await;
}

#[tokio::test]
async fn kill_9_of_a_gateway_moves_its_devices_to_another() {
    let mut sys = system(SystemOptions::default()).await;
    let mut sim = start_fleet(&sys).await;
    acked_at_least(&sys, 100).await;
    sys.gateways[0].proc.kill();
    assert_delivered_once(&sys, &mut sim, "kill -9 of a gateway").await;
    assert!(
        sim.log().contains("reconnects") && !sim.log_tail(1).contains(" 0 reconnects"),
        "devices of the dead gateway reconnected elsewhere: {}",
        sim.log_tail(1)
    );
}

#[tokio::test]
async fn kill_9_of_a_hamster_and_of_a_monkey_mid_batch() {
    let opts = SystemOptions {
        hamsters: 2,
        monkeys: 2,
        ..SystemOptions::default()
    };
    let mut sys = system(opts).await;
    let mut sim = start_fleet(&sys).await;
    acked_at_least(&sys, 100).await;
    sys.hamsters[0].kill();
    sys.monkeys[0].kill();
    assert_delivered_once(&sys, &mut sim, "kill -9 of a hamster and a monkey").await;
}

#[tokio::test]
async fn every_node_restarted_rolling_and_all_at_once() {
    let mut sys = system(SystemOptions::default()).await;
    let mut sim = start_slow_fleet(&sys).await;
    acked_at_least(&sys, 100).await;
    for i in 0..3 {
        sys.cluster.restart(i).await.unwrap();
    }
    let before = sys.reported("sim");
    sys.cluster.terminate_all().await;
    sys.cluster.start_all().unwrap();
    sys.cluster.wait_ready().await.unwrap();
    for stream in ["RAW", "PARSED"] {
        sys.cluster.wait_stream_ready(stream).await.unwrap();
    }
    eprintln!("rolling and all-at-once restarts: {before} of {RECORDS} records acknowledged before the whole cluster stopped");
    assert_delivered_once(&sys, &mut sim, "rolling and all-at-once restarts").await;
}

#[tokio::test]
async fn quorum_lost_for_20_s_acks_nothing_and_loses_nothing() {
    let mut sys = system(SystemOptions::default()).await;
    let mut sim = start_fleet(&sys).await;
    acked_at_least(&sys, 100).await;
    let leader = sys.cluster.stream_leader("RAW").await.unwrap();
    let keep = (sys.cluster.node_index(&leader).unwrap() + 1) % 3;
    for i in (0..3).filter(|&i| i != keep) {
        sys.cluster.kill(i);
    }
    // Whatever was in flight settles within a moment; after that no device
    // may be told its data is stored.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = sys.reported("sim");
    tokio::time::sleep(Duration::from_secs(18)).await;
    let during = sys.reported("sim");
    assert_eq!(before, during, "acks without a quorum");
    assert!(
        during < RECORDS,
        "the outage came too late to test anything"
    );
    sys.cluster.start_all().unwrap();
    sys.cluster.wait_ready().await.unwrap();
    assert_delivered_once(&sys, &mut sim, "quorum lost for 20 s").await;
}

/// A network partition, not a crash: the host of RAW's leader — its node
/// and its gateway — is cut off the cluster network while devices can still
/// reach its gateway. That gateway can store nothing, so its devices get no
/// acks and move to the gateways of the majority, which elects a new leader
/// and goes on. After the partition heals everything is delivered once.
#[tokio::test]
async fn one_host_cut_off_while_devices_send_to_both_sides() {
    if let Err(why) = fleetbus_e2e::Lab::available() {
        eprintln!("SKIPPED one_host_cut_off_while_devices_send_to_both_sides: {why}");
        return;
    }
    let lab = std::sync::Arc::new(fleetbus_e2e::Lab::new(3).unwrap());
    let opts = SystemOptions {
        cluster: fleetbus_e2e::ClusterOptions {
            lab: Some(lab.clone()),
            ..Default::default()
        },
        ..SystemOptions::default()
    };
    let sys = system(opts).await;
    let mut sim = start_fleet(&sys).await;
    acked_at_least(&sys, 100).await;
    let leader = sys.cluster.stream_leader("RAW").await.unwrap();
    let cut = sys.cluster.node_index(&leader).unwrap();
    lab.partition(cut).unwrap();
    acked_at_least(&sys, 500).await;
    lab.heal(cut).unwrap();
    assert_delivered_once(&sys, &mut sim, "one host cut off").await;
}
