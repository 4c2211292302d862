//! Logins of a test cluster: one user per role, as in `nats-conf/accounts.conf`,
//! with passwords generated for each cluster.

use std::io::Read;

/// The roles of `nats-conf/accounts.conf` (the FLEETBUS account's users),
/// the very enum the services use.
pub use fleetbus_wire::Role;

/// The system account's user (monitoring), not a fleetbus role.
pub const SYS_USER: &str = "sys";
/// The environment variable nats-server reads its password from.
pub const SYS_PASSWORD_VAR: &str = "FLEETBUS_SYS_PASSWORD";

/// A user name and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: String,
}

/// One login per role, and the system account's.
#[derive(Clone, Debug)]
pub struct Credentials {
    logins: Vec<(Role, Login)>,
    sys: Login,
}

impl Credentials {
    /// Fresh random passwords for every role.
    pub fn generate() -> Credentials {
        let logins = Role::ALL
            .iter()
            .map(|&role| {
                let login = Login {
                    user: role.name().to_string(),
                    password: random_password(),
                };
                (role, login)
            })
            .collect();
        let sys = Login {
            user: SYS_USER.to_string(),
            password: random_password(),
        };
        Credentials { logins, sys }
    }

    /// The system account's login.
    pub fn sys(&self) -> &Login {
        &self.sys
    }

    pub fn login(&self, role: Role) -> &Login {
        &self
            .logins
            .iter()
            .find(|(r, _)| *r == role)
            .expect("every role has a login")
            .1
    }

    /// `FLEETBUS_<ROLE>_PASSWORD=…` for the environment of nats-server.
    pub fn server_env(&self) -> Vec<(String, String)> {
        self.logins
            .iter()
            .map(|(role, login)| (role.password_var(), login.password.clone()))
            .chain([(SYS_PASSWORD_VAR.to_string(), self.sys.password.clone())])
            .collect()
    }
}

/// 128 random bits, hex, behind a letter: nats-server parses a variable taken
/// from the environment like a configuration value, and a letter first keeps
/// it a string (never a number or a boolean).
pub fn random_password() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("cannot read /dev/urandom");
    let mut out = String::from("p");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_distinct_strings_starting_with_a_letter() {
        let creds = Credentials::generate();
        let mut seen = std::collections::HashSet::new();
        let logins = Role::ALL.map(|r| creds.login(r).clone());
        for login in logins.iter().chain([creds.sys()]) {
            assert_eq!(login.password.len(), 33);
            assert!(login.password.starts_with('p'));
            assert!(seen.insert(login.password.clone()));
        }
        for role in Role::ALL {
            assert_eq!(creds.login(role).user, role.name());
        }
    }

    #[test]
    fn names_match_the_accounts_template() {
        let users = Role::ALL
            .map(|r| (r.name().to_string(), r.password_var()))
            .into_iter()
            .chain([(SYS_USER.to_string(), SYS_PASSWORD_VAR.to_string())]);
        for (user, var) in users {
            let var = format!("${var}");
            assert!(crate::conf::ACCOUNTS_TEMPLATE.contains(&var), "{var}");
            let user = format!("user: {user},");
            assert!(crate::conf::ACCOUNTS_TEMPLATE.contains(&user), "{user}");
        }
        assert!(crate::conf::ACCOUNTS_TEMPLATE.contains("\"_INBOX.gateway.>\""));
    }
}
