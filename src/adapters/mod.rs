//! The edges: where records are kept, where the outside world is asked, where notices go.

pub mod egress;
pub mod feeds;
pub mod store;
pub mod webhooks;
