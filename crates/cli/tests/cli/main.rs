//! Tests of the `tollgate` binary, in one test binary.
#![allow(clippy::unwrap_used)] // test code: a panic is how it fails

mod commands;
mod control_process;
mod customer_side;
mod disk_process;
mod docs;
mod edge_process;
mod gcore_tools;
mod hardening;
mod panel_browser;
mod playlist_memory;
mod procs;
mod seed_scripts;
mod streaming;

use std::process::{Command, Output, Stdio};

/// Runs `tollgate` with `args` and optional stdin.
pub fn tollgate(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_remove("TOLLGATE_KEY")
        .env_remove("TOLLGATE_API_TOKEN")
        .env_remove("TOLLGATE_CONTROL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running tollgate");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("writing stdin");
    }
    drop(input);
    child.wait_with_output().expect("waiting for tollgate")
}

/// stdout as a trimmed string.
pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// stderr as a string.
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
