//! `web`: serves the count (`GET /`), read from Redis replicas.
fn main() -> std::process::ExitCode {
    counter::run(counter::Role::Web)
}
