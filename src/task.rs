//! Spawned tasks owned by the code that started them.
//!
//! `tokio::spawn` detaches: a task outlives the future that spawned it unless someone aborts
//! it. The operator's parts run inside [`crate::operator::run`], and a dropped `run` (a test's
//! replica killed in-process, an embedding program's shutdown) must leave nothing behind: no
//! leadership still claimed, no webhook connection still answering. Every long-lived task is
//! therefore held as an [`Owned`], which aborts it when dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::{JoinError, JoinHandle};

/// A task that is aborted when this handle is dropped; awaiting it waits for its end.
#[derive(Debug)]
#[must_use = "dropping the handle aborts the task"]
pub struct Owned<T>(JoinHandle<T>);

/// Spawns `future` on the current runtime, owned by the returned handle.
pub fn spawn<F>(future: F) -> Owned<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Owned(tokio::spawn(future))
}

impl<T> Owned<T> {
    /// Aborts the task now (dropping the handle does the same).
    pub fn abort(&self) {
        self.0.abort();
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for Owned<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// Sets its flag when dropped: the task it lives in ended or was aborted.
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn dropping_the_handle_aborts_the_task() {
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Flag(ended.clone());
        let task = spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!ended.load(Ordering::SeqCst), "the task runs while owned");
        drop(task);
        for _ in 0..100 {
            if ended.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the task outlived its handle");
    }

    #[tokio::test]
    async fn awaiting_the_handle_gives_the_output() {
        let task = spawn(async { 7 });
        assert_eq!(task.await.ok(), Some(7));
        let aborted = spawn(std::future::pending::<()>());
        aborted.abort();
        assert!(aborted.await.is_err_and(|e| e.is_cancelled()));
    }
}
