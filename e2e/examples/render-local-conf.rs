//! Rewrites nats-conf/n1.conf .. n3.conf from the template in
//! `fleetbus_e2e::conf` (a unit test fails while they differ).
//!
//! cargo run -p fleetbus-e2e --example render-local-conf

fn main() -> std::io::Result<()> {
    let dir = fleetbus_e2e::server::workspace_root().join("nats-conf");
    for i in 0..3 {
        let path = dir.join(format!("n{}.conf", i + 1));
        std::fs::write(
            &path,
            fleetbus_e2e::conf::render_node(&fleetbus_e2e::conf::local_node(i)),
        )?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
