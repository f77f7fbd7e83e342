//! Open-loop HTTP/1.1 load at a fixed rate, for latency at a chosen load.
//!
//! ```text
//! loadgen --rate 5000 --duration 5 --connections 64 http://127.0.0.1:8080/inc
//! sent=25000 ok=25000 errors=0 rps=4999.8 p50=0.412 p99=1.910 p999=4.020 max=7.113
//! ```
//!
//! Request `i` is due at `start + i / rate`. A connection that is free takes the
//! next due request, waits for its time, sends it and reads the answer. If the
//! request was already overdue when a connection became free (every connection
//! was busy: the server is behind), its latency counts from its due time, so
//! time spent queued counts and a stall of the server shows in the percentiles
//! in full, as in wrk2. Otherwise it counts from the moment it was sent: tokio's
//! timer wakes up to 1 ms late, which is the generator's delay, not the
//! server's (sends come in bursts of up to 1 ms worth of requests). Latencies are in
//! milliseconds; a non-2xx answer, a timeout or a broken connection is an error.
//! Only `http://IP:PORT/path` on keep-alive connections, no pipelining: the
//! benchmark's loopback servers, nothing more.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};

/// One request may take this long before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

struct Args {
    rate: f64,
    duration: Duration,
    connections: usize,
    addr: SocketAddr,
    request: Vec<u8>,
}

/// What every connection shares: the schedule and the results.
struct Run {
    start: Instant,
    rate: f64,
    total: u64,
    /// No request is sent after this: a server that falls behind cannot stretch the run.
    deadline: Instant,
    next: Cell<u64>,
    latencies_us: RefCell<Vec<u64>>,
    errors: Cell<u64>,
}

impl Run {
    /// The next request's due time and whether it is already overdue, or None
    /// when all are taken.
    fn take(&self) -> Option<(Instant, bool)> {
        let i = self.next.get();
        if i >= self.total || Instant::now() >= self.deadline {
            return None;
        }
        self.next.set(i + 1);
        let due = self.start + Duration::from_secs_f64(i as f64 / self.rate);
        Some((due, due <= Instant::now()))
    }
}

fn usage() -> &'static str {
    "usage: loadgen --rate REQ_PER_S --duration SECONDS [--connections N] [--header 'Name: value']... http://IP:PORT/PATH"
}

fn parse_args() -> Result<Args, String> {
    let mut rate = None;
    let mut duration = None;
    let mut connections = 64usize;
    let mut url = None;
    // Extra request headers, e.g. the ones a proxy adds, to send them directly.
    let mut headers = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--rate" => rate = Some(value("--rate")?.parse::<f64>().map_err(|e| format!("--rate: {e}"))?),
            "--duration" => {
                duration = Some(value("--duration")?.parse::<f64>().map_err(|e| format!("--duration: {e}"))?)
            }
            "--connections" => {
                connections = value("--connections")?.parse().map_err(|e| format!("--connections: {e}"))?
            }
            "--header" => {
                let header = value("--header")?;
                if !header.contains(':') || header.contains(['\r', '\n']) {
                    return Err(format!("--header: '{header}' is not 'Name: value'"));
                }
                headers += &header;
                headers += "\r\n";
            }
            "-h" | "--help" => return Err(String::new()),
            _ if url.is_none() && !arg.starts_with('-') => url = Some(arg),
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    let rate = rate.filter(|r| *r > 0.0 && r.is_finite()).ok_or("--rate must be > 0")?;
    let duration = duration.filter(|d| *d > 0.0 && *d <= 600.0).ok_or("--duration must be in (0, 600]")?;
    if connections == 0 || connections > 10_000 {
        return Err("--connections must be in 1..=10000".into());
    }
    let url = url.ok_or("a URL is required")?;
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = authority.parse().map_err(|e| format!("{authority}: {e} (IP:PORT only)"))?;
    let path = if path.is_empty() { "/" } else { path };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: loadgen\r\n{headers}\r\n").into_bytes();
    Ok(Args { rate, duration: Duration::from_secs_f64(duration), connections, addr, request })
}

/// Reads one response; Ok(true) for a 2xx. Bodies must carry Content-Length
/// (every server the benchmark talks to sends it).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("response head over 64 KiB"));
        }
        read_more(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(std::io::Error::other)?;
    let ok = head.get(9..10) == Some("2");
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
        })
        .ok_or_else(|| std::io::Error::other("response without Content-Length"))?;
    while buf.len() < head_end + length {
        read_more(stream, buf).await?;
    }
    Ok(ok)
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

async fn connection(run: Rc<Run>, addr: SocketAddr, request: Rc<Vec<u8>>) {
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(1024);
    while let Some((due, overdue)) = run.take() {
        let counted_from = if overdue {
            due
        } else {
            sleep_until(due).await;
            Instant::now()
        };
        let exchange = async {
            if stream.is_none() {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                stream = Some(s);
            }
            let s = stream.as_mut().expect("connected above");
            s.write_all(&request).await?;
            read_response(s, &mut buf).await
        };
        match timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(true)) => run.latencies_us.borrow_mut().push(counted_from.elapsed().as_micros() as u64),
            Ok(Ok(false)) => run.errors.set(run.errors.get() + 1),
            Ok(Err(_)) | Err(_) => {
                run.errors.set(run.errors.get() + 1);
                stream = None;
            }
        }
    }
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("loadgen: {msg}");
            }
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    // One thread: the generator should take as little of the machine as it can.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    let run = local.block_on(&runtime, async {
        let total = (args.rate * args.duration.as_secs_f64()).round() as u64;
        let start = Instant::now() + Duration::from_millis(50);
        let run = Rc::new(Run {
            start,
            deadline: start + args.duration + REQUEST_TIMEOUT,
            rate: args.rate,
            total,
            next: Cell::new(0),
            latencies_us: RefCell::new(Vec::with_capacity(total as usize)),
            errors: Cell::new(0),
        });
        let request = Rc::new(args.request);
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| tokio::task::spawn_local(connection(run.clone(), args.addr, request.clone())))
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        run
    });
    let elapsed = run.start.elapsed().as_secs_f64();
    let mut latencies = run.latencies_us.take();
    latencies.sort_unstable();
    let ok = latencies.len() as u64;
    // Requests never sent (the deadline passed first) count as errors too.
    let errors = run.errors.get() + (run.total - run.next.get());
    println!(
        "sent={} ok={ok} errors={errors} rps={:.1} p50={:.3} p99={:.3} p999={:.3} max={:.3}",
        run.next.get(),
        ok as f64 / elapsed,
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0),
        percentile_ms(&latencies, 99.9),
        latencies.last().map_or(f64::NAN, |us| *us as f64 / 1000.0),
    );
    if errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
