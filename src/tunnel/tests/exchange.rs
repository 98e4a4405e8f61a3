//! Request/response through a tunnel, and the receive low-water mark it relies on: answers of
//! growing size (up to several pipe-fulls, so the answering direction paces itself) arrive
//! byte-exact after each request, on both drivers and in both modes; and lowering a socket's
//! mark from elsewhere wakes a readiness wait pending on it, which is how a request going one
//! way releases the other direction from a bulk wait.

use super::pump::LowWater;
use super::*;

/// Answer sizes, in blocks, each asked for `ROUNDS` times.
const ANSWER_BLOCKS: [u64; 4] = [1, 4, 16, 128];
const ROUNDS: usize = 4;

#[test]
fn answers_follow_requests_byte_exact() {
    on_both_drivers(|driver| async move {
        for splice in [true, false] {
            let pools = TunnelPools::new(&cfg(splice));
            let f = fixture();
            let mut origin = clone(&f.origin);
            let answerer = spawn(move || {
                let mut asked = [0u8; 8];
                let mut seed = 0;
                // One answer per request, until the client half-closes.
                while origin.read_exact(&mut asked).is_ok() {
                    seed += 1;
                    send_blocks(&mut origin, seed, 0, u64::from_le_bytes(asked));
                }
                origin.shutdown(Shutdown::Write).expect("shutdown");
                seed
            });
            let mut client = clone(&f.client);
            let asker = spawn(move || {
                let mut seed = 0;
                for count in ANSWER_BLOCKS.iter().flat_map(|&n| [n; ROUNDS]) {
                    seed += 1;
                    client.write_all(&count.to_le_bytes()).expect("request");
                    let mut got = vec![0u8; count as usize * BLOCK];
                    client.read_exact(&mut got).expect("answer");
                    assert!(got == blocks(seed, 0, count), "answer {seed} differs");
                }
                client.shutdown(Shutdown::Write).expect("shutdown");
                seed
            });
            let ran = run(f, Vec::new(), &cfg(splice), &pools).await;
            assert!(
                matches!(ran.end, TunnelEnd::Done),
                "{driver}: {:?}",
                ran.end
            );
            let asked = join(asker).await;
            assert_eq!(join(answerer).await, asked, "{driver} splice={splice}");
            let answered: u64 = ANSWER_BLOCKS.iter().map(|&n| n * ROUNDS as u64).sum();
            assert_eq!(ran.stats.origin_to_client, answered * BLOCK as u64);
            assert_eq!(ran.stats.client_to_origin, 8 * asked);
            assert_pools_settled(&pools);
        }
    });
}

#[test]
fn lowering_the_mark_wakes_a_pending_wait() {
    on_both_drivers(|driver| async move {
        let f = fixture();
        let mark = LowWater::new(f.c.as_raw_fd());
        mark.set(1024 * 1024);
        clone(&f.client).write_all(b"request").expect("write");
        let wait = f.c.readable(false);
        let lower = async {
            // Long enough for the wait to be pending with the high mark.
            monoio::time::sleep(Duration::from_millis(20)).await;
            mark.set(1);
        };
        let (woke, ()) = monoio::join!(monoio::time::timeout(RELAY_LIMIT, wait), lower);
        assert!(
            matches!(woke, Ok(Ok(()))),
            "{driver}: a wait on 7 bytes under a 1 MiB mark was not woken by lowering it"
        );
        assert_eq!(sys::rcvlowat(f.c.as_raw_fd()).expect("SO_RCVLOWAT"), 1);
        drop(mark);
    });
}
