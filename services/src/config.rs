//! One way every program is configured (docs/operations.md#configuration):
//! each setting comes from, last wins,
//!
//! 1. its default,
//! 2. the program's table of the TOML file given with `--config`
//!    (`[gateway]`, `[hamster]`, `[monkey]`, `[topology]`, `[simulate]`,
//!    `[nats]`, …),
//! 3. a `FLEETBUS_<TABLE>__<FIELD>` variable (`__` between nested fields),
//! 4. a flag.
//!
//! Every problem is reported at once, and `--print-config` prints the
//! effective tables as a file `--config` loads.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::nats::NatsArgs;

/// The options every program takes besides its own.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigArgs {
    /// A TOML config file; each program reads its own tables (docs/operations.md).
    #[arg(long, env = "FLEETBUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (TOML, loadable with --config) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Log as JSON lines (for log shippers) instead of text.
    #[arg(long, env = "FLEETBUS_LOG_JSON")]
    pub log_json: bool,
}

impl ProgramArgs {
    /// For the admin tools (`status`, `verify`, `dead …`), whose only table
    /// is `[nats]`: their NATS options over the file's, with the local
    /// cluster's admin login when none is given anywhere; `None` when
    /// `--print-config` printed them.
    pub fn admin_nats(&self) -> anyhow::Result<Option<NatsArgs>> {
        let nats = self
            .nats
            .layered(self.cfg.config.as_deref())?
            .or_local_admin();
        if self.cfg.print_config {
            Effective::new().table("nats", &nats.effective())?.print()?;
            return Ok(None);
        }
        Ok(Some(nats))
    }
}

/// What every program that connects to the cluster takes besides its own
/// options: where the cluster is and how to log in (also the `[nats]`
/// table), and `--config`, `--print-config`, `--log-json`. Which tables of
/// the file a program reads: docs/operations.md.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgramArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub cfg: ConfigArgs,
}

/// Everything wrong with a configuration, one problem per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl ConfigError {
    pub fn one(problem: impl Into<String>) -> ConfigError {
        ConfigError(vec![problem.into()])
    }
}

impl From<figment::Error> for ConfigError {
    fn from(e: figment::Error) -> ConfigError {
        ConfigError(e.into_iter().map(|e| e.to_string()).collect())
    }
}

/// The table `name` of `file`, over `T`'s defaults, under its
/// `FLEETBUS_<NAME>__…` variables and `flags` (the flags that were given).
pub fn table<T: Serialize + DeserializeOwned + Default>(
    file: Option<&Path>,
    name: &str,
    flags: Figment,
) -> Result<T, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::one(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        fig = fig.merge(Figment::from(Toml::file_exact(path)).focus(name));
    }
    let prefix = format!("FLEETBUS_{}__", name.to_ascii_uppercase());
    fig = fig.merge(Env::prefixed(&prefix).split("__")).merge(flags);
    Ok(fig.extract()?)
}

/// The effective configuration of a program, table by table.
#[derive(Default)]
pub struct Effective {
    tables: toml::Table,
}

impl Effective {
    pub fn new() -> Effective {
        Effective::default()
    }

    /// Adds `[name]`.
    pub fn table(mut self, name: &str, value: &impl Serialize) -> anyhow::Result<Effective> {
        self.tables
            .insert(name.to_string(), toml::Value::try_from(value)?);
        Ok(self)
    }

    /// As a config file.
    pub fn render(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(&self.tables)?)
    }

    /// Prints it (`--print-config`).
    pub fn print(&self) -> anyhow::Result<()> {
        print!("{}", self.render()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        a: u32,
        b: String,
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn defaults_then_file_then_environment_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("f.toml", "[demo]\na = 1\nb = \"file\"\n")?;
            let path = Path::new("f.toml");
            let d: Demo = table(None, "demo", Figment::new()).unwrap();
            assert_eq!(d, Demo::default());
            let d: Demo = table(Some(path), "demo", Figment::new()).unwrap();
            assert_eq!(
                d,
                Demo {
                    a: 1,
                    b: "file".into()
                }
            );
            jail.set_env("FLEETBUS_DEMO__A", "2");
            let d: Demo = table(Some(path), "demo", Figment::new()).unwrap();
            assert_eq!(d.a, 2);
            let flags = Figment::from(Serialized::default("a", 3));
            let d: Demo = table(Some(path), "demo", flags).unwrap();
            assert_eq!(
                d,
                Demo {
                    a: 3,
                    b: "file".into()
                }
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn every_problem_at_once_and_a_missing_file_is_one() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[demo]\na = \"x\"\nc = 1\n")?;
            let e = table::<Demo>(Some(Path::new("bad.toml")), "demo", Figment::new()).unwrap_err();
            assert!(!e.0.is_empty(), "{e}");
            let e =
                table::<Demo>(Some(Path::new("none.toml")), "demo", Figment::new()).unwrap_err();
            assert_eq!(e, ConfigError::one("config file none.toml does not exist"));
            Ok(())
        });
    }

    #[test]
    fn the_effective_configuration_loads_again() {
        let text = Effective::new()
            .table(
                "demo",
                &Demo {
                    a: 7,
                    b: "x".into(),
                },
            )
            .unwrap()
            .render()
            .unwrap();
        let back: toml::Table = text.parse().unwrap();
        let d: Demo = back["demo"].clone().try_into().unwrap();
        assert_eq!(
            d,
            Demo {
                a: 7,
                b: "x".into()
            }
        );
    }
}
