//! The logins of the local cluster. admin/admin is fixed
//! ([`LOCAL_ADMIN`]); every other role's password is generated once per
//! machine into `<data>/credentials/<role>.env` (owner-only files, kept
//! between runs so that a restarted cluster and its clients agree), or
//! taken from `FLEETBUS_<ROLE>_PASSWORD` when set. nats-server reads them
//! all from its environment; each worker gets only its own.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::nats::{Role, LOCAL_ADMIN};

/// Roles whose password is generated (admin is admin/admin locally).
const GENERATED: [&str; 5] = ["sys", "gateway", "hamster", "monkey", "janitor"];

/// The password variables for nats-server, generating what is missing.
pub(super) fn credentials(data: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let dir = data.join("credentials");
    let mut vars = vec![(Role::Admin.password_var(), LOCAL_ADMIN.1.to_string())];
    write_login(&dir, "admin", LOCAL_ADMIN.1)?;
    for user in GENERATED {
        let var = format!("FLEETBUS_{}_PASSWORD", user.to_ascii_uppercase());
        let path = dir.join(format!("{user}.env"));
        let password = match std::env::var(&var).ok().filter(|p| !p.is_empty()) {
            Some(p) => p,
            None => match read_password(&path) {
                Some(p) => p,
                None => random_password()?,
            },
        };
        write_login(&dir, user, &password)?;
        vars.push((var, password));
    }
    Ok(vars)
}

fn read_password(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("FLEETBUS_NATS_PASSWORD="))
        .map(str::to_string)
        .filter(|p| !p.is_empty())
}

/// `<dir>/<user>.env`, readable by the owner only.
fn write_login(dir: &Path, user: &str, password: &str) -> anyhow::Result<()> {
    let path = dir.join(format!("{user}.env"));
    let text = format!(
        "# Login of `{user}` on the local fleetbus cluster, made by `just up`. Not committed.\n\
         FLEETBUS_NATS_URL={}\nFLEETBUS_NATS_USER={user}\nFLEETBUS_NATS_PASSWORD={password}\n",
        crate::nats::LOCAL_URLS
    );
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(text.as_bytes())?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// 128 random bits as hex behind a letter (nats-server reads a variable
/// from the environment as a config value: the letter keeps it a string).
fn random_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(format!("p{}", hex::encode(bytes)))
}

/// `FLEETBUS_NATS_*` for a worker of `role`.
pub(super) fn service_env(role: Role, passwords: &[(String, String)]) -> Vec<(String, String)> {
    let password = passwords
        .iter()
        .find(|(k, _)| *k == role.password_var())
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    vec![
        ("FLEETBUS_NATS_URL".into(), crate::nats::LOCAL_URLS.into()),
        ("FLEETBUS_NATS_USER".into(), role.name().into()),
        ("FLEETBUS_NATS_PASSWORD".into(), password),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_logins_are_kept_between_runs() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("credentials")).unwrap();
        let first = credentials(dir.path()).unwrap();
        let second = credentials(dir.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(first[0], ("FLEETBUS_ADMIN_PASSWORD".into(), "admin".into()));
        assert_eq!(first.len(), 6);
        let gateway = fs::read_to_string(dir.path().join("credentials/gateway.env")).unwrap();
        assert!(gateway.contains("FLEETBUS_NATS_USER=gateway\n"));
        let mode = fs::metadata(dir.path().join("credentials/gateway.env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
