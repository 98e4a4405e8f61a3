//! `transfer`, the bounded one-way splice for message bodies, over real loopback sockets on both
//! drivers and in both modes (splice, copy): exactly `n` bytes and not one more (what follows
//! stays readable by monoio on the same socket, and monoio can still write the destination),
//! until end of stream without a FIN to the destination, a source that ends early, a silent
//! source and a destination that takes nothing, each within its idle timeout.

use std::cell::Cell;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

use super::*;

/// Bytes of the body in these tests: several pipe-fulls.
const BODY_BLOCKS: u64 = 48;
/// Idle timeout for the stall tests.
const IDLE: Duration = Duration::from_millis(200);

fn body_len() -> u64 {
    BODY_BLOCKS * BLOCK as u64
}

/// `transfer` from the fixture's client-side socket to its origin-side socket.
async fn run_transfer(
    f: &Fixture,
    span: Span,
    idle: Duration,
    splice: bool,
    pools: &TunnelPools,
) -> (Result<(), TransferError>, u64) {
    let moved = Cell::new(0);
    let fut = transfer(
        f.c.as_raw_fd(),
        f.o.as_raw_fd(),
        span,
        idle,
        splice,
        pools,
        &moved,
    );
    let res = monoio::time::timeout(RELAY_LIMIT, fut)
        .await
        .expect("transfer hung");
    (res, moved.get())
}

/// A peer thread sending blocks `0..count` of stream `seed`, then `tail` (`None`: FIN).
fn send_body(
    peer: &std::net::TcpStream,
    seed: u64,
    count: u64,
    tail: Option<&'static [u8]>,
) -> JoinHandle<()> {
    let mut w = clone(peer);
    spawn(move || {
        send_blocks(&mut w, seed, 0, count);
        match tail {
            Some(bytes) => w.write_all(bytes).expect("tail"),
            None => w.shutdown(Shutdown::Write).expect("shutdown"),
        }
    })
}

/// A peer thread reading exactly `len` bytes and returning them.
fn receive_exactly(peer: &std::net::TcpStream, len: u64) -> JoinHandle<Vec<u8>> {
    let mut r = clone(peer);
    spawn(move || {
        let mut got = vec![0u8; len as usize];
        r.read_exact(&mut got).expect("body");
        got
    })
}

/// Exactly the body moves; the next message behind it stays on the source for monoio to read,
/// and monoio can still write to the destination afterwards.
#[test]
fn exactly_moves_the_body_and_not_one_byte_more() {
    on_both_drivers(|driver| async move {
        for splice in [true, false] {
            let pools = TunnelPools::new(&cfg(splice));
            let mut f = fixture();
            let sender = send_body(&f.client, 7, BODY_BLOCKS, Some(b"NEXT"));
            let receiver = receive_exactly(&f.origin, body_len());
            let (res, moved) =
                run_transfer(&f, Span::Exactly(body_len()), IDLE, splice, &pools).await;
            assert!(res.is_ok(), "{driver} splice={splice}: {res:?}");
            assert_eq!(moved, body_len());
            join(sender).await;
            assert!(
                join(receiver).await == blocks(7, 0, BODY_BLOCKS),
                "{driver} splice={splice}: body differs"
            );
            let (n, next) = f.c.read(vec![0u8; 16]).await;
            assert_eq!(n.expect("monoio read after transfer"), 4);
            assert_eq!(&next[..4], b"NEXT", "{driver} splice={splice}");
            assert_eq!(sys::rcvlowat(f.c.as_raw_fd()).expect("SO_RCVLOWAT"), 1);
            let (w, _) = f.o.write_all(b"AFTER").await;
            w.expect("monoio write after transfer");
            let mut after = [0u8; 5];
            f.origin.read_exact(&mut after).expect("after");
            assert_eq!(&after, b"AFTER");
            assert_pools_settled(&pools);
        }
    });
}

/// Until end of stream: everything moves, and the destination gets no FIN.
#[test]
fn until_eof_moves_everything_and_leaves_destination_open() {
    on_both_drivers(|driver| async move {
        for splice in [true, false] {
            let pools = TunnelPools::new(&cfg(splice));
            let f = fixture();
            let sender = send_body(&f.client, 8, BODY_BLOCKS, None);
            let mut or = clone(&f.origin);
            let receiver = spawn(move || {
                let mut got = vec![0u8; body_len() as usize];
                or.read_exact(&mut got).expect("body");
                or.set_read_timeout(Some(Duration::from_millis(100)))
                    .expect("timeout");
                let mut more = [0u8; 1];
                let fin = matches!(or.read(&mut more), Ok(0));
                (got, fin)
            });
            let (res, moved) = run_transfer(&f, Span::UntilEof, IDLE, splice, &pools).await;
            assert!(res.is_ok(), "{driver} splice={splice}: {res:?}");
            assert_eq!(moved, body_len());
            join(sender).await;
            let (got, fin) = join(receiver).await;
            assert!(got == blocks(8, 0, BODY_BLOCKS), "{driver}: body differs");
            assert!(!fin, "{driver} splice={splice}: the destination got a FIN");
            assert_pools_settled(&pools);
        }
    });
}

/// The source closes before the span is complete: a source error, with what moved counted.
#[test]
fn source_ending_early_is_unexpected_eof() {
    on_both_drivers(|driver| async move {
        for splice in [true, false] {
            let pools = TunnelPools::new(&cfg(splice));
            let f = fixture();
            let sender = send_body(&f.client, 9, BODY_BLOCKS / 2, None);
            let receiver = receive_exactly(&f.origin, body_len() / 2);
            let (res, moved) =
                run_transfer(&f, Span::Exactly(body_len()), IDLE, splice, &pools).await;
            match res {
                Err(TransferError::Source(e)) => {
                    assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{driver}")
                }
                other => panic!("{driver} splice={splice}: {other:?}"),
            }
            assert_eq!(moved, body_len() / 2);
            join(sender).await;
            assert!(
                join(receiver).await == blocks(9, 0, BODY_BLOCKS / 2),
                "{driver} splice={splice}: what moved differs"
            );
            assert_pools_settled(&pools);
        }
    });
}

/// A silent source and a destination that takes nothing both end the transfer after the idle
/// timeout, each blamed on its side.
#[test]
fn stalls_time_out_on_the_stalled_side() {
    on_both_drivers(|driver| async move {
        for splice in [true, false] {
            let pools = TunnelPools::new(&cfg(splice));
            // Nothing is ever sent.
            let f = fixture();
            let started = Instant::now();
            let (res, _) = run_transfer(&f, Span::Exactly(body_len()), IDLE, splice, &pools).await;
            assert!(
                matches!(&res, Err(TransferError::Source(e)) if e.kind() == ErrorKind::TimedOut),
                "{driver} splice={splice}: {res:?}"
            );
            assert!(
                started.elapsed() < IDLE * 10,
                "{driver}: {:?}",
                started.elapsed()
            );
            // Far more is sent than the sockets between can hold, and nobody reads it.
            let f = fixture();
            let mut cw = clone(&f.client);
            let _sender = spawn(move || {
                let mut buf = vec![0u8; BLOCK];
                for i in 0..(BULK / BLOCK) as u64 {
                    block(10, i, &mut buf);
                    if cw.write_all(&buf).is_err() {
                        return;
                    }
                }
            });
            let (res, moved) =
                run_transfer(&f, Span::Exactly(BULK as u64), IDLE, splice, &pools).await;
            assert!(
                matches!(&res, Err(TransferError::Destination(e)) if e.kind() == ErrorKind::TimedOut),
                "{driver} splice={splice}: {res:?}"
            );
            assert!(moved < BULK as u64);
            // Closing the fixture unblocks the sender thread.
            drop(f);
            assert_eq!(pools.in_use_pipes(), 0, "pipe still leased");
        }
    });
}

/// A body that arrives in bulk and then, after a pause with the connection open, a tail shorter
/// than what is still to come: a body waits for the rest of itself in one go (`tunnel::pace`),
/// so the wait after the bulk asks for more than the tail, and must give way to it within
/// half the idle timeout (a bulk wait is bounded by the smaller of its own limit and the idle
/// timeout: one not bounded by its own limit would hold the tail for the whole idle timeout).
/// The sender sends the last bytes once the receiver has the tail, or gives up waiting for it.
/// The source's mark is back to one byte afterwards.
#[test]
fn bulk_then_a_late_tail() {
    // Long, so the bound under test (milliseconds) is far from it on a loaded machine.
    const TAIL_IDLE: Duration = Duration::from_secs(2);
    on_both_drivers(|driver| async move {
        for splice in [true, false] {
            let pools = TunnelPools::new(&cfg(splice));
            let f = fixture();
            let room = 2 * body_len() as usize;
            let fd = crate::net::sys::borrow_socket(&f.c);
            socket2::SockRef::from(&fd)
                .set_recv_buffer_size(room)
                .expect("SO_RCVBUF");
            let (queued, body_queued) = std::sync::mpsc::channel::<()>();
            let (got_tail, tail_seen) = std::sync::mpsc::channel::<()>();
            let mut w = clone(&f.client);
            let sender = spawn(move || {
                send_blocks(&mut w, 11, 0, BODY_BLOCKS);
                let _ = queued.send(());
                thread::sleep(IDLE / 4);
                w.write_all(b"tail").expect("tail");
                let seen = tail_seen.recv_timeout(TAIL_IDLE / 2).is_ok();
                w.write_all(b"done").expect("last bytes");
                seen
            });
            let mut r = clone(&f.origin);
            let receiver = spawn(move || {
                let mut got = vec![0u8; body_len() as usize + 4];
                r.read_exact(&mut got).expect("body and tail");
                let _ = got_tail.send(());
                let mut last = [0u8; 4];
                r.read_exact(&mut last).expect("last bytes");
                got.extend_from_slice(&last);
                got
            });
            body_queued
                .recv_timeout(RELAY_LIMIT)
                .expect("body not queued");
            let len = body_len() + 8;
            let (res, moved) =
                run_transfer(&f, Span::Exactly(len), TAIL_IDLE, splice, &pools).await;
            assert!(res.is_ok(), "{driver} splice={splice}: {res:?}");
            assert_eq!(moved, len);
            assert!(
                join(sender).await,
                "{driver} splice={splice}: tail held back"
            );
            let mut want = blocks(11, 0, BODY_BLOCKS);
            want.extend_from_slice(b"taildone");
            assert!(join(receiver).await == want, "{driver}: bytes differ");
            assert_eq!(sys::rcvlowat(f.c.as_raw_fd()).expect("SO_RCVLOWAT"), 1);
            assert_pools_settled(&pools);
        }
    });
}
