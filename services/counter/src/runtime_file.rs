//! The runtime file: `COUNTER_*=value` lines for the reloadable settings, laid
//! over the values the process started with. Nomad renders it from Consul KV and
//! sends SIGHUP when it changes (see `nomad/web.nomad.hcl`), so an operator
//! changes the log level or a timeout with `consul kv put`, without a restart.
//!
//! Every value goes through the same clap parser as the flags, so a value the
//! flag would refuse is refused here too, naming the file, line and key.

use std::path::Path;

use clap::Parser;

use crate::config::TunableArgs;

/// The keys a runtime file may set, with the flag each one stands for.
const KEYS: [(&str, &str); 5] = [
    ("COUNTER_LOG_LEVEL", "--log-level"),
    ("COUNTER_STORE_TIMEOUT_MS", "--store-timeout-ms"),
    ("COUNTER_WAIT_TIMEOUT_MS", "--wait-timeout-ms"),
    ("COUNTER_BREAKER_FAILURES", "--breaker-failures"),
    ("COUNTER_BREAKER_COOLDOWN_MS", "--breaker-cooldown-ms"),
];

/// A parser of the reloadable flags alone; a later occurrence of a flag wins,
/// which is how the file's values override the start-time ones.
#[derive(Parser)]
#[command(name = "runtime-file", args_override_self = true)]
struct Overlay {
    #[command(flatten)]
    tunables: TunableArgs,
}

impl TunableArgs {
    /// These settings with the values of the runtime file at `path` over them.
    /// A key missing from the file keeps its start-time value (flag, env or default).
    pub fn overlaid_with(&self, path: &Path) -> Result<TunableArgs, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        self.overlaid_with_text(&text, &path.display().to_string())
    }

    fn overlaid_with_text(&self, text: &str, origin: &str) -> Result<TunableArgs, String> {
        let mut args = self.as_args();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{origin}:{}", index + 1);
            let (key, value) = line.split_once('=').ok_or_else(|| format!("{at}: expected KEY=value"))?;
            let key = key.trim();
            let flag = KEYS.iter().find(|(name, _)| *name == key).map(|(_, flag)| *flag).ok_or_else(|| {
                let known: Vec<&str> = KEYS.iter().map(|(name, _)| *name).collect();
                format!("{at}: {key} cannot be set at run time (expected one of {})", known.join(", "))
            })?;
            let value = value.trim().trim_matches('"').to_string();
            // Checked alone first, so the error names this line's key.
            let mut alone = self.as_args();
            alone.extend([flag.to_string(), value.clone()]);
            Overlay::try_parse_from(&alone).map_err(|e| format!("{at}: {key}: {}", first_line(&e)))?;
            args.extend([flag.to_string(), value]);
        }
        Overlay::try_parse_from(&args).map(|o| o.tunables).map_err(|e| format!("{origin}: {}", first_line(&e)))
    }

    /// These settings as flags, the base every overlay starts from.
    fn as_args(&self) -> Vec<String> {
        [
            "runtime-file".to_string(),
            "--log-level".into(),
            self.log_level.clone(),
            "--store-timeout-ms".into(),
            self.store_timeout_ms.to_string(),
            "--wait-timeout-ms".into(),
            self.wait_timeout_ms.to_string(),
            "--breaker-failures".into(),
            self.breaker_failures.to_string(),
            "--breaker-cooldown-ms".into(),
            self.breaker_cooldown_ms.to_string(),
        ]
        .into()
    }
}

fn first_line(err: &clap::Error) -> String {
    let rendered = err.to_string();
    rendered.lines().next().unwrap_or_default().trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> TunableArgs {
        Overlay::try_parse_from(["runtime-file"]).unwrap().tunables
    }

    #[test]
    fn file_values_win_and_missing_keys_keep_the_start_values() {
        let start = TunableArgs { store_timeout_ms: 700, ..base() };
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
        let start = TunableArgs { breaker_cooldown_ms: 4321, ..base() };
        assert_eq!(start.overlaid_with_text("", "f").unwrap(), start);
    }
}
