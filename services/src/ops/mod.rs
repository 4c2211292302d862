//! What the long-running fleetbus processes need besides their own job:
//! logging, signals and rate-limited warnings (gateway and workers), and
//! the health/metrics HTTP endpoint (the gateway's; workers report through
//! their NATS micro-service stats instead, which `fleetbus status` reads).

pub mod health;
pub mod http;
pub mod logging;
pub mod ratelog;
pub mod signals;
pub mod table;

/// This host's name, for ids and registration metadata.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most
    // that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Ok(name) = std::str::from_utf8(&buf[..end]) {
            if !name.is_empty() {
                return name.to_string();
            }
        }
    }
    "localhost".to_string()
}

/// Raises the soft open-files limit to the hard limit (every device
/// connection is a file descriptor, and soft limits are often 1,024;
/// children inherit the raised limit). Returns the new soft limit.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(lim.rlim_cur)
}
