//! A network lab of Linux network namespaces, for the faults a process kill
//! cannot show: one host cut off from the others (a partition) while the
//! devices can still reach it.
//!
//! Every host is a namespace with two interfaces:
//!
//! * the **cluster network** (`10.X.Y.0/24`): NATS routes, clients of the
//!   cluster (gateways, workers, tests);
//! * the **device network** (`10.X.Y+1.0/24`): trackers reaching gateways.
//!
//! Both networks are bridges in the test's own namespace, which has the
//! address `.254` on each, so the test process reaches every host.
//! [`Lab::partition`] takes a host's cluster link down — its node and its
//! gateway lose the rest of the cluster, and packets are dropped rather
//! than refused, as on a real network — while its device link stays up.
//! [`Lab::heal`] brings it back. Everything is removed on Drop.
//!
//! Needs root (CAP_NET_ADMIN) and iproute2's `ip`; [`Lab::skip_reason`]
//! says when a lab test may skip (only when not root).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context};

static LABS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
pub struct Lab {
    tag: String,
    hosts: usize,
    /// Second and third octets of the cluster network (`10.a.b.0/24`); the
    /// device network is `10.a.(b+1).0/24`.
    net: (u8, u8),
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether a link's operational state is UP (carrier on both sides), in the
/// test's own namespace or in `ns`.
fn link_up(ns: Option<&str>, dev: &str) -> anyhow::Result<bool> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let out = cmd
        .args(["-o", "link", "show", "dev", dev])
        .output()
        .context("cannot run `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip link show {dev}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).contains(" state UP "))
}

impl Lab {
    /// Why a lab test may not run here: only when this process is not
    /// root. As root (as CI runs) a lab test always runs, and a lab that
    /// cannot be built (no `ip`, no netns support) fails the test — it never
    /// passes by skipping.
    pub fn skip_reason() -> Option<String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some(
                "network namespaces need root (CAP_NET_ADMIN); run as root (CI does) to run it"
                    .into(),
            );
        }
        None
    }

    /// Builds a lab of `hosts` hosts (at most 9).
    pub fn new(hosts: usize) -> anyhow::Result<Lab> {
        assert!((1..10).contains(&hosts));
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{:04x}", (pid.wrapping_mul(31).wrapping_add(n)) & 0xffff);
        // Spread labs of concurrent test processes over 10.100-199.x.
        let net = (100 + (pid % 100) as u8, ((n % 120) * 2) as u8);
        let lab = Lab { tag, hosts, net };
        lab.build().context("cannot build the network lab")?;
        Ok(lab)
    }

    fn bridge(&self, which: char) -> String {
        format!("fb{}b{which}", self.tag)
    }

    fn veth(&self, which: char, host: usize) -> String {
        format!("fb{}{which}{host}", self.tag)
    }

    /// The namespace of host `i`.
    pub fn ns(&self, i: usize) -> String {
        format!("fb{}h{i}", self.tag)
    }

    pub fn hosts(&self) -> usize {
        self.hosts
    }

    /// Host `i`'s address on the cluster network.
    pub fn cluster_ip(&self, i: usize) -> String {
        format!("10.{}.{}.{}", self.net.0, self.net.1, i + 1)
    }

    /// Host `i`'s address on the device network.
    pub fn device_ip(&self, i: usize) -> String {
        format!("10.{}.{}.{}", self.net.0, self.net.1 + 1, i + 1)
    }

    fn build(&self) -> anyhow::Result<()> {
        for (which, third) in [('c', self.net.1), ('d', self.net.1 + 1)] {
            let br = self.bridge(which);
            ip(&["link", "add", &br, "type", "bridge"])?;
            ip(&[
                "addr",
                "add",
                &format!("10.{}.{third}.254/24", self.net.0),
                "dev",
                &br,
            ])?;
            ip(&["link", "set", &br, "up"])?;
        }
        for i in 0..self.hosts {
            let ns = self.ns(i);
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            for (which, addr) in [('c', self.cluster_ip(i)), ('d', self.device_ip(i))] {
                let outside = self.veth(which, i);
                let inside = format!("{outside}p");
                ip(&[
                    "link", "add", &outside, "type", "veth", "peer", "name", &inside,
                ])?;
                ip(&["link", "set", &inside, "netns", &ns])?;
                ip(&["link", "set", &outside, "master", &self.bridge(which)])?;
                ip(&["link", "set", &outside, "up"])?;
                ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{addr}/24"),
                    "dev",
                    &inside,
                ])?;
                ip(&["-n", &ns, "link", "set", &inside, "up"])?;
            }
        }
        Ok(())
    }

    /// A command that runs `program` inside host `i` (`ip netns exec`, which
    /// execs in place: the child's pid is the program's).
    pub fn command(&self, i: usize, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(i)]).arg(program);
        cmd
    }

    /// Cuts host `i` off the cluster network (its device link stays up).
    pub fn partition(&self, i: usize) -> anyhow::Result<()> {
        ip(&["link", "set", &self.veth('c', i), "down"])
    }

    /// Undoes [`Lab::partition`], and returns once both ends of the link
    /// carry traffic again. `ip link set up` returns before that: the kernel
    /// reports the carrier of the veth peer through its link watcher, which
    /// may wait up to a second, and until then packets are still dropped.
    pub fn heal(&self, i: usize) -> anyhow::Result<()> {
        let outside = self.veth('c', i);
        ip(&["link", "set", &outside, "up"])?;
        let inside = format!("{outside}p");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if link_up(None, &outside)? && link_up(Some(&self.ns(i)), &inside)? {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!("host {i}'s cluster link is not up 10 s after the heal");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.hosts {
            let _ = ip(&["netns", "del", &self.ns(i)]);
        }
        for which in ['c', 'd'] {
            let _ = ip(&["link", "del", &self.bridge(which)]);
        }
    }
}
