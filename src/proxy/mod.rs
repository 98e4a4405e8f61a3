//! Orchestration: the only layer that knows the order of steps. [`run`] binds the listeners,
//! starts one worker per core, prints `listening on …` once every worker accepts, and on
//! SIGINT/SIGTERM asks the workers to drain and waits for them. Per connection,
//! [`client`] reads request heads and [`forward`] runs each request through the static
//! pipeline (route → upstream → send → receive), streaming bodies with [`body`]; CONNECT goes
//! to [`connect`] (dial, `200`, sniff, then tunnel or the same HTTP pipeline).

pub mod body;
pub mod client;
pub mod connect;
pub mod ctx;
pub mod forward;
pub mod local;
pub mod report;
pub mod route;
pub mod server;
pub mod stream;
pub mod upstream;
pub mod worker;

pub use server::{RunError, run};
