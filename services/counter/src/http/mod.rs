//! HTTP: a hardened hyper server ([`server`]) and the routes of the public
//! contract ([`routes`]), with content negotiation, JSON errors, request ids and the
//! identity of the instance that answered.

mod cross_site;
mod instance;
mod negotiate;
mod request_id;
mod response;
pub mod routes;
pub mod server;

pub use instance::served_by;
pub use routes::Routes;
pub use server::{Limits, Peer, serve};
