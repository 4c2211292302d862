//! Connecting to the NATS cluster: URLs of every node, a login (user and
//! password, or a `.creds` file), the role's inbox prefix, and retries while
//! the cluster is not up yet.
//!
//! Every program takes the same options (`--nats-url`, `--nats-user`,
//! `--nats-password`, `--nats-creds`, `--nats-tls-ca`, `--nats-tls-cert`,
//! `--nats-tls-key`, or `FLEETBUS_NATS_*` in the environment). A `user:password@` inside a URL is used as the login too,
//! so `nats://admin:admin@127.0.0.1:4222` works as it does with the `nats` CLI.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, ServerAddr};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::config::{self, ConfigError};

/// Client URLs of the local cluster started by `just up`.
pub const LOCAL_URLS: &str = "nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224";

/// The login of the local cluster's admin (local cluster only).
pub const LOCAL_ADMIN: (&str, &str) = ("admin", "admin");

/// Who a connection acts as; each role has a user in `nats-conf/accounts.conf`
/// whose permissions are derived from what the role reads and writes.
pub use fleetbus_wire::Role;

/// Connection options shared by every `fleetbus` program. Each may also
/// come from the `[nats]` table of the config file ([`NatsArgs::layered`]);
/// a flag or its `FLEETBUS_NATS_*` variable wins over the file.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsArgs {
    /// NATS URLs, comma separated: list every node of the cluster. A
    /// `user:password@` in a URL is used as the login. Default: the local
    /// cluster of `just up`.
    #[arg(long = "nats-url", env = "FLEETBUS_NATS_URL", value_delimiter = ',')]
    pub urls: Vec<String>,
    /// User name (with --nats-password).
    #[arg(long = "nats-user", env = "FLEETBUS_NATS_USER")]
    pub user: Option<String>,
    /// Password of --nats-user.
    #[arg(
        long = "nats-password",
        env = "FLEETBUS_NATS_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// A NATS credentials file (JWT + nkey seed), instead of user/password.
    #[arg(long = "nats-creds", env = "FLEETBUS_NATS_CREDS", conflicts_with_all = ["user", "password"])]
    pub creds: Option<PathBuf>,
    /// How long to keep trying to connect at start, in seconds (0: one try;
    /// default 60).
    #[arg(long = "nats-connect-wait", env = "FLEETBUS_NATS_CONNECT_WAIT")]
    pub connect_wait_secs: Option<u64>,
    /// CA certificate(s) (PEM) the servers' certificates are checked
    /// against. Any of the three TLS options, or a `tls://` URL, makes the
    /// connection refuse to run without TLS.
    #[arg(long = "nats-tls-ca", env = "FLEETBUS_NATS_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// This program's client certificate (PEM), for servers that verify
    /// clients (with --nats-tls-key).
    #[arg(
        long = "nats-tls-cert",
        env = "FLEETBUS_NATS_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --nats-tls-cert.
    #[arg(
        long = "nats-tls-key",
        env = "FLEETBUS_NATS_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
}

/// How long a program keeps trying to connect at start by default.
pub const DEFAULT_CONNECT_WAIT_SECS: u64 = 60;

impl NatsArgs {
    /// These options over the `[nats]` table of `file` (and its
    /// `FLEETBUS_NATS__*` variables): what is given here wins, field by field.
    pub fn layered(&self, file: Option<&Path>) -> Result<NatsArgs, ConfigError> {
        let table: NatsArgs = config::table(file, "nats", Figment::new())?;
        let url_login = self.urls.iter().any(|u| split_login(u).1.is_some());
        let login_given =
            url_login || self.user.is_some() || self.password.is_some() || self.creds.is_some();
        Ok(NatsArgs {
            urls: if self.urls.is_empty() {
                table.urls
            } else {
                self.urls.clone()
            },
            // A login is one thing: given here, the file's does not mix in.
            user: if login_given {
                self.user.clone()
            } else {
                table.user
            },
            password: if login_given {
                self.password.clone()
            } else {
                table.password
            },
            creds: if login_given {
                self.creds.clone()
            } else {
                table.creds
            },
            connect_wait_secs: self.connect_wait_secs.or(table.connect_wait_secs),
            tls_ca: self.tls_ca.clone().or(table.tls_ca),
            tls_cert: self.tls_cert.clone().or(table.tls_cert),
            tls_key: self.tls_key.clone().or(table.tls_key),
        })
    }

    /// As `--print-config` shows it: the password hidden, defaults filled.
    pub fn effective(&self) -> NatsArgs {
        NatsArgs {
            urls: self.urls_or_local(),
            password: self.password.as_ref().map(|_| "***".to_string()),
            connect_wait_secs: Some(self.connect_wait()),
            ..self.clone()
        }
    }

    fn urls_or_local(&self) -> Vec<String> {
        if self.urls.is_empty() {
            LOCAL_URLS.split(',').map(str::to_string).collect()
        } else {
            self.urls.clone()
        }
    }

    fn connect_wait(&self) -> u64 {
        self.connect_wait_secs.unwrap_or(DEFAULT_CONNECT_WAIT_SECS)
    }
}

/// How a connection authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    UserPassword { user: String, password: String },
    CredsFile(PathBuf),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::UserPassword { user, .. } => write!(f, "UserPassword({user}, ***)"),
            Auth::CredsFile(p) => write!(f, "CredsFile({})", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("no NATS URL given")]
    NoUrl,
    #[error("bad NATS URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("--nats-password without --nats-user")]
    PasswordWithoutUser,
    #[error("cannot read credentials file {path}: {source}")]
    Creds {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--nats-tls-cert and --nats-tls-key go together (one is missing)")]
    HalfClientCertificate,
    #[error("cannot read TLS file {path}: {source}")]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to NATS at {urls}: {source}")]
    Connect {
        urls: String,
        source: async_nats::ConnectError,
    },
}

/// Everything needed to connect, resolved from [`NatsArgs`].
#[derive(Clone, Debug)]
pub struct NatsConfig {
    pub servers: Vec<ServerAddr>,
    pub auth: Auth,
    pub role: Role,
    /// Connection name shown by the server (`connz`).
    pub name: String,
    pub connect_wait: Duration,
    pub tls: Tls,
}

/// TLS of a connection: required or not, and the files it uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// Refuse to talk to a server without TLS: set by any TLS file or a
    /// `tls://` URL.
    pub required: bool,
    pub ca: Option<PathBuf>,
    /// Client certificate and key.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl NatsArgs {
    /// Local default for the admin tools: the local cluster's admin login
    /// when no login is given at all (not on the command line, not in the
    /// environment, not in a URL).
    pub fn or_local_admin(mut self) -> NatsArgs {
        let url_has_login = self
            .urls_or_local()
            .iter()
            .any(|u| split_login(u).1.is_some());
        if self.user.is_none() && self.creds.is_none() && !url_has_login {
            self.user = Some(LOCAL_ADMIN.0.into());
            self.password = Some(LOCAL_ADMIN.1.into());
        }
        self
    }

    /// Resolves URLs and login for a connection of `role` called `name`.
    pub fn config(&self, role: Role, name: impl Into<String>) -> Result<NatsConfig, NatsError> {
        let mut servers = Vec::new();
        let mut url_login = None;
        for raw in self
            .urls_or_local()
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
        {
            let (bare, login) = split_login(raw);
            if url_login.is_none() {
                url_login = login;
            }
            let addr = bare.parse::<ServerAddr>().map_err(|e| NatsError::BadUrl {
                url: bare.clone(),
                reason: e.to_string(),
            })?;
            servers.push(addr);
        }
        if servers.is_empty() {
            return Err(NatsError::NoUrl);
        }
        let auth = match (&self.creds, &self.user, &self.password) {
            (Some(path), _, _) => Auth::CredsFile(path.clone()),
            (None, Some(user), password) => Auth::UserPassword {
                user: user.clone(),
                password: password.clone().unwrap_or_default(),
            },
            (None, None, Some(_)) => return Err(NatsError::PasswordWithoutUser),
            (None, None, None) => match url_login {
                Some((user, password)) => Auth::UserPassword { user, password },
                None => Auth::None,
            },
        };
        let client = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => return Err(NatsError::HalfClientCertificate),
        };
        for path in self
            .tls_ca
            .iter()
            .chain(&self.tls_cert)
            .chain(&self.tls_key)
        {
            // Checked here, where the message can name the file: the
            // client library would only say that TLS failed.
            std::fs::metadata(path).map_err(|source| NatsError::TlsFile {
                path: path.clone(),
                source,
            })?;
        }
        let tls_url = self
            .urls_or_local()
            .iter()
            .any(|u| u.trim().to_ascii_lowercase().starts_with("tls://"));
        let tls = Tls {
            required: tls_url || self.tls_ca.is_some() || client.is_some(),
            ca: self.tls_ca.clone(),
            client,
        };
        Ok(NatsConfig {
            servers,
            auth,
            role,
            name: name.into(),
            connect_wait: Duration::from_secs(self.connect_wait()),
            tls,
        })
    }
}

/// Splits `nats://user:pass@host:port` into `nats://host:port` and the login.
pub fn split_login(url: &str) -> (String, Option<(String, String)>) {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_string(), None);
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => (userinfo.to_string(), String::new()),
    };
    let bare = match scheme {
        Some(s) => format!("{s}://{host}{path}"),
        None => format!("{host}{path}"),
    };
    (bare, Some((user, password)))
}

impl NatsConfig {
    /// The async-nats options: login, inbox prefix, name, and logging of
    /// connection events.
    pub async fn options(&self) -> Result<ConnectOptions, NatsError> {
        let mut opts = match &self.auth {
            Auth::None => ConnectOptions::new(),
            Auth::UserPassword { user, password } => {
                ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            Auth::CredsFile(path) => ConnectOptions::with_credentials_file(path.clone())
                .await
                .map_err(|source| NatsError::Creds {
                    path: path.clone(),
                    source,
                })?,
        };
        opts = opts
            .name(&self.name)
            .connection_timeout(Duration::from_secs(3))
            // A server cut off by the network (not closed: its packets are
            // dropped) is only noticed when pings go unanswered. async-nats
            // gives up after two missed pings; the default interval (60 s)
            // would leave a gateway publishing into a dead connection for
            // two minutes. Every 2 s, a dead server is left within ~6 s.
            .ping_interval(Duration::from_secs(2))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("Connected to NATS."),
                    async_nats::Event::Disconnected => {
                        tracing::warn!("Disconnected from NATS; reconnecting.")
                    }
                    async_nats::Event::LameDuckMode => {
                        tracing::info!(
                            "The NATS server is entering lame-duck mode; moving to another."
                        )
                    }
                    other => tracing::debug!(event = %other, "A NATS connection event."),
                }
            });
        if let Some(prefix) = self.role.inbox_prefix() {
            opts = opts.custom_inbox_prefix(prefix);
        }
        if self.tls.required {
            opts = opts.require_tls(true);
        }
        if let Some(ca) = &self.tls.ca {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls.client {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(opts)
    }

    /// The URLs, for messages.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.as_url_str().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Connects to one of the servers (the client learns and fails over to
    /// the others), trying again for up to `connect_wait` while none answers.
    pub async fn connect(&self) -> Result<Client, NatsError> {
        let deadline = Instant::now() + self.connect_wait;
        let mut pause = Duration::from_millis(100);
        loop {
            match self.options().await?.connect(self.servers.clone()).await {
                Ok(client) => return Ok(client),
                Err(source) => {
                    let auth_failed = matches!(
                        source.kind(),
                        async_nats::ConnectErrorKind::AuthorizationViolation
                    );
                    if auth_failed || Instant::now() + pause > deadline {
                        return Err(NatsError::Connect {
                            urls: self.urls(),
                            source,
                        });
                    }
                    tracing::info!(urls = %self.urls(), error = %source, "Waiting for NATS.");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        nats: NatsArgs,
    }

    fn parse(args: &[&str]) -> NatsArgs {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .nats
    }

    #[test]
    fn splits_a_login_out_of_a_url() {
        assert_eq!(
            split_login("nats://admin:admin@127.0.0.1:4222"),
            (
                "nats://127.0.0.1:4222".into(),
                Some(("admin".into(), "admin".into()))
            )
        );
        assert_eq!(
            split_login("127.0.0.1:4222"),
            ("127.0.0.1:4222".into(), None)
        );
        assert_eq!(
            split_login("u@h:1"),
            ("h:1".into(), Some(("u".into(), String::new())))
        );
    }

    #[test]
    fn url_list_and_embedded_login() {
        let args = parse(&[
            "--nats-url",
            "nats://admin:admin@127.0.0.1:4222,nats://127.0.0.1:4223",
        ]);
        let cfg = args.config(Role::Admin, "t").unwrap();
        assert_eq!(cfg.servers.len(), 2);
        assert_eq!(
            cfg.auth,
            Auth::UserPassword {
                user: "admin".into(),
                password: "admin".into()
            }
        );
        assert!(!cfg.urls().contains("admin"));
    }

    #[test]
    fn explicit_login_wins_over_the_url() {
        let args = parse(&[
            "--nats-url",
            "nats://a:b@h:1",
            "--nats-user",
            "gateway",
            "--nats-password",
            "pw",
        ]);
        let cfg = args.config(Role::Gateway, "t").unwrap();
        assert_eq!(
            cfg.auth,
            Auth::UserPassword {
                user: "gateway".into(),
                password: "pw".into()
            }
        );
    }

    #[test]
    fn defaults_to_the_local_cluster_and_local_admin_only_when_asked() {
        let args = parse(&[]);
        let cfg = args.config(Role::Admin, "t").unwrap();
        assert_eq!(cfg.servers.len(), 3);
        assert_eq!(cfg.auth, Auth::None);
        let admin = args
            .clone()
            .or_local_admin()
            .config(Role::Admin, "t")
            .unwrap();
        assert_eq!(
            admin.auth,
            Auth::UserPassword {
                user: "admin".into(),
                password: "admin".into()
            }
        );
        let given = parse(&["--nats-url", "nats://x:y@h:1"]).or_local_admin();
        assert_eq!(given.user, None);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn the_config_file_fills_what_no_flag_gives() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "f.toml",
                "[nats]\nurls = [\"nats://a:4222\", \"nats://b:4222\"]\nuser = \"hamster\"\npassword = \"pw\"\n",
            )?;
            let file = Some(Path::new("f.toml"));
            let from_file = parse(&[]).layered(file).unwrap();
            assert_eq!(from_file.urls, ["nats://a:4222", "nats://b:4222"]);
            assert_eq!(from_file.user.as_deref(), Some("hamster"));
            let cfg = from_file.config(Role::Hamster, "t").unwrap();
            assert_eq!(cfg.servers.len(), 2);
            assert_eq!(cfg.connect_wait, Duration::from_secs(60));
            // A login on the command line replaces the file's whole.
            let flag = parse(&["--nats-creds", "x.creds", "--nats-url", "nats://c:1"])
                .layered(file)
                .unwrap();
            assert_eq!((flag.user, flag.password), (None, None));
            assert_eq!(flag.urls, ["nats://c:1"]);
            // So does a login inside a URL.
            let in_url = parse(&["--nats-url", "nats://a:b@c:1"])
                .layered(file)
                .unwrap();
            assert_eq!((in_url.user, in_url.password), (None, None));
            assert_eq!(from_file.effective().password.as_deref(), Some("***"));
            Ok(())
        });
    }

    #[test]
    fn tls_is_required_by_a_tls_url_or_any_tls_file_and_files_must_exist() {
        let plain = parse(&[]).config(Role::Gateway, "t").unwrap();
        assert_eq!(plain.tls, Tls::default());
        let url = parse(&["--nats-url", "tls://h:4222"])
            .config(Role::Gateway, "t")
            .unwrap();
        assert!(url.tls.required);
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let ca = ca.to_str().unwrap();
        let with_ca = parse(&["--nats-tls-ca", ca])
            .config(Role::Gateway, "t")
            .unwrap();
        assert!(with_ca.tls.required);
        assert_eq!(with_ca.tls.ca.as_deref(), Some(Path::new(ca)));
        let missing = parse(&["--nats-tls-ca", "/nonexistent/ca.pem"])
            .config(Role::Gateway, "t")
            .unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/ca.pem"),
            "{missing}"
        );
        assert!(
            Cli::try_parse_from(["x", "--nats-tls-cert", ca]).is_err(),
            "a client certificate without its key is refused"
        );
        let both = parse(&["--nats-tls-cert", ca, "--nats-tls-key", ca])
            .config(Role::Gateway, "t")
            .unwrap();
        assert!(both.tls.required && both.tls.client.is_some());
    }

    #[test]
    fn creds_and_user_conflict() {
        assert!(Cli::try_parse_from(["x", "--nats-creds", "a.creds", "--nats-user", "u"]).is_err());
    }

    #[test]
    fn roles_have_inbox_prefixes_and_password_variables() {
        assert_eq!(
            Role::Hamster.inbox_prefix().as_deref(),
            Some("_INBOX.hamster")
        );
        assert_eq!(Role::Admin.inbox_prefix(), None);
        assert_eq!(Role::Monkey.password_var(), "FLEETBUS_MONKEY_PASSWORD");
    }

    #[test]
    fn debug_hides_passwords() {
        let auth = Auth::UserPassword {
            user: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{auth:?}").contains("secret"));
    }
}
