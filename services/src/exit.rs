//! One table of exit codes for every `fleetbus` program, so that a script,
//! a systemd unit or a monitoring check reads them the same way
//! (docs/operations.md#exit-codes). The codes above 3 are the BSD
//! `sysexits.h` ones that mean the same thing.

use std::process::ExitCode;

/// How a program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It did what it was asked; a check found nothing wrong.
    Ok,
    /// It ran, and says what is wrong: `status` degraded, `verify` found
    /// records missing or altered, `provision` refused, letters not
    /// replayed, a simulator's records still queued, workers that gave up.
    Problems,
    /// The cluster could not be reached within the wait (nothing was done).
    Unreachable,
    /// It stopped, but not cleanly: the gateway cut connections at its
    /// drain deadline, workers did not finish within their shutdown grace
    /// (what they held is redelivered).
    Unclean,
    /// The command line is wrong (`EX_USAGE`).
    Usage,
    /// The input data is wrong: an import file with bad lines, each
    /// printed (`EX_DATAERR`).
    Data,
    /// A bug or an error nobody foresaw (`EX_SOFTWARE`).
    Internal,
    /// The configuration is wrong: every problem is printed (`EX_CONFIG`).
    Config,
}

impl Exit {
    pub const ALL: [Exit; 8] = [
        Exit::Ok,
        Exit::Problems,
        Exit::Unreachable,
        Exit::Unclean,
        Exit::Usage,
        Exit::Data,
        Exit::Internal,
        Exit::Config,
    ];

    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Problems => 1,
            Exit::Unreachable => 2,
            Exit::Unclean => 3,
            Exit::Usage => 64,
            Exit::Data => 65,
            Exit::Internal => 70,
            Exit::Config => 78,
        }
    }

    /// `Ok` when `fine`, else `Problems`.
    pub fn problems_unless(fine: bool) -> Exit {
        if fine {
            Exit::Ok
        } else {
            Exit::Problems
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// The exit of a program that failed with `err`: a cluster it could not
/// connect to is `Unreachable`, a configuration error `Config`, anything
/// else `Internal`.
pub fn of_error(err: &anyhow::Error) -> Exit {
    use crate::nats::NatsError;
    for e in err.chain() {
        match e.downcast_ref::<NatsError>() {
            Some(NatsError::Connect { .. }) => return Exit::Unreachable,
            Some(_) => return Exit::Config,
            None => {}
        }
        if e.is::<crate::config::ConfigError>() || e.is::<crate::topology::SettingsError>() {
            return Exit::Config;
        }
        // A stream or durable a service needs is missing (the operator has
        // not provisioned), or the cluster did not answer in time.
        match e.downcast_ref::<crate::topology::ProvisionError>() {
            Some(crate::topology::ProvisionError::Unavailable { .. }) => return Exit::Unreachable,
            Some(_) => return Exit::Config,
            None => {}
        }
    }
    Exit::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_never_change() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 64, 65, 70, 78]);
        assert_eq!(Exit::problems_unless(true), Exit::Ok);
        assert_eq!(Exit::problems_unless(false), Exit::Problems);
    }

    #[test]
    fn configuration_errors_are_told_apart() {
        let bad = anyhow::Error::from(crate::config::ConfigError(vec!["x".into()]));
        assert_eq!(of_error(&bad), Exit::Config);
        let wrapped = anyhow::Error::from(crate::nats::NatsError::NoUrl).context("connecting");
        assert_eq!(of_error(&wrapped), Exit::Config);
        assert_eq!(of_error(&anyhow::anyhow!("boom")), Exit::Internal);
        let missing = anyhow::Error::from(crate::topology::ProvisionError::Missing {
            kind: "stream",
            name: "RAW".into(),
        })
        .context("checking");
        assert_eq!(of_error(&missing), Exit::Config);
    }
}
