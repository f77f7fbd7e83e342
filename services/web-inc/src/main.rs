//! `web-inc`: increments the count (`POST /inc`, and `GET /inc` for curl),
//! acknowledged only once every in-sync Redis replica, and at least one, has it.
fn main() -> std::process::ExitCode {
    counter::run(counter::Role::WebInc)
}
