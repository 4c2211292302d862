//! Logins of a test cluster: one user per role, as in `nats-conf/accounts.conf`,
//! with passwords generated for each cluster.

use std::fmt;
use std::io::Read;

/// The users of `nats-conf/accounts.conf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything in the FLEETBUS account.
    Admin,
    /// Publishes raw frames.
    Gateway,
    /// Consumes RAW, publishes PARSED.
    Hamster,
    /// Consumes PARSED.
    Monkey,
    /// The system account's user.
    Sys,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Gateway,
        Role::Hamster,
        Role::Monkey,
        Role::Sys,
    ];

    /// The user name, also the role's name.
    pub fn user(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Gateway => "gateway",
            Role::Hamster => "hamster",
            Role::Monkey => "monkey",
            Role::Sys => "sys",
        }
    }

    /// The environment variable nats-server reads this role's password from.
    pub fn password_var(self) -> String {
        format!("FLEETBUS_{}_PASSWORD", self.user().to_ascii_uppercase())
    }

    /// The inbox prefix the role's permissions allow (`None`: any).
    pub fn inbox_prefix(self) -> Option<String> {
        match self {
            Role::Admin | Role::Sys => None,
            other => Some(format!("_INBOX.{}", other.user())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.user())
    }
}

/// A user name and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: String,
}

/// One login per role.
#[derive(Clone, Debug)]
pub struct Credentials {
    logins: Vec<(Role, Login)>,
}

impl Credentials {
    /// Fresh random passwords for every role.
    pub fn generate() -> Credentials {
        let logins = Role::ALL
            .iter()
            .map(|&role| {
                let login = Login {
                    user: role.user().to_string(),
                    password: random_password(),
                };
                (role, login)
            })
            .collect();
        Credentials { logins }
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
        for role in Role::ALL {
            let login = creds.login(role);
            assert_eq!(login.user, role.user());
            assert_eq!(login.password.len(), 33);
            assert!(login.password.starts_with('p'));
            assert!(seen.insert(login.password.clone()));
        }
    }

    #[test]
    fn names_match_the_accounts_template() {
        for role in Role::ALL {
            let var = format!("${}", role.password_var());
            assert!(crate::conf::ACCOUNTS_TEMPLATE.contains(&var), "{var}");
            let user = format!("user: {},", role.user());
            assert!(crate::conf::ACCOUNTS_TEMPLATE.contains(&user), "{user}");
        }
        assert_eq!(
            Role::Gateway.inbox_prefix().as_deref(),
            Some("_INBOX.gateway")
        );
        assert!(crate::conf::ACCOUNTS_TEMPLATE.contains("\"_INBOX.gateway.>\""));
    }
}
