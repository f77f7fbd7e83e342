//! The runtime file: `COUNTER_*=value` lines for the reloadable settings, laid
//! over the values the process started with. Nomad renders it from Consul KV and
//! sends SIGHUP when it changes (see `nomad/web.nomad.hcl`), so an operator
//! changes the log level or a timeout with `consul kv put`, without a restart.
//!
//! Its keys are the environment variables of [`Reloadable`]'s flags, and every
//! value goes through that flag's own parser, so a value the flag would refuse
//! is refused here too, naming the file, line and key.

use std::path::Path;

use clap::{Args, Command, FromArgMatches};

use crate::reloadable::{self, Reloadable};

impl Reloadable {
    /// These settings with the values of the runtime file at `path` over them.
    /// A key missing from the file keeps its start-time value (flag, env or default).
    pub fn overlaid_with(&self, path: &Path) -> Result<Reloadable, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        self.overlaid_with_text(&text, &path.display().to_string())
    }

    fn overlaid_with_text(&self, text: &str, origin: &str) -> Result<Reloadable, String> {
        let settings = reloadable::settings();
        let mut parser = overlay_parser();
        let mut next = self.clone();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{origin}:{}", index + 1);
            let (key, value) = line.split_once('=').ok_or_else(|| format!("{at}: expected KEY=value"))?;
            let key = key.trim();
            let setting = settings.iter().find(|s| s.key == key).ok_or_else(|| {
                let known: Vec<&str> = settings.iter().map(|s| s.key.as_str()).collect();
                format!("{at}: {key} cannot be set at run time (expected one of {})", known.join(", "))
            })?;
            let value = value.trim().trim_matches('"');
            // One line at a time, so an error names this line's key; a later line wins.
            parser
                .try_get_matches_from_mut(["runtime-file", setting.flag.as_str(), value])
                .and_then(|matches| next.update_from_arg_matches(&matches))
                .map_err(|e| format!("{at}: {key}: {}", first_line(&e)))?;
        }
        Ok(next)
    }
}

/// The reloadable flags with neither defaults nor environment, so a parse holds
/// only what the line gave and `update_from_arg_matches` changes only that field.
fn overlay_parser() -> Command {
    Reloadable::augment_args(Command::new("runtime-file"))
        .mut_args(|arg| arg.default_value(None).env(None).required(false))
}

fn first_line(err: &clap::Error) -> String {
    let rendered = err.to_string();
    rendered.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        reloadable: Reloadable,
    }

    fn base() -> Reloadable {
        Defaults::try_parse_from(["runtime-file"]).unwrap().reloadable
    }

    #[test]
    fn file_values_win_and_missing_keys_keep_the_start_values() {
        let start = Reloadable { store_timeout_ms: 700, ..base() };
        let text = "# rendered by Nomad from Consul KV\nCOUNTER_LOG_LEVEL=debug\n\nCOUNTER_WAIT_TIMEOUT_MS = \"900\"\n";
        let got = start.overlaid_with_text(text, "runtime.env").unwrap();
        assert_eq!(got.log_level, "debug");
        assert_eq!(got.wait_timeout_ms, 900);
        assert_eq!(got.store_timeout_ms, 700, "not in the file: the start-time value stays");
        assert_eq!(got.breaker_failures, start.breaker_failures);
    }

    #[test]
    fn the_last_line_for_a_key_wins() {
        let got = base().overlaid_with_text("COUNTER_BREAKER_FAILURES=2\nCOUNTER_BREAKER_FAILURES=9\n", "f").unwrap();
        assert_eq!(got.breaker_failures, 9);
    }

    #[test]
    fn an_out_of_range_value_names_the_line_and_key() {
        let err = base().overlaid_with_text("COUNTER_LOG_LEVEL=info\nCOUNTER_STORE_TIMEOUT_MS=5\n", "f").unwrap_err();
        assert!(err.starts_with("f:2: COUNTER_STORE_TIMEOUT_MS:"), "{err}");
    }

    #[test]
    fn a_bad_log_filter_is_refused() {
        let err = base().overlaid_with_text("COUNTER_LOG_LEVEL=counter=loud\n", "f").unwrap_err();
        assert!(err.starts_with("f:1: COUNTER_LOG_LEVEL:"), "{err}");
    }

    #[test]
    fn keys_that_need_a_restart_are_refused() {
        let err = base().overlaid_with_text("COUNTER_LISTEN=0.0.0.0:1\n", "f").unwrap_err();
        assert!(err.contains("COUNTER_LISTEN cannot be set at run time"), "{err}");
        let err = base().overlaid_with_text("just words\n", "f").unwrap_err();
        assert!(err.contains("expected KEY=value"), "{err}");
    }

    #[test]
    fn an_empty_file_is_the_start_values() {
        let start = Reloadable { breaker_cooldown_ms: 4321, ..base() };
        assert_eq!(start.overlaid_with_text("", "f").unwrap(), start);
    }

    #[test]
    fn every_reloadable_setting_can_be_set_from_the_file() {
        let start = base();
        for setting in reloadable::settings() {
            let value = if setting.key == "COUNTER_LOG_LEVEL" { "warn" } else { "42" };
            let got = start.overlaid_with_text(&format!("{}={value}\n", setting.key), "f").unwrap();
            assert_ne!(got, start, "{} changed nothing", setting.key);
        }
    }
}
