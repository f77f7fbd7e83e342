//! Flags with environment fallbacks, parsed once at start into a [`Config`] of
//! final types: the listen address resolved, the Redis source chosen, secrets
//! read, the runtime file laid over the reloadable settings. Nothing after start
//! checks them again. A bad value exits with status 2 and a message naming the
//! flag or variable and the form it expects.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::discovery::{ConsulTls, ConsulToken, Endpoints};
use crate::redis_store::RedisCredentials;
use crate::reloadable::Reloadable;
use crate::tls::{CaBundle, ServerTls};

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

/// The service's settings, parsed and checked once at start.
#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    pub listen: SocketAddr,
    /// Where Redis is: fixed addresses or Consul.
    pub redis: RedisSource,
    /// The Redis key holding the count.
    pub key: String,
    pub credentials: RedisCredentials,
    /// `--redis-tls-ca`: every Redis connection uses TLS and verifies the server
    /// against this CA and the IP address connected to; `None`: plain TCP.
    pub redis_tls: Option<CaBundle>,
    /// `--tls-cert`, `--tls-key`, `--tls-client-ca`: the service's port is
    /// HTTPS only, and only clients with a certificate of that CA get more
    /// than `/health/*`; `None`: plain HTTP.
    pub server_tls: Option<ServerTls>,
    /// The reloadable settings from flags, env and defaults. Every reload lays
    /// the runtime file over these, so a key deleted from it returns to its start value.
    pub reloadable_from_flags: Reloadable,
    /// The reloadable settings in force at start: the runtime file, if any, over
    /// `reloadable_from_flags`.
    pub reloadable: Reloadable,
    pub runtime_file: Option<PathBuf>,
    /// Longest wait for in-flight requests once shutdown starts.
    pub drain_timeout: Duration,
    pub max_connections: usize,
    pub read_lanes: usize,
    pub write_lanes: usize,
    /// Threads of the async runtime: `None`, one per CPU (tokio's default).
    pub worker_threads: Option<usize>,
    pub log_dir: Option<PathBuf>,
}

/// Where the store finds Redis.
#[derive(Clone, Debug)]
pub enum RedisSource {
    /// `--redis-primary` and `--redis-replicas`.
    Fixed(Endpoints),
    /// Followed in Consul's catalog.
    Consul { url: reqwest::Url, token: Option<ConsulToken>, tls: ConsulTls },
}

/// The flags as clap reads them; [`Config::from_iter_or_exit`] turns them into a
/// [`Config`]. Every flag also reads the environment variable named in `--help`;
/// a flag wins over its variable.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "A Counter service: serves the count over HTTP, stored in Redis found through Consul",
    after_help = "Secrets never come from flags: COUNTER_REDIS_PASSWORD_FILE or COUNTER_REDIS_PASSWORD (Redis ACL password),\nCONSUL_HTTP_TOKEN_FILE or CONSUL_HTTP_TOKEN (Consul ACL token); the variable wins over its file. SIGHUP re-reads --runtime-file.\nTLS: --redis-tls-ca makes every Redis connection TLS (no client certificate; the ACL user authenticates);\nan https:// CONSUL_HTTP_ADDR is verified against CONSUL_CACERT, or the system's roots without it;\n--tls-cert serves HTTPS only, past /health/* only to clients with a certificate of --tls-client-ca."
)]
struct Flags {
    /// Address to listen on [default: NOMAD_IP_http:NOMAD_PORT_http under Nomad, else 127.0.0.1:8000 (web) or :8001 (web-inc)]
    #[arg(long, env = "COUNTER_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,

    /// Consul HTTP API to discover redis-primary and redis-replica in (scheme optional)
    #[arg(long, env = "CONSUL_HTTP_ADDR", value_name = "URL", value_parser = parse_consul_url)]
    consul: Option<reqwest::Url>,

    /// A fixed Redis primary instead of Consul discovery (wins over --consul)
    #[arg(long, env = "COUNTER_REDIS_PRIMARY", value_name = "IP:PORT")]
    redis_primary: Option<SocketAddr>,

    /// Fixed Redis replicas to read from, comma-separated (with --redis-primary)
    #[arg(long, env = "COUNTER_REDIS_REPLICAS", value_name = "IP:PORT,...", value_delimiter = ',')]
    redis_replicas: Vec<SocketAddr>,

    /// The Redis key holding the count
    #[arg(long, env = "COUNTER_KEY", default_value = "counter", value_parser = parse_key)]
    key: String,

    /// A file of COUNTER_*=value lines for the settings under "Reloadable", read at
    /// start and again on SIGHUP (Nomad renders it from Consul KV); its values win
    #[arg(long, env = "COUNTER_RUNTIME_FILE", value_name = "FILE")]
    runtime_file: Option<PathBuf>,

    /// PEM CA bundle: connect to Redis over TLS, verifying each server's certificate against it and the IP
    /// connected to (unset: plain TCP)
    #[arg(long, env = "COUNTER_REDIS_TLS_CA", value_name = "FILE")]
    redis_tls_ca: Option<PathBuf>,

    /// PEM certificate to serve HTTPS with, only (with --tls-key and --tls-client-ca; unset: plain HTTP)
    #[arg(long, env = "COUNTER_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert
    #[arg(long, env = "COUNTER_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// PEM CA bundle of the clients allowed past /health/* over HTTPS (the gateway, the metrics scraper);
    /// other clients may probe /health/* only, and a certificate of another CA fails the handshake
    #[arg(long, env = "COUNTER_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,

    /// PEM CA bundle that an https:// Consul address is verified against (unset: the system's roots)
    #[arg(long, env = "CONSUL_CACERT", value_name = "FILE")]
    consul_cacert: Option<PathBuf>,

    /// PEM client certificate for a Consul that verifies HTTPS clients (with --consul-client-key)
    #[arg(long, env = "CONSUL_CLIENT_CERT", value_name = "FILE")]
    consul_client_cert: Option<PathBuf>,

    /// PEM private key of --consul-client-cert
    #[arg(long, env = "CONSUL_CLIENT_KEY", value_name = "FILE")]
    consul_client_key: Option<PathBuf>,

    /// Redis ACL user to authenticate as (the password from COUNTER_REDIS_PASSWORD_FILE or COUNTER_REDIS_PASSWORD only)
    #[arg(long, env = "COUNTER_REDIS_USERNAME", value_name = "USER")]
    redis_username: Option<String>,

    /// Longest wait for in-flight requests after SIGTERM/SIGINT, in seconds (keep below Nomad's kill_timeout)
    #[arg(long, env = "COUNTER_DRAIN_TIMEOUT", value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    drain_timeout: u64,

    /// Open connections served at once; more wait in the listen backlog
    #[arg(long, env = "COUNTER_MAX_CONNECTIONS", value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,

    /// Store reads in flight at once; concurrent readers share each one (coalescing)
    #[arg(long, env = "COUNTER_READ_LANES", value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    read_lanes: u16,

    /// Increment batches in flight at once, each one MULTI, INCR × n, EXEC + WAIT on its own connection (group commit)
    #[arg(long, env = "COUNTER_WRITE_LANES", value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    write_lanes: u16,

    /// Threads of the async runtime [default: 1 for web, one per CPU for web-inc]
    #[arg(long, env = "COUNTER_WORKER_THREADS", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,

    /// Directory for a daily-rolling JSON log file, besides stdout
    #[arg(long, env = "COUNTER_LOG_DIR", value_name = "DIR")]
    log_dir: Option<PathBuf>,

    /// Which routes to serve; the binary's name picks the default
    #[arg(long, env = "COUNTER_ROLE", value_enum, hide = true)]
    role: Option<Role>,

    /// Last: its help heading would carry over to the flags after it.
    #[command(flatten)]
    reloadable: Reloadable,
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
        let mut command = Flags::command().name(role.name());
        let matches = command.try_get_matches_from_mut(args).unwrap_or_else(|e| e.exit());
        let flags = Flags::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        Config::from_flags(role, flags, |key| std::env::var(key).ok())
            .unwrap_or_else(|(kind, message)| command.error(kind, message).exit())
    }

    /// What clap cannot check: Nomad's variables, secrets from the environment,
    /// the runtime file, and that some store is configured.
    fn from_flags(
        role: Role,
        flags: Flags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, (ErrorKind, String)> {
        let invalid = |message: String| (ErrorKind::ValueValidation, message);
        let role = flags.role.unwrap_or(role);
        let listen = match flags.listen {
            Some(listen) => listen,
            None => listen_from_nomad(role, &env).map_err(invalid)?,
        };
        let consul_token = ConsulToken::from_env(&env).map_err(invalid)?;
        let redis_tls = match non_empty(flags.redis_tls_ca) {
            Some(path) => Some(CaBundle::read(&path).map_err(|e| invalid(format!("--redis-tls-ca: {e}")))?),
            None => None,
        };
        let server_tls = match (non_empty(flags.tls_cert), non_empty(flags.tls_key), non_empty(flags.tls_client_ca)) {
            (None, None, None) => None,
            (Some(cert), Some(key), Some(ca)) => Some(ServerTls::read(&cert, &key, &ca).map_err(|(which, e)| {
                invalid(match which {
                    "cert" => format!("--tls-cert: {e}"),
                    "key" => format!("--tls-key: {e}"),
                    _ => format!("--tls-client-ca: {e}"),
                })
            })?),
            _ => {
                return Err(invalid(
                    "--tls-cert, --tls-key and --tls-client-ca go together: set all three or none".into(),
                ));
            }
        };
        // Read and checked now, even for a plain http:// address (where they go
        // unused), so a bad file is found at start rather than when Consul moves to https.
        let consul_tls = ConsulTls::read(
            non_empty(flags.consul_cacert).as_deref(),
            non_empty(flags.consul_client_cert).as_deref(),
            non_empty(flags.consul_client_key).as_deref(),
        )
        .map_err(invalid)?;
        let reloadable = match &flags.runtime_file {
            Some(path) => flags.reloadable.overlaid_with(path).map_err(invalid)?,
            None => flags.reloadable.clone(),
        };
        let redis = match (flags.redis_primary, flags.consul) {
            (Some(primary), _) => RedisSource::Fixed(Endpoints {
                primary: Some(primary),
                replicas: flags.redis_replicas,
                contested: Vec::new(),
            }),
            (None, Some(url)) => RedisSource::Consul { url, token: consul_token, tls: consul_tls },
            (None, None) => {
                return Err((
                    ErrorKind::MissingRequiredArgument,
                    "no store: set --consul (CONSUL_HTTP_ADDR) or --redis-primary (COUNTER_REDIS_PRIMARY)".into(),
                ));
            }
        };
        Ok(Config {
            role,
            listen,
            redis,
            key: flags.key,
            credentials: RedisCredentials {
                username: flags.redis_username,
                password: redis_password(&env).map_err(invalid)?,
            },
            redis_tls,
            server_tls,
            reloadable_from_flags: flags.reloadable,
            reloadable,
            runtime_file: flags.runtime_file,
            drain_timeout: Duration::from_secs(flags.drain_timeout),
            max_connections: flags.max_connections as usize,
            read_lanes: usize::from(flags.read_lanes),
            write_lanes: usize::from(flags.write_lanes),
            worker_threads: flags.worker_threads.map(usize::from).or(default_worker_threads(role)),
            log_dir: flags.log_dir,
        })
    }
}

/// One thread for web: its work per request is small (no Redis round trip of
/// its own for most reads: they coalesce), one thread serves ~60k req/s on
/// the bench machine, and behind the gateway it cut web's CPU per request by
/// a quarter and its p99 on a shared 2-core host, against one thread per CPU
/// (wake-ups across threads; docs/benchmarks.md). web-inc keeps one per CPU:
/// not measured there. More web instances, not threads, add capacity.
fn default_worker_threads(role: Role) -> Option<usize> {
    (role == Role::Web).then_some(1)
}

/// `NOMAD_IP_http:NOMAD_PORT_http` where Nomad sets them, else loopback and the role's default port.
fn listen_from_nomad(role: Role, env: impl Fn(&str) -> Option<String>) -> Result<SocketAddr, String> {
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
        None => role.default_port(),
    };
    Ok(SocketAddr::new(ip, port))
}

/// An empty path (`COUNTER_REDIS_TLS_CA=` in an env file) is no path.
fn non_empty(path: Option<PathBuf>) -> Option<PathBuf> {
    path.filter(|p| !p.as_os_str().is_empty())
}

/// The environment variable holding the Redis password (never a flag).
pub const REDIS_PASSWORD_ENV: &str = "COUNTER_REDIS_PASSWORD";
/// The environment variable naming a file that holds it: what Nomad renders,
/// readable by the task's user alone, so the secret is in no process's
/// environment (/proc/PID/environ).
pub const REDIS_PASSWORD_FILE_ENV: &str = "COUNTER_REDIS_PASSWORD_FILE";

/// The Redis password: from COUNTER_REDIS_PASSWORD, else the file
/// COUNTER_REDIS_PASSWORD_FILE names (one line; its trailing newline is not
/// part of it); `None` for a Redis without ACL users. Never a flag: `ps` shows flags.
fn redis_password(env: impl Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    if let Some(password) = env(REDIS_PASSWORD_ENV).filter(|p| !p.is_empty()) {
        return Ok(Some(password));
    }
    let Some(path) = env(REDIS_PASSWORD_FILE_ENV).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("{REDIS_PASSWORD_FILE_ENV}: cannot read {path}: {e}"))?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    if password.is_empty() {
        return Err(format!("{REDIS_PASSWORD_FILE_ENV}: {path} is empty"));
    }
    Ok(Some(password.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Result<Flags, clap::Error> {
        Flags::try_parse_from(std::iter::once("web").chain(args.iter().copied()))
    }

    fn config(args: &[&str], env: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        Config::from_flags(Role::Web, flags(args).unwrap(), env).map_err(|(_, message)| message)
    }

    #[test]
    fn nomad_variables_give_the_listen_address() {
        let env = |k: &str| match k {
            "NOMAD_IP_http" => Some("198.18.0.12".to_string()),
            "NOMAD_PORT_http" => Some("23456".to_string()),
            _ => None,
        };
        let c = config(&["--redis-primary", "127.0.0.1:6379"], env).unwrap();
        assert_eq!(c.listen, "198.18.0.12:23456".parse().unwrap());
        let c = config(&["--redis-primary", "127.0.0.1:6379"], |_| None).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8000".parse().unwrap(), "outside Nomad: the role's port on loopback");
    }

    #[test]
    fn the_redis_password_comes_from_the_variable_or_its_file() {
        let dir = std::env::temp_dir().join(format!("counter-redis-password-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (file, empty) = (dir.join("password"), dir.join("empty"));
        // Only the one trailing newline a template writes is cut: spaces are the password's.
        std::fs::write(&file, " from file \n").unwrap();
        std::fs::write(&empty, "\n").unwrap();
        let password = |var: Option<&str>, path: &std::path::Path| {
            let path = path.display().to_string();
            redis_password(move |k: &str| match k {
                REDIS_PASSWORD_ENV => var.map(str::to_string),
                REDIS_PASSWORD_FILE_ENV => Some(path.clone()),
                _ => None,
            })
        };
        assert_eq!(password(Some("from-env"), &file).unwrap().as_deref(), Some("from-env"));
        assert_eq!(password(None, &file).unwrap().as_deref(), Some(" from file "));
        let err = password(None, &empty).unwrap_err();
        assert!(err.starts_with("COUNTER_REDIS_PASSWORD_FILE:") && err.ends_with("is empty"), "{err}");
        let err = password(None, &dir.join("missing")).unwrap_err();
        assert!(err.starts_with("COUNTER_REDIS_PASSWORD_FILE: cannot read"), "{err}");
        assert_eq!(redis_password(|_| None).unwrap(), None, "no variable, no file: a Redis without ACL users");
        let err = config(&["--redis-primary", "127.0.0.1:6379"], |k: &str| {
            (k == REDIS_PASSWORD_FILE_ENV).then(|| "/nonexistent/password".to_string())
        })
        .unwrap_err();
        assert!(err.starts_with("COUNTER_REDIS_PASSWORD_FILE:"), "a bad file stops the start, named: {err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_nomad_port_is_named() {
        let env = |k: &str| (k == "NOMAD_PORT_http").then(|| "http".to_string());
        let err = config(&["--redis-primary", "127.0.0.1:6379"], env).unwrap_err();
        assert!(err.starts_with("NOMAD_PORT_http:"), "{err}");
    }

    #[test]
    fn the_consul_token_never_shows_in_debug() {
        let env = |k: &str| (k == "CONSUL_HTTP_TOKEN").then(|| "secret-token".to_string());
        let c = config(&["--consul", "127.0.0.1:8500"], env).unwrap();
        assert!(matches!(&c.redis, RedisSource::Consul { token: Some(_), .. }), "{c:?}");
        assert!(!format!("{c:?}").contains("secret-token"), "{c:?}");
    }

    #[test]
    fn a_fixed_primary_wins_over_consul() {
        let c = config(&["--consul", "127.0.0.1:8500", "--redis-primary", "127.0.0.1:6379"], |_| None).unwrap();
        assert!(matches!(c.redis, RedisSource::Fixed(Endpoints { primary: Some(_), .. })), "{c:?}");
        let err = config(&[], |_| None).unwrap_err();
        assert!(err.contains("--consul"), "{err}");
    }

    #[test]
    fn web_runs_one_worker_thread_unless_told_and_a_bad_count_is_named() {
        let fixed = ["--redis-primary", "127.0.0.1:6379"];
        assert_eq!(config(&fixed, |_| None).unwrap().worker_threads, Some(1));
        let more = config(&[&fixed[..], &["--worker-threads", "3"]].concat(), |_| None).unwrap();
        assert_eq!(more.worker_threads, Some(3));
        let inc = Config::from_flags(Role::WebInc, flags(&fixed).unwrap(), |_| None).unwrap();
        assert_eq!(inc.worker_threads, None, "web-inc: one per CPU");
        let err = flags(&["--worker-threads", "0"]).unwrap_err().to_string();
        assert!(err.contains("--worker-threads"), "{err}");
    }

    #[test]
    fn consul_address_may_omit_the_scheme() {
        assert_eq!(parse_consul_url("127.0.0.1:8500").unwrap().as_str(), "http://127.0.0.1:8500/");
        assert!(parse_consul_url("ftp://x").is_err());
    }

    #[test]
    fn serving_https_takes_all_three_files_and_names_the_bad_one() {
        let pki = testkit::TestPki::new();
        let fixed = ["--redis-primary", "127.0.0.1:6379"];
        let with = |extra: &[&str]| config(&[&fixed[..], extra].concat(), |_| None);
        let (cert, key) = (pki.server_cert().to_str().unwrap(), pki.server_key().to_str().unwrap());
        assert!(with(&[]).unwrap().server_tls.is_none(), "no flag: plain HTTP");
        assert!(
            with(&["--tls-cert", cert, "--tls-key", key, "--tls-client-ca", pki.ca_arg()])
                .unwrap()
                .server_tls
                .is_some()
        );
        let err = with(&["--tls-cert", cert, "--tls-key", key]).unwrap_err();
        assert!(err.contains("go together"), "{err}");
        let err = with(&["--tls-cert", key, "--tls-key", key, "--tls-client-ca", pki.ca_arg()]).unwrap_err();
        assert!(err.starts_with("--tls-cert:"), "{err}");
        let err = with(&["--tls-cert", cert, "--tls-key", cert, "--tls-client-ca", pki.ca_arg()]).unwrap_err();
        assert!(err.starts_with("--tls-key:"), "{err}");
        let other = testkit::TestPki::new();
        let (other_key, ca) = (other.server_key().to_str().unwrap(), pki.ca_arg());
        let err = with(&["--tls-cert", cert, "--tls-key", other_key, "--tls-client-ca", ca]).unwrap_err();
        assert!(err.starts_with("--tls-key:") && err.contains("does not go with"), "{err}");
        let err = with(&["--tls-cert", cert, "--tls-key", key, "--tls-client-ca", key]).unwrap_err();
        assert!(err.starts_with("--tls-client-ca:"), "{err}");
    }

    #[test]
    fn redis_tls_reads_the_ca_at_start_and_names_the_flag_when_it_is_bad() {
        let pki = testkit::TestPki::new();
        let fixed = ["--redis-primary", "127.0.0.1:6379"];
        let with = |extra: &[&str]| config(&[&fixed[..], extra].concat(), |_| None);
        assert!(with(&[]).unwrap().redis_tls.is_none(), "no flag: plain TCP");
        let err = flags(&["--redis-tls-ca", ""]).unwrap_err().to_string();
        assert!(err.contains("--redis-tls-ca"), "{err}");
        let c = with(&["--redis-tls-ca", pki.ca_arg()]).unwrap();
        assert_eq!(c.redis_tls.as_ref().map(|ca| ca.certificates()), Some(1), "{c:?}");
        let err = with(&["--redis-tls-ca", "/nonexistent/ca.pem"]).unwrap_err();
        assert!(err.starts_with("--redis-tls-ca: cannot read /nonexistent/ca.pem"), "{err}");
        // A key is not a CA bundle.
        let err = with(&["--redis-tls-ca", pki.server_key().to_str().unwrap()]).unwrap_err();
        assert!(err.starts_with("--redis-tls-ca:") && err.contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn consul_tls_files_are_checked_at_start_and_named_when_bad() {
        let pki = testkit::TestPki::new();
        let (ca, cert, key) = (pki.ca_arg(), pki.server_cert().to_str().unwrap(), pki.server_key().to_str().unwrap());
        let consul = ["--consul", "https://127.0.0.1:8501"];
        let tls = |extra: &[&str]| {
            config(&[&consul[..], extra].concat(), |_| None).map(|c| match c.redis {
                RedisSource::Consul { tls, .. } => tls,
                other => panic!("{other:?}"),
            })
        };
        let none = tls(&[]).unwrap();
        assert!(none.ca.is_none() && none.identity.is_none());
        let both = tls(&["--consul-cacert", ca, "--consul-client-cert", cert, "--consul-client-key", key]).unwrap();
        assert_eq!(both.ca.as_ref().map(|ca| ca.certificates()), Some(1));
        assert!(both.identity.is_some());
        assert!(!format!("{both:?}").contains("PRIVATE KEY"), "the key never shows: {both:?}");

        let err = tls(&["--consul-cacert", "/nonexistent/ca.pem"]).unwrap_err();
        assert!(err.starts_with("--consul-cacert (CONSUL_CACERT): cannot read"), "{err}");
        let err = tls(&["--consul-client-cert", cert]).unwrap_err();
        assert!(err.starts_with("--consul-client-cert (CONSUL_CLIENT_CERT) needs --consul-client-key"), "{err}");
        let err = tls(&["--consul-client-key", key]).unwrap_err();
        assert!(err.starts_with("--consul-client-key (CONSUL_CLIENT_KEY) needs"), "{err}");
        let err = tls(&["--consul-client-cert", key, "--consul-client-key", key]).unwrap_err();
        assert!(err.starts_with("--consul-client-cert (CONSUL_CLIENT_CERT):"), "{err}");
        let err = tls(&["--consul-client-cert", cert, "--consul-client-key", cert]).unwrap_err();
        assert!(err.starts_with("--consul-client-key (CONSUL_CLIENT_KEY):"), "{err}");
        // Checked even for a plain http:// address: a bad file is found before Consul moves to https.
        let err = config(&["--consul", "127.0.0.1:8500", "--consul-cacert", "/nonexistent"], |_| None).unwrap_err();
        assert!(err.starts_with("--consul-cacert"), "{err}");
    }

    #[test]
    fn bad_values_are_rejected_naming_the_flag() {
        let err = flags(&["--store-timeout-ms", "soon"]).unwrap_err().to_string();
        assert!(err.contains("--store-timeout-ms"), "{err}");
        let err = flags(&["--log-level", "[[["]).unwrap_err().to_string();
        assert!(err.contains("--log-level"), "{err}");
    }
}
