//! Test helpers shared by the crates' integration tests: the real peers (Debian's nginx,
//! php, python3, openssl), a raw HTTP client that sends targets byte for byte, and a seeded
//! random generator so that any failure can be replayed.

pub mod gen;
pub mod http;
pub mod nginx;
pub mod origin;
pub mod rng;
pub mod tools;
pub mod vectors;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A free loopback TCP port. The port is released before use, so a rare collision is possible;
/// launchers retry on a failed start.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}
