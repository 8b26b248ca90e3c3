//! One JSON line per request, written by a thread of its own so the request path never waits
//! on a disk or a terminal. The query string is left out: it holds the token.

use std::io::Write;
use std::sync::mpsc;

/// Where access log lines go.
#[derive(Clone)]
pub struct AccessLog {
    tx: Option<mpsc::SyncSender<String>>,
}

impl AccessLog {
    pub fn off() -> AccessLog {
        AccessLog { tx: None }
    }

    /// Lines to `out`, through a bounded queue; when the queue is full, lines are dropped
    /// rather than slowing requests down.
    pub fn to_writer(mut out: Box<dyn Write + Send>) -> AccessLog {
        let (tx, rx) = mpsc::sync_channel::<String>(65_536);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                while let Ok(line) = rx.recv() {
                    let _ = out.write_all(line.as_bytes());
                    // Drain what queued up meanwhile before flushing.
                    while let Ok(more) = rx.try_recv() {
                        let _ = out.write_all(more.as_bytes());
                    }
                    let _ = out.flush();
                }
            })
            .ok();
        AccessLog { tx: Some(tx) }
    }

    /// Whether lines are kept.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one line (a JSON object; a newline is added).
    pub fn write(&self, value: serde_json::Value) {
        if let Some(tx) = &self.tx {
            let mut line = value.to_string();
            line.push('\n');
            let _ = tx.try_send(line);
        }
    }
}
