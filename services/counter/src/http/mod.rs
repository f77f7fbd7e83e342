//! HTTP: a hardened hyper server ([`server`]) and the routes of the public
//! contract ([`routes`]), with content negotiation, JSON errors and request ids.

mod negotiate;
mod request_id;
mod response;
pub mod routes;
pub mod server;

pub use routes::Routes;
pub use server::{Limits, serve};
