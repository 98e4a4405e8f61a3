//! Tunnel tests over real loopback sockets, each run on the io_uring and on the epoll driver:
//! byte-exact bulk transfers both ways at once (splice and copy), half-close in each direction,
//! the client prefix arriving first, idle timeout, resets, pool bookkeeping and bounds, and 500
//! idle tunnels holding no pipe, no buffer, no io-wq thread and no CPU. Peers are std sockets on
//! helper threads (or polled non-blockingly) so only the relay runs on the runtime. The
//! throughput report is an ignored test: `cargo test --release tunnel::tests::throughput --
//! --ignored --nocapture`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::rc::Rc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

use super::pool::{MAX_IDLE_BUFFERS, MAX_IDLE_PIPES};
use super::sys::Pipe;
use super::*;
use crate::net::testutil::on_both_drivers;

mod bench;
mod exchange;
mod transfer;

/// Upper bound for any single relay in these tests; hitting it is a hang, i.e. a failure.
const RELAY_LIMIT: Duration = Duration::from_secs(15);
/// Read timeout of peer sockets, so a broken relay fails a test instead of hanging it.
const PEER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes each way in the bulk tests.
const BULK: usize = 16 * 1024 * 1024;
/// Unit of the pseudo-random test streams.
const BLOCK: usize = 64 * 1024;

fn cfg(splice: bool) -> TunnelConfig {
    TunnelConfig {
        splice,
        ..TunnelConfig::default()
    }
}

/// A relay's two sockets and the peers at the far ends (std, blocking, with a read timeout).
struct Fixture {
    client: std::net::TcpStream,
    origin: std::net::TcpStream,
    c: TcpStream,
    o: TcpStream,
}

/// Must run inside a runtime (the relay-side sockets are registered with its driver).
fn fixture() -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let pair = || {
        let peer = std::net::TcpStream::connect(addr).expect("connect");
        let (conn, _) = listener.accept().expect("accept");
        peer.set_read_timeout(Some(PEER_READ_TIMEOUT))
            .expect("timeout");
        (peer, TcpStream::from_std(conn).expect("from_std"))
    };
    let (client, c) = pair();
    let (origin, o) = pair();
    Fixture {
        client,
        origin,
        c,
        o,
    }
}

/// Relay `f`'s sockets. The fixture's own peer handles are dropped first, so the peers are
/// closed exactly when the tests' clones of them are.
async fn run(f: Fixture, prefix: Vec<u8>, cfg: &TunnelConfig, pools: &TunnelPools) -> Ran {
    let Fixture {
        client,
        origin,
        c,
        o,
    } = f;
    drop((client, origin));
    let start = Instant::now();
    let fut = relay(c, prefix, o, cfg, pools);
    let (stats, end) = monoio::time::timeout(RELAY_LIMIT, fut)
        .await
        .expect("relay hung");
    Ran {
        stats,
        end,
        took: start.elapsed(),
    }
}

struct Ran {
    stats: TunnelStats,
    end: TunnelEnd,
    took: Duration,
}

/// Block `index` of the pseudo-random stream `seed` (xorshift64).
fn block(seed: u64, index: u64, out: &mut [u8]) {
    let mut x = (seed ^ (index + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    for chunk in out.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
}

/// Blocks `from..to` of stream `seed`, concatenated.
fn blocks(seed: u64, from: u64, to: u64) -> Vec<u8> {
    let mut out = vec![0u8; (to - from) as usize * BLOCK];
    for (i, chunk) in out.chunks_exact_mut(BLOCK).enumerate() {
        block(seed, from + i as u64, chunk);
    }
    out
}

/// Send blocks `from..to` of stream `seed`.
fn send_blocks(s: &mut std::net::TcpStream, seed: u64, from: u64, to: u64) {
    let mut buf = vec![0u8; BLOCK];
    for i in from..to {
        block(seed, i, &mut buf);
        s.write_all(&buf).expect("peer write");
    }
}

/// Read to end of stream, checking every byte against stream `seed`; returns the byte count.
fn recv_blocks(s: &mut std::net::TcpStream, seed: u64) -> u64 {
    let (mut got, mut want) = (vec![0u8; BLOCK], vec![0u8; BLOCK]);
    let (mut index, mut fill) = (0u64, 0usize);
    loop {
        let n = s.read(&mut got[fill..]).expect("peer read");
        if n == 0 {
            assert_eq!(fill, 0, "stream ended mid-block");
            return index * BLOCK as u64;
        }
        fill += n;
        if fill == BLOCK {
            block(seed, index, &mut want);
            assert!(got == want, "stream {seed} differs in block {index}");
            index += 1;
            fill = 0;
        }
    }
}

fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    thread::spawn(f)
}

/// Wait for a peer thread without blocking the runtime (which may still have to close sockets:
/// on io_uring a close is a ring op that runs on the next turn of the runtime).
async fn join<T>(h: JoinHandle<T>) -> T {
    while !h.is_finished() {
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
    h.join().expect("peer thread panicked")
}

fn clone(s: &std::net::TcpStream) -> std::net::TcpStream {
    s.try_clone().expect("try_clone")
}

/// Read to end of stream (or error) and return what arrived.
fn read_to_end(s: &mut std::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "peer was never closed: {e}"
        ),
    }
    out
}

fn assert_pools_settled(pools: &TunnelPools) {
    assert_eq!(pools.in_use_pipes(), 0, "pipe still leased");
    assert_eq!(pools.in_use_buffers(), 0, "buffer still leased");
    assert!(pools.idle_pipes() <= MAX_IDLE_PIPES);
    assert!(pools.idle_buffers() <= MAX_IDLE_BUFFERS);
}

/// Both peers send `BULK` bytes and half-close; both read and verify everything.
async fn bulk_both_ways(driver: &str, cfg: &TunnelConfig, pools: &TunnelPools) {
    let f = fixture();
    let (mut cw, mut cr) = (clone(&f.client), clone(&f.client));
    let (mut ow, mut or) = (clone(&f.origin), clone(&f.origin));
    let blocks_n = (BULK / BLOCK) as u64;
    let peers = [
        spawn(move || {
            send_blocks(&mut cw, 1, 0, blocks_n);
            cw.shutdown(Shutdown::Write).expect("shutdown");
            0
        }),
        spawn(move || recv_blocks(&mut cr, 2)),
        spawn(move || {
            send_blocks(&mut ow, 2, 0, blocks_n);
            ow.shutdown(Shutdown::Write).expect("shutdown");
            0
        }),
        spawn(move || recv_blocks(&mut or, 1)),
    ];
    let ran = run(f, Vec::new(), cfg, pools).await;
    let mut got = Vec::new();
    for p in peers {
        got.push(join(p).await);
    }
    assert!(
        matches!(ran.end, TunnelEnd::Done),
        "{driver}: {:?}",
        ran.end
    );
    assert_eq!(got, [0, BULK as u64, 0, BULK as u64], "{driver}");
    let want = TunnelStats {
        client_to_origin: BULK as u64,
        origin_to_client: BULK as u64,
    };
    assert_eq!(ran.stats, want, "{driver}");
    assert_pools_settled(pools);
}

#[test]
fn bulk_both_ways_splice() {
    on_both_drivers(|driver| async move {
        let cfg = cfg(true);
        let pools = TunnelPools::new(&cfg);
        bulk_both_ways(driver, &cfg, &pools).await;
        assert!(
            pools.idle_pipes() >= 1,
            "{driver}: splice never leased a pipe"
        );
    });
}

#[test]
fn bulk_both_ways_copy() {
    on_both_drivers(|driver| async move {
        let cfg = cfg(false);
        let pools = TunnelPools::new(&cfg);
        bulk_both_ways(driver, &cfg, &pools).await;
        assert_eq!(pools.idle_pipes(), 0, "{driver}: copy mode made a pipe");
        assert!(pools.idle_buffers() >= 1, "{driver}");
    });
}

#[test]
fn copies_when_no_pipe_can_be_made() {
    on_both_drivers(|driver| async move {
        let cfg = cfg(true);
        let pools = TunnelPools::new(&cfg);
        pools.fail_pipes.set(true);
        bulk_both_ways(driver, &cfg, &pools).await;
        assert_eq!(pools.idle_pipes(), 0, "{driver}");
        assert!(pools.idle_buffers() >= 1, "{driver}: fallback never copied");
    });
}

/// One peer sends a request and half-closes; the other reads it to the end, then answers and
/// closes; the first receives the whole answer.
async fn half_close(driver: &str, splice: bool, client_first: bool) {
    const ASK_BLOCKS: u64 = 4;
    const ANSWER_BLOCKS: u64 = 32;
    let cfg = cfg(splice);
    let pools = TunnelPools::new(&cfg);
    let f = fixture();
    let (mut asker, mut answerer) = if client_first {
        (clone(&f.client), clone(&f.origin))
    } else {
        (clone(&f.origin), clone(&f.client))
    };
    let ask = spawn(move || {
        send_blocks(&mut asker, 7, 0, ASK_BLOCKS);
        asker.shutdown(Shutdown::Write).expect("shutdown");
        recv_blocks(&mut asker, 8)
    });
    let answer = spawn(move || {
        let asked = recv_blocks(&mut answerer, 7);
        // The asker's FIN has arrived; the relay must still carry our answer back.
        thread::sleep(Duration::from_millis(20));
        send_blocks(&mut answerer, 8, 0, ANSWER_BLOCKS);
        drop(answerer);
        asked
    });
    let ran = run(f, Vec::new(), &cfg, &pools).await;
    let answered = join(ask).await;
    let asked = join(answer).await;
    assert!(
        matches!(ran.end, TunnelEnd::Done),
        "{driver}: {:?}",
        ran.end
    );
    assert_eq!(asked, ASK_BLOCKS * BLOCK as u64, "{driver}");
    assert_eq!(answered, ANSWER_BLOCKS * BLOCK as u64, "{driver}");
    let (up, down) = (ran.stats.client_to_origin, ran.stats.origin_to_client);
    let (ask_dir, answer_dir) = if client_first { (up, down) } else { (down, up) };
    assert_eq!(ask_dir, asked, "{driver}");
    assert_eq!(answer_dir, answered, "{driver}");
    assert_pools_settled(&pools);
}

#[test]
fn half_close_client_first() {
    on_both_drivers(|driver| async move {
        half_close(driver, true, true).await;
        half_close(driver, false, true).await;
    });
}

#[test]
fn half_close_origin_first() {
    on_both_drivers(|driver| async move {
        half_close(driver, true, false).await;
        half_close(driver, false, false).await;
    });
}

#[test]
fn prefix_arrives_first() {
    const PREFIX_BLOCKS: u64 = 48;
    const TOTAL_BLOCKS: u64 = 64;
    on_both_drivers(|driver| async move {
        for splice in [true, false] {
            let cfg = cfg(splice);
            let pools = TunnelPools::new(&cfg);
            // A prefix bigger than the socket buffers: its write has to wait for the origin.
            let f = fixture();
            let (mut client, mut origin) = (clone(&f.client), clone(&f.origin));
            let c = spawn(move || {
                send_blocks(&mut client, 3, PREFIX_BLOCKS, TOTAL_BLOCKS);
                client.shutdown(Shutdown::Write).expect("shutdown");
            });
            let o = spawn(move || {
                thread::sleep(Duration::from_millis(50));
                recv_blocks(&mut origin, 3)
            });
            let prefix = blocks(3, 0, PREFIX_BLOCKS);
            let ran = run(f, prefix, &cfg, &pools).await;
            drop(ran.end);
            join(c).await;
            let total = TOTAL_BLOCKS * BLOCK as u64;
            assert_eq!(join(o).await, total, "{driver} splice={splice}");
            assert_eq!(ran.stats.client_to_origin, total, "{driver}");

            // A small prefix followed by a small write, each one segment.
            let f = fixture();
            let (mut client, mut origin) = (clone(&f.client), clone(&f.origin));
            let c = spawn(move || {
                client.write_all(b" rest").expect("write");
                client.shutdown(Shutdown::Write).expect("shutdown");
                read_to_end(&mut client)
            });
            let o = spawn(move || {
                let got = read_to_end(&mut origin);
                drop(origin);
                got
            });
            let ran = run(f, b"PING".to_vec(), &cfg, &pools).await;
            assert!(
                matches!(ran.end, TunnelEnd::Done),
                "{driver}: {:?}",
                ran.end
            );
            assert_eq!(join(o).await, b"PING rest", "{driver}");
            assert_eq!(join(c).await, b"", "{driver}");
            assert_pools_settled(&pools);
        }
    });
}

#[test]
fn idle_timeout_closes_both() {
    const IDLE: Duration = Duration::from_millis(150);
    on_both_drivers(|driver| async move {
        let cfg = TunnelConfig {
            idle_timeout: IDLE,
            ..cfg(true)
        };
        let pools = TunnelPools::new(&cfg);
        let f = fixture();
        let (mut client, mut origin) = (clone(&f.client), clone(&f.origin));
        let ran = run(f, Vec::new(), &cfg, &pools).await;
        assert!(
            matches!(ran.end, TunnelEnd::IdleTimeout),
            "{driver}: {:?}",
            ran.end
        );
        assert!(ran.took >= IDLE, "{driver}: fired after {:?}", ran.took);
        assert!(ran.took < IDLE * 5, "{driver}: fired after {:?}", ran.took);
        let c = spawn(move || read_to_end(&mut client));
        let o = spawn(move || read_to_end(&mut origin));
        assert_eq!(join(c).await, b"", "{driver}");
        assert_eq!(join(o).await, b"", "{driver}");
        assert_pools_settled(&pools);
    });
}

#[test]
fn traffic_defers_idle_timeout() {
    const IDLE: Duration = Duration::from_millis(200);
    const TICK: Duration = Duration::from_millis(60);
    const TICKS: usize = 8;
    on_both_drivers(|driver| async move {
        let cfg = TunnelConfig {
            idle_timeout: IDLE,
            ..cfg(true)
        };
        let pools = TunnelPools::new(&cfg);
        let f = fixture();
        let (mut client, mut origin) = (clone(&f.client), clone(&f.origin));
        let c = spawn(move || {
            for _ in 0..TICKS {
                client.write_all(b"x").expect("write");
                thread::sleep(TICK);
            }
            client
        });
        let o = spawn(move || read_to_end(&mut origin));
        let ran = run(f, Vec::new(), &cfg, &pools).await;
        assert!(
            matches!(ran.end, TunnelEnd::IdleTimeout),
            "{driver}: {:?}",
            ran.end
        );
        assert!(
            ran.took >= TICK * (TICKS as u32 - 1) + IDLE,
            "{driver}: {:?}",
            ran.took
        );
        assert_eq!(join(o).await.len(), TICKS, "{driver}");
        assert_eq!(ran.stats.client_to_origin, TICKS as u64, "{driver}");
        drop(join(c).await);
    });
}

#[test]
fn stalled_origin_times_out_and_frees_the_pipe() {
    const IDLE: Duration = Duration::from_millis(200);
    on_both_drivers(|driver| async move {
        for splice in [true, false] {
            let cfg = TunnelConfig {
                idle_timeout: IDLE,
                ..cfg(splice)
            };
            let pools = TunnelPools::new(&cfg);
            let f = fixture();
            // The origin never reads: every buffer on the way fills up, then nothing moves.
            let (mut client, origin) = (clone(&f.client), clone(&f.origin));
            let c = spawn(move || {
                let buf = vec![1u8; BLOCK];
                while client.write_all(&buf).is_ok() {}
            });
            let ran = run(f, Vec::new(), &cfg, &pools).await;
            assert!(
                matches!(ran.end, TunnelEnd::IdleTimeout),
                "{driver}: {:?}",
                ran.end
            );
            join(c).await;
            drop(origin);
            assert_pools_settled(&pools);
            // The stalled pipe still held bytes of a dead stream: closed, not pooled.
            assert_eq!(pools.idle_pipes(), 0, "{driver} splice={splice}");
        }
    });
}

/// Abort `peer` with a TCP reset (SO_LINGER 0, then close).
fn reset(peer: std::net::TcpStream) {
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(peer);
}

#[test]
fn reset_ends_relay_with_error() {
    on_both_drivers(|driver| async move {
        for splice in [true, false] {
            let cfg = cfg(splice);
            let pools = TunnelPools::new(&cfg);
            for origin_resets in [true, false] {
                let f = fixture();
                let (resetter, mut survivor) = if origin_resets {
                    (clone(&f.origin), clone(&f.client))
                } else {
                    (clone(&f.client), clone(&f.origin))
                };
                let r = spawn(move || {
                    thread::sleep(Duration::from_millis(30));
                    reset(resetter);
                });
                let ran = run(f, Vec::new(), &cfg, &pools).await;
                join(r).await;
                let ok = if origin_resets {
                    matches!(ran.end, TunnelEnd::OriginError(_))
                } else {
                    matches!(ran.end, TunnelEnd::ClientError(_))
                };
                assert!(ok, "{driver} splice={splice}: {:?}", ran.end);
                assert!(
                    ran.took < Duration::from_secs(2),
                    "{driver}: {:?}",
                    ran.took
                );
                // The other peer is closed, not left hanging.
                join(spawn(move || read_to_end(&mut survivor))).await;
                assert_pools_settled(&pools);
            }
        }
    });
}

#[test]
fn reset_mid_transfer() {
    on_both_drivers(|driver| async move {
        for splice in [true, false] {
            let cfg = cfg(splice);
            let pools = TunnelPools::new(&cfg);
            let f = fixture();
            let (mut origin, mut client) = (clone(&f.origin), clone(&f.client));
            let o = spawn(move || {
                let buf = vec![7u8; BLOCK];
                // Ends with an error once the relay closes the origin connection.
                while origin.write_all(&buf).is_ok() {}
            });
            let c = spawn(move || {
                let mut buf = vec![0u8; BLOCK];
                let mut got = 0;
                while got < 4 * BLOCK {
                    got += client.read(&mut buf).expect("client read");
                }
                reset(client);
            });
            let ran = run(f, Vec::new(), &cfg, &pools).await;
            join(c).await;
            join(o).await;
            assert!(
                matches!(ran.end, TunnelEnd::ClientError(_)),
                "{driver} splice={splice}: {:?}",
                ran.end
            );
            assert!(ran.stats.origin_to_client >= 4 * BLOCK as u64, "{driver}");
            assert_pools_settled(&pools);
        }
    });
}

#[test]
fn pools_are_bounded() {
    let pools = TunnelPools::new(&TunnelConfig::default());
    let extra = 8;
    let leases: Vec<_> = (0..MAX_IDLE_PIPES + extra)
        .map(|_| pools.take_pipe().expect("pipe"))
        .collect();
    let bufs: Vec<_> = (0..MAX_IDLE_BUFFERS + extra)
        .map(|_| pools.take_buffer())
        .collect();
    assert_eq!(pools.in_use_pipes(), MAX_IDLE_PIPES + extra);
    assert_eq!(pools.in_use_buffers(), MAX_IDLE_BUFFERS + extra);
    drop(leases);
    drop(bufs);
    assert_eq!(pools.idle_pipes(), MAX_IDLE_PIPES);
    assert_eq!(pools.idle_buffers(), MAX_IDLE_BUFFERS);
    assert_pools_settled(&pools);

    // A pipe dropped with bytes still in it is closed, never pooled.
    let mut lease = pools.take_pipe().expect("pipe");
    lease.len = 9;
    drop(lease);
    assert_eq!(pools.idle_pipes(), MAX_IDLE_PIPES - 1);
}

#[test]
fn pipe_is_sized_and_closed_on_drop() {
    let pipe = Pipe::new(DEFAULT_PIPE_SIZE).expect("pipe");
    assert_eq!(pipe.capacity(), DEFAULT_PIPE_SIZE);
    let link = |fd: i32| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
    let (r, w) = (pipe.read_fd(), pipe.write_fd());
    let (r_name, w_name) = (link(r).expect("read end"), link(w).expect("write end"));
    assert!(r_name.to_string_lossy().starts_with("pipe:"));
    drop(pipe);
    // The fd numbers may be reused by another test's file, but never for this pipe.
    assert_ne!(link(r), Some(r_name));
    assert_ne!(link(w), Some(w_name));
    let small = Pipe::new(0).expect("pipe");
    assert!(small.capacity() >= 4096);
}

/// User + system CPU time of the current thread, in clock ticks.
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
    // Fields after the parenthesised name: state is field 3; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let num = |i: usize| fields[i - 3].parse::<u64>().expect("tick count");
    num(14) + num(15)
}

/// Kernel io-wq worker threads of this process.
fn io_wq_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("iou-wrk"))
        .count()
}

#[test]
fn idle_tunnels_hold_nothing() {
    const TUNNELS: usize = 500;
    const HELLO: &[u8] = b"hello through the tunnel";
    on_both_drivers(|driver| async move {
        let cfg = Rc::new(TunnelConfig {
            idle_timeout: Duration::from_secs(60),
            ..cfg(true)
        });
        let pools = Rc::new(TunnelPools::new(&cfg));
        let mut peers = Vec::with_capacity(TUNNELS);
        let mut relays = Vec::with_capacity(TUNNELS);
        for _ in 0..TUNNELS {
            let f = fixture();
            for p in [&f.client, &f.origin] {
                p.set_nonblocking(true).expect("nonblocking");
                (&*p).write_all(HELLO).expect("hello");
            }
            peers.push((clone(&f.client), clone(&f.origin)));
            let (cfg, pools) = (cfg.clone(), pools.clone());
            relays.push(monoio::spawn(async move {
                relay(f.c, Vec::new(), f.o, &cfg, &pools).await
            }));
        }
        // Every greeting crosses its tunnel (so every tunnel used a pipe), then all go idle.
        let deadline = Instant::now() + RELAY_LIMIT;
        for (client, origin) in &peers {
            for mut p in [client, origin] {
                let mut got = [0u8; HELLO.len()];
                let mut n = 0;
                while n < got.len() {
                    match p.read(&mut got[n..]) {
                        Ok(0) => panic!("{driver}: closed"),
                        Ok(k) => n += k,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            assert!(Instant::now() < deadline, "{driver}: hello lost");
                            monoio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(e) => panic!("{driver}: {e}"),
                    }
                }
                assert_eq!(&got, HELLO);
            }
        }
        monoio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pools.in_use_pipes(), 0, "{driver}: idle tunnels hold pipes");
        assert_eq!(
            pools.in_use_buffers(),
            0,
            "{driver}: idle tunnels hold buffers"
        );
        assert!(pools.idle_pipes() <= MAX_IDLE_PIPES, "{driver}");
        assert!(pools.idle_buffers() <= MAX_IDLE_BUFFERS, "{driver}");
        assert!(
            io_wq_threads() < TUNNELS / 10,
            "{driver}: io-wq threads parked"
        );
        // Idle tunnels cost no CPU: no busy loop on stale readiness.
        let before = thread_cpu_ticks();
        monoio::time::sleep(Duration::from_millis(300)).await;
        let spent = thread_cpu_ticks() - before;
        assert!(spent < 10, "{driver}: {spent} ticks of CPU while idle");

        drop(peers);
        for r in relays {
            let (stats, end) = r.await;
            assert!(matches!(end, TunnelEnd::Done), "{driver}: {end:?}");
            assert_eq!(stats.client_to_origin, HELLO.len() as u64);
            assert_eq!(stats.origin_to_client, HELLO.len() as u64);
        }
        assert_pools_settled(&pools);
    });
}

#[test]
fn concurrent_tunnels_share_the_pools() {
    const TUNNELS: usize = 24;
    const EACH_BLOCKS: u64 = 8;
    on_both_drivers(|driver| async move {
        let cfg = Rc::new(cfg(true));
        let pools = Rc::new(TunnelPools::new(&cfg));
        let mut threads = Vec::new();
        let mut relays = Vec::new();
        for i in 0..TUNNELS as u64 {
            let f = fixture();
            let (mut client, mut origin) = (clone(&f.client), clone(&f.origin));
            threads.push(spawn(move || {
                send_blocks(&mut client, 100 + i, 0, EACH_BLOCKS);
                client.shutdown(Shutdown::Write).expect("shutdown");
                recv_blocks(&mut client, 200 + i)
            }));
            threads.push(spawn(move || {
                let got = recv_blocks(&mut origin, 100 + i);
                send_blocks(&mut origin, 200 + i, 0, EACH_BLOCKS);
                got
            }));
            let (cfg, pools) = (cfg.clone(), pools.clone());
            relays.push(monoio::spawn(async move {
                relay(f.c, Vec::new(), f.o, &cfg, &pools).await
            }));
        }
        for r in relays {
            let (_, end) = monoio::time::timeout(RELAY_LIMIT, r).await.expect("hung");
            assert!(matches!(end, TunnelEnd::Done), "{driver}: {end:?}");
        }
        for t in threads {
            assert_eq!(join(t).await, EACH_BLOCKS * BLOCK as u64);
        }
        assert_pools_settled(&pools);
    });
}

/// Not a test: prints throughput of one 2 GiB one-way transfer, direct vs through the tunnel.
#[test]
#[ignore]
fn throughput() {
    bench::report();
}
