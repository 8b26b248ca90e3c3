//! Finding the external programs the peer tests run.
//!
//! A missing tool fails the test with a message saying how to install it; it never skips,
//! because a test that silently skips under CI proves nothing. `scripts/test` installs them.

use std::path::PathBuf;

/// The path of `name` on `PATH` (or in `/usr/sbin`), or a panic naming the Debian package.
pub fn require(name: &str, package: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.push("/usr/local/sbin".into());
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{name}` is required by this test and was not found; install Debian's `{package}` \
         (scripts/test does: apt-get install -y {package})"
    );
}
