//! The open-file limit: servers need one descriptor per connection. Like nginx's
//! `worker_rlimit_nofile` and Go's runtime, the soft limit is raised to the hard one at start
//! (a shell's default soft limit is often 1,024 while the hard one is far higher), and when even
//! the hard limit is below what the connection caps allow, the operator is told at start rather
//! than finding new clients refused with EMFILE under load.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors a process uses besides client connections: listeners, origin connections in
/// flight, the database, log files.
const SPARE: u64 = 256;

/// Raises the soft open-file limit to the hard one, and warns when `connections` (the sum of
/// the `--max-connections` caps this process enforces) cannot all be open at once. Returns the
/// limit now in force.
pub fn raise(who: &str, connections: u64) -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let now = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let needed = connections.saturating_add(SPARE);
    if now < needed {
        eprintln!(
            "tollgate {who}: warning: the open-file limit is {now}, and --max-connections allows \
             {connections} clients (about {needed} files): clients beyond the limit are refused; \
             raise it (ulimit -n, systemd LimitNOFILE=) or lower --max-connections"
        );
    }
    Some(now)
}
