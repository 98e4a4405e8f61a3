//! The resolver against a fake blocking lookup that the test holds until it chooses: one
//! lookup per name however many requests wait, waiters that give up at the deadline while the
//! answer is still cached, failures remembered, and a full queue refused at once.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use monoio::blocking::DefaultThreadPool;

use super::*;

/// A fake `getaddrinfo`: counts calls, blocks each until the test opens the gate, then answers
/// 192.0.2.1 (or fails, for `bad.example`).
#[derive(Default)]
struct Fake {
    calls: AtomicUsize,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Fake {
    fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().expect("gate");
        while !*open {
            open = self.opened.wait(open).expect("gate");
        }
        if host == "bad.example" {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such host"));
        }
        Ok(vec![IpAddr::from([192, 0, 2, 1])])
    }

    fn open(&self) {
        *self.open.lock().expect("gate") = true;
        self.opened.notify_all();
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Wait (on the runtime) until `n` lookups have reached the fake.
    async fn reached(&self, n: usize) {
        while self.calls() < n {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Opens the gate when the test ends, even by a panic, so no resolver thread stays blocked.
struct OpenOnDrop(Arc<Fake>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

fn resolver(fake: &Arc<Fake>, deadline: Duration, queue: usize) -> (Resolver, Arc<LookupQueue>) {
    let f = fake.clone();
    let lookup: LookupFn = Arc::new(move |host: &str| f.lookup(host));
    let queue = Arc::new(LookupQueue::new(queue));
    let ttl = Duration::from_secs(60);
    let r = Resolver::with_lookup(&[], ttl, deadline, lookup, queue.clone());
    (r, queue)
}

/// Runs `test` on io_uring, then on epoll, each runtime with a blocking pool attached.
fn on_both_drivers<F, Fut>(test: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let pool = DefaultThreadPool::new(2);
    let mut uring = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .attach_thread_pool(Box::new(pool.clone()))
        .build()
        .expect("io_uring runtime");
    uring.block_on(test());
    drop(uring);
    let mut epoll = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .attach_thread_pool(Box::new(pool))
        .build()
        .expect("epoll runtime");
    epoll.block_on(test());
}

const LONG: Duration = Duration::from_secs(30);

#[test]
fn concurrent_lookups_of_one_name_share_one_resolver_call() {
    on_both_drivers(|| async {
        let fake = Arc::new(Fake::default());
        let _open = OpenOnDrop(fake.clone());
        let (r, queue) = resolver(&fake, LONG, 8);
        let ((first, how1), (second, how2), ()) = monoio::join!(
            r.resolve("a.example", 80),
            r.resolve("a.example", 8080),
            async {
                fake.reached(1).await;
                fake.open();
            }
        );
        assert_eq!((how1, how2), (Lookup::Resolved, Lookup::Coalesced));
        assert_eq!(
            first.expect("answer"),
            vec!["192.0.2.1:80".parse().unwrap()]
        );
        assert_eq!(
            second.expect("answer"),
            vec!["192.0.2.1:8080".parse().unwrap()]
        );
        let (third, how3) = r.resolve("a.example", 443).await;
        assert_eq!(how3, Lookup::Cached);
        assert!(third.is_ok());
        assert_eq!(fake.calls(), 1);
        assert_eq!(queue.pending(), 0);
    });
}

#[test]
fn a_failure_is_remembered() {
    on_both_drivers(|| async {
        let fake = Arc::new(Fake::default());
        fake.open();
        let (r, _) = resolver(&fake, LONG, 8);
        let (first, how) = r.resolve("bad.example", 80).await;
        assert_eq!(how, Lookup::Resolved);
        let e = first.expect_err("bad name");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        for _ in 0..3 {
            let (again, how) = r.resolve("bad.example", 80).await;
            assert_eq!(how, Lookup::Cached);
            let e = again.expect_err("still bad");
            assert_eq!(e.kind(), io::ErrorKind::NotFound);
            assert!(e.to_string().contains("no such host"), "{e}");
        }
        assert_eq!(fake.calls(), 1);
    });
}

#[test]
fn a_stuck_lookup_fails_at_the_deadline_and_its_late_answer_is_kept() {
    on_both_drivers(|| async {
        let fake = Arc::new(Fake::default());
        let _open = OpenOnDrop(fake.clone());
        let deadline = Duration::from_millis(30);
        let (r, queue) = resolver(&fake, deadline, 8);
        let (first, how) = r.resolve("slow.example", 80).await;
        assert_eq!(how, Lookup::Resolved);
        let e = first.expect_err("deadline");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("lookup took longer than"), "{e}");
        // The blocking call is still stuck: a second request waits for it, adds no lookup.
        let (second, how) = r.resolve("slow.example", 80).await;
        assert_eq!(how, Lookup::Coalesced);
        assert_eq!(
            second.expect_err("deadline").kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(fake.calls(), 1);
        assert_eq!(queue.pending(), 1);
        fake.open();
        // Everyone gave up, yet the answer that came late is cached for the next request.
        loop {
            let (answer, how) = r.resolve("slow.example", 80).await;
            if how == Lookup::Cached {
                assert!(answer.is_ok());
                break;
            }
        }
        assert_eq!(fake.calls(), 1);
        assert_eq!(queue.pending(), 0);
    });
}

#[test]
fn a_full_queue_fails_fast_and_frees_when_lookups_return() {
    on_both_drivers(|| async {
        let fake = Arc::new(Fake::default());
        let _open = OpenOnDrop(fake.clone());
        let (r, queue) = resolver(&fake, LONG, 1);
        let ((first, how1), ()) = monoio::join!(r.resolve("a.example", 80), async {
            let (refused, how) = r.resolve("b.example", 80).await;
            assert_eq!(how, Lookup::Overloaded);
            let e = refused.expect_err("queue full");
            assert!(e.to_string().contains("resolver overloaded"), "{e}");
            fake.reached(1).await;
            fake.open();
        });
        assert_eq!(how1, Lookup::Resolved);
        assert!(first.is_ok());
        assert_eq!(queue.pending(), 0);
        // A refusal is not remembered: once there is room, the name is looked up.
        let (later, how) = r.resolve("b.example", 80).await;
        assert_eq!(how, Lookup::Resolved);
        assert!(later.is_ok());
        assert_eq!(fake.calls(), 2);
    });
}

#[test]
fn literals_and_overrides_skip_the_resolver() {
    on_both_drivers(|| async {
        let fake = Arc::new(Fake::default());
        let f = fake.clone();
        let lookup: LookupFn = Arc::new(move |host: &str| f.lookup(host));
        let overrides = [ResolveOverride {
            host: "pinned.example".into(),
            port: 443,
            addrs: vec![IpAddr::from([10, 0, 0, 7])],
        }];
        let queue = Arc::new(LookupQueue::new(0));
        let r = Resolver::with_lookup(&overrides, LONG, LONG, lookup, queue);
        let (ip, how) = r.resolve("::1", 80).await;
        assert_eq!(how, Lookup::Literal);
        assert_eq!(ip.expect("literal"), vec!["[::1]:80".parse().unwrap()]);
        let (pinned, how) = r.resolve("pinned.example", 443).await;
        assert_eq!(how, Lookup::Literal);
        assert_eq!(
            pinned.expect("override"),
            vec!["10.0.0.7:443".parse().unwrap()]
        );
        // Another port of the pinned name is not overridden; a queue of 0 refuses it.
        let (_, how) = r.resolve("pinned.example", 80).await;
        assert_eq!(how, Lookup::Overloaded);
        assert_eq!(fake.calls(), 0);
    });
}
