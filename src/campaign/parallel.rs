//! The group stage's passes run over fixed chunks of the facts file on the worker pool; this
//! module hands their results back in chunk order.
//!
//! Takes a pool, a number of chunks and the work of one chunk; gives each chunk's result to the
//! calling thread in chunk order, with a bounded number of chunks in flight (so memory stays
//! bounded by the chunk size, not the corpus).

use std::collections::BTreeMap;
use std::sync::mpsc;

/// Run `work(i)` for every `i` in `0..count` on `pool`, at most `ahead` at once, and hand the
/// results to `take` on the calling thread in order of `i`. `take` returns false to stop early:
/// chunks already started run to their end and their results are dropped. A panic in `work` (a
/// bug) is resumed on the calling thread once the started chunks are done.
pub(crate) fn in_order<T: Send>(
    pool: &rayon::ThreadPool,
    count: usize,
    ahead: usize,
    work: impl Fn(usize) -> T + Sync,
    mut take: impl FnMut(T) -> bool,
) {
    let (tx, rx) = mpsc::channel::<(usize, std::thread::Result<T>)>();
    let work = &work;
    let mut panicked = None;
    // In place: the calling thread takes results while the pool's threads work (with one
    // thread, a consumer inside the pool would wait for work nobody runs).
    pool.in_place_scope(|scope| {
        let spawn = |i: usize| {
            let tx = tx.clone();
            scope.spawn(move |_| {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(i)));
                // The receiver outlives the scope; a failed send only means the taker stopped.
                let _ = tx.send((i, result));
            });
        };
        let mut spawned = 0;
        while spawned < count.min(ahead.max(1)) {
            spawn(spawned);
            spawned += 1;
        }
        let mut next = 0;
        let mut parked = BTreeMap::new();
        'taking: while next < count {
            // A chunk numbered `next` is always in flight here, so a result always comes.
            let Ok((i, result)) = rx.recv() else {
                break;
            };
            parked.insert(i, result);
            while let Some(result) = parked.remove(&next) {
                next += 1;
                match result {
                    Ok(value) => {
                        if !take(value) {
                            break 'taking;
                        }
                    }
                    Err(panic) => {
                        panicked = Some(panic);
                        break 'taking;
                    }
                }
                if spawned < count {
                    spawn(spawned);
                    spawned += 1;
                }
            }
        }
    });
    if let Some(panic) = panicked {
        std::panic::resume_unwind(panic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    #[test]
    fn results_come_in_order_whatever_the_threads_and_window() {
        for threads in [1, 2, 4] {
            for ahead in [0, 1, 3, 100] {
                let mut seen = Vec::new();
                in_order(
                    &pool(threads),
                    50,
                    ahead,
                    |i| {
                        // Uneven work, so later chunks often finish first.
                        let spin = (50 - i) * 2_000;
                        std::hint::black_box(
                            (0..spin).fold(i as u64, |a, b| a.wrapping_mul(31) ^ b as u64),
                        );
                        i
                    },
                    |i| {
                        seen.push(i);
                        true
                    },
                );
                assert_eq!(
                    seen,
                    (0..50).collect::<Vec<_>>(),
                    "{threads} threads, {ahead}"
                );
            }
        }
        let mut none = 0;
        in_order(
            &pool(2),
            0,
            4,
            |i| i,
            |_| {
                none += 1;
                true
            },
        );
        assert_eq!(none, 0);
    }

    #[test]
    fn taking_can_stop_early_and_panics_reach_the_caller() {
        let mut taken = Vec::new();
        in_order(
            &pool(2),
            100,
            4,
            |i| i,
            |i| {
                taken.push(i);
                i < 9
            },
        );
        assert_eq!(taken, (0..10).collect::<Vec<_>>());
        let caught = std::panic::catch_unwind(|| {
            in_order(
                &pool(2),
                10,
                3,
                |i| {
                    assert!(i != 5, "chunk five is broken");
                    i
                },
                |_| true,
            )
        });
        let message = caught.expect_err("the panic is resumed");
        let text = message
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| message.downcast_ref::<String>().map(String::as_str));
        assert_eq!(text, Some("chunk five is broken"));
    }
}
