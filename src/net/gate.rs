//! The per-origin cap on open upstream connections, and the queue of requests waiting under it.
//! Every connection the proxy dials to an origin holds a [`Permit`] of that origin's [`Gate`]
//! for as long as it lives — busy or idle in the pool. When the cap is reached, a request does
//! not dial: it queues ([`Waiter`]) and is handed, in arrival order, either a connection that
//! finished its exchange (the pool gives it straight to the first waiter instead of parking it)
//! or the place of a connection that closed (then it dials). So many client connections share
//! a bounded set of warm origin connections instead of each dialing its own — the socket count
//! stays near the client count, not double it — and a burst of new clients never opens more
//! than the cap. Single-threaded (one worker), so `Cell`/`RefCell` and no lock.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// One origin's open connections and the requests waiting for one.
pub struct Gate<T> {
    open: Cell<usize>,
    max: usize,
    waiters: RefCell<VecDeque<Rc<Waiter<T>>>>,
}

/// What a waiting request is given.
pub enum Grant<T> {
    /// A connection that just finished an exchange (it carries its own permit).
    Conn(T),
    /// The place of a connection that closed: dial a new one with it.
    Open(Permit<T>),
}

/// A request queued at a full gate.
pub struct Waiter<T> {
    grant: RefCell<Option<Grant<T>>>,
    waker: RefCell<Option<Waker>>,
}

/// One open connection's place under its origin's cap; dropping it frees the place (or hands
/// it to the first waiter).
pub struct Permit<T> {
    gate: Rc<Gate<T>>,
}

impl<T> Gate<T> {
    /// A gate allowing `max` open connections (at least one).
    pub fn new(max: usize) -> Rc<Self> {
        Rc::new(Gate {
            open: Cell::new(0),
            max: max.max(1),
            waiters: RefCell::new(VecDeque::new()),
        })
    }

    /// Connections open under this gate (busy, idle, or places handed to waiters).
    pub fn open(&self) -> usize {
        self.open.get()
    }

    /// A place for a new connection, or `None` at the cap or when others already wait (they
    /// go first).
    pub fn try_open(self: &Rc<Self>) -> Option<Permit<T>> {
        if self.open.get() >= self.max || self.has_waiters() {
            return None;
        }
        self.open.set(self.open.get() + 1);
        Some(Permit { gate: self.clone() })
    }

    /// Queue behind the requests already waiting.
    pub fn wait(&self) -> Rc<Waiter<T>> {
        let w = Rc::new(Waiter {
            grant: RefCell::new(None),
            waker: RefCell::new(None),
        });
        self.waiters.borrow_mut().push_back(w.clone());
        w
    }

    /// Whether a request still waiting (not given up) is queued. Given-up ones are dropped.
    pub fn has_waiters(&self) -> bool {
        let mut q = self.waiters.borrow_mut();
        while let Some(front) = q.front() {
            if Rc::strong_count(front) > 1 {
                return true;
            }
            q.pop_front();
        }
        false
    }

    /// Give `grant` to the first request still waiting; handed back if there is none.
    pub fn hand(&self, grant: Grant<T>) -> Option<Grant<T>> {
        if !self.has_waiters() {
            return Some(grant);
        }
        let w = self.waiters.borrow_mut().pop_front()?;
        *w.grant.borrow_mut() = Some(grant);
        if let Some(waker) = w.waker.borrow_mut().take() {
            waker.wake();
        }
        None
    }
}

impl<T> Drop for Permit<T> {
    fn drop(&mut self) {
        let gate = &self.gate;
        if gate.has_waiters() {
            // The place passes to the first waiter; the open count stays. (`hand` gives it back
            // only when nobody waits, and then dropping it releases the place, once.)
            drop(gate.hand(Grant::Open(Permit { gate: gate.clone() })));
        } else {
            gate.open.set(gate.open.get().saturating_sub(1));
        }
    }
}

impl<T> Waiter<T> {
    /// Wait for the grant. Dropping the future gives up the place in the queue; a grant that
    /// arrived meanwhile is dropped with the waiter (a connection closes, a place passes on).
    pub fn granted(self: Rc<Self>) -> Granted<T> {
        Granted(self)
    }
}

/// The future of [`Waiter::granted`].
pub struct Granted<T>(Rc<Waiter<T>>);

impl<T> Future for Granted<T> {
    type Output = Grant<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Grant<T>> {
        if let Some(g) = self.0.grant.borrow_mut().take() {
            return Poll::Ready(g);
        }
        let mut waker = self.0.waker.borrow_mut();
        match waker.as_ref() {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(f).poll(&mut cx)
    }

    #[test]
    fn cap_queue_and_handoff_in_order() {
        let gate: Rc<Gate<u32>> = Gate::new(2);
        let p1 = gate.try_open().expect("room");
        let _p2 = gate.try_open().expect("room");
        assert!(gate.try_open().is_none());
        let mut first = gate.wait().granted();
        let mut second = gate.wait().granted();
        assert!(poll_once(&mut first).is_pending());
        // A finished connection goes to the first waiter.
        assert!(gate.hand(Grant::Conn(7)).is_none());
        assert!(matches!(poll_once(&mut first), Poll::Ready(Grant::Conn(7))));
        // A closed connection's place goes to the second; the count stays at the cap.
        drop(p1);
        assert_eq!(gate.open(), 2);
        let Poll::Ready(Grant::Open(p3)) = poll_once(&mut second) else {
            panic!("second waiter not granted")
        };
        // Nobody waits: a place is freed, a connection handed back.
        drop(p3);
        assert_eq!(gate.open(), 1);
        assert!(matches!(gate.hand(Grant::Conn(8)), Some(Grant::Conn(8))));
    }

    #[test]
    fn a_waiter_that_gave_up_is_skipped() {
        let gate: Rc<Gate<u32>> = Gate::new(1);
        let p = gate.try_open().expect("room");
        let gone = gate.wait().granted();
        let mut stays = gate.wait().granted();
        drop(gone);
        drop(p);
        assert_eq!(gate.open(), 1);
        assert!(matches!(poll_once(&mut stays), Poll::Ready(Grant::Open(_))));
        assert_eq!(gate.open(), 0);
        assert!(!gate.has_waiters());
        assert!(gate.try_open().is_some());
    }
}
