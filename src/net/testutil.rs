//! Test support shared by the unit tests of the modules above `net`: run one async test body
//! on an io_uring runtime and then on an epoll runtime (both with the timer), so every socket
//! test covers both drivers the workers can run on.

use std::future::Future;

/// Runs `test(driver_name)` to completion on io_uring, then on epoll.
pub(crate) fn on_both_drivers<F, Fut>(test: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut uring = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .expect("io_uring runtime");
    uring.block_on(test("io_uring"));
    drop(uring);
    let mut epoll = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("epoll runtime");
    epoll.block_on(test("epoll"));
}
