//! A future raced against one that rarely finishes (a deadline, an
//! interrupt), polling the rare one only when it was woken.
//!
//! `tokio::select!` polls every branch on every wake of the task. A
//! streaming request wakes once per token, so its deadline timer and the
//! run's interrupt channel were polled (a waker registration each, a mutex
//! for the channel) a hundred times a request to learn nothing.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// Which of the two finished first.
#[derive(Debug, PartialEq, Eq)]
pub enum Either<M, S> {
    /// The main future, with its output.
    Main(M),
    /// The rare one, with its output.
    Side(S),
}

/// Runs `main` until it or `side` finishes. `side` is polled once at the
/// start and then only after one of its own wakers fired; `main` on every
/// wake. When both are ready, `side` wins (a deadline is not outrun by a
/// body that keeps arriving).
pub async fn race_rare<M: Future, S: Future>(main: M, side: S) -> Either<M::Output, S::Output> {
    let mut main = pin!(main);
    let mut side = pin!(side);
    let wake = Arc::new(SideWake {
        woken: AtomicBool::new(true),
        parent: AtomicWaker::new(),
    });
    let side_waker = Waker::from(wake.clone());
    // The task's waker as last registered: it is registered again only
    // when it changes or a side wake-up used it up.
    let mut parent: Option<Waker> = None;
    std::future::poll_fn(move |cx| {
        let woken = wake.woken.load(Ordering::Acquire) && wake.woken.swap(false, Ordering::AcqRel);
        if woken || !parent.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            wake.parent.register(cx.waker());
            parent = Some(cx.waker().clone());
        }
        if woken && let Poll::Ready(out) = side.as_mut().poll(&mut Context::from_waker(&side_waker))
        {
            return Poll::Ready(Either::Side(out));
        }
        main.as_mut().poll(cx).map(Either::Main)
    })
    .await
}

/// The waker `side` sees: it marks itself and wakes the task.
struct SideWake {
    woken: AtomicBool,
    parent: AtomicWaker,
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.parent.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Counts its polls; pending forever.
    struct Counted<'a>(&'a AtomicUsize);

    impl Future for Counted<'_> {
        type Output = ();
        fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn the_side_is_polled_once_while_the_main_future_is_woken_often() {
        let polls = AtomicUsize::new(0);
        let main = async {
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            7
        };
        assert_eq!(race_rare(main, Counted(&polls)).await, Either::Main(7));
        assert_eq!(polls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_side_that_fires_ends_the_race_while_main_keeps_waking() {
        let wakes = AtomicUsize::new(0);
        let main = async {
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                wakes.fetch_add(1, Ordering::Relaxed);
            }
        };
        let side = tokio::time::sleep(Duration::from_millis(50));
        let started = std::time::Instant::now();
        let out: Either<(), ()> = race_rare(main, side).await;
        assert_eq!(out, Either::Side(()));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(
            wakes.load(Ordering::Relaxed) > 5,
            "main was not woken meanwhile"
        );
    }

    #[tokio::test]
    async fn a_side_woken_from_another_thread_wakes_a_parked_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let _ = tx.send(3);
        });
        let out = race_rare(std::future::pending::<()>(), rx).await;
        assert_eq!(out, Either::Side(Ok(3)));
    }

    #[tokio::test]
    async fn a_side_that_wakes_without_finishing_keeps_its_watch() {
        let (tx, mut rx) = tokio::sync::watch::channel(0u8);
        let side = async move {
            // Ready only at 2: the wake-up for 1 must re-arm it.
            loop {
                if *rx.borrow_and_update() == 2 {
                    return;
                }
                rx.changed().await.unwrap();
            }
        };
        std::thread::spawn(move || {
            for v in [1, 2] {
                std::thread::sleep(Duration::from_millis(10));
                tx.send(v).unwrap();
            }
            std::thread::sleep(Duration::from_secs(5));
        });
        let out = tokio::time::timeout(
            Duration::from_secs(3),
            race_rare(std::future::pending::<()>(), side),
        )
        .await;
        assert_eq!(out, Ok(Either::Side(())));
    }
}
