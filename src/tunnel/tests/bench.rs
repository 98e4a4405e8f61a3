//! Throughput report (not a timed test): 2 GiB one way through one loopback connection, direct
//! and through a tunnel — copy, non-blocking splice at several pipe sizes, and for comparison
//! io_uring SPLICE ops (monoio's `zero_copy` and a loop with 64 KiB per op) — plus 1 GiB each
//! way at once. Prints GiB/s and the relay thread's CPU time. Run in release.

use std::time::{Duration, Instant};

use monoio::io::splice::{SpliceDestination, SpliceSource};

use super::*;

const TOTAL: u64 = 2 << 30;
const CHUNK: usize = 1 << 20;
const OP_LEN: u32 = 64 * 1024;

/// Write `total` bytes to `s` and half-close.
fn writer(mut s: std::net::TcpStream, total: u64) -> JoinHandle<()> {
    spawn(move || {
        let buf = vec![0x5au8; CHUNK];
        let mut left = total;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            s.write_all(&buf[..n]).expect("bench write");
            left -= n as u64;
        }
        s.shutdown(Shutdown::Write).expect("shutdown");
    })
}

/// Read to end of stream; returns the byte count.
fn reader(mut s: std::net::TcpStream) -> JoinHandle<u64> {
    spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n as u64,
                Err(e) => panic!("bench read: {e}"),
            }
        }
    })
}

fn line(name: &str, bytes: u64, took: Duration, cpu_ticks: Option<u64>) {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let cpu = cpu_ticks.map_or(String::new(), |t| {
        format!("  relay thread CPU {:.2} s/GiB", t as f64 / 100.0 / gib)
    });
    println!(
        "{name:<44} {:>6.2} GiB/s ({:.2} s){cpu}",
        gib / took.as_secs_f64(),
        took.as_secs_f64()
    );
}

fn direct() {
    if !wanted("direct") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("conn");
    let (b, _) = listener.accept().expect("accept");
    let start = Instant::now();
    let (w, r) = (writer(a, TOTAL), reader(b));
    w.join().expect("writer");
    assert_eq!(r.join().expect("reader"), TOTAL);
    line("direct loopback", TOTAL, start.elapsed(), None);
}

/// `TUNNEL_BENCH=<substring>` runs only the matching lines of the report.
fn wanted(name: &str) -> bool {
    std::env::var("TUNNEL_BENCH").map_or(true, |only| name.contains(&only))
}

async fn tunnel(driver: &str, name: &str, cfg: &TunnelConfig, both_ways: bool) {
    if !wanted(&format!("{driver}: {name}")) {
        return;
    }
    let pools = TunnelPools::new(cfg);
    let f = fixture();
    let each = if both_ways { TOTAL / 2 } else { TOTAL };
    let mut threads = vec![writer(clone(&f.client), each)];
    let up = reader(clone(&f.origin));
    let down = if both_ways {
        threads.push(writer(clone(&f.origin), each));
        Some(reader(clone(&f.client)))
    } else {
        f.origin.shutdown(Shutdown::Write).expect("shutdown");
        None
    };
    let (start, cpu) = (Instant::now(), thread_cpu_ticks());
    let ran = run(f, Vec::new(), cfg, &pools).await;
    let took = start.elapsed();
    let cpu = thread_cpu_ticks() - cpu;
    assert!(matches!(ran.end, TunnelEnd::Done), "{:?}", ran.end);
    for t in threads {
        join(t).await;
    }
    assert_eq!(join(up).await, each);
    if let Some(d) = down {
        assert_eq!(join(d).await, each);
    }
    line(&format!("{driver}: {name}"), TOTAL, took, Some(cpu));
}

/// The alternative the design note mentions: io_uring SPLICE ops, here only ever submitted
/// while data flows (this benchmark never idles).
async fn uring_splice_ops(driver: &str, monoio_zero_copy: bool) {
    if !wanted(&format!("{driver}: io_uring SPLICE ops {monoio_zero_copy}")) {
        return;
    }
    let f = fixture();
    let w = writer(clone(&f.client), TOTAL);
    let r = reader(clone(&f.origin));
    let (start, cpu) = (Instant::now(), thread_cpu_ticks());
    let (mut c, mut o) = (f.c, f.o);
    let moved = if monoio_zero_copy {
        monoio::io::zero_copy(&mut c, &mut o)
            .await
            .expect("zero_copy")
    } else {
        let (mut pr, mut pw) = monoio::net::unix::new_pipe().expect("pipe");
        let mut moved = 0u64;
        loop {
            let mut n = c.splice_to_pipe(&mut pw, OP_LEN).await.expect("in");
            if n == 0 {
                break;
            }
            moved += n as u64;
            while n > 0 {
                n -= o.splice_from_pipe(&mut pr, n).await.expect("out");
            }
        }
        moved
    };
    let took = start.elapsed();
    let cpu = thread_cpu_ticks() - cpu;
    drop((c, o));
    join(w).await;
    assert_eq!(join(r).await, TOTAL);
    assert_eq!(moved, TOTAL);
    let name = if monoio_zero_copy {
        "io_uring SPLICE ops: monoio zero_copy"
    } else {
        "io_uring SPLICE ops: 64 KiB pipe, 64 KiB/op"
    };
    line(&format!("{driver}: {name}"), TOTAL, took, Some(cpu));
}

pub(super) fn report() {
    direct();
    on_both_drivers(|driver| async move {
        tunnel(driver, "copy 64 KiB buffer", &cfg(false), false).await;
        for size in [64 * 1024, 256 * 1024, 1024 * 1024] {
            let cfg = TunnelConfig {
                pipe_size: size,
                ..cfg(true)
            };
            let name = format!("splice, pipe {} KiB", size / 1024);
            tunnel(driver, &name, &cfg, false).await;
        }
        tunnel(driver, "both ways at once, copy", &cfg(false), true).await;
        tunnel(driver, "both ways at once, splice 1 MiB", &cfg(true), true).await;
        if driver == "io_uring" {
            uring_splice_ops(driver, true).await;
            uring_splice_ops(driver, false).await;
        }
    });
}
