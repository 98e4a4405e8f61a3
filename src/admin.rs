//! TEMPORARY STUB (replaced by the admin branch).
use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::observe::hub::Hub;
use crate::observe::metrics::Registry;

pub struct Admin {}
pub struct AdminState {
    pub registry: Registry,
    pub hub: Arc<Hub>,
    pub token: Option<String>,
    pub healthy: Arc<AtomicBool>,
}
pub fn start(listener: std::net::TcpListener, state: AdminState) -> io::Result<Admin> {
    let _ = (listener, state);
    todo!()
}
impl Admin {
    pub fn stop(self) {}
}
