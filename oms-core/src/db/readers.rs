//! The reading connections of a serving [`super::Db`], and the threads that
//! use them.
//!
//! Async callers hand a query to a reader thread ([`ReadPool::run_on_thread`])
//! and await its answer, so no read ever runs on an async runtime's thread
//! unless the caller asked for an inline lookup
//! ([`ReadPool::try_run_here`]), which takes a free connection or none. A
//! blocking caller may use one on its own thread ([`ReadPool::run_here`]).
//! There are as many threads as connections; a thread that finds every
//! connection lent out waits for one.

use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

use crate::store::{Backend, ReadConnection, Reader};
use crate::{Error, Result};

type Conn = Box<dyn ReadConnection>;
type Task = Box<dyn FnOnce(&Reader) + Send>;

/// Connections not in use, and a signal when one comes back.
struct Idle {
    conns: Mutex<Vec<Conn>>,
    returned: Condvar,
}

impl Idle {
    /// Takes a connection, waiting for one when all are lent out.
    fn take(&self) -> Result<Conn> {
        let mut conns = self.conns.lock().map_err(|_| poisoned())?;
        loop {
            if let Some(conn) = conns.pop() {
                return Ok(conn);
            }
            conns = self.returned.wait(conns).map_err(|_| poisoned())?;
        }
    }

    fn give_back(&self, conn: Conn) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.push(conn);
        }
        self.returned.notify_one();
    }
}

fn poisoned() -> Error {
    Error::Database("the read pool was poisoned by a panic".into())
}

/// The reading connections and their threads.
pub(super) struct ReadPool {
    idle: Arc<Idle>,
    tasks: Mutex<Option<std_mpsc::Sender<Task>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl ReadPool {
    /// Opens `count` reading connections and starts as many threads.
    pub(super) fn open(backend: &dyn Backend, count: usize) -> Result<ReadPool> {
        let mut conns = Vec::with_capacity(count);
        for _ in 0..count {
            conns.push(backend.open_reader()?);
        }
        let idle = Arc::new(Idle {
            conns: Mutex::new(conns),
            returned: Condvar::new(),
        });
        let (tx, rx) = std_mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(count);
        for n in 0..count {
            let rx = Arc::clone(&rx);
            let idle = Arc::clone(&idle);
            let handle = std::thread::Builder::new()
                .name(format!("oms-reader-{n}"))
                .spawn(move || reader_loop(&rx, &idle))
                .map_err(|e| Error::io("cannot start a reader thread", e))?;
            threads.push(handle);
        }
        Ok(ReadPool {
            idle,
            tasks: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        })
    }

    /// Runs `query` on the calling thread with a connection of the pool,
    /// waiting for one if all are lent out.
    pub(super) fn run_here<T>(&self, query: impl FnOnce(&Reader) -> Result<T>) -> Result<T> {
        let conn = self.idle.take()?;
        let answer = query(conn.as_ref());
        self.idle.give_back(conn);
        answer
    }

    /// Runs `query` on the calling thread if a connection is free at once;
    /// gives the query back otherwise.
    pub(super) fn try_run_here<T, F>(&self, query: F) -> std::result::Result<Result<T>, F>
    where
        F: FnOnce(&Reader) -> Result<T>,
    {
        let conn = match self.idle.conns.try_lock() {
            Ok(mut conns) => conns.pop(),
            Err(_) => None,
        };
        let Some(conn) = conn else {
            return Err(query);
        };
        let answer = query(conn.as_ref());
        self.idle.give_back(conn);
        Ok(answer)
    }

    /// Runs `query` on a reader thread and awaits its answer.
    pub(super) async fn run_on_thread<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Reader) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let task: Task = Box::new(move |reader: &Reader| {
            let _ = reply.send(query(reader));
        });
        let sent = self
            .tasks
            .lock()
            .ok()
            .and_then(|tasks| tasks.as_ref().map(|t| t.send(task).is_ok()))
            .unwrap_or(false);
        if !sent {
            return Err(Error::Database("the read pool is closed".into()));
        }
        answer
            .await
            .map_err(|_| Error::Database("a reader dropped a query".into()))?
    }
}

impl Drop for ReadPool {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.take();
        }
        let threads = self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for handle in threads {
            let _ = handle.join();
        }
    }
}

/// One reader thread: takes a task, a connection, runs, gives it back.
fn reader_loop(tasks: &Mutex<std_mpsc::Receiver<Task>>, idle: &Idle) {
    loop {
        let task = match tasks.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(task) = task else {
            return; // the pool was closed
        };
        let Ok(conn) = idle.take() else {
            return;
        };
        task(conn.as_ref());
        idle.give_back(conn);
    }
}
