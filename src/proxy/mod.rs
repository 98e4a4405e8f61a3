//! Orchestration: the only layer that knows the order of steps. [`run`] binds the listeners,
//! starts one worker per core (and the event hub and admin listener when asked), prints
//! `listening on …` once every worker accepts, and on SIGINT/SIGTERM asks the workers to drain
//! and waits for them. Per connection, [`client`] reads request heads, gives each a flow
//! ([`ctx::flow`]) and runs it through the static pipeline: [`route`], then lynxio's own pages
//! ([`local`]), [`forward`] (with [`upstream`] and [`body`]) or CONNECT ([`connect`]: dial,
//! `200`, sniff, then a tunnel or the same HTTP pipeline); [`report`] feeds every finished flow
//! to the access log, the counters and the event hub. The steps share their types through
//! [`ctx`] and call down, never around.

pub mod access;
pub mod act;
pub mod body;
pub mod client;
pub mod connect;
pub mod ctx;
pub mod forward;
pub mod live;
pub mod local;
pub mod notify;
pub mod report;
pub mod route;
pub mod server;
pub mod stream;
pub mod upgrade;
pub mod upstream;
pub mod worker;

pub use server::{RunError, run};
