//! The network lab: hosts reach each other and the test on both networks; a
//! partition cuts only the cluster network, and heals.

use std::process::Stdio;
use std::time::Duration;

use fleetbus_e2e::Lab;
use tokio::net::TcpStream;

async fn reachable(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn partition_cuts_the_cluster_network_only() {
    if let Err(why) = Lab::available() {
        // CI runs as root; a developer machine without root skips this one.
        eprintln!("SKIPPED partition_cuts_the_cluster_network_only: {why}");
        return;
    }
    let lab = Lab::new(2).unwrap();
    // A TCP listener on every address of host 0.
    let mut server = lab
        .command(0, std::path::Path::new("python3"))
        .args(["-c", "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',7000))\ns.listen(64)\nwhile True:\n  c,_=s.accept()\n"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let cluster = format!("{}:7000", lab.cluster_ip(0));
    let device = format!("{}:7000", lab.device_ip(0));
    let mut up = false;
    for _ in 0..100 {
        if reachable(&cluster).await {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "host 0 reachable on the cluster network");
    assert!(reachable(&device).await, "and on the device network");

    lab.partition(0).unwrap();
    assert!(
        !reachable(&cluster).await,
        "partitioned: cluster network cut"
    );
    assert!(reachable(&device).await, "devices still reach the host");
    lab.heal(0).unwrap();
    assert!(reachable(&cluster).await, "healed");
    let _ = server.kill();
    let _ = server.wait();
}
