//! The settings an operator may change without a restart, declared once. The
//! struct below is their flags (with environment variable, default and parser);
//! from the same declaration come the keys a runtime file may set
//! ([`crate::runtime_file`]), what a reload compares and logs ([`crate::reload`])
//! and the list in docs/services.md (a test keeps it equal to [`markdown_table`]).
//! Adding a setting is one field here, plus its use (e.g. in [`Reloadable::store`]).

use std::time::Duration;

use clap::{Args, Command};

use crate::breaker::BreakerSettings;
use crate::redis_store::StoreTunables;

/// Declares the struct as written and adds what clap cannot derive: the log
/// line of a reload, one field per setting.
macro_rules! reloadable {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$field_meta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $name {
            /// The fields' names, to check that each one is a flag with a key.
            #[cfg(test)]
            const FIELDS: &[&str] = &[$(stringify!($field)),*];

            /// Logs every setting, each as its own field (`log_level=debug ...`).
            pub(crate) fn log_applied(&self) {
                tracing::info!($($field = self.$field,)* "runtime settings applied");
            }
        }
    };
}

reloadable! {
    /// The reloadable settings: flags and env at start, then overridden by
    /// `--runtime-file` at start and on every SIGHUP.
    #[derive(Args, Debug, Clone, PartialEq)]
    #[command(next_help_heading = "Reloadable (also from --runtime-file, on SIGHUP)")]
    pub struct Reloadable {
        /// Log filter, e.g. info or counter=debug,info
        #[arg(long, env = "COUNTER_LOG_LEVEL", value_name = "FILTER", default_value = "info",
              value_parser = parse_log_filter)]
        pub log_level: String,

        /// Budget for one store read or probe across endpoints, in milliseconds; one endpoint gets half
        #[arg(long, env = "COUNTER_STORE_TIMEOUT_MS", value_name = "MS", default_value_t = 500,
              value_parser = clap::value_parser!(u64).range(10..=60_000))]
        pub store_timeout_ms: u64,

        /// How long an increment waits for replicas to confirm it (WAIT), in milliseconds
        #[arg(long, env = "COUNTER_WAIT_TIMEOUT_MS", value_name = "MS", default_value_t = 300,
              value_parser = clap::value_parser!(u64).range(1..=60_000))]
        pub wait_timeout_ms: u64,

        /// How long an increment is held while no primary is known (a failover), in milliseconds; 0 refuses at once
        #[arg(long, env = "COUNTER_PRIMARY_WAIT_MS", value_name = "MS", default_value_t = 3000,
              value_parser = clap::value_parser!(u64).range(0..=60_000))]
        pub primary_wait_ms: u64,

        /// Consecutive failures that open an endpoint's circuit breaker
        #[arg(long, env = "COUNTER_BREAKER_FAILURES", value_name = "N", default_value_t = 3,
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        pub breaker_failures: u32,

        /// How long an open breaker fails fast before a trial call, in milliseconds
        #[arg(long, env = "COUNTER_BREAKER_COOLDOWN_MS", value_name = "MS", default_value_t = 1000,
              value_parser = clap::value_parser!(u64).range(10..=600_000))]
        pub breaker_cooldown_ms: u64,
    }
}

impl Reloadable {
    /// The store's share: its timeouts and breaker thresholds.
    pub fn store(&self) -> StoreTunables {
        StoreTunables {
            store_timeout: Duration::from_millis(self.store_timeout_ms),
            wait_timeout: Duration::from_millis(self.wait_timeout_ms),
            primary_wait: Duration::from_millis(self.primary_wait_ms),
            breaker: BreakerSettings {
                failures: self.breaker_failures,
                cooldown: Duration::from_millis(self.breaker_cooldown_ms),
            },
        }
    }
}

/// One reloadable setting as an operator meets it.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// The runtime file's key, which is also the environment variable.
    pub key: String,
    pub flag: String,
    pub default: String,
    pub help: String,
}

/// Every reloadable setting, in declaration order, as clap sees [`Reloadable`].
pub fn settings() -> Vec<Setting> {
    Reloadable::augment_args(Command::new("reloadable"))
        .get_arguments()
        .filter_map(|arg| {
            Some(Setting {
                key: arg.get_env()?.to_str()?.to_owned(),
                flag: format!("--{}", arg.get_long()?),
                default: arg.get_default_values().iter().map(|v| v.to_string_lossy()).collect::<Vec<_>>().join(","),
                help: arg.get_help().map(ToString::to_string).unwrap_or_default(),
            })
        })
        .collect()
}

/// The list of docs/services.md: a markdown table, one row per setting.
pub fn markdown_table() -> String {
    let mut table = String::from("| key (and env) | flag | default | what |\n|---|---|---|---|\n");
    for s in settings() {
        table.push_str(&format!("| `{}` | `{}` | {} | {} |\n", s.key, s.flag, s.default, s.help));
    }
    table
}

fn parse_log_filter(raw: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(raw)
        .map(|_| raw.to_string())
        .map_err(|e| format!("expected a tracing filter like info or counter=debug ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where docs/services.md lists the settings.
    const BEGIN: &str = "<!-- reloadable settings: generated from services/counter/src/reloadable.rs -->\n";
    const END: &str = "<!-- end of reloadable settings -->";

    #[test]
    fn every_field_is_a_flag_with_a_key() {
        let settings = settings();
        assert_eq!(settings.len(), Reloadable::FIELDS.len(), "a field without `long` or `env`: {settings:?}");
        assert!(settings.iter().all(|s| s.key.starts_with("COUNTER_") && !s.default.is_empty()), "{settings:?}");
    }

    #[test]
    fn the_docs_list_the_reloadable_settings_as_declared() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/services.md");
        let docs = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let listed = docs
            .split_once(BEGIN)
            .and_then(|(_, rest)| rest.split_once(END))
            .map(|(list, _)| list)
            .unwrap_or_else(|| panic!("{path} has no list between {BEGIN:?} and {END:?}"));

        let declared = markdown_table();
        assert_eq!(listed, declared, "{path}: replace the list between the markers with:\n{declared}");
    }
}
