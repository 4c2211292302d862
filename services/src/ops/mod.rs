//! What every long-running fleetbus process needs besides its own job:
//! logging, the health/metrics HTTP endpoint, signals and rate-limited
//! warnings. Kept apart so the gateway and the workers behave the same.

pub mod health;
pub mod http;
pub mod logging;
pub mod ratelog;
pub mod signals;

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
