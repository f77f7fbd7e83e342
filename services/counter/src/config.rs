//! Flags with environment fallbacks, parsed and validated once at start. A bad
//! value exits with status 2 and a message naming the flag or variable and the
//! form it expects.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::breaker::BreakerSettings;
use crate::discovery::Endpoints;
use tokio::sync::watch;

use crate::redis_store::{RedisCredentials, StoreSettings, StoreTunables};

/// Which routes a process serves. `web` reads, `web-inc` increments; `All`
/// serves both from one process, to compare against the split deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Web,
    WebInc,
    All,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Web => "web",
            Role::WebInc => "web-inc",
            Role::All => "counter",
        }
    }
    pub fn reads(self) -> bool {
        matches!(self, Role::Web | Role::All)
    }
    pub fn increments(self) -> bool {
        matches!(self, Role::WebInc | Role::All)
    }
    fn default_port(self) -> u16 {
        match self {
            Role::Web | Role::All => 8000,
            Role::WebInc => 8001,
        }
    }
}

/// The service's settings. Every flag also reads the environment variable named
/// in `--help`; a flag wins over its variable.
#[derive(Parser, Debug, Clone)]
#[command(
    version,
    about = "A Counter service: serves the count over HTTP, stored in Redis found through Consul",
    after_help = "Secrets come from the environment only, never flags: COUNTER_REDIS_PASSWORD (Redis ACL password),\nCONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE (Consul ACL token). SIGHUP re-reads --runtime-file."
)]
pub struct Config {
    /// Address to listen on [default: NOMAD_IP_http:NOMAD_PORT_http under Nomad, else 127.0.0.1:8000 (web) or :8001 (web-inc)]
    #[arg(long, env = "COUNTER_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// Consul HTTP API to discover redis-primary and redis-replica in (scheme optional)
    #[arg(long, env = "CONSUL_HTTP_ADDR", value_name = "URL", value_parser = parse_consul_url)]
    pub consul: Option<reqwest::Url>,

    /// A fixed Redis primary instead of Consul discovery (wins over --consul)
    #[arg(long, env = "COUNTER_REDIS_PRIMARY", value_name = "IP:PORT")]
    pub redis_primary: Option<SocketAddr>,

    /// Fixed Redis replicas to read from, comma-separated (with --redis-primary)
    #[arg(long, env = "COUNTER_REDIS_REPLICAS", value_name = "IP:PORT,...", value_delimiter = ',')]
    pub redis_replicas: Vec<SocketAddr>,

    /// The Redis key holding the count
    #[arg(long, env = "COUNTER_KEY", default_value = "counter", value_parser = parse_key)]
    pub key: String,

    /// Settings that may also change while the service runs (--runtime-file, SIGHUP)
    #[command(flatten)]
    pub tunables: TunableArgs,

    /// A file of COUNTER_*=value lines for the settings marked "reloadable", read at
    /// start and again on SIGHUP (Nomad renders it from Consul KV); its values win
    #[arg(long, env = "COUNTER_RUNTIME_FILE", value_name = "FILE")]
    pub runtime_file: Option<PathBuf>,

    /// Redis ACL user to authenticate as (the password comes from COUNTER_REDIS_PASSWORD only)
    #[arg(long, env = "COUNTER_REDIS_USERNAME", value_name = "USER")]
    pub redis_username: Option<String>,

    /// Longest wait for in-flight requests after SIGTERM/SIGINT, in seconds (keep below Nomad's kill_timeout)
    #[arg(long, env = "COUNTER_DRAIN_TIMEOUT", value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub drain_timeout: u64,

    /// Open connections served at once; more wait in the listen backlog
    #[arg(long, env = "COUNTER_MAX_CONNECTIONS", value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Store reads in flight at once; concurrent readers share each one (coalescing)
    #[arg(long, env = "COUNTER_READ_LANES", value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub read_lanes: u16,

    /// Increment batches in flight at once, each one INCRBY + WAIT on its own connection (group commit)
    #[arg(long, env = "COUNTER_WRITE_LANES", value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub write_lanes: u16,

    /// Directory for a daily-rolling JSON log file, besides stdout
    #[arg(long, env = "COUNTER_LOG_DIR", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Which routes to serve; the binary's name picks the default
    #[arg(long, env = "COUNTER_ROLE", value_enum, hide = true)]
    pub role: Option<Role>,
}

/// The settings an operator may change without a restart: flags and env at
/// start, then overridden by `--runtime-file` at start and on every SIGHUP.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct TunableArgs {
    /// Budget for one store read or probe, in milliseconds (reloadable)
    #[arg(long, env = "COUNTER_STORE_TIMEOUT_MS", value_name = "MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub store_timeout_ms: u64,

    /// How long an increment waits for replicas to confirm it, in milliseconds (reloadable)
    #[arg(long, env = "COUNTER_WAIT_TIMEOUT_MS", value_name = "MS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub wait_timeout_ms: u64,

    /// Consecutive failures that open an endpoint's circuit breaker (reloadable)
    #[arg(long, env = "COUNTER_BREAKER_FAILURES", value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub breaker_failures: u32,

    /// How long an open breaker fails fast before a trial call, in milliseconds (reloadable)
    #[arg(long, env = "COUNTER_BREAKER_COOLDOWN_MS", value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub breaker_cooldown_ms: u64,

    /// Log filter, e.g. info or counter=debug,info (reloadable)
    #[arg(long, env = "COUNTER_LOG_LEVEL", value_name = "FILTER", default_value = "info", value_parser = parse_log_filter)]
    pub log_level: String,
}

impl Config {
    /// Parses the process's arguments for a binary of the given role; exits 2 on a bad value.
    pub fn from_args(role: Role) -> Config {
        Config::from_iter_or_exit(role, std::env::args_os())
    }

    pub fn from_iter_or_exit<I, T>(role: Role, args: I) -> Config
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut command = Config::command().name(role.name());
        let matches = command.try_get_matches_from_mut(args).unwrap_or_else(|e| e.exit());
        let mut config = Config::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        config.role.get_or_insert(role);
        if let Err(message) = config.resolve_listen(|key| std::env::var(key).ok()) {
            command.error(ErrorKind::ValueValidation, message).exit();
        }
        if let Err(message) = config.consul_token() {
            command.error(ErrorKind::ValueValidation, message).exit();
        }
        if let Some(Err(message)) = config.runtime_file.as_deref().map(|path| config.tunables.overlaid_with(path)) {
            command.error(ErrorKind::ValueValidation, message).exit();
        }
        if config.consul.is_none() && config.redis_primary.is_none() {
            command
                .error(
                    ErrorKind::MissingRequiredArgument,
                    "no store: set --consul (CONSUL_HTTP_ADDR) or --redis-primary (COUNTER_REDIS_PRIMARY)",
                )
                .exit();
        }
        config
    }

    /// Fills `listen` from Nomad's variables, or the role's default port on loopback.
    fn resolve_listen(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        if self.listen.is_some() {
            return Ok(());
        }
        let ip = match env("NOMAD_IP_http") {
            Some(raw) => {
                raw.parse::<IpAddr>().map_err(|_| format!("NOMAD_IP_http: expected an IP address, got '{raw}'"))?
            }
            None => IpAddr::from([127, 0, 0, 1]),
        };
        let port = match env("NOMAD_PORT_http") {
            Some(raw) => raw
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("NOMAD_PORT_http: expected a port number 1-65535, got '{raw}'"))?,
            None => self.role().default_port(),
        };
        self.listen = Some(SocketAddr::new(ip, port));
        Ok(())
    }

    pub fn role(&self) -> Role {
        self.role.unwrap_or(Role::Web)
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], self.role().default_port())))
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout)
    }

    /// Fixed endpoints when --redis-primary is given; None means discover in Consul.
    pub fn fixed_endpoints(&self) -> Option<Endpoints> {
        self.redis_primary.map(|primary| Endpoints { primary: Some(primary), replicas: self.redis_replicas.clone() })
    }

    /// The store's fixed settings; its reloadable ones arrive through `tunables`.
    pub fn store_settings(&self, tunables: watch::Receiver<StoreTunables>) -> StoreSettings {
        StoreSettings {
            key: self.key.clone(),
            read_lanes: usize::from(self.read_lanes),
            write_lanes: usize::from(self.write_lanes),
            credentials: self.redis_credentials(),
            tunables,
        }
    }

    /// The Redis user and its password. The password is read from the
    /// environment only: a flag would show it in `ps`.
    pub fn redis_credentials(&self) -> RedisCredentials {
        RedisCredentials {
            username: self.redis_username.clone(),
            password: std::env::var(REDIS_PASSWORD_ENV).ok().filter(|p| !p.is_empty()),
        }
    }
}

impl Config {
    /// The Consul ACL token, from CONSUL_HTTP_TOKEN or the file CONSUL_HTTP_TOKEN_FILE
    /// names (as the Consul CLI reads them); `None` when Consul runs without ACLs.
    pub fn consul_token(&self) -> Result<Option<String>, String> {
        consul_token_from(|key| std::env::var(key).ok())
    }
}

fn consul_token_from(env: impl Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    if let Some(token) = env("CONSUL_HTTP_TOKEN").filter(|t| !t.trim().is_empty()) {
        return Ok(Some(token.trim().to_string()));
    }
    let Some(path) = env("CONSUL_HTTP_TOKEN_FILE").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let token =
        std::fs::read_to_string(&path).map_err(|e| format!("CONSUL_HTTP_TOKEN_FILE: cannot read {path}: {e}"))?;
    let token = token.trim();
    if token.is_empty() {
        return Err(format!("CONSUL_HTTP_TOKEN_FILE: {path} is empty"));
    }
    Ok(Some(token.to_string()))
}

/// The environment variable holding the Redis password (never a flag).
pub const REDIS_PASSWORD_ENV: &str = "COUNTER_REDIS_PASSWORD";

impl TunableArgs {
    pub fn store(&self) -> StoreTunables {
        StoreTunables {
            store_timeout: Duration::from_millis(self.store_timeout_ms),
            wait_timeout: Duration::from_millis(self.wait_timeout_ms),
            breaker: BreakerSettings {
                failures: self.breaker_failures,
                cooldown: Duration::from_millis(self.breaker_cooldown_ms),
            },
        }
    }
}

fn parse_consul_url(raw: &str) -> Result<reqwest::Url, String> {
    // The Consul CLI accepts CONSUL_HTTP_ADDR without a scheme; so do we.
    let with_scheme = if raw.contains("://") { raw.to_string() } else { format!("http://{raw}") };
    let url =
        reqwest::Url::parse(&with_scheme).map_err(|e| format!("expected a URL like http://127.0.0.1:8500 ({e})"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("expected an http(s) URL like http://127.0.0.1:8500".into()),
    }
}

fn parse_key(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.len() > 256 || raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("expected 1-256 visible characters".into());
    }
    Ok(raw.to_string())
}

fn parse_log_filter(raw: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(raw)
        .map(|_| raw.to_string())
        .map_err(|e| format!("expected a tracing filter like info or counter=debug ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("web").chain(args.iter().copied()))
    }

    #[test]
    fn nomad_variables_give_the_listen_address() {
        let mut c = parse(&["--redis-primary", "127.0.0.1:6379"]).unwrap();
        let env = |k: &str| match k {
            "NOMAD_IP_http" => Some("198.18.0.12".to_string()),
            "NOMAD_PORT_http" => Some("23456".to_string()),
            _ => None,
        };
        c.resolve_listen(env).unwrap();
        assert_eq!(c.listen(), "198.18.0.12:23456".parse().unwrap());
    }

    #[test]
    fn a_bad_nomad_port_is_named() {
        let mut c = parse(&["--redis-primary", "127.0.0.1:6379"]).unwrap();
        let err = c.resolve_listen(|k| (k == "NOMAD_PORT_http").then(|| "http".to_string())).unwrap_err();
        assert!(err.starts_with("NOMAD_PORT_http:"), "{err}");
    }

    #[test]
    fn the_consul_token_comes_from_the_variable_or_its_file() {
        let dir = std::env::temp_dir().join(format!("counter-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "  from-file\n").unwrap();
        let path = file.display().to_string();
        let both = |k: &str| match k {
            "CONSUL_HTTP_TOKEN" => Some("from-env".to_string()),
            "CONSUL_HTTP_TOKEN_FILE" => Some(path.clone()),
            _ => None,
        };
        assert_eq!(consul_token_from(both).unwrap().as_deref(), Some("from-env"));
        let file_only = |k: &str| (k == "CONSUL_HTTP_TOKEN_FILE").then(|| path.clone());
        assert_eq!(consul_token_from(file_only).unwrap().as_deref(), Some("from-file"));
        assert_eq!(consul_token_from(|_| None).unwrap(), None);
        let missing = |k: &str| (k == "CONSUL_HTTP_TOKEN_FILE").then(|| "/nonexistent/token".to_string());
        assert!(consul_token_from(missing).unwrap_err().starts_with("CONSUL_HTTP_TOKEN_FILE:"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn consul_address_may_omit_the_scheme() {
        assert_eq!(parse_consul_url("127.0.0.1:8500").unwrap().as_str(), "http://127.0.0.1:8500/");
        assert!(parse_consul_url("ftp://x").is_err());
    }

    #[test]
    fn bad_values_are_rejected_naming_the_flag() {
        let err = parse(&["--store-timeout-ms", "soon"]).unwrap_err().to_string();
        assert!(err.contains("--store-timeout-ms"), "{err}");
        let err = parse(&["--log-level", "[[["]).unwrap_err().to_string();
        assert!(err.contains("--log-level"), "{err}");
    }
}
