//! Devices that resend as real firmware does. A lossy proxy in front of
//! every gateway cuts the connection instead of forwarding every third
//! answer — the frame was stored, the device never hears so. Each device
//! then sends its pending records again the way its firmware does
//! (`fleetbus simulate --resend firmware`): Teltonika, Ruptela and Meitrack
//! re-pack them with newer records into a new frame, GT06 and JT808 with a
//! new serial number, Queclink as `+BUFF` with a new send time, the text
//! protocols byte for byte. RAW then holds some records in two different
//! frames; the hamsters' record identities keep PARSED at each record
//! once, and the monkeys' effects too.

use fleetbus_e2e::scenario::{assert_delivered_once, status};
use fleetbus_e2e::{LossyProxy, System, SystemOptions};

/// Every protocol the simulator speaks.
const PROTOCOLS: [&str; 9] = [
    "teltonika",
    "gt06",
    "h02",
    "gps103",
    "tk103",
    "jt808",
    "ruptela",
    "meitrack",
    "gl200",
];

#[tokio::test]
async fn devices_that_repack_and_reencode_after_lost_acks_store_each_record_once() {
    let opts = SystemOptions {
        gateways: 2,
        protocols: PROTOCOLS.to_vec(),
        ..SystemOptions::default()
    };
    let mut sys = System::start(opts).await.expect("system starts");
    sys.prepare_verify("check").await.unwrap();
    let mut proxies = Vec::new();
    let mut gateway_args = Vec::new();
    for p in PROTOCOLS {
        let mut list = Vec::new();
        for g in &sys.gateways {
            let target = format!("{}:{}", g.host, g.ports[p]).parse().unwrap();
            let proxy = LossyProxy::start(target, 3).await.unwrap();
            list.push(proxy.addr.to_string());
            proxies.push(proxy);
        }
        gateway_args.push("--gateway".to_string());
        gateway_args.push(format!("{p}={}", list.join(",")));
    }
    let devices = 2 * PROTOCOLS.len();
    let records = 30;
    let mut args = fleetbus_e2e::scenario::fleet(devices, records, 100, 5, 5);
    args.extend(["--protocols".to_string(), PROTOCOLS.join(",")]);
    args.extend(gateway_args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut sim = fleetbus_e2e::scenario::start_fleet(&sys, &args).await;
    assert_delivered_once(
        &mut sys,
        &mut sim,
        "re-packing and re-encoding devices",
        devices * records,
    )
    .await;
    let lost: usize = proxies.iter().map(LossyProxy::lost).sum();
    assert!(lost > 0, "the proxies lost answers");
    // The hamsters left records out that another frame carried: proof that
    // the resends were not byte for byte (RAW would have dropped those).
    let (_, s) = status(&sys).await.unwrap();
    let duplicates: u64 = s["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["name"] == "hamster")
        .map(|w| w["stats"]["duplicates"].as_u64().unwrap_or(0))
        .sum();
    eprintln!("{lost} answers lost; the hamsters left out {duplicates} records sent again in other frames");
    assert!(
        duplicates > 0,
        "resends re-packed or re-encoded reached the hamsters"
    );
}
