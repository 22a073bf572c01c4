//! The threads that build and send mail, at the lowest CPU priority.
//!
//! Rendering a mail, building its MIME message and the SMTP exchange cost
//! CPU in proportion to the mail sent, and placement keeps creating mail:
//! at full placement speed a dispatcher sending as fast as it can would
//! take CPU from the requests that create it. These threads therefore run
//! at nice 19 (Linux; elsewhere at the normal priority): the scheduler
//! gives them the CPU that placement leaves idle, and next to nothing
//! while it is busy. The outbox absorbs the difference, and drains when
//! the burst is over.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The nice value of the mail threads (19 is the lowest priority).
pub(crate) const MAIL_NICE: i32 = 19;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of low-priority threads; they end when this is dropped
/// (after the job each is running).
pub(crate) struct Workers {
    jobs: mpsc::Sender<Job>,
}

impl Workers {
    /// Starts `count` threads named `oms-mail-N`.
    pub(crate) fn start(count: usize) -> std::io::Result<Workers> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..count.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("oms-mail-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let next = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match next {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Workers { jobs })
    }

    /// Runs `work` on one of the threads; the answer arrives on the
    /// receiver (closed if the work panicked).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> oneshot::Receiver<T> {
        let (answer, receiver) = oneshot::channel();
        let job: Job = Box::new(move || {
            // A panic is reported by the panic hook; the thread lives on.
            if let Ok(value) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
                let _ = answer.send(value);
            }
        });
        // Fails only when every thread is gone; the receiver then closes.
        let _ = self.jobs.send(job);
        receiver
    }
}

/// Renices the calling thread (on Linux `setpriority` with a thread id
/// applies to that thread only).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), MAIL_NICE)
    {
        tracing::debug!(error = %e, "cannot lower the mail threads' priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_low_priority_threads() {
        let workers = Workers::start(2).unwrap();
        let (name, nice) = workers
            .run(|| {
                let name = std::thread::current().name().map(str::to_string);
                #[cfg(target_os = "linux")]
                let nice =
                    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
                #[cfg(not(target_os = "linux"))]
                let nice = MAIL_NICE;
                (name, nice)
            })
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("oms-mail-"));
        assert_eq!(nice, MAIL_NICE);
        // A panicking job closes its answer; its thread goes on.
        let workers = Workers::start(1).unwrap();
        assert!(workers.run(|| panic!("boom")).await.is_err());
        assert_eq!(workers.run(|| 7).await.unwrap(), 7);
    }
}
