//! `web-inc`: increments the count (`POST /inc`, and `GET /inc` for curl),
//! acknowledged only once a Redis replica has it.
fn main() -> std::process::ExitCode {
    counter::run(counter::Role::WebInc)
}
